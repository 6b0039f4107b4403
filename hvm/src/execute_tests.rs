//! Execution determinism: a block built on one store validates on another, every derived header
//! field is checked, and the incremental state root equals one computed from scratch.

use super::accounts::DevKey;
use super::execute::{BlockBuilder, ExecutedBlock, ExecutionError, ProposalFields};
use super::leaf_cache::LeafCache;
use super::lthash::{account_value, LtHash};
use super::{ChainSpec, Genesis, LayeredState, SignedTx};
use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use bss_consensus::{BlockHeader, BtcAttributes, Certificate};
use bss_storage::{StorageHandle, StorageService, Store, StoreReader};
use std::sync::Arc;

pub(crate) struct Node {
    _dir: tempfile::TempDir,
    pub spec: ChainSpec,
    pub reader: StoreReader,
    storage: StorageHandle,
    pub head: BlockHeader,
    pub acc: LtHash,
}

pub(crate) fn keys() -> Vec<DevKey> {
    (0..4).map(DevKey::from_seed).collect()
}

pub(crate) fn node() -> Node {
    node_with(vec![])
}

pub(crate) fn node_with(predeploys: Vec<super::hbtc::Predeploy>) -> Node {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path(), false).expect("open");
    let spec = ChainSpec {
        chain_id: 5,
        gas_limit: 30_000_000,
        min_base_fee: 7,
        fee_recipient: Address::repeat_byte(0xfe),
        max_tx_size: 1 << 17,
    };
    let genesis = Genesis {
        spec: spec.clone(),
        base_fee: 1_000,
        timestamp_ms: 0,
        alloc: keys().iter().map(|k| (k.address, U256::from(10u128.pow(20)))).collect(),
        predeploys,
        rules_hash: Default::default(),
    };
    let (batch, acc) = genesis.build();
    store.init_genesis(5, &batch).expect("genesis");
    let reader = store.reader();
    let storage = StorageService::spawn(store, 4).expect("service");
    Node { _dir: dir, spec, reader, storage, head: batch.block.header, acc }
}

pub(crate) fn tx(key: &DevKey, nonce: u64, to: TxKind, input: Bytes, value: u64) -> Arc<SignedTx> {
    let raw = key.sign_raw(TxEip1559 {
        chain_id: 5,
        nonce,
        gas_limit: 300_000,
        max_fee_per_gas: 1_000_000,
        max_priority_fee_per_gas: 3,
        to,
        value: U256::from(value),
        input,
        ..Default::default()
    });
    Arc::new(SignedTx::decode(&raw).expect("decode"))
}

/// Initcode of a contract whose runtime stores calldata[0..32] at slot calldata[32..64].
fn store_contract() -> Bytes {
    let runtime = [0x60, 0x00, 0x35, 0x60, 0x20, 0x35, 0x55, 0x00];
    let mut init = vec![0x60, runtime.len() as u8, 0x80, 0x60, 0x0b, 0x60, 0x00, 0x39, 0x60, 0x00, 0xf3];
    init.extend_from_slice(&runtime);
    Bytes::from(init)
}

pub(crate) fn fields(n: &Node) -> ProposalFields {
    ProposalFields {
        round: n.head.round + 1,
        proposer: 0,
        timestamp_ms: n.head.timestamp_ms + 1_000,
        btc: BtcAttributes::default(),
        anchors: vec![],
        inclusion: vec![],
        forced: vec![],
        mints: vec![],
        skip_mints: false,
        omit_senders: Default::default(),
    }
}

pub(crate) fn build(n: &Node, txs: Vec<Arc<SignedTx>>) -> ExecutedBlock {
    let state = LayeredState { base: n.reader.clone(), layers: vec![] };
    BlockBuilder::new(&n.spec, &state, &n.head, &n.acc).build(&fields(n), txs).expect("build")
}

/// [`build`] as the node's executor does it: with the expansions of recent leaves remembered.
fn build_remembering(n: &Node, txs: Vec<Arc<SignedTx>>, cache: &LeafCache) -> ExecutedBlock {
    let state = LayeredState { base: n.reader.clone(), layers: vec![] };
    BlockBuilder::new(&n.spec, &state, &n.head, &n.acc).with_leaf_cache(cache).build(&fields(n), txs).expect("build")
}

pub(crate) fn validate(n: &Node, e: &ExecutedBlock, txs: Vec<Arc<SignedTx>>) -> Result<ExecutedBlock, ExecutionError> {
    let state = LayeredState { base: n.reader.clone(), layers: vec![] };
    BlockBuilder::new(&n.spec, &state, &n.head, &n.acc).validate(&e.block, txs, &[], &[])
}

pub(crate) fn commit(n: &mut Node, e: &ExecutedBlock) {
    let cert = Certificate {
        chain_id: 5,
        round: e.block.header.round,
        block_hash: e.block.hash(),
        signatures: vec![],
        hotstuff_rs: None,
    };
    n.storage.commit_blocking(e.commit_batch(cert, None)).expect("commit");
    n.head = e.block.header.clone();
    n.acc = e.accumulator.clone();
}

pub(crate) fn from_scratch(r: &StoreReader) -> LtHash {
    let mut acc = LtHash::default();
    for (a, rec) in r.all_accounts().expect("accounts") {
        acc.add_account(&a, &account_value(rec.nonce, &rec.balance, &rec.code_hash));
    }
    for (a, s, v) in r.all_slots().expect("slots") {
        acc.add_slot(&a, &s, &v);
    }
    acc
}

