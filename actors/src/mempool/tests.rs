//! The mempool actor's message handling through its handle.

use super::{MempoolActor, MempoolHandle, SenderState};
use crate::hvm::TxError;
use crate::testkit::transfer;
use actix::prelude::*;
use alloy_primitives::U256;

#[actix::test]
async fn admits_selects_in_nonce_order_replaces_only_with_a_bump_and_forgets_committed() {
    let pool = MempoolHandle::new(MempoolActor::new(Default::default()).start());
    let rich = SenderState { nonce: 0, balance: U256::from(10u128.pow(20)) };
    for n in [1, 0, 2] {
        pool.add(transfer(n, 3), rich).await.expect("running").expect("admitted");
    }
    let same_price = pool.add(transfer(1, 3), rich).await.expect("running");
    assert!(matches!(same_price, Err(TxError::AlreadyKnown)), "{same_price:?}");
    let no_bump = pool.add(transfer(1, 4), rich).await.expect("running");
    assert!(
        matches!(no_bump, Err(TxError::ReplacementUnderpriced)),
        "a replacement must raise both fees by 10%: {no_bump:?}"
    );
    let picked: Vec<u64> =
        pool.select(1_000, 30_000_000, 10).await.expect("select").iter().map(|t| t.nonce()).collect();
    assert_eq!(picked, vec![0, 1, 2], "one sender's txs leave in nonce order");
    assert_eq!(pool.status().await.expect("status"), (3, 0));
    // Block committed up to nonce 2: the first two leave, the third stays pending.
    let sender = transfer(0, 3).sender;
    pool.committed(1, vec![(sender, 2)]);
    assert_eq!(pool.status().await.expect("status"), (1, 0));
    assert_eq!(pool.pending_nonce(sender).await.expect("running"), Some(3));
    // A tx a builder found invalid is dropped.
    pool.drop_invalid(vec![transfer(2, 3).hash]);
    assert_eq!(pool.status().await.expect("status"), (0, 0));
}

/// Submissions wait while the pool's executable backlog is at the mark, go on as soon as a
/// commit drains it, and never wait longer than `max_wait` (time is tokio's paused clock).
#[actix::test]
async fn submissions_wait_for_a_full_backlog_to_drain_and_never_longer_than_the_cap() {
    use super::{AdmissionGroups, Backpressure, GroupParts};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    tokio::time::pause();
    let pool = MempoolHandle::new(MempoolActor::new(Default::default()).start());
    let max_wait = Duration::from_secs(60);
    // The sender's committed nonce, as the store would serve it.
    let committed = Arc::new(AtomicU64::new(0));
    let nonce = committed.clone();
    let groups = AdmissionGroups::start(GroupParts {
        mempool: pool.clone(),
        journal: None,
        states: Arc::new(move |_| {
            Ok(SenderState { nonce: nonce.load(Ordering::SeqCst), balance: U256::from(10u128.pow(20)) })
        }),
        backpressure: Backpressure { backlog: 2, max_wait },
    });
    for n in [0, 1] {
        groups.admit(transfer(n, 3)).await.expect("room in the backlog");
    }
    // Nothing drains the pool: the third waits the whole cap, then goes in anyway.
    let started = tokio::time::Instant::now();
    groups.admit(transfer(2, 3)).await.expect("admitted after the cap");
    assert!(started.elapsed() >= max_wait, "admitted after {:?} with a full backlog", started.elapsed());
    assert_eq!(pool.status().await.expect("status"), (3, 0));
    // A commit a second from now drains it: the fourth goes in then, long before the cap, and
    // is executable (its sender's state is read after the wait, at nonce 3).
    let sender = transfer(0, 3).sender;
    let drain = pool.clone();
    actix::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        committed.store(3, Ordering::SeqCst);
        drain.committed(1, vec![(sender, 3)]);
    });
    let started = tokio::time::Instant::now();
    groups.admit(transfer(3, 3)).await.expect("admitted once drained");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_secs(2), "waited {waited:?}");
    assert_eq!(pool.status().await.expect("status"), (1, 0));
}

/// The pool starts journal generations as it accepts transactions: every transaction it holds
/// is journaled at every moment, and the committed ones leave the journal a generation at a
/// time, so the journal stays bounded under a steady flow (here: 96 accepted, 4 held). Until
/// the journal read back at start-up is re-admitted, nothing is dropped.
#[actix::test]
async fn the_journal_rotates_as_transactions_are_accepted_and_always_holds_the_pool() {
    let (_dir, store, _) = crate::testkit::genesis_store();
    let reader = store.reader();
    let storage = bss_storage::StorageService::spawn(store, 16).expect("storage");
    let pool =
        MempoolHandle::new(MempoolActor::new(Default::default()).with_journal(storage.clone(), 16, 1 << 30).start());
    let rich = SenderState { nonce: 0, balance: U256::from(10u128.pow(20)) };
    let sender = transfer(0, 3).sender;
    let journaled = || -> std::collections::HashSet<alloy_primitives::B256> {
        reader.journaled_txs().expect("journal").iter().map(|t| t.hash).collect()
    };
    for n in 0..96u64 {
        if n == 40 {
            assert_eq!(journaled().len(), 40, "a generation was dropped while re-admission was under way");
            pool.journal_readmitted();
        }
        let tx = transfer(n, 3);
        // As admission does: into the pool, then into the journal before the acknowledgement.
        pool.add(tx.clone(), SenderState { nonce: n.saturating_sub(3), ..rich })
            .await
            .expect("running")
            .expect("admitted");
        storage.journal_txs(vec![(tx.hash, tx.raw.clone())]).await.expect("journaled");
        // Blocks commit all but the last four.
        pool.committed(n, vec![(sender, n.saturating_sub(3))]);
        for held in (n.saturating_sub(3)..=n).map(|k| transfer(k, 3).hash) {
            assert!(journaled().contains(&held), "tx {n}: a pooled tx is missing from the journal");
        }
    }
    // Two generations of at least 16 each, and what was accepted while a rotation ran.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while journaled().len() > 40 {
        assert!(std::time::Instant::now() < deadline, "the journal kept {} of 96 txs", journaled().len());
        tokio::task::yield_now().await;
    }
}
