//! The chain service's message handling, on a real store, executor service and mempool actor.

use super::*;
use crate::executor::ExecutorService;
use crate::mempool::{MempoolActor, MempoolHandle, SenderState};
use crate::testkit::{genesis_store, spec, transfer};
use actix::prelude::*;
use alloy_primitives::U256;
use bss_consensus::Certificate;
use bss_storage::StorageService;
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    chain: ChainHandle,
    mempool: MempoolHandle,
    reader: bss_storage::StoreReader,
    genesis: bss_consensus::BlockHeader,
}

fn fixture() -> Fixture {
    let (dir, store, genesis) = genesis_store();
    let reader = store.reader();
    let storage = StorageService::spawn(store, 16).expect("storage");
    let executor = ExecutorService::spawn(spec(), reader.clone(), None, 16, None).expect("executor");
    let mempool = MempoolHandle::new(MempoolActor::new(Default::default()).start());
    let chain = ChainActor::start(ChainParts {
        cfg: ChainConfig {
            operator_index: 0,
            min_base_fee: 7,
            max_block_txs: 100,
            max_clock_drift: Duration::from_secs(1),
            btc: None,
            guard: None,
            censored: Default::default(),
            skip_mints: false,
            clock_skew_ms: 0,
        },
        executor,
        mempool: mempool.clone(),
        storage,
        reader: reader.clone(),
        head: genesis.clone(),
    });
    Fixture { _dir: dir, chain, mempool, reader, genesis }
}

fn cert(block: &bss_consensus::Block) -> Certificate {
    Certificate {
        chain_id: 5,
        round: block.header.round,
        block_hash: block.hash(),
        signatures: vec![],
        hotstuff_rs: None,
    }
}

#[actix::test]
async fn a_proposal_takes_the_pool_validates_commits_once_and_is_announced() {
    let f = fixture();
    let state = SenderState { nonce: 0, balance: U256::from(10u128.pow(20)) };
    f.mempool.add(transfer(0, 3), state).await.expect("mempool").expect("admitted");
    let mut commits = f.chain.subscribe();
    let block = f.chain.propose(1, f.genesis.clone(), vec![], vec![]).await.expect("proposal");
    assert_eq!((block.number(), block.transactions.len()), (1, 1), "the pooled transfer is in it");
    // Validating our own proposal needs no second execution; the commit writes it.
    f.chain.validate(block.clone(), vec![], true).await.expect("valid");
    f.chain.commit(block.clone(), cert(&block), None).await.expect("commit");
    let announced = commits.recv().await.expect("announced");
    assert_eq!((announced.hash, announced.tx_hashes.len()), (block.hash(), 1));
    assert_eq!(f.reader.head_number().expect("head"), Some(1));
    // The same commit again (hotstuff-rs may repeat one) changes nothing.
    f.chain.commit(block.clone(), cert(&block), None).await.expect("repeat");
    assert_eq!(f.reader.head_number().expect("head"), Some(1));
    // A proposal at a committed height is valid only if it is the committed block.
    f.chain.validate(block.clone(), vec![], false).await.expect("the committed block itself");
    let mut rival = block.clone();
    rival.header.round += 7;
    match f.chain.validate(rival, vec![], true).await {
        Err(ChainError::BelowHead { number: 1, head: 1 }) => {}
        other => panic!("a rival of a committed block was not refused: {other:?}"),
    }
    // The included transfer left the pool once its sender's nonce moved on.
    let left = f.mempool.select(1_000, 30_000_000, 10).await.expect("select");
    assert!(left.is_empty(), "committed txs leave the pool: {}", left.len());
}

#[actix::test]
async fn proposals_from_the_future_and_on_unknown_parents_are_refused() {
    let f = fixture();
    let mut block = f.chain.propose(1, f.genesis.clone(), vec![], vec![]).await.expect("proposal");
    block.header.timestamp_ms = now_ms() + 60_000;
    match f.chain.validate(block.clone(), vec![], true).await {
        Err(ChainError::ClockAhead { ahead_ms }) => assert!(ahead_ms > 50_000),
        other => panic!("a block a minute ahead was not refused: {other:?}"),
    }
    let mut orphan = block.clone();
    orphan.header.timestamp_ms = now_ms();
    orphan.header.parent_hash = alloy_primitives::B256::repeat_byte(1);
    let e = f.chain.validate(orphan, vec![], true).await.expect_err("unknown parent");
    assert!(e.to_string().contains("unknown parent"), "{e}");
}