#[test]
fn replicas_agree_and_incremental_root_equals_full_recompute() {
    let (mut a, mut b) = (node(), node());
    let k = keys();
    let contract = k[0].address.create(0);
    let word = |v: u8| {
        let mut d = vec![0u8; 64];
        d[31] = v;
        d[63] = v;
        Bytes::from(d)
    };
    let blocks = vec![
        vec![
            tx(&k[0], 0, TxKind::Create, store_contract(), 0),
            tx(&k[1], 0, TxKind::Call(k[2].address), Bytes::new(), 5),
        ],
        vec![
            tx(&k[0], 1, TxKind::Call(contract), word(1), 0),
            tx(&k[2], 0, TxKind::Call(contract), word(2), 0),
            tx(&k[3], 0, TxKind::Call(Address::repeat_byte(9)), Bytes::new(), 1),
        ],
        // Overwrite a slot with zero (a deletion) and another transfer.
        vec![
            tx(&k[0], 2, TxKind::Call(contract), word(0), 0),
            tx(&k[1], 1, TxKind::Call(k[3].address), Bytes::new(), 7),
        ],
    ];
    // The builder remembers leaf expansions (as the node's executor does), the replica does not.
    let cache = LeafCache::default();
    for txs in blocks {
        let built = build_remembering(&a, txs.clone(), &cache);
        assert!(built.rejected.is_empty(), "{:?}", built.rejected);
        assert!(built.receipts.iter().all(|r| r.success));
        let checked = validate(&b, &built, txs).expect("replica accepts");
        assert_eq!(checked.block.hash(), built.block.hash());
        commit(&mut a, &built);
        commit(&mut b, &checked);
        assert_eq!(from_scratch(&a.reader).root(), a.head.state_root, "incremental root drifted");
    }
    assert_eq!(a.reader.storage(&contract, &U256::from(2)).expect("slot"), U256::from(2));
    assert_eq!(a.reader.storage(&contract, &U256::ZERO).expect("slot"), U256::ZERO);
    assert!(cache.take_use().remembered >= 4, "k[0], k[1] and the contract's slot were removed from memory");
}

#[test]
fn replicas_refuse_wrong_roots_and_invalid_txs() {
    let (a, b) = (node(), node());
    let k = keys();
    let txs = vec![tx(&k[0], 0, TxKind::Call(k[1].address), Bytes::new(), 1)];
    let built = build(&a, txs.clone());
    let mut forged = built.clone();
    forged.block.header.state_root = alloy_primitives::B256::repeat_byte(1);
    assert!(matches!(validate(&b, &forged, txs.clone()), Err(ExecutionError::Mismatch { field: "state_root", .. })));
    let mut gas = built.clone();
    gas.block.header.gas_used += 1;
    assert!(matches!(validate(&b, &gas, txs.clone()), Err(ExecutionError::Mismatch { field: "gas_used", .. })));
    let mut fee = built.clone();
    fee.block.header.base_fee += 1;
    assert!(matches!(validate(&b, &fee, txs.clone()), Err(ExecutionError::Mismatch { field: "base_fee", .. })));
    // A proposal carrying a transaction that cannot execute (nonce gap) is invalid.
    let gap = vec![tx(&k[0], 5, TxKind::Call(k[1].address), Bytes::new(), 1)];
    let mut bad = built.clone();
    bad.block.transactions = gap.iter().map(|t| t.raw.clone()).collect();
    assert!(matches!(validate(&b, &bad, gap.clone()), Err(ExecutionError::InvalidTransaction { .. })));
    // The leader's own builder leaves such a tx out instead.
    let left_out = build(&a, gap);
    assert!(left_out.block.transactions.is_empty());
    assert_eq!(left_out.rejected.len(), 1);
}

/// A Byzantine leader's block carrying a tx signed for another chain, or a legacy tx without
/// EIP-155 replay protection, is refused by replicas; an honest builder leaves both out.
#[test]
fn replicas_refuse_txs_of_another_chain_or_without_eip155() {
    let (a, b) = (node(), node());
    let k = keys();
    let foreign = {
        let raw = k[0].sign_raw(TxEip1559 {
            chain_id: 1, // mainnet, not this chain (5)
            nonce: 0,
            gas_limit: 21_000,
            max_fee_per_gas: 1_000_000,
            max_priority_fee_per_gas: 3,
            to: TxKind::Call(k[1].address),
            value: U256::from(1),
            ..Default::default()
        });
        Arc::new(SignedTx::decode(&raw).expect("decode"))
    };
    let unprotected = {
        let raw = k[1].sign_raw(alloy_consensus::TxLegacy {
            chain_id: None,
            nonce: 0,
            gas_price: 1_000_000,
            gas_limit: 21_000,
            to: TxKind::Call(k[2].address),
            value: U256::from(1),
            ..Default::default()
        });
        Arc::new(SignedTx::decode(&raw).expect("decode"))
    };
    let honest = build(&a, vec![tx(&k[2], 0, TxKind::Call(k[3].address), Bytes::new(), 1)]);
    for (bad, want) in [(foreign, "invalid chain id"), (unprotected, "replay-protected")] {
        let mut forged = honest.clone();
        forged.block.transactions = vec![bad.raw.clone()];
        match validate(&b, &forged, vec![bad.clone()]) {
            Err(ExecutionError::InvalidTransaction { reason, .. }) => assert!(reason.contains(want), "{reason}"),
            other => panic!("a replica accepted or misjudged a tx it must refuse: {:?}", other.map(|e| e.block.hash())),
        }
        let left_out = build(&a, vec![bad]);
        assert!(left_out.block.transactions.is_empty());
        assert!(left_out.rejected[0].1.contains(want), "{:?}", left_out.rejected);
    }
}
