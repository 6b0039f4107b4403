//! The embedded Bitcoin regtest node (work in progress: see the README's Bitcoin section).

pub mod chain;
pub mod cmd;
pub mod node;
pub mod rpc;