#[actix::test]
async fn certified_blocks_it_never_saw_are_executed_from_their_ancestors() {
    let f = fixture();
    // Two blocks built elsewhere (here: proposed, then forgotten by a fresh service).
    let a = f.chain.propose(1, f.genesis.clone(), vec![], vec![]).await.expect("a");
    let b = f.chain.propose(2, a.header.clone(), vec![], vec![]).await.expect("b");
    let g = fixture();
    // `b` arrives by block sync with `a` as its ancestor: validated as certified, then committed.
    g.chain.validate(b.clone(), vec![a.clone()], false).await.expect("synced block executes");
    let mut commits = g.chain.subscribe();
    g.chain.commit(a.clone(), cert(&a), None).await.expect("commit a");
    g.chain.commit(b.clone(), cert(&b), None).await.expect("commit b");
    // A commit returns once storage has it queued; it is announced once written, in order.
    assert_eq!(commits.recv().await.expect("a announced").hash, a.hash());
    assert_eq!(commits.recv().await.expect("b announced").hash, b.hash());
    assert_eq!(g.reader.head_number().expect("head"), Some(2));
    assert_eq!(g.reader.header(2).expect("read").map(|h| h.hash()), Some(b.hash()));
}

#[actix::test]
async fn the_next_block_builds_on_a_commit_storage_is_still_writing_and_each_is_announced_once() {
    let f = fixture();
    let mut commits = f.chain.subscribe();
    let a = f.chain.propose(1, f.genesis.clone(), vec![], vec![]).await.expect("a");
    f.chain.commit(a.clone(), cert(&a), None).await.expect("commit a");
    // Written or still queued, `a` is committed: a repeat of its commit changes nothing, a
    // rival at its height is refused, and the next block builds on it.
    f.chain.commit(a.clone(), cert(&a), None).await.expect("repeat");
    let mut rival = a.clone();
    rival.header.round += 1;
    match f.chain.validate(rival, vec![], false).await {
        Err(ChainError::BelowHead { number: 1, .. }) => {}
        other => panic!("a rival of a block being committed was not refused: {other:?}"),
    }
    let b = f.chain.propose(2, a.header.clone(), vec![], vec![]).await.expect("b on a");
    assert_eq!((b.number(), b.header.parent_hash), (2, a.hash()));
    f.chain.commit(b.clone(), cert(&b), None).await.expect("commit b");
    assert_eq!(commits.recv().await.expect("a announced").hash, a.hash());
    assert_eq!(commits.recv().await.expect("b announced").hash, b.hash());
    assert!(commits.try_recv().is_err(), "each block is announced once");
    assert_eq!(f.reader.head_number().expect("head"), Some(2));
}

#[actix::test]
async fn a_certified_block_executes_on_a_certified_parent_still_being_written() {
    let f = fixture();
    let a = f.chain.propose(1, f.genesis.clone(), vec![], vec![]).await.expect("a");
    let b = f.chain.propose(2, a.header.clone(), vec![], vec![]).await.expect("b");
    let c = f.chain.propose(3, b.header.clone(), vec![], vec![]).await.expect("c");
    // A fresh service that never saw them gets their commits back to back (block sync): each
    // executes on the one before while storage may still be writing it.
    let g = fixture();
    let mut commits = g.chain.subscribe();
    let (ra, rb, rc) = tokio::join!(
        g.chain.commit(a.clone(), cert(&a), None),
        g.chain.commit(b.clone(), cert(&b), None),
        g.chain.commit(c.clone(), cert(&c), None)
    );
    ra.expect("commit a");
    rb.expect("commit b");
    rc.expect("commit c");
    for block in [&a, &b, &c] {
        assert_eq!(commits.recv().await.expect("announced").hash, block.hash());
    }
    assert_eq!(g.reader.head_number().expect("head"), Some(3));
}
