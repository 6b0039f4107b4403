//! Tunnel withdrawals: the ledger every operator derives from the committed L2 chain and the
//! agreed Bitcoin view, and the payout tx they all build from it.
//!
//! * A `WithdrawalRequested` event (hBTC burned) in a committed block is a request; ids are
//!   consecutive from 0.
//! * With no batch open, the first committed block that sees unpaid requests opens one: the
//!   next ids (at most [`MAX_BATCH`]) and vault coins chosen from that block's Bitcoin view
//!   (largest first; deposits with `deposit_confirmations`, our payouts' change once
//!   confirmed). Every operator opens the same batch at the same block, so they all build the
//!   same transaction.
//! * The payout pays each request's script `sats − withdrawal_fee_sats`, returns the rest to the
//!   vault and tags itself with an OP_RETURN `"BSSW" | chain_id u32 | first id u64 | end id u64`.
//! * Fee policy: the batch's withdrawal fees (n × `withdrawal_fee_sats`) fund it. Version k
//!   (k = 0..=3, one step every [`BUMP_EVERY`] Bitcoin blocks without confirmation) pays
//!   (k+1)/4 of them, and never less than (k+1) sat/vB; what is not spent on fees stays in the
//!   vault. Every version spends the same coins, so at most one can ever confirm: a withdrawal
//!   is paid at most once, whichever version, crash or restart.
//! * A batch is paid when a block's Bitcoin view holds a tx spending its first coin; only then
//!   can the next batch open.

use super::deposit::TunnelRules;
use super::index::{op_return_payload, BtcIndex};
use super::vault::{CustodyKey, VaultError};
use alloy_primitives::Address;
use bitcoin::{absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use std::collections::BTreeMap;

/// Tag of a payout's OP_RETURN.
pub const PAYOUT_TAG: &[u8; 4] = b"BSSW";
/// Most withdrawals one payout carries.
pub const MAX_BATCH: u64 = 64;
/// Most vault coins one payout spends.
pub const MAX_INPUTS: usize = 32;
/// Bitcoin blocks between fee bumps.
pub const BUMP_EVERY: u64 = 2;
/// Highest fee version (its fee is all the batch's withdrawal fees).
pub const MAX_VERSION: u32 = 3;
/// Bitcoin's dust limit for the outputs a payout makes.
const DUST: u64 = 546;

/// A burn asking for BTC, from a committed `WithdrawalRequested` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub from: Address,
    pub script: ScriptBuf,
    pub sats: u64,
    pub l2_block: u64,
}

/// Where a paid withdrawal's BTC went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paid {
    pub txid: Txid,
    pub btc_height: u64,
    /// The committed L2 block whose Bitcoin view first held the payout.
    pub l2_block: u64,
}

/// Withdrawals `first..end` being paid with `inputs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub first: u64,
    pub end: u64,
    pub opened_l2: u64,
    pub opened_btc: u64,
    pub inputs: Vec<(OutPoint, u64)>,
}

/// The tunnel's withdrawal state after a committed L2 block.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub requests: BTreeMap<u64, Request>,
    pub paid: BTreeMap<u64, Paid>,
    /// Deposits minted so far: deposit txid (display order) → the L2 block that minted it.
    pub minted: BTreeMap<alloy_primitives::B256, u64>,
    /// Ids below this are paid.
    pub paid_below: u64,
    pub batch: Option<Batch>,
    /// The last L2 block applied and its Bitcoin tip.
    pub l2_head: u64,
    pub btc_tip: u64,
    /// Why unpaid requests wait without a batch (the vault's confirmed coins do not cover them).
    pub waiting: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PayoutError {
    #[error("batch {first}..{end}: request {id} is missing from the ledger")]
    MissingRequest { first: u64, end: u64, id: u64 },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("operator {operator} sent {got} signatures for {inputs} inputs")]
    SignatureCount { operator: usize, got: usize, inputs: usize },
}

impl Ledger {
    /// Satoshis burned and not yet paid.
    pub fn pending_sats(&self) -> u64 {
        self.requests.range(self.paid_below..).map(|(_, r)| r.sats).fold(0u64, u64::saturating_add)
    }

