use crate::{AccountRecord, BlockBody, CommitBatch, GenesisBatch, StateChanges, StorageError, StorageService, Store};
use alloy_primitives::{Address, Bytes, B256, U256};
use bss_consensus::{Block, BlockHeader, BtcAttributes, Certificate, SafetyData};

fn header(number: u64, parent: B256) -> BlockHeader {
    BlockHeader {
        chain_id: 9,
        number,
        parent_hash: parent,
        round: number,
        proposer: 0,
        timestamp_ms: number,
        transactions_root: B256::ZERO,
        receipts_root: B256::ZERO,
        state_root: B256::ZERO,
        gas_used: 0,
        gas_limit: 30_000_000,
        base_fee: 1,
        btc: BtcAttributes::default(),
        anchors: vec![],
        inclusion: vec![],
        forced: vec![],
        mints: vec![],
    }
}

fn genesis() -> GenesisBatch {
    let a = Address::repeat_byte(1);
    GenesisBatch {
        block: Block { header: header(0, B256::ZERO), transactions: vec![] },
        changes: StateChanges {
            accounts: vec![(a, Some(AccountRecord { nonce: 0, balance: U256::from(100), code_hash: B256::ZERO }))],
            state_accumulator: vec![1, 2, 3],
            ..Default::default()
        },
    }
}

fn batch(number: u64, parent: B256, changes: StateChanges) -> CommitBatch {
    let block = Block { header: header(number, parent), transactions: vec![Bytes::from_static(b"tx")] };
    CommitBatch {
        proof: None,
        certificate: Certificate {
            chain_id: 9,
            round: number,
            block_hash: block.hash(),
            signatures: vec![],
            hotstuff_rs: None,
        },
        body: BlockBody {
            transactions: block.transactions.clone(),
            tx_hashes: vec![B256::with_last_byte(number as u8)],
            senders: vec![Address::ZERO],
        },
        receipts: vec![],
        block,
        changes,
    }
}

#[test]
fn genesis_is_written_once_and_checked_after() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path(), false).expect("open");
    store.init_genesis(9, &genesis()).expect("genesis");
    store.init_genesis(9, &genesis()).expect("same genesis again");
    assert!(matches!(store.init_genesis(10, &genesis()), Err(StorageError::WrongChain { expected: 10, found: 9 })));
    let mut other = genesis();
    other.block.header.gas_limit = 1;
    assert!(matches!(store.init_genesis(9, &other), Err(StorageError::WrongGenesis { .. })));
    let r = store.reader();
    assert_eq!(r.head_number().expect("head"), Some(0));
    assert_eq!(r.account(&Address::repeat_byte(1)).expect("acct").map(|a| a.balance), Some(U256::from(100)));
    assert_eq!(r.state_accumulator().expect("acc"), Some(vec![1, 2, 3]));
}

