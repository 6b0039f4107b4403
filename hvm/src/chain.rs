//! Chain parameters and genesis.

use super::lthash::{account_value, LtHash};
use alloy_primitives::{Address, B256, U256};
use bss_consensus::{Block, BlockHeader, BtcAttributes};
use bss_storage::{AccountRecord, GenesisBatch, StateChanges};
use revm::primitives::KECCAK_EMPTY;
use serde::{Deserialize, Serialize};

/// The trie root of an empty list (transactions, receipts).
pub const EMPTY_ROOT: B256 =
    alloy_primitives::b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// Execution parameters every replica shares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSpec {
    pub chain_id: u64,
    pub gas_limit: u64,
    pub min_base_fee: u64,
    /// Receives priority fees (base fees are burned, as in EIP-1559).
    pub fee_recipient: Address,
    /// Largest accepted encoded transaction, bytes.
    pub max_tx_size: usize,
}

/// The `i`-th filler account of a genesis (`filler_accounts`): the last 20 bytes of
/// keccak256("bss/filler" ‖ i as u64 BE). Nobody holds its key.
pub fn filler_address(i: u64) -> Address {
    let mut m = b"bss/filler".to_vec();
    m.extend_from_slice(&i.to_be_bytes());
    Address::from_slice(&alloy_primitives::keccak256(m)[12..])
}

/// Genesis allocation and first header values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub spec: ChainSpec,
    pub base_fee: u64,
    pub timestamp_ms: u64,
    pub alloc: Vec<(Address, U256)>,
    /// Contracts genesis writes with their code and storage (hBTC when a tunnel is set up).
    pub predeploys: Vec<super::hbtc::Predeploy>,
    /// [`bss_consensus::GenesisRules::hash`] of the chain's rules and keys: the genesis block's
    /// parent hash, so that the genesis hash pins them.
    pub rules_hash: B256,
}

impl Genesis {
    /// The genesis block, its state and the state commitment accumulator.
    pub fn build(&self) -> (GenesisBatch, LtHash) {
        let mut acc = LtHash::default();
        let mut accounts: Vec<(Address, Option<AccountRecord>)> = Vec::new();
        let mut alloc = self.alloc.clone();
        alloc.sort();
        alloc.dedup_by(|a, b| a.0 == b.0);
        // A predeploy's address is its own account, whatever the allocation says.
        alloc.retain(|(a, _)| !self.predeploys.iter().any(|p| p.address == *a));
        for (addr, balance) in &alloc {
            let rec = AccountRecord { nonce: 0, balance: *balance, code_hash: KECCAK_EMPTY };
            acc.add_account(addr, &account_value(0, balance, &KECCAK_EMPTY));
            accounts.push((*addr, Some(rec)));
        }
        let mut storage = Vec::new();
        let mut codes = Vec::new();
        for p in &self.predeploys {
            let code_hash = alloy_primitives::keccak256(&p.code);
            // A created contract starts at nonce 1 (EIP-161), with no balance.
            let rec = AccountRecord { nonce: 1, balance: U256::ZERO, code_hash };
            acc.add_account(&p.address, &account_value(1, &U256::ZERO, &code_hash));
            accounts.push((p.address, Some(rec)));
            for (slot, value) in p.storage.iter().filter(|(_, v)| !v.is_zero()) {
                acc.add_slot(&p.address, slot, value);
                storage.push((p.address, *slot, *value));
            }
            codes.push((code_hash, p.code.clone()));
        }
        let header = BlockHeader {
            chain_id: self.spec.chain_id,
            number: 0,
            parent_hash: self.rules_hash,
            round: 0,
            proposer: 0,
            timestamp_ms: self.timestamp_ms,
            transactions_root: EMPTY_ROOT,
            receipts_root: EMPTY_ROOT,
            state_root: acc.root(),
            gas_used: 0,
            gas_limit: self.spec.gas_limit,
            base_fee: self.base_fee,
            btc: BtcAttributes::default(),
            anchors: vec![],
            inclusion: vec![],
            forced: vec![],
            mints: vec![],
        };
        let changes = StateChanges { accounts, storage, codes, state_accumulator: acc.to_bytes() };
        (GenesisBatch { block: Block { header, transactions: vec![] }, changes }, acc)
    }
}