    /// Applies committed block `l2_block`: its withdrawal requests and, when it carries a
    /// Bitcoin view up to `btc_tip`, what that view says about the open batch.
    pub fn apply(
        &mut self,
        l2_block: u64,
        btc_tip: Option<u64>,
        requests: Vec<Request>,
        mints: &[bss_consensus::Mint],
        view: &BtcIndex,
        rules: &TunnelRules,
    ) {
        for m in mints {
            self.minted.insert(m.btc_txid, l2_block);
        }
        for r in requests {
            self.requests.insert(r.id, r);
        }
        self.l2_head = l2_block;
        let Some(tip) = btc_tip else { return };
        self.btc_tip = tip;
        if let Some(b) = &self.batch {
            if let Some((txid, btc_height)) = payout_of(view, b, tip) {
                for id in b.first..b.end {
                    self.paid.insert(id, Paid { txid, btc_height, l2_block });
                }
                self.paid_below = b.end;
                self.batch = None;
            }
        }
        if self.batch.is_none() {
            self.open_batch(l2_block, tip, view, rules);
        }
    }

    fn open_batch(&mut self, l2_block: u64, tip: u64, view: &BtcIndex, rules: &TunnelRules) {
        let first = self.paid_below;
        let mut end = first;
        while end - first < MAX_BATCH && self.requests.contains_key(&end) {
            end += 1;
        }
        if end == first {
            self.waiting = None;
            return;
        }
        let owed: u64 = self.requests.range(first..end).map(|(_, r)| r.sats).fold(0, u64::saturating_add);
        let n = end - first;
        let fees = n.saturating_mul(rules.withdrawal_fee_sats);
        // Enough for the highest fee version, so that every version spends the same coins.
        let need = |inputs: usize| {
            let top = fees.max(estimated_vsize(inputs as u64, n, rules).saturating_mul(u64::from(MAX_VERSION) + 1));
            owed.saturating_sub(fees).saturating_add(top)
        };
        // Deposits are spent once they have `deposit_confirmations`; the change of our own
        // payouts (which only the federation can make) once it is confirmed.
        let deep = tip.saturating_add(1).saturating_sub(rules.deposit_confirmations);
        let spendable = |o: &OutPoint| {
            view.coin(o, tip).is_some_and(|c| {
                c.height <= deep || view.tx(&o.txid, tip).is_some_and(|t| t.height <= tip && is_payout(&t.tx))
            })
        };
        let mut coins: Vec<(OutPoint, u64)> =
            view.utxos(&rules.vault.script_pubkey(), tip).into_iter().filter(|(o, _)| spendable(o)).collect();
        coins.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut inputs = Vec::new();
        let mut sum = 0u64;
        for c in coins.into_iter().take(MAX_INPUTS) {
            if !inputs.is_empty() && sum >= need(inputs.len()) {
                break;
            }
            sum = sum.saturating_add(c.1);
            inputs.push(c);
        }
        let need = need(inputs.len().max(1));
        if sum < need {
            self.waiting =
                Some(format!("withdrawals {first}..{end} need {need} sats of confirmed vault coins; {sum} available"));
            return;
        }
        self.waiting = None;
        self.batch = Some(Batch { first, end, opened_l2: l2_block, opened_btc: tip, inputs });
    }
}

/// The payout of `b` in the view up to `tip`: the tx spending its first coin.
fn payout_of(view: &BtcIndex, b: &Batch, tip: u64) -> Option<(Txid, u64)> {
    let (first, _) = b.inputs.first()?;
    let spent_at = view.coin(first, tip)?.spent_at.filter(|h| *h <= tip)?;
    view.txids_at(spent_at).into_iter().find_map(|txid| {
        let rec = view.tx(&txid, spent_at)?;
        rec.tx.input.iter().any(|i| i.previous_output == *first).then_some((txid, spent_at))
    })
}

/// Is `tx` a tunnel payout (it carries the payout tag)?
pub fn is_payout(tx: &Transaction) -> bool {
    tx.output
        .iter()
        .any(|o| o.script_pubkey.is_op_return() && op_return_payload(&o.script_pubkey).starts_with(PAYOUT_TAG))
}