#[test]
fn commits_apply_atomically_in_order_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    let g = genesis();
    let g_hash = g.block.hash();
    {
        let store = Store::open(dir.path(), true).expect("open");
        store.init_genesis(9, &g).expect("genesis");
        let handle = StorageService::spawn(store.clone(), 4).expect("service");
        let a = Address::repeat_byte(1);
        let changes = StateChanges {
            accounts: vec![(a, None), (Address::repeat_byte(2), Some(AccountRecord::default()))],
            storage: vec![(a, U256::from(1), U256::from(5))],
            codes: vec![(B256::repeat_byte(3), Bytes::from_static(b"code"))],
            state_accumulator: vec![9],
        };
        handle.commit_blocking(batch(1, g_hash, changes)).expect("commit 1");
        // Out of order is refused and changes nothing.
        let err = handle.commit_blocking(batch(3, B256::ZERO, StateChanges::default()));
        assert!(matches!(err, Err(StorageError::OutOfOrder { head: 1, got: 3 })));
        let rt = tokio_rt();
        rt.block_on(handle.put_safety(SafetyData { last_signed_round: 4, highest_qc: None })).expect("safety");
        let pending_low = Block { header: header(1, B256::ZERO), transactions: vec![] };
        let pending_high = Block { header: header(7, B256::ZERO), transactions: vec![] };
        rt.block_on(handle.put_pending(pending_low)).expect("pending");
        rt.block_on(handle.put_pending(pending_high)).expect("pending");
        let mut b2 = batch(2, h1_hash(&store), StateChanges { state_accumulator: vec![10], ..Default::default() });
        b2.proof = Some(bss_consensus::CommitProof { child: header(3, B256::ZERO), child_qc: b2.certificate.clone() });
        handle.commit_blocking(b2).expect("commit 2");
    }
    let store = Store::open(dir.path(), true).expect("reopen");
    let r = store.reader();
    assert_eq!(r.head_number().expect("head"), Some(2));
    // Committing block 2 pruned the pending block at height 1, not the one at 7.
    assert_eq!(r.pending_blocks().expect("pending").iter().map(|b| b.number()).collect::<Vec<_>>(), vec![7]);
    assert_eq!(r.commit_proof().expect("proof").map(|p| p.child.number), Some(3));
    assert_eq!(r.committed_block(2).expect("block").map(|(b, _)| b.transactions.len()), Some(1));
    assert_eq!(r.recent_proposers(10).expect("history"), vec![(1, 0), (2, 0)]);
    assert_eq!(r.account(&Address::repeat_byte(1)).expect("acct"), None);
    assert_eq!(r.storage(&Address::repeat_byte(1), &U256::from(1)).expect("slot"), U256::from(5));
    assert_eq!(r.storage_slots(&Address::repeat_byte(1)).expect("slots"), vec![(U256::from(1), U256::from(5))]);
    assert_eq!(r.code(&B256::repeat_byte(3)).expect("code"), Some(Bytes::from_static(b"code")));
    assert_eq!(r.tx_location(&B256::with_last_byte(1)).expect("tx"), Some((1, 0)));
    let h1 = r.header(1).expect("header").expect("present");
    assert_eq!(r.number_by_hash(&h1.hash()).expect("index"), Some(1));
    assert!(r.certificate(1).expect("cert").is_some());
    assert_eq!(r.safety().expect("safety").map(|s| s.last_signed_round), Some(4));
    assert_eq!(r.state_accumulator().expect("acc"), Some(vec![10]));
}

fn h1_hash(store: &Store) -> B256 {
    store.reader().header(1).expect("read").expect("header 1").hash()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime")
}

#[test]
fn a_run_of_blocks_commits_in_one_batch_with_the_last_values_winning() {
    let dir = tempfile::tempdir().expect("tmp");
    let g = genesis();
    let store = Store::open(dir.path(), true).expect("open");
    store.init_genesis(9, &g).expect("genesis");
    let handle = StorageService::spawn(store.clone(), 4).expect("service");
    let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
    let acct = |nonce| Some(AccountRecord { nonce, balance: U256::from(7), code_hash: B256::ZERO });
    let b1 = batch(
        1,
        g.block.hash(),
        StateChanges {
            accounts: vec![(a, acct(1)), (b, acct(1))],
            storage: vec![(a, U256::from(1), U256::from(5)), (a, U256::from(2), U256::from(6))],
            state_accumulator: vec![1],
            ..Default::default()
        },
    );
    let b2 = batch(
        2,
        b1.block.hash(),
        StateChanges {
            accounts: vec![(a, acct(2)), (b, None)],
            storage: vec![(a, U256::from(1), U256::ZERO)],
            state_accumulator: vec![2],
            ..Default::default()
        },
    );
    let mut b3 = batch(3, b2.block.hash(), StateChanges { state_accumulator: vec![3], ..Default::default() });
    b3.proof = Some(bss_consensus::CommitProof { child: header(4, B256::ZERO), child_qc: b3.certificate.clone() });
    // A run that does not start on the head, or has a gap, is refused whole.
    let rt = tokio_rt();
    let gap = rt.block_on(handle.commit_many(vec![b1.clone(), b3.clone()]));
    assert!(matches!(gap, Err(StorageError::OutOfOrder { head: 1, got: 3 })), "{gap:?}");
    assert_eq!(store.reader().head_number().expect("head"), Some(0));
    rt.block_on(handle.commit_many(vec![b1, b2, b3])).expect("commit 1..=3");
    let r = store.reader();
    assert_eq!(r.head_number().expect("head"), Some(3));
    assert_eq!(r.account(&a).expect("a").map(|x| x.nonce), Some(2));
    assert_eq!(r.account(&b).expect("b"), None, "deleted by the later block");
    assert_eq!(r.storage_slots(&a).expect("slots"), vec![(U256::from(2), U256::from(6))]);
    assert_eq!(r.state_accumulator().expect("acc"), Some(vec![3]));
    assert_eq!(r.commit_proof().expect("proof").map(|p| p.child.number), Some(4));
    for n in 1..=3 {
        assert!(r.committed_block(n).expect("block").is_some(), "block {n}");
        assert_eq!(r.tx_location(&B256::with_last_byte(n as u8)).expect("tx"), Some((n, 0)));
    }
}

