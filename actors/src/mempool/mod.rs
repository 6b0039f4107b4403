//! Mempool actor: validated transactions by sender and nonce.
//!
//! The pure rules live in [`pool`]; the actor serialises access to them and reports metrics.

mod actor;
mod gossip;
mod grouping;
mod ingress;
mod journal;
mod messages;
mod metrics;
pub use bss_hvm::txpool as pool;
#[cfg(test)]
mod tests;

pub use actor::MempoolActor;
pub use gossip::GossipAdmission;
pub use grouping::{AdmissionGroups, Backpressure, GroupParts, SenderStates};
pub use ingress::{sender_state, AdmitError, TxIngress};
pub use journal::{GENERATION_MIN, GENERATION_MIN_BYTES};
pub use messages::MempoolHandle;
pub use pool::{Inserted, Pool, PoolConfig, SenderState};
