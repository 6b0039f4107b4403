//! The node's actors and the pure logic beside them (hVM execution, mempool rules).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod btc;
pub mod consensus;
pub mod executor;
pub mod hotstuff;
pub mod hvm;
pub mod mempool;
pub mod network;
pub mod node;
pub mod pop;
pub mod rpc;
pub mod supervision;
