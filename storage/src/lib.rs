//! fjall-backed typed stores for a bss node.
//!
//! * [`Store::open`] opens (or creates) the database and its keyspaces.
//! * [`StoreReader`] is a cheap, cloneable read view any thread may use.
//! * [`StorageService`] owns every write: one blocking thread behind a [`StorageHandle`]. A block
//!   and everything derived from it is written in one atomic batch, so a process killed at any
//!   moment restarts at its last committed block with consistent state. A failed write is fatal.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod aux;
pub mod fatal;
mod keys;
mod reader;
mod records;
mod service;
mod store;

pub use aux::{AuxBatch, AuxSnapshot, AuxSpace, AuxWriter};
pub use reader::{JournalKey, JournaledTx, StoreReader};
pub use records::{AccountRecord, BlockBody, CommitBatch, GenesisBatch, LogRecord, ReceiptRecord, StateChanges};
pub use service::{StorageHandle, StorageService, Written};
pub use store::Store;

/// Storage errors. Any error on a write path is fatal to the node.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("fjall: {0}")]
    Fjall(#[from] fjall::Error),
    #[error("corrupt record in {keyspace}: {reason}")]
    Corrupt { keyspace: &'static str, reason: String },
    #[error("encoding {what}: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error("data dir belongs to chain {found}, config says chain {expected}")]
    WrongChain { expected: u64, found: u64 },
    #[error("data dir genesis {found} differs from the configured genesis {expected}")]
    WrongGenesis { expected: String, found: String },
    #[error("block {got} does not follow head {head}")]
    OutOfOrder { head: u64, got: u64 },
    #[error("the storage service has stopped")]
    ServiceStopped,
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
