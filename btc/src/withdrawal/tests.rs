use super::*;
use crate::deposit::{deposit_output, TunnelRules};
use crate::testkit::{mine_chain, mine_on, TestIndex};
use crate::vault::{CustodyKey, Vault};
use bitcoin::hashes::Hash;
use bitcoin::{absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};

fn keys() -> Vec<CustodyKey> {
    (1..=4u8).map(|i| CustodyKey::new([i; 32]).expect("key")).collect()
}

fn rules() -> TunnelRules {
    TunnelRules {
        vault: Vault::new(keys().iter().map(|k| k.public()).collect(), 3).expect("vault"),
        chain_id: 1337,
        min_deposit_sats: 10_000,
        deposit_confirmations: 2,
        min_withdrawal_sats: 20_000,
        withdrawal_fee_sats: 2_000,
        deposit_fee_sats: 0,
        payout_fee_ceiling_sat_vb: 4,
    }
}

fn spend(inputs: Vec<OutPoint>, outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: inputs
            .into_iter()
            .map(|o| TxIn {
                previous_output: o,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::default(),
            })
            .collect(),
        output: outputs,
    }
}

fn request(id: u64, sats: u64) -> Request {
    let mut script = vec![0x00, 0x14];
    script.extend_from_slice(&[id as u8; 20]);
    Request { id, from: Address::repeat_byte(1), script: ScriptBuf::from_bytes(script), sats, l2_block: 1 }
}

/// Two requests open one batch over a confirmed vault coin; every operator builds the same
/// payout; any three signatures complete it, two do not; every fee version spends the same
/// coin; the payout mined in the view marks both paid and its change is no deposit.
#[test]
fn a_batch_is_built_alike_signed_by_three_and_paid_once() {
    let r = rules();
    let mut blocks = mine_chain(None, 2, 1);
    let deposit = spend(
        vec![OutPoint::new(Txid::from_byte_array([9; 32]), 0)],
        vec![
            TxOut { value: Amount::from_sat(500_000), script_pubkey: r.vault.script_pubkey() },
            deposit_output(1337, &Address::ZERO),
        ],
    );
    blocks.push(mine_on(&blocks[1], vec![deposit.clone()], 1));
    let mut index = TestIndex::of(&blocks);
    let mut ledger = Ledger::default();
    // At height 2 the coin has one confirmation (two needed): the batch waits.
    ledger.apply(5, Some(2), vec![request(0, 30_000), request(1, 50_000)], &[], &index.view(), &r);
    assert!(ledger.batch.is_none() && ledger.waiting.is_some());
    let b3 = mine_on(&blocks[2], vec![], 1);
    index.connect(&b3);
    ledger.apply(6, Some(3), vec![], &[], &index.view(), &r);
    let batch = ledger.batch.clone().expect("batch opens");
    assert_eq!((batch.first, batch.end, batch.inputs.len()), (0, 2, 1));
    assert_eq!(ledger.pending_sats(), 80_000);

    let tx = payout_tx(&ledger, &batch, &r, 0).expect("payout");
    assert_eq!(tx.output[0].value.to_sat(), 28_000);
    assert_eq!(tx.output[1].value.to_sat(), 48_000);
    assert_eq!(tx.output[2].script_pubkey, r.vault.script_pubkey(), "change returns to the vault");
    assert!(is_payout(&tx));
    let fee0 = 500_000 - tx.output.iter().map(|o| o.value.to_sat()).sum::<u64>();
    assert_eq!(fee0, 1_000, "version 0 pays a quarter of the withdrawal fees");
    let bumped = payout_tx(&ledger, &batch, &r, max_version(&r)).expect("payout");
    let fee3 = 500_000 - bumped.output.iter().map(|o| o.value.to_sat()).sum::<u64>();
    assert_eq!(fee3, 4_000);
    assert_eq!(bumped.input, tx.input, "every version spends the same coins");
    assert_eq!(version_at(&batch, 3 + BUMP_EVERY, &r), 1);
    assert_eq!(version_at(&batch, 100, &r), max_version(&r));

    let k = keys();
    let sigs: Vec<Option<Vec<[u8; 64]>>> =
        k.iter().map(|key| Some(sign(key, &tx, &batch, &r).expect("sign"))).collect();
    for (i, s) in sigs.iter().enumerate() {
        check_signatures(&tx, &batch, &r, i, s.as_ref().expect("sig")).expect("valid");
    }
    assert!(check_signatures(&tx, &batch, &r, 1, sigs[0].as_ref().expect("sig")).is_err(), "key 0's in slot 1");
    let two = vec![sigs[0].clone(), None, None, sigs[3].clone()];
    assert!(finalize(tx.clone(), &batch, &r, &two).is_err());
    let three = vec![sigs[0].clone(), None, sigs[2].clone(), sigs[3].clone()];
    let signed = finalize(tx.clone(), &batch, &r, &three).expect("three of four");
    assert_eq!(signed.compute_txid(), tx.compute_txid(), "witnesses do not change the txid");

    let b4 = mine_on(&b3, vec![signed.clone()], 1);
    index.connect(&b4);
    let view = index.view();
    assert!(crate::deposit::payments_at(&view, 4, &r).is_empty(), "a payout's change is not a deposit");
    ledger.apply(7, Some(4), vec![], &[], &view, &r);
    assert!(ledger.batch.is_none());
    assert_eq!(ledger.paid_below, 2);
    assert_eq!(ledger.paid.get(&1).map(|p| (p.txid, p.btc_height, p.l2_block)), Some((signed.compute_txid(), 4, 7)));
    assert_eq!(ledger.pending_sats(), 0);
}

