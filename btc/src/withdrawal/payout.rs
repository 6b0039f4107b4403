//! The payout tx of a batch: its outputs, its signatures and its witnesses.

use super::fees::{fee, vsize};
use super::{Batch, Ledger, PayoutError, DUST, PAYOUT_TAG};
use crate::deposit::TunnelRules;
use crate::index::op_return_payload;
use crate::vault::{CustodyKey, VaultError};
use bitcoin::{absolute, transaction, Amount, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

/// Is `tx` a tunnel payout (it carries the payout tag)?
pub fn is_payout(tx: &Transaction) -> bool {
    tx.output
        .iter()
        .any(|o| o.script_pubkey.is_op_return() && op_return_payload(&o.script_pubkey).starts_with(PAYOUT_TAG))
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
