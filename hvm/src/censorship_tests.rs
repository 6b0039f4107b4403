//! Execution of the censorship-resistance rules: forced txs run first or are recorded as
//! skipped with their reason, and a block answers the inclusion lists it embeds (conditional
//! inclusion).

use super::execute::{BlockBuilder, ExecutionError};
use super::execute_tests::{build, commit, fields, keys, node, tx, validate, Node};
use super::{LayeredState, SignedTx};
use alloy_primitives::{Address, Bytes, TxKind, B256};
use bss_btc::inbox::ForcedTx;
use bss_consensus::{InclusionList, OperatorSigner};
use std::sync::Arc;

fn forced(raw: &Bytes, height: u64) -> ForcedTx {
    ForcedTx { btc_txid: B256::repeat_byte(height as u8), btc_height: height, raw: raw.clone() }
}

fn transfer(key: usize, nonce: u64) -> Arc<SignedTx> {
    tx(&keys()[key], nonce, TxKind::Call(Address::repeat_byte(9)), Bytes::new(), 1)
}

fn list(txs: Vec<Bytes>, parent: &B256) -> InclusionList {
    InclusionList::sign(&OperatorSigner::from_bytes([3; 32]), 0, 5, parent, txs)
}

fn validate_with(
    n: &Node,
    block: &bss_consensus::Block,
    txs: Vec<Arc<SignedTx>>,
    due: &[ForcedTx],
) -> Result<(), ExecutionError> {
    let state = LayeredState { base: n.reader.clone(), layers: vec![] };
    BlockBuilder::new(&n.spec, &state, &n.head, &n.acc).validate(block, txs, &[], due).map(|_| ())
}

#[test]
fn forced_txs_run_first_and_invalid_ones_are_recorded_with_their_reason() {
    let n = node();
    let good = transfer(1, 0);
    let stale_nonce = transfer(2, 5);
    let garbage = Bytes::from_static(b"not a transaction");
    let due = vec![forced(&good.raw, 100), forced(&stale_nonce.raw, 100), forced(&garbage, 101)];
    let mut f = fields(&n);
    f.forced = due.clone();
    let state = LayeredState { base: n.reader.clone(), layers: vec![] };
    // The mempool also holds the good one: it is not executed twice.
    let built = BlockBuilder::new(&n.spec, &state, &n.head, &n.acc)
        .build(&f, vec![transfer(0, 0), good.clone()])
        .expect("build");
    let b = &built.block;
    assert_eq!(b.transactions[0], good.raw, "the forced tx comes first");
    assert_eq!(b.transactions.len(), 2);
    let outcomes = &b.header.forced;
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0].skipped, None);
    assert_eq!(outcomes[0].tx_hash, good.hash);
    assert!(outcomes[1].skipped.as_deref().is_some_and(|r| r.contains("nonce too high")), "{outcomes:?}");
    assert!(outcomes[2].skipped.is_some());
    let txs = vec![good.clone(), transfer(0, 0)];
    validate_with(&n, b, txs.clone(), &due).expect("replica agrees");
    // A replica whose view makes the forced tx due refuses a block that does not run it first…
    let plain = build(&n, vec![transfer(0, 0)]);
    assert!(matches!(
        validate_with(&n, &plain.block, vec![transfer(0, 0)], &due),
        Err(ExecutionError::ForcedOrder { .. })
    ));
    // …or that records a different outcome.
    let mut lying = b.clone();
    lying.header.forced[1].skipped = None;
    assert!(matches!(validate_with(&n, &lying, txs, &due), Err(ExecutionError::Mismatch { field: "forced", .. })));
}

