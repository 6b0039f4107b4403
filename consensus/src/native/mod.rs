//! The native engine: our own HotStuff, 2-chain commit (Jolteon / HotStuff-2 family).
//!
//! * A block is proposed by the leader of its round together with the QC of its parent (and a
//!   TC when the previous round failed). Replicas re-execute it (validation effect) and vote by
//!   sending a signed vote to the next round's leader, who aggregates 2f+1 votes into a QC and
//!   proposes at once: one proposal per round, pipelined, no waiting for timeouts.
//! * Commit rule: a QC for block B' whose parent B is exactly one round older commits B and its
//!   ancestors.
//! * Vote rule: vote once per round, only if the round is above every round this replica signed
//!   in, and the proposal extends the QC of the previous round, or a TC of the previous round
//!   whose highest reported QC it does not go below.
//! * Pacemaker: a round timer with exponential backoff (reset on progress). On expiry a replica
//!   signs a timeout carrying its highest QC; 2f+1 timeouts form a TC that opens the next round;
//!   f+1 timeouts for a higher round pull a lagging replica into it.
//! * Safety data (highest signed round, highest QC) is persisted before any signature leaves.
//! * Missing blocks are fetched from the peer that referred to them; a replica that is far
//!   behind asks for committed blocks with a commit proof and verifies every certificate.

mod core;
pub mod leader;
pub mod messages;
mod metrics;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_inclusion;

pub use self::core::{head_qc, NativeConfig, NativeEngine};
pub use messages::NativeMessage;
