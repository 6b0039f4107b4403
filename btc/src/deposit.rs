//! Tunnel deposits: Bitcoin txs that pay the federation's vault. One that pays at least
//! `min_deposit_sats` and carries exactly one OP_RETURN of 29 bytes,
//! `"BSSD" | 0x01 | chain_id u32 BE | recipient [20]`, mints that many hBTC units to the
//! recipient in the L2 block whose Bitcoin view gives it `deposit_confirmations`; any other
//! payment to the vault is unattributed (kept in the vault, never minted).
//!
//! Deposits are read from the blocks the Bitcoin index already holds, height by height, so every
//! replica derives the same mints from the same view, and a reorg that removes a block removes
//! its deposits with it.

use super::inbox::due_heights;
use super::index::{op_return_payload, BtcIndex};
use super::vault::Vault;
use alloy_primitives::{Address, B256};
use bitcoin::hashes::Hash;
use bitcoin::{Amount, ScriptBuf, Transaction, TxOut, Txid};
use bss_consensus::Mint;

/// Tag of a deposit's OP_RETURN payload.
pub const DEPOSIT_TAG: &[u8; 4] = b"BSSD";
/// Version byte after the tag.
pub const DEPOSIT_VERSION: u8 = 0x01;
/// Length of the whole payload.
pub const DEPOSIT_PAYLOAD_LEN: usize = 29;

/// The tunnel parameters every operator shares (`[genesis.tunnel]`).
#[derive(Clone, Debug)]
pub struct TunnelRules {
    pub vault: Vault,
    pub chain_id: u64,
    pub min_deposit_sats: u64,
    pub deposit_confirmations: u64,
    pub min_withdrawal_sats: u64,
    pub withdrawal_fee_sats: u64,
    /// Kept from each deposit (minted = paid − this): funds the Bitcoin fees of spending the
    /// deposit's coin later (consolidations draw on this surplus).
    pub deposit_fee_sats: u64,
    /// The highest fee rate a payout's fee versions bump to, sat/vB.
    pub payout_fee_ceiling_sat_vb: u64,
}

/// Why a payment to the vault mints nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unattributed {
    #[error("pays {sats} sats, below the minimum deposit of {min}")]
    BelowMinimum { sats: u64, min: u64 },
    #[error("carries no OP_RETURN")]
    NoOpReturn,
    #[error("carries {0} OP_RETURN outputs (a deposit has exactly one)")]
    SeveralOpReturns(usize),
    #[error("its OP_RETURN is not a deposit payload (\"BSSD\", version 1, 29 bytes)")]
    NotADepositPayload,
    #[error("its OP_RETURN names chain {0}, not this chain")]
    OtherChain(u32),
    #[error("it is a coinbase")]
    Coinbase,
}

/// A Bitcoin tx paying the vault, as found in a best-chain block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultPayment {
    pub txid: Txid,
    pub height: u64,
    /// Sum of the tx's outputs that pay the vault.
    pub sats: u64,
    /// The hBTC recipient, or why the payment mints nothing.
    pub attribution: Result<Address, Unattributed>,
}

impl VaultPayment {
    /// The txid in display order (as Bitcoin tools print it).
    pub fn txid_display(&self) -> B256 {
        display(&self.txid)
    }
}

/// A txid in display order.
pub fn display(txid: &Txid) -> B256 {
    let mut b = txid.to_byte_array();
    b.reverse();
    B256::from(b)
}

/// The deposit OP_RETURN output: `"BSSD" | 0x01 | chain_id | recipient`.
pub fn deposit_output(chain_id: u32, recipient: &Address) -> TxOut {
    let mut payload = [0u8; DEPOSIT_PAYLOAD_LEN];
    payload[..4].copy_from_slice(DEPOSIT_TAG);
    payload[4] = DEPOSIT_VERSION;
    payload[5..9].copy_from_slice(&chain_id.to_be_bytes());
    payload[9..].copy_from_slice(recipient.as_slice());
    TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(payload) }
}

