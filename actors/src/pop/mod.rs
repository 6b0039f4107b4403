//! Proof-of-Proof: keystones of committed L2 blocks written into Bitcoin by each operator's
//! PopSubmitter, the anchors the chain records, and superfinality with its fork guard.

pub mod finality;
pub mod guard;
pub mod keystone;
pub mod submitter;
pub mod tx;

pub use guard::ForkGuard;
pub use keystone::Keystone;
