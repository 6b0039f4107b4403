//! The hVM: pure execution logic (no actors, no I/O besides reading state), and the mempool's
//! rules for which of its transactions wait and which go into a block ([`txpool`]).
//!
//! Executing a block is a function of (parent state, header fields, transactions): every replica
//! that runs it gets the same receipts, state changes and state root.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod accounts;
pub mod btc_precompiles;
mod btc_precompiles_tx;
pub mod bytecode;
pub mod call;
pub mod chain;
pub mod execute;
pub mod fees;
pub mod hbtc;
pub mod leaf_cache;
pub mod limits;
pub mod lthash;
pub mod state;
pub mod tx;
pub mod txpool;
pub mod write_set;

pub use chain::{ChainSpec, Genesis};
pub use execute::{BlockBuilder, ExecutedBlock, ExecutionError};
pub use state::{BlockDiff, LayeredState, StateError, StateSource};
pub use tx::{SignedTx, TxError};

#[cfg(test)]
mod censorship_tests;
#[cfg(test)]
mod execute_tests;
#[cfg(test)]
mod hbtc_tests;
