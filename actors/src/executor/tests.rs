//! The executor service's handling of requests and of a panic inside it.

use super::{ExecutorError, ExecutorService};
use crate::hvm::execute::ProposalFields;
use crate::testkit::{genesis_store, spec};
use alloy_primitives::B256;

#[actix::test]
async fn a_panic_fails_only_the_request_in_flight_and_the_next_one_is_served() {
    let (_dir, store, genesis) = genesis_store();
    let executor = ExecutorService::spawn(spec(), store.reader(), None, 4, None).expect("executor");
    let parent = genesis.hash();
    let before = executor.build(parent, vec![], fields(1), vec![]).await.expect("built");
    executor.inject_panic();
    // Requests queued behind the panic are served by the restarted executor, from storage.
    let after = executor.build(parent, vec![], fields(1), vec![]).await.expect("built after the restart");
    assert_eq!(after.block.hash(), before.block.hash(), "same committed state, same block");
    // A parent it was not given is refused, not guessed.
    match executor.build(B256::repeat_byte(3), vec![], fields(1), vec![]).await {
        Err(ExecutorError::UnknownParent(p)) => assert_eq!(p, B256::repeat_byte(3)),
        other => panic!("built on an unknown parent: {:?}", other.map(|e| e.block.hash())),
    }
}

fn fields(round: u64) -> ProposalFields {
    ProposalFields {
        round,
        proposer: 0,
        timestamp_ms: round * 1_000,
        btc: Default::default(),
        anchors: vec![],
        inclusion: vec![],
        forced: vec![],
        mints: vec![],
        skip_mints: false,
        omit_senders: Default::default(),
    }
}

#[test]
fn a_block_on_a_head_executed_here_reads_the_heads_changes_from_memory_and_gets_the_same_block() {
    use crate::testkit::transfer;
    let (_dir, store, genesis) = genesis_store();
    let storage = bss_storage::StorageService::spawn(store.clone(), 4).expect("storage");
    let load = || super::Executor::load(spec(), store.reader(), None, super::metrics::ExecutorMetrics::register());
    let mut warm = load().expect("executor");
    let first = warm.build(&genesis.hash(), &[], fields(1), vec![transfer(0, 1)]).expect("block 1");
    assert!(!warm.head_is_warm(), "block 1 is not committed yet");
    let certificate = bss_consensus::Certificate {
        chain_id: crate::testkit::CHAIN_ID,
        round: 1,
        block_hash: first.block.hash(),
        signatures: vec![],
        hotstuff_rs: None,
    };
    storage.commit_blocking(first.commit_batch(certificate, None)).expect("commit");
    assert!(warm.head_is_warm(), "the committed head was executed here: its changes stay in memory");
    // The sender's nonce and balance come from block 1's changes here, from the store there.
    let on_warm = warm.build(&first.block.hash(), &[], fields(2), vec![transfer(1, 1)]).expect("block 2");
    let mut cold = load().expect("executor");
    assert!(!cold.head_is_warm(), "a fresh executor executed nothing");
    let on_store = cold.build(&first.block.hash(), &[], fields(2), vec![transfer(1, 1)]).expect("block 2");
    assert!(on_warm.rejected.is_empty() && on_warm.block.transactions.len() == 1, "{:?}", on_warm.rejected);
    assert_eq!(on_warm.block.hash(), on_store.block.hash(), "same state, same block");
    assert_eq!(on_warm.changes, on_store.changes);
}
