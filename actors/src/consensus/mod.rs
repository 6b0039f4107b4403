//! The native engine's driver: feeds the sans-IO [`NativeEngine`](bss_consensus::native) its
//! inputs and turns its effects into I/O — proposals, validation and commits through the chain
//! service (`crate::chain`), safety data through storage, messages through the network, timers
//! through the actix context. Effects run strictly in order: a `PersistSafety` is durable before
//! anything after it (a signature, a commit) takes effect.

mod actor;
pub mod byzantine;
mod messages;

pub use actor::{ConsensusActor, ConsensusParts, ListSource};
pub use messages::{ConsensusBusy, ConsensusHandle, FromNetwork, SyncedBlocks};