#[test]
fn a_block_must_carry_listed_txs_unless_they_fail_appended() {
    let mut n = node();
    let first = build(&n, vec![transfer(0, 0)]);
    commit(&mut n, &first);
    let parent = n.head.hash();
    let listed = transfer(1, 0);
    let already_used_nonce = transfer(0, 0);
    let l = list(vec![listed.raw.clone(), already_used_nonce.raw.clone(), Bytes::from_static(b"junk")], &parent);
    let mut f = fields(&n);
    f.inclusion = vec![l.clone()];
    let state = LayeredState { base: n.reader.clone(), layers: vec![] };
    // The builder carries the listed tx even though its mempool did not offer it.
    let built = BlockBuilder::new(&n.spec, &state, &n.head, &n.acc).build(&f, vec![transfer(2, 0)]).expect("build");
    assert!(built.block.transactions.contains(&listed.raw));
    let txs: Vec<Arc<SignedTx>> =
        built.block.transactions.iter().map(|r| Arc::new(SignedTx::decode(r).expect("decode"))).collect();
    validate(&n, &built, txs).expect("valid: the stale and junk entries are exempt");
    // A leader that leaves it out is refused.
    let mut censoring = build(&n, vec![transfer(2, 0)]);
    censoring.block.header.inclusion = vec![l];
    let e = validate(&n, &censoring, vec![transfer(2, 0)]).expect_err("omits a listed tx");
    assert!(matches!(e, ExecutionError::OmitsListedTx { hash, .. } if hash == listed.hash), "{e}");
}

#[test]
fn listed_txs_out_of_nonce_order_are_still_all_included() {
    let n = node();
    let parent = n.head.hash();
    let (a0, a1, a2) = (transfer(3, 0), transfer(3, 1), transfer(3, 2));
    // Two lists naming one sender's txs in a scrambled order, and the mempool offering one.
    let mut f = fields(&n);
    f.inclusion = vec![list(vec![a2.raw.clone(), a1.raw.clone()], &parent), {
        let mut l = InclusionList::sign(&OperatorSigner::from_bytes([4; 32]), 1, 5, &parent, vec![a0.raw.clone()]);
        l.operator = 1;
        l
    }];
    let state = LayeredState { base: n.reader.clone(), layers: vec![] };
    let built = BlockBuilder::new(&n.spec, &state, &n.head, &n.acc).build(&f, vec![a0.clone()]).expect("build");
    for t in [&a0, &a1, &a2] {
        assert!(built.block.transactions.contains(&t.raw), "nonce {} missing", t.nonce());
    }
}

/// The poisoned list (issue 31, item 1): X is a fresh sender with no ETH (nonce 0) that Z pays,
/// Z is the attacker's sender at nonce k+1, and W (nonce k) reaches every mempool but no list.
/// Builder: X fails, Z fails, W runs as a candidate, then the retries must run Z *and then X*,
/// or voters find that X succeeds appended and refuse every honest leader's block.
#[test]
fn a_poisoned_list_that_enables_its_own_txs_in_a_chain_is_answered_by_the_builder() {
    let n = node();
    let parent = n.head.hash();
    let attacker = &keys()[2];
    let fresh = super::accounts::DevKey::from_seed(0x5eed_0031);
    let x = tx(&fresh, 0, TxKind::Call(Address::repeat_byte(9)), Bytes::new(), 1);
    let z = tx(attacker, 1, TxKind::Call(fresh.address), Bytes::new(), 10u64.pow(15));
    let w = transfer(2, 0);
    let mut f = fields(&n);
    f.inclusion = vec![list(vec![x.raw.clone(), z.raw.clone()], &parent)];
    let state = LayeredState { base: n.reader.clone(), layers: vec![] };
    let built = BlockBuilder::new(&n.spec, &state, &n.head, &n.acc).build(&f, vec![w.clone()]).expect("build");
    let carried: Vec<_> = built.block.transactions.clone();
    assert_eq!(carried, vec![w.raw.clone(), z.raw.clone(), x.raw.clone()], "W, then Z, then X (which Z funded)");
    let txs: Vec<Arc<SignedTx>> = carried.iter().map(|r| Arc::new(SignedTx::decode(r).expect("decode"))).collect();
    validate(&n, &built, txs).expect("voters accept the honest block");
}

mod fixpoint {
    //! Whatever lists and candidates it is given, an honest builder's block passes the voters'
    //! conditional-inclusion check: builder and voters can never disagree on a list.
    use super::*;
    use proptest::prelude::*;