/// Funds the vault with `coins` in one tx at height 2 of a fresh chain, buried under
/// `deposit_confirmations`; returns the index and the block on top.
fn funded(r: &TunnelRules, coins: &[u64]) -> (TestIndex, bitcoin::Block) {
    let mut blocks = mine_chain(None, 2, 1);
    let outputs = coins.iter().map(|v| TxOut { value: Amount::from_sat(*v), script_pubkey: r.vault.script_pubkey() });
    let deposit = spend(vec![OutPoint::new(Txid::from_byte_array([7; 32]), 0)], outputs.collect());
    blocks.push(mine_on(&blocks[1], vec![deposit], 1));
    let tip = mine_on(&blocks[2], vec![], 1);
    blocks.push(tip.clone());
    (TestIndex::of(&blocks), tip)
}

fn with_deposit_fee(fee: u64) -> TunnelRules {
    TunnelRules { deposit_fee_sats: fee, payout_fee_ceiling_sat_vb: 100, ..rules() }
}

/// The devnet case of head-of-line blocking: 40 deposits of 20,000 sats, then withdrawals of
/// 700,000 and 30,000. No 32 coins cover the first, so the ledger consolidates the 32 largest
/// (its fee from the deposit fees' surplus), then pays both from the merged coin in one batch.
#[test]
fn a_fragmented_vault_is_consolidated_and_then_pays_what_waited() {
    let r = with_deposit_fee(500);
    let (mut index, tip) = funded(&r, &[20_000; 40]);
    let mut ledger = Ledger { minted_sats: 40 * 19_500, ..Ledger::default() };
    ledger.apply(9, Some(3), vec![request(0, 700_000), request(1, 30_000)], &[], &index.view(), &r);
    let c = ledger.batch.clone().expect("a consolidation opens");
    assert!(c.is_consolidation() && c.inputs.len() == MAX_INPUTS, "{c:?}");
    let waiting = ledger.waiting.clone().expect("reason");
    assert!(waiting.contains("withdrawals 0..2 need") && waiting.contains("consolidating"), "{waiting}");
    assert!(c.fee_budget <= 40 * 500, "the consolidation's fee comes from the surplus only");
    let tx = payout_tx(&ledger, &c, &r, max_version(&r)).expect("consolidation tx");
    assert_eq!(tx.output.len(), 2, "one merged coin and the tag");
    assert_eq!(tx.output[0].script_pubkey, r.vault.script_pubkey());
    let fee = 32 * 20_000 - tx.output[0].value.to_sat();
    assert!(fee <= c.fee_budget && fee >= estimated_vsize(32, 0, &r) / 2, "fee {fee}");

    // Mined; its change is spent only at deposit_confirmations.
    let b4 = mine_on(&tip, vec![tx.clone()], 1);
    index.connect(&b4);
    ledger.apply(10, Some(4), vec![], &[], &index.view(), &r);
    assert!(ledger.batch.is_none() && ledger.consolidations == 1);
    let b5 = mine_on(&b4, vec![], 1);
    index.connect(&b5);
    ledger.apply(11, Some(5), vec![], &[], &index.view(), &r);
    let b = ledger.batch.clone().expect("both withdrawals open once the merged coin is deep");
    assert_eq!((b.first, b.end, b.seq), (0, 2, 1));
    assert!(b.inputs.iter().any(|(o, _)| o.txid == tx.compute_txid()), "it spends the merged coin");
    let payout = payout_tx(&ledger, &b, &r, max_version(&r)).expect("payout");
    let total_in: u64 = b.inputs.iter().map(|(_, v)| *v).sum();
    let out: u64 = payout.output.iter().map(|o| o.value.to_sat()).sum();
    assert!(total_in - out <= b.fee_budget, "no version pays more than the budget");
    let change: u64 =
        payout.output.iter().filter(|o| o.script_pubkey == r.vault.script_pubkey()).map(|o| o.value.to_sat()).sum();
    let vault_after = (40 * 20_000 - fee) - (total_in - change);
    let supply_after = 40 * 19_500 - 730_000;
    assert!(vault_after >= supply_after, "the invariant holds after both: {vault_after} < {supply_after}");
}

