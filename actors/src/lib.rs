//! The node's actors and the pure logic beside them (hVM execution, mempool rules).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod btc;
pub mod chain;
pub mod consensus;
pub mod executor;
pub use bss_hvm as hvm;
pub mod mempool;
pub mod network;
pub mod node;
pub mod pop;
pub mod rpc;
pub mod supervision;
pub mod sync_server;
pub use bss_consensus::telemetry;
pub mod tunnel;
pub use bss_storage::fatal;
#[cfg(test)]
pub(crate) mod testkit;
