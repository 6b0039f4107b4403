//! The hVM: pure execution logic (no actors, no I/O besides reading state).
//!
//! Executing a block is a function of (parent state, header fields, transactions): every replica
//! that runs it gets the same receipts, state changes and state root.

pub mod accounts;
pub mod btc_precompiles;
pub mod bytecode;
pub mod call;
pub mod chain;
pub mod execute;
pub mod fees;
pub mod limits;
pub mod lthash;
pub mod state;
pub mod tx;
pub mod write_set;

pub use chain::{ChainSpec, Genesis};
pub use execute::{BlockBuilder, ExecutedBlock, ExecutionError};
pub use state::{BlockDiff, LayeredState, StateError, StateSource};
pub use tx::{SignedTx, TxError};

#[cfg(test)]
mod execute_tests;