/// Coins that cannot cover the whole queue pay a shorter run of it; a request to a script
/// Bitcoin nodes do not relay is unpayable with its reason and the ones behind it are paid.
#[test]
fn a_smaller_batch_goes_first_and_an_unpayable_request_blocks_nobody() {
    let r = rules();
    let (index, _) = funded(&r, &[100_000]);
    let mut ledger = Ledger { minted_sats: 100_000, ..Ledger::default() };
    let mut bad = request(0, 30_000);
    bad.script = ScriptBuf::new_op_return([1u8; 8]);
    ledger.apply(9, Some(3), vec![bad, request(1, 60_000), request(2, 60_000)], &[], &index.view(), &r);
    assert!(ledger.unpayable.get(&0).is_some_and(|why| why.contains("not a standard output")), "{ledger:?}");
    let b = ledger.batch.clone().expect("batch");
    assert_eq!((b.first, b.end), (1, 2), "the one request the coin covers");
    assert_eq!(ledger.pending_sats(), 150_000, "the unpayable request's hBTC is still owed");
}

/// Fee versions climb past the withdrawal fees up to the ceiling, never past the budget.
#[test]
fn fees_bump_to_the_ceiling_within_the_budget() {
    let r = TunnelRules { payout_fee_ceiling_sat_vb: 50, ..rules() };
    assert_eq!((1..=max_version(&r)).map(|k| rate(k, &r)).collect::<Vec<_>>(), vec![2, 3, 4, 8, 16, 32, 50]);
    let (index, _) = funded(&r, &[500_000]);
    // A surplus of 400,000 sats (donations): the top version pays 50 sat/vB.
    let mut ledger = Ledger { minted_sats: 100_000, ..Ledger::default() };
    ledger.apply(9, Some(3), vec![request(0, 30_000)], &[], &index.view(), &r);
    let b = ledger.batch.clone().expect("batch");
    let paid = |l: &Ledger, b: &Batch, k: u32| {
        let tx = payout_tx(l, b, &r, k).expect("tx");
        (500_000 - tx.output.iter().map(|o| o.value.to_sat()).sum::<u64>(), tx.vsize() as u64)
    };
    let (top, vsize) = paid(&ledger, &b, max_version(&r));
    assert!(top > 2_000 && top >= 50 * vsize * 9 / 10, "fee {top} at vsize {vsize}");
    // No surplus: the same request's versions stop at its withdrawal fee.
    let mut poor = Ledger { minted_sats: 500_000, ..Ledger::default() };
    poor.apply(9, Some(3), vec![request(0, 30_000)], &[], &index.view(), &r);
    let b = poor.batch.clone().expect("batch");
    assert_eq!(b.fee_budget, 2_000);
    assert_eq!(paid(&poor, &b, max_version(&r)).0, 2_000);
}