    fn cases() -> u32 {
        std::env::var("BSS_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]
        #[test]
        fn honest_builds_always_validate(
            listed in proptest::collection::vec((0usize..6, 0u64..4, 0usize..6, 0u64..3), 0..10),
            offered in proptest::collection::vec((0usize..6, 0u64..4), 0..8),
        ) {
            let n = node();
            let parent = n.head.hash();
            // Keys 0..3 are funded, 4 and 5 start empty; a listed transfer of value v·10^15
            // from a to b may fund b's own listed txs.
            let all: Vec<super::super::accounts::DevKey> =
                keys().into_iter().chain([0x31u64, 0x32].map(super::super::accounts::DevKey::from_seed)).collect();
            let mk = |from: usize, nonce: u64, to: usize, value: u64| {
                tx(&all[from], nonce, TxKind::Call(all[to].address), Bytes::new(), value * 10u64.pow(15))
            };
            let raws: Vec<Bytes> = listed.iter().map(|&(a, k, b, v)| mk(a, k, b, v).raw.clone()).collect();
            let candidates: Vec<Arc<SignedTx>> = offered.iter().map(|&(a, k)| mk(a, k, (a + 1) % 6, 0)).collect();
            let mut f = fields(&n);
            f.inclusion = vec![list(raws, &parent)];
            let state = LayeredState { base: n.reader.clone(), layers: vec![] };
            let built = BlockBuilder::new(&n.spec, &state, &n.head, &n.acc).build(&f, candidates).expect("build");
            let txs: Vec<Arc<SignedTx>> =
                built.block.transactions.iter().map(|r| Arc::new(SignedTx::decode(r).expect("decode"))).collect();
            prop_assert!(validate(&n, &built, txs).is_ok());
        }
    }
}

/// Issue 31, item 5: a forced tx that burns the block's gas used to make every forced tx behind
/// it "not fit", skipped for good. Now they are carried, in order, to the next block.
#[test]
fn forced_txs_that_do_not_fit_are_carried_in_order_not_skipped() {
    let n = node();
    let burn = {
        let raw = keys()[1].sign_raw(alloy_consensus::TxEip1559 {
            chain_id: 5,
            gas_limit: 30_000_000,
            max_fee_per_gas: 1_000_000,
            max_priority_fee_per_gas: 3,
            to: TxKind::Create,
            input: Bytes::from_static(&[0x5b, 0x60, 0x00, 0x56]),
            ..Default::default()
        });
        Arc::new(SignedTx::decode(&raw).expect("decode"))
    };
    let (victim, after) = (transfer(2, 0), transfer(3, 0));
    let due = vec![forced(&burn.raw, 100), forced(&victim.raw, 100), forced(&after.raw, 101)];
    let mut f = fields(&n);
    f.forced = due.clone();
    let state = LayeredState { base: n.reader.clone(), layers: vec![] };
    let built = BlockBuilder::new(&n.spec, &state, &n.head, &n.acc).build(&f, vec![transfer(0, 0)]).expect("build");
    let outcomes = &built.block.header.forced;
    assert_eq!(built.block.transactions, vec![burn.raw.clone()], "the loop takes the whole block");
    assert_eq!(outcomes[0].skipped, None);
    assert!(outcomes[1].is_carried() && outcomes[2].is_carried(), "{outcomes:?}");
    validate_with(&n, &built.block, vec![burn.clone()], &due).expect("replica agrees");
    // The next block runs the carried ones first, in order (the executor hands them over from
    // the parent's outcomes, before anything newly due).
    let mut next = n;
    commit(&mut next, &built);
    let carried: Vec<ForcedTx> = due[1..].to_vec();
    let mut f = fields(&next);
    f.forced = carried.clone();
    let state = LayeredState { base: next.reader.clone(), layers: vec![] };
    let built = BlockBuilder::new(&next.spec, &state, &next.head, &next.acc).build(&f, vec![]).expect("build");
    assert_eq!(built.block.transactions, vec![victim.raw.clone(), after.raw.clone()]);
    assert!(built.block.header.forced.iter().all(|o| o.skipped.is_none()));
}
