//! The node's actors and the pure logic beside them (hVM execution, mempool rules).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod hvm;
pub mod mempool;
