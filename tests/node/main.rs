//! Integration tests of a single bss node process: JSON-RPC end to end, bad input, supervision,
//! and crash consistency under SIGKILL.

#[path = "../support/mod.rs"]
mod support;

mod bounded;
mod contract;
mod crash;
mod rpc_end_to_end;
mod supervision;
mod wallets;
