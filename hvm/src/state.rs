//! State access for execution: committed state (fjall) under in-memory layers of executed but not
//! yet committed blocks, and the per-block write set revm commits into.

use alloy_primitives::{Address, Bytes, B256, U256};
use bss_storage::{AccountRecord, StorageError, StoreReader};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("missing code for hash {0}")]
    MissingCode(B256),
}

impl revm::database_interface::DBErrorMarker for StateError {}

/// Read access to some state.
pub trait StateSource: Send + Sync {
    fn account(&self, address: &Address) -> Result<Option<AccountRecord>, StateError>;
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError>;
    fn code(&self, hash: &B256) -> Result<Option<Bytes>, StateError>;
    /// Hash of block `number` on this state's chain, if it exists.
    fn block_hash(&self, number: u64) -> Result<Option<B256>, StateError>;
    /// Every non-zero storage slot of an account (needed when an account is destroyed).
    fn all_slots(&self, address: &Address) -> Result<Vec<(U256, U256)>, StateError>;
}

impl StateSource for StoreReader {
    fn account(&self, address: &Address) -> Result<Option<AccountRecord>, StateError> {
        Ok(StoreReader::account(self, address)?)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        Ok(StoreReader::storage(self, address, slot)?)
    }
    fn code(&self, hash: &B256) -> Result<Option<Bytes>, StateError> {
        Ok(StoreReader::code(self, hash)?)
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, StateError> {
        Ok(self.header(number)?.map(|h| h.hash()))
    }
    fn all_slots(&self, address: &Address) -> Result<Vec<(U256, U256)>, StateError> {
        Ok(self.storage_slots(address)?)
    }
}

/// The net state changes of one executed block.
#[derive(Debug, Default, Clone)]
pub struct BlockDiff {
    pub number: u64,
    pub hash: B256,
    /// `None`: account deleted.
    pub accounts: HashMap<Address, Option<AccountRecord>>,
    pub storage: HashMap<(Address, U256), U256>,
    /// Accounts whose whole storage was wiped in this block (before `storage` writes).
    pub wiped: HashSet<Address>,
    pub codes: HashMap<B256, Bytes>,
}

/// Committed state plus executed-but-uncommitted blocks, newest last.
#[derive(Clone)]
pub struct LayeredState {
    pub base: StoreReader,
    pub layers: Vec<Arc<BlockDiff>>,
}

impl StateSource for LayeredState {
    fn account(&self, address: &Address) -> Result<Option<AccountRecord>, StateError> {
        for layer in self.layers.iter().rev() {
            if let Some(a) = layer.accounts.get(address) {
                return Ok(a.clone());
            }
        }
        StateSource::account(&self.base, address)
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        for layer in self.layers.iter().rev() {
            if let Some(v) = layer.storage.get(&(*address, *slot)) {
                return Ok(*v);
            }
            if layer.wiped.contains(address) {
                return Ok(U256::ZERO);
            }
        }
        StateSource::storage(&self.base, address, slot)
    }

    fn code(&self, hash: &B256) -> Result<Option<Bytes>, StateError> {
        for layer in self.layers.iter().rev() {
            if let Some(c) = layer.codes.get(hash) {
                return Ok(Some(c.clone()));
            }
        }
        StateSource::code(&self.base, hash)
    }

    fn block_hash(&self, number: u64) -> Result<Option<B256>, StateError> {
        if let Some(l) = self.layers.iter().find(|l| l.number == number) {
            return Ok(Some(l.hash));
        }
        StateSource::block_hash(&self.base, number)
    }

    fn all_slots(&self, address: &Address) -> Result<Vec<(U256, U256)>, StateError> {
        let mut slots: std::collections::BTreeMap<U256, U256> = self.base.storage_slots(address)?.into_iter().collect();
        for layer in &self.layers {
            if layer.wiped.contains(address) {
                slots.clear();
            }
            for ((a, s), v) in &layer.storage {
                if a == address {
                    slots.insert(*s, *v);
                }
            }
        }
        Ok(slots.into_iter().filter(|(_, v)| !v.is_zero()).collect())
    }
}