/// The fee version due with the Bitcoin view at `btc_tip`.
pub fn version_at(b: &Batch, btc_tip: u64) -> u32 {
    let steps = btc_tip.saturating_sub(b.opened_btc) / BUMP_EVERY;
    u32::try_from(steps).unwrap_or(u32::MAX).min(MAX_VERSION)
}

/// The unsigned payout of batch `b`, fee version `version`.
pub fn payout_tx(ledger: &Ledger, b: &Batch, rules: &TunnelRules, version: u32) -> Result<Transaction, PayoutError> {
    let mut outputs = Vec::new();
    for id in b.first..b.end {
        let r = ledger.requests.get(&id).ok_or(PayoutError::MissingRequest { first: b.first, end: b.end, id })?;
        outputs.push(TxOut {
            value: Amount::from_sat(r.sats.saturating_sub(rules.withdrawal_fee_sats)),
            script_pubkey: r.script.clone(),
        });
    }
    let mut tag = [0u8; 24];
    tag[..4].copy_from_slice(PAYOUT_TAG);
    tag[4..8].copy_from_slice(&u32::try_from(rules.chain_id).unwrap_or(u32::MAX).to_be_bytes());
    tag[8..16].copy_from_slice(&b.first.to_be_bytes());
    tag[16..].copy_from_slice(&b.end.to_be_bytes());
    let tag_out = TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(tag) };
    let input = b
        .inputs
        .iter()
        .map(|(o, _)| TxIn {
            previous_output: *o,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::default(),
        })
        .collect();
    let paid: u64 = outputs.iter().map(|o| o.value.to_sat()).fold(0, u64::saturating_add);
    let total_in: u64 = b.inputs.iter().map(|(_, v)| *v).fold(0, u64::saturating_add);
    let mut tx =
        Transaction { version: transaction::Version::TWO, lock_time: absolute::LockTime::ZERO, input, output: outputs };
    // With the change output in place first, so that the size the fee is reckoned on holds.
    tx.output.push(TxOut { value: Amount::ZERO, script_pubkey: rules.vault.script_pubkey() });
    tx.output.push(tag_out);
    let fee = fee(b, rules, version, vsize(&tx, rules));
    let change = total_in.saturating_sub(paid).saturating_sub(fee);
    if change < DUST {
        // Not worth an output: it goes to the miner.
        tx.output.remove(tx.output.len() - 2);
    } else {
        let at = tx.output.len() - 2;
        tx.output[at].value = Amount::from_sat(change);
    }
    Ok(tx)
}

/// Fee of version `version`: (k+1)/4 of the batch's withdrawal fees, at least (k+1) sat/vB.
fn fee(b: &Batch, rules: &TunnelRules, version: u32, vsize: u64) -> u64 {
    let k = u64::from(version.min(MAX_VERSION)) + 1;
    let fees = (b.end - b.first).saturating_mul(rules.withdrawal_fee_sats);
    (fees.saturating_mul(k) / 4).max(vsize.saturating_mul(k))
}

/// An upper bound of a payout's signed size with `inputs` coins and `outputs` withdrawals,
/// vbytes (every output as large as P2TR's, plus change and tag).
fn estimated_vsize(inputs: u64, outputs: u64, rules: &TunnelRules) -> u64 {
    let n = rules.vault.keys().len() as u64;
    let leaf = rules.vault.leaf().len() as u64;
    let per_input_witness = 1 + 65 * n + 3 + leaf + 34;
    let base = 12 + 41 * inputs + 43 * (outputs + 1) + 40;
    (base * 4 + 2 + per_input_witness * inputs).div_ceil(4)
}

/// The signed size of a payout, vbytes: each input's witness holds t signatures, n − t empty
/// slots, the leaf and the control block.
fn vsize(tx: &Transaction, rules: &TunnelRules) -> u64 {
    let n = rules.vault.keys().len() as u64;
    let t = rules.vault.threshold() as u64;
    let leaf = rules.vault.leaf().len() as u64;
    let per_input = 1 + 65 * t + (n - t) + 3 + leaf + 34;
    let weight = tx.base_size() as u64 * 4 + 2 + per_input * tx.input.len() as u64;
    weight.div_ceil(4)
}

