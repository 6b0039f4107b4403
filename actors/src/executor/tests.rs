//! The executor service's handling of requests and of a panic inside it.

use super::{ExecutorError, ExecutorService};
use crate::hvm::execute::ProposalFields;
use crate::hvm::{ChainSpec, Genesis};
use alloy_primitives::{Address, B256};
use bss_storage::Store;

#[actix::test]
async fn a_panic_fails_only_the_request_in_flight_and_the_next_one_is_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path(), false).expect("open");
    let spec = ChainSpec {
        chain_id: 5,
        gas_limit: 30_000_000,
        min_base_fee: 7,
        fee_recipient: Address::ZERO,
        max_tx_size: 1 << 17,
    };
    let (batch, _) = Genesis { spec: spec.clone(), base_fee: 1_000, timestamp_ms: 0, alloc: vec![] }.build();
    store.init_genesis(5, &batch).expect("genesis");
    let executor = ExecutorService::spawn(spec, store.reader(), None, 4).expect("executor");
    let parent = batch.block.hash();
    let fields = || ProposalFields { round: 1, proposer: 0, timestamp_ms: 1, btc: Default::default(), anchors: vec![] };
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
