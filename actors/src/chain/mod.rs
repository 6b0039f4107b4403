//! The chain service: the one place where the node builds, validates and commits L2 blocks and
//! keeps the uncommitted ones, whichever consensus engine drives it.
//!
//! * The native engine's driver (`crate::consensus`) turns the engine's `RequestProposal`,
//!   `RequestValidation` and `Commit` effects into [`ChainHandle`] calls.
//! * The hotstuff-rs adapter (crate `bss-hotstuff-rs`) calls the same service through its
//!   `Chain` trait, which [`ChainHandle`] implements.
//!
//! It asks the mempool for candidates, the executor (a service thread) for execution, checks
//! proposals' clocks and Bitcoin attributes, applies the fork guard, writes commits through the
//! storage service and announces them ([`CommittedBlock`]). A storage failure on commit, a
//! certified block that cannot be executed, or a mempool that is gone stops the node
//! ([`crate::fatal::stop`]); a fork-guard refusal halts the chain (reads keep being served).

mod actor;
pub mod hotstuff_rs;
mod messages;
mod metrics;
pub mod pending;
#[cfg(test)]
mod tests;

pub use actor::{now_ms, ChainActor, ChainConfig, ChainParts};
pub use messages::{Certified, ChainError, ChainHandle, Commit, CommittedBlock, Propose, Validate};