/// A journal entry whose raw bytes are `[n; 3]` under hash `n`.
fn journal_tx(n: u8) -> (B256, Bytes) {
    (B256::with_last_byte(n), Bytes::from(vec![n; 3]))
}

/// The first byte of every transaction the journal reads back, sorted.
fn journaled(store: &Store) -> Vec<u8> {
    let mut raws: Vec<u8> = store.reader().journaled_txs().expect("journal").iter().map(|t| t.raw[0]).collect();
    raws.sort();
    raws
}

/// The mempool journal keeps two generations. A rotation writes the live pool into a fresh
/// generation and drops the one before the current whole: what was journaled into the current
/// one just before the rotation survives it, and a committed transaction is gone two rotations
/// later without a tombstone of its own. Re-admission reads each transaction once, without
/// the committed ones.
#[test]
fn the_mempool_journal_drops_committed_transactions_a_generation_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio_rt();
    {
        let store = Store::open(dir.path(), false).expect("open");
        store.init_genesis(9, &genesis()).expect("genesis");
        let storage = StorageService::spawn(store.clone(), 4).expect("service");
        rt.block_on(storage.journal_txs(vec![journal_tx(1), journal_tx(2), journal_tx(3)])).expect("journal");
        // Block 1 commits tx 1 (its body's only hash): re-admission skips it from now on.
        storage.commit_blocking(batch(1, genesis().block.hash(), StateChanges::default())).expect("commit");
        assert_eq!(journaled(&store), vec![2, 3]);
        // The pool holds 3 now; 2 left it. 2 stays on disk until the next rotation.
        rt.block_on(storage.rotate_journal(vec![journal_tx(3)])).expect("rotate");
        rt.block_on(storage.journal_txs(vec![journal_tx(4)])).expect("journal");
        assert_eq!(journaled(&store), vec![2, 3, 4]);
        rt.block_on(storage.rotate_journal(vec![journal_tx(4)])).expect("rotate");
        assert_eq!(journaled(&store), vec![3, 4], "the generation before the current one is dropped");
        rt.block_on(storage.rotate_journal(vec![journal_tx(4)])).expect("rotate");
        assert_eq!(journaled(&store), vec![4]);
    }
    // After a restart both generations are read back, each transaction once.
    let store = Store::open(dir.path(), false).expect("reopen");
    assert_eq!(journaled(&store), vec![4]);
    // An entry in the format journals had before sequence keys (hash → raw) is read back too.
    store.journals[0].insert(journal_tx(6).0.to_vec(), journal_tx(6).1.to_vec()).expect("legacy entry");
    let storage = StorageService::spawn(store.clone(), 4).expect("service");
    // New entries go after the ones on disk; none is overwritten.
    rt.block_on(storage.journal_txs(vec![journal_tx(5)])).expect("journal");
    assert_eq!(journaled(&store), vec![4, 5, 6]);
    // Stale transactions are forgotten from both generations by the key they were read under
    // (commands are written in order).
    let read = store.reader().journaled_txs().expect("journal");
    storage.unjournal(read.iter().filter(|t| t.raw[0] != 5).flat_map(|t| t.keys.clone()).collect());
    rt.block_on(storage.journal_txs(vec![journal_tx(7)])).expect("journal");
    assert_eq!(journaled(&store), vec![5, 7]);
    let hashes: Vec<B256> = store.reader().journaled_txs().expect("journal").iter().map(|t| t.hash).collect();
    assert!(
        hashes.contains(&journal_tx(5).0) && hashes.contains(&journal_tx(7).0),
        "each read back under its own hash"
    );
}

/// Journal entries are keyed by a sequence number that continues after a restart from the
/// highest on disk: a restarted node's first entries overwrite none of those it must re-admit.
#[test]
fn the_journal_sequence_continues_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio_rt();
    for (round, expected) in [(1u8, vec![1]), (2, vec![1, 2]), (3, vec![1, 2, 3])] {
        let store = Store::open(dir.path(), false).expect("open");
        let storage = StorageService::spawn(store.clone(), 4).expect("service");
        rt.block_on(storage.journal_txs(vec![journal_tx(round)])).expect("journal");
        assert_eq!(journaled(&store), expected, "after restart {round}");
    }
}
