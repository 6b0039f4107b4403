//! The node's actors and the pure logic beside them (hVM execution, mempool rules).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod hvm;
pub mod mempool;
pub mod executor;
pub mod consensus;
pub mod rpc;
pub mod supervision;
pub mod node;