fn prevouts(b: &Batch, rules: &TunnelRules) -> Vec<TxOut> {
    b.inputs
        .iter()
        .map(|(_, v)| TxOut { value: Amount::from_sat(*v), script_pubkey: rules.vault.script_pubkey() })
        .collect()
}

/// The sighash of each input of `tx`, which every custody key signs.
pub fn sighashes(tx: &Transaction, b: &Batch, rules: &TunnelRules) -> Result<Vec<[u8; 32]>, PayoutError> {
    let prev = prevouts(b, rules);
    (0..tx.input.len()).map(|i| rules.vault.sighash(tx, i, &prev).map_err(PayoutError::from)).collect()
}

/// This operator's signatures over `tx`, one per input.
pub fn sign(key: &CustodyKey, tx: &Transaction, b: &Batch, rules: &TunnelRules) -> Result<Vec<[u8; 64]>, PayoutError> {
    Ok(sighashes(tx, b, rules)?.iter().map(|h| key.sign(h)).collect())
}

/// `tx` with its witnesses, from the signatures gathered by operator index (each verified).
pub fn finalize(
    mut tx: Transaction,
    b: &Batch,
    rules: &TunnelRules,
    sigs: &[Option<Vec<[u8; 64]>>],
) -> Result<Transaction, PayoutError> {
    let hashes = sighashes(&tx, b, rules)?;
    for (operator, s) in sigs.iter().enumerate() {
        if let Some(s) = s.as_ref().filter(|s| s.len() != hashes.len()) {
            return Err(PayoutError::SignatureCount { operator, got: s.len(), inputs: hashes.len() });
        }
    }
    for (i, h) in hashes.iter().enumerate() {
        let per_key: Vec<Option<[u8; 64]>> = sigs.iter().map(|s| s.as_ref().map(|s| s[i])).collect();
        tx.input[i].witness = rules.vault.witness(h, &per_key)?;
    }
    Ok(tx)
}

/// Checks one operator's signatures over `tx` (what a receiver does before keeping them).
pub fn check_signatures(
    tx: &Transaction,
    b: &Batch,
    rules: &TunnelRules,
    operator: usize,
    sigs: &[[u8; 64]],
) -> Result<(), PayoutError> {
    let hashes = sighashes(tx, b, rules)?;
    if sigs.len() != hashes.len() {
        return Err(PayoutError::SignatureCount { operator, got: sigs.len(), inputs: hashes.len() });
    }
    let Some(key) = rules.vault.keys().get(operator) else {
        return Err(VaultError::Signature { index: operator, reason: "no such custody key".into() }.into());
    };
    let secp = bitcoin::secp256k1::Secp256k1::verification_only();
    for (h, s) in hashes.iter().zip(sigs) {
        let sig = bitcoin::secp256k1::schnorr::Signature::from_slice(s)
            .map_err(|e| VaultError::Signature { index: operator, reason: e.to_string() })?;
        secp.verify_schnorr(&sig, &bitcoin::secp256k1::Message::from_digest(*h), key).map_err(|_| {
            VaultError::Signature { index: operator, reason: "does not verify under its custody key".into() }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deposit::{deposit_output, TunnelRules};
    use crate::testkit::{mine_chain, mine_on, TestIndex};
    use crate::vault::Vault;
    use bitcoin::hashes::Hash;

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
        let bumped = payout_tx(&ledger, &batch, &r, MAX_VERSION).expect("payout");
        let fee3 = 500_000 - bumped.output.iter().map(|o| o.value.to_sat()).sum::<u64>();
        assert_eq!(fee3, 4_000);
        assert_eq!(bumped.input, tx.input, "every version spends the same coins");
        assert_eq!(version_at(&batch, 3 + BUMP_EVERY), 1);
        assert_eq!(version_at(&batch, 100), MAX_VERSION);

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
        assert_eq!(
            ledger.paid.get(&1).map(|p| (p.txid, p.btc_height, p.l2_block)),
            Some((signed.compute_txid(), 4, 7))
        );
        assert_eq!(ledger.pending_sats(), 0);
    }
}
