//! What the actors' unit tests share: a chain spec, a store with genesis, signed transfers.

use crate::hvm::accounts::{derive_accounts, DevKey, DEV_MNEMONIC};
use crate::hvm::{ChainSpec, Genesis, SignedTx};
use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, TxKind, U256};
use bss_consensus::BlockHeader;
use bss_storage::Store;
use std::sync::Arc;

pub const CHAIN_ID: u64 = 5;

pub fn spec() -> ChainSpec {
    ChainSpec {
        chain_id: CHAIN_ID,
        gas_limit: 30_000_000,
        min_base_fee: 7,
        fee_recipient: Address::ZERO,
        max_tx_size: 1 << 17,
    }
}

/// Dev account 0, funded at genesis by [`genesis_store`].
pub fn dev0() -> DevKey {
    derive_accounts(DEV_MNEMONIC, 1).expect("keys").remove(0)
}

/// A fresh store holding genesis (dev account 0 funded), and the genesis header.
pub fn genesis_store() -> (tempfile::TempDir, Store, BlockHeader) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path(), false).expect("open");
    let genesis = Genesis {
        spec: spec(),
        base_fee: 1_000,
        timestamp_ms: 0,
        alloc: vec![(dev0().address, U256::from(10u128.pow(20)))],
        predeploys: vec![],
        rules_hash: Default::default(),
    };
    let (batch, _) = genesis.build();
    store.init_genesis(CHAIN_ID, &batch).expect("genesis");
    (dir, store, batch.block.header)
}

/// A signed 1-wei transfer from dev account 0, decoded as admission would.
pub fn transfer(nonce: u64, tip: u128) -> Arc<SignedTx> {
    let raw = dev0().sign_raw(TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 1_000_000,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(Address::with_last_byte(9)),
        value: U256::from(1),
        ..Default::default()
    });
    Arc::new(SignedTx::decode(&raw).expect("tx"))
}
