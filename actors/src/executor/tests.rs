//! The executor service's handling of requests and of a panic inside it.

use super::{ExecutorError, ExecutorService};
use crate::hvm::execute::ProposalFields;
use crate::testkit::{genesis_store, spec};
use alloy_primitives::B256;

#[actix::test]
async fn a_panic_fails_only_the_request_in_flight_and_the_next_one_is_served() {
    let (_dir, store, genesis) = genesis_store();
    let executor = ExecutorService::spawn(spec(), store.reader(), None, 4).expect("executor");
    let parent = genesis.hash();
    let fields = || ProposalFields {
        round: 1,
        proposer: 0,
        timestamp_ms: 1,
        btc: Default::default(),
        anchors: vec![],
        inclusion: vec![],
        forced: vec![],
        mints: vec![],
        skip_mints: false,
        omit_senders: Default::default(),
    };
    let before = executor.build(parent, vec![], fields(), vec![]).await.expect("built");
    executor.inject_panic();
    // Requests queued behind the panic are served by the restarted executor, from storage.
    let after = executor.build(parent, vec![], fields(), vec![]).await.expect("built after the restart");
    assert_eq!(after.block.hash(), before.block.hash(), "same committed state, same block");
    // A parent it was not given is refused, not guessed.
    match executor.build(B256::repeat_byte(3), vec![], fields(), vec![]).await {
        Err(ExecutorError::UnknownParent(p)) => assert_eq!(p, B256::repeat_byte(3)),
        other => panic!("built on an unknown parent: {:?}", other.map(|e| e.block.hash())),
    }
}
