//! Opens the data dir, writes or checks genesis, and starts the storage service.

use super::{NodeConfig, NodeError};
use crate::hvm::Genesis;
use alloy_primitives::B256;
use bss_consensus::{Block, BlockHeader, Certificate, SafetyData};
use bss_storage::{StorageError, StorageHandle, StorageService, Store, StoreReader};
use tracing::info;

/// A fresh store whose genesis holds more accounts than this is reopened once it is written.
const REOPEN_AFTER_GENESIS: usize = 10_000;

/// What the rest of the node starts from.
pub struct Opened {
    pub reader: StoreReader,
    pub storage: StorageHandle,
    pub genesis_hash: B256,
    pub head: BlockHeader,
    pub head_cert: Option<Certificate>,
    pub safety: SafetyData,
    /// Blocks this replica voted for and persisted before a restart.
    pub pending: Vec<Block>,
}

pub fn open(cfg: &NodeConfig, genesis: &Genesis) -> Result<Opened, NodeError> {
    let db_path = cfg.data_dir.join("db");
    let storage_err = |source| NodeError::Storage { path: db_path.display().to_string(), source };
    std::fs::create_dir_all(&cfg.data_dir)?;
    let mut store = Store::open(&db_path, cfg.storage.fsync).map_err(storage_err)?;
    let (genesis_batch, _) = genesis.build();
    let genesis_hash = genesis_batch.block.hash();
    let written = store.init_genesis(genesis.spec.chain_id, &genesis_batch).map_err(storage_err)?;
    if written && genesis_batch.changes.accounts.len() > REOPEN_AFTER_GENESIS {
        // fjall keeps what one huge batch wrote in memory (~200 MB for a million accounts)
        // until much later; flushing it and reopening the fresh store lets all of it go.
        store.flush_accounts().map_err(storage_err)?;
        drop(store);
        store = Store::open(&db_path, cfg.storage.fsync).map_err(storage_err)?;
    }
    let reader = store.reader();
    let head_number = reader.head_number().map_err(storage_err)?.unwrap_or(0);
    let missing = || storage_err(StorageError::Corrupt { keyspace: "headers", reason: "head header missing".into() });
    let head = reader.header(head_number).map_err(storage_err)?.ok_or_else(missing)?;
    let head_cert = reader.certificate(head_number).map_err(storage_err)?;
    let safety = reader.safety().map_err(storage_err)?.unwrap_or_default();
    let pending = reader.pending_blocks().map_err(storage_err)?;
    info!(target: "node", chain_id = genesis.spec.chain_id, head = head.number, "storage opened");
    let storage = StorageService::spawn(store, 1024)?;
    Ok(Opened { reader, storage, genesis_hash, head, head_cert, safety, pending })
}