/// The recipient a deposit payload names for `chain_id`.
fn parse_payload(payload: &[u8], chain_id: u64) -> Result<Address, Unattributed> {
    if payload.len() != DEPOSIT_PAYLOAD_LEN || &payload[..4] != DEPOSIT_TAG || payload[4] != DEPOSIT_VERSION {
        return Err(Unattributed::NotADepositPayload);
    }
    let mut chain = [0u8; 4];
    chain.copy_from_slice(&payload[5..9]);
    let named = u32::from_be_bytes(chain);
    if u64::from(named) != chain_id {
        return Err(Unattributed::OtherChain(named));
    }
    Ok(Address::from_slice(&payload[9..]))
}

/// How `tx` pays the vault, if it does.
/// `from_vault`: the tx spends a vault coin ([`spends_vault`]).
pub fn classify(
    tx: &Transaction,
    txid: Txid,
    height: u64,
    rules: &TunnelRules,
    from_vault: bool,
) -> Option<VaultPayment> {
    let vault = rules.vault.script_pubkey();
    let paid = tx.output.iter().filter(|o| o.script_pubkey == vault).map(|o| o.value.to_sat());
    let mut sats = 0u64;
    let mut pays = false;
    for v in paid {
        pays = true;
        // Bitcoin caps a tx's outputs at 21M BTC; saturate rather than trust that.
        sats = sats.saturating_add(v);
    }
    // A payout's change returns to the vault: not a deposit. Only the federation can spend a
    // vault coin, so that, not a tag anyone can write, is what marks its txs.
    if !pays || from_vault {
        return None;
    }
    let returns: Vec<&TxOut> = tx.output.iter().filter(|o| o.script_pubkey.is_op_return()).collect();
    let attribution = if tx.is_coinbase() {
        Err(Unattributed::Coinbase)
    } else {
        match returns.as_slice() {
            [] => Err(Unattributed::NoOpReturn),
            [one] => parse_payload(&op_return_payload(&one.script_pubkey), rules.chain_id),
            many => Err(Unattributed::SeveralOpReturns(many.len())),
        }
        .and_then(|r| {
            if sats < rules.min_deposit_sats {
                Err(Unattributed::BelowMinimum { sats, min: rules.min_deposit_sats })
            } else {
                Ok(r)
            }
        })
    };
    Some(VaultPayment { txid, height, sats, attribution })
}

/// Whether `tx` (in the view's block at `height`) spends a vault coin: only the federation's
/// payouts and consolidations can.
pub fn spends_vault(view: &BtcIndex, tx: &Transaction, height: u64, rules: &TunnelRules) -> bool {
    let vault = rules.vault.script_pubkey();
    !tx.is_coinbase()
        && tx.input.iter().any(|i| view.coin(&i.previous_output, height).is_some_and(|c| c.script == vault))
}

/// hBTC a deposit of `sats` mints.
pub fn minted_sats(sats: u64, rules: &TunnelRules) -> u64 {
    sats.saturating_sub(rules.deposit_fee_sats)
}

/// Payments to the vault in the best-chain block at `height`, in block order.
pub fn payments_at(view: &BtcIndex, height: u64, rules: &TunnelRules) -> Vec<VaultPayment> {
    view.txids_at(height)
        .into_iter()
        .filter_map(|txid| {
            let rec = view.tx(&txid, height)?;
            classify(&rec.tx, txid, height, rules, spends_vault(view, &rec.tx, height, rules))
        })
        .collect()
}

