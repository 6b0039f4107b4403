//! Typed records stored in fjall (bincode, canonical config).

use alloy_primitives::{Address, Bytes, B256, U256};
use bss_consensus::{Block, Certificate, CommitProof};
use serde::{Deserialize, Serialize};

/// An account's nonce, balance and code hash. Code lives in the code keyspace by hash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub nonce: u64,
    pub balance: U256,
    pub code_hash: B256,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub address: Address,
    pub topics: Vec<B256>,
    pub data: Bytes,
}

/// A transaction receipt as stored; RPC derives the rest (hashes, log indexes) from the block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptRecord {
    pub tx_type: u8,
    pub success: bool,
    pub gas_used: u64,
    pub cumulative_gas_used: u64,
    pub effective_gas_price: u128,
    pub contract_address: Option<Address>,
    pub logs: Vec<LogRecord>,
}

/// A block's transactions with what was derived from them once (hash, recovered sender).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockBody {
    pub transactions: Vec<Bytes>,
    pub tx_hashes: Vec<B256>,
    pub senders: Vec<Address>,
}

/// Every state change of one block, in a deterministic order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChanges {
    /// `None` deletes the account.
    pub accounts: Vec<(Address, Option<AccountRecord>)>,
    /// A zero value deletes the slot.
    pub storage: Vec<(Address, U256, U256)>,
    pub codes: Vec<(B256, Bytes)>,
    /// The state commitment accumulator after this block (see the hVM's state root).
    pub state_accumulator: Vec<u8>,
}

impl StateChanges {
    /// The changes of consecutive blocks as one: for every account, slot and code the last
    /// block's value; the last block's accumulator.
    pub fn merge<'a>(runs: impl IntoIterator<Item = &'a StateChanges>) -> StateChanges {
        let mut accounts = std::collections::BTreeMap::new();
        let mut storage = std::collections::BTreeMap::new();
        let mut codes = std::collections::BTreeMap::new();
        let mut state_accumulator = Vec::new();
        for c in runs {
            accounts.extend(c.accounts.iter().cloned());
            storage.extend(c.storage.iter().map(|(a, s, v)| ((*a, *s), *v)));
            codes.extend(c.codes.iter().cloned());
            state_accumulator.clone_from(&c.state_accumulator);
        }
        StateChanges {
            accounts: accounts.into_iter().collect(),
            storage: storage.into_iter().map(|((a, s), v)| (a, s, v)).collect(),
            codes: codes.into_iter().collect(),
            state_accumulator,
        }
    }
}

/// Everything one committed block writes, applied atomically.
#[derive(Clone, Debug)]
pub struct CommitBatch {
    pub block: Block,
    pub certificate: Certificate,
    /// Set on the last block of a commit: proves this node's head to syncing peers.
    pub proof: Option<CommitProof>,
    pub body: BlockBody,
    pub receipts: Vec<ReceiptRecord>,
    pub changes: StateChanges,
}

/// The genesis block and its allocation, written once into an empty data dir.
#[derive(Clone, Debug)]
pub struct GenesisBatch {
    pub block: Block,
    pub changes: StateChanges,
}
