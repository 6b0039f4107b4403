//! Consensus actor: drives an [`Engine`](bss_consensus::Engine) and turns its effects into I/O —
//! proposals and validation through the executor, safety data and commits through storage,
//! timers through the actix context. Effects run strictly in order: a `PersistSafety` is durable
//! before anything after it (a signature, a commit) takes effect.

mod actor;
mod messages;

pub use actor::{announce_commit, now_ms, ConsensusActor, ConsensusConfig, ConsensusParts};
pub use messages::{CommittedBlock, ConsensusHandle, FromNetwork, SyncedBlocks};