/// The mints due in an L2 block whose view adds Bitcoin heights `first..=last` (the view's best
/// chain must hold that block's tip): attributed deposits at the heights the new headers give
/// `deposit_confirmations`, in Bitcoin order.
pub fn mints_due(view: &BtcIndex, first: u64, last: u64, rules: &TunnelRules) -> Vec<Mint> {
    if first > last {
        return vec![];
    }
    due_heights(first, last, rules.deposit_confirmations)
        .flat_map(|h| payments_at(view, h, rules))
        .filter_map(|p| {
            let recipient = p.attribution.clone().ok()?;
            Some(Mint { btc_txid: p.txid_display(), btc_height: p.height, recipient, sats: minted_sats(p.sats, rules) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{mine_chain, mine_on, TestIndex};
    use crate::vault::CustodyKey;
    use bitcoin::{absolute, transaction, OutPoint, Sequence, TxIn, Witness};

    fn rules() -> TunnelRules {
        let keys = (1..=4u8).map(|i| CustodyKey::new([i; 32]).expect("key").public()).collect();
        TunnelRules {
            vault: Vault::new(keys, 3).expect("vault"),
            chain_id: 1337,
            min_deposit_sats: 10_000,
            deposit_confirmations: 6,
            min_withdrawal_sats: 20_000,
            withdrawal_fee_sats: 2_000,
            deposit_fee_sats: 0,
            payout_fee_ceiling_sat_vb: 100,
        }
    }

    fn tx(outputs: Vec<TxOut>, salt: u8) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([salt; 32]), 0),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::default(),
            }],
            output: outputs,
        }
    }

    fn pay(r: &TunnelRules, sats: u64) -> TxOut {
        TxOut { value: Amount::from_sat(sats), script_pubkey: r.vault.script_pubkey() }
    }

    #[test]
    fn only_well_formed_deposits_are_attributed() {
        let r = rules();
        let to = Address::repeat_byte(0xab);
        let good = tx(vec![pay(&r, 50_000), deposit_output(1337, &to)], 1);
        let got = classify(&good, good.compute_txid(), 5, &r, false).expect("pays the vault");
        assert_eq!((got.sats, got.attribution), (50_000, Ok(to)));
        // Two vault outputs add up.
        let split = tx(vec![pay(&r, 6_000), deposit_output(1337, &to), pay(&r, 6_000)], 2);
        assert_eq!(classify(&split, split.compute_txid(), 5, &r, false).expect("pays").attribution, Ok(to));
        let cases: Vec<(Transaction, Unattributed)> = vec![
            (
                tx(vec![pay(&r, 9_999), deposit_output(1337, &to)], 3),
                Unattributed::BelowMinimum { sats: 9_999, min: 10_000 },
            ),
            (tx(vec![pay(&r, 50_000)], 4), Unattributed::NoOpReturn),
            (
                tx(vec![pay(&r, 50_000), deposit_output(1337, &to), deposit_output(1337, &to)], 5),
                Unattributed::SeveralOpReturns(2),
            ),
            (tx(vec![pay(&r, 50_000), deposit_output(7, &to)], 6), Unattributed::OtherChain(7)),
            (
                tx(
                    vec![
                        pay(&r, 50_000),
                        TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(b"BSSD\x02") },
                    ],
                    7,
                ),
                Unattributed::NotADepositPayload,
            ),
        ];
        for (t, why) in cases {
            assert_eq!(classify(&t, t.compute_txid(), 5, &r, false).expect("pays").attribution, Err(why));
        }
        // A tx that does not pay the vault is not a payment at all.
        assert!(classify(&tx(vec![deposit_output(1337, &to)], 8), Txid::all_zeros(), 5, &r, false).is_none());
    }

    /// A deposit at height 2 falls due when the headers bring in height 7 (its sixth
    /// confirmation), and an unattributed payment never mints.
    #[test]
    fn deposits_fall_due_with_confirmations() {
        let r = rules();
        let to = Address::repeat_byte(0x11);
        let mut blocks = mine_chain(None, 2, 1);
        let deposit = tx(vec![pay(&r, 40_000), deposit_output(1337, &to)], 9);
        let stray = tx(vec![pay(&r, 40_000)], 10);
        blocks.push(mine_on(&blocks[1], vec![deposit.clone(), stray], 1));
        for _ in 0..6 {
            let b = mine_on(blocks.last().expect("tip"), vec![], 1);
            blocks.push(b);
        }
        let index = TestIndex::of(&blocks);
        let view = index.view();
        assert_eq!(payments_at(&view, 2, &r).len(), 2);
        assert!(mints_due(&view, 3, 6, &r).is_empty(), "five confirmations are not enough");
        let due = mints_due(&view, 7, 8, &r);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].recipient, to);
        assert_eq!(due[0].sats, 40_000);
        assert_eq!(due[0].btc_txid, display(&deposit.compute_txid()));
        assert!(mints_due(&view, 8, 8, &r).is_empty(), "a deposit falls due once");
    }
}
