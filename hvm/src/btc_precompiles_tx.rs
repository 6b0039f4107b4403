//! The hVM precompiles that read one input, output or witness element of a Bitcoin tx
//! (Hemi's 0x47 btcInputByTxid, 0x48 btcOutputByTxid, 0x49 btcTxGetInputWitness), with Hemi's
//! output layouts. Inputs are read where they are: Hemi's own parser takes the index bytes one
//! position too far to the right (it reads `input[33..35]` for the index that sits at
//! `input[32..34]`); bss reads the layout as specified:
//!
//! * 0x47: txid ‖ u16 input index ‖ u16 max scriptSig bytes (36 bytes) → u16 witness elements ‖
//!   u64 spent value ‖ spent txid ‖ u16 spent vout ‖ u16 scriptSig length ‖ scriptSig (cut to
//!   the max) ‖ u32 sequence;
//! * 0x48: txid ‖ u16 output index ‖ u16 max script bytes (36 bytes) → u64 value ‖ u16 script
//!   length ‖ script (cut to the max) ‖ u8 spent (1 when spent at or below the view's tip);
//! * 0x49: txid ‖ u16 input index ‖ u16 witness element index ‖ u16 max bytes (38 bytes) → u16
//!   element length ‖ element (cut to the max).
//!
//! Lengths saturate at 65,535. Anything unknown as of the view's tip gives empty output.

use super::btc_precompiles::{reversed, spent_value, txid_of, BtcAt};
use bitcoin::hashes::Hash;
use bitcoin::OutPoint;

fn u16_at(input: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([input[at], input[at + 1]]))
}

fn sat16(n: usize) -> [u8; 2] {
    (n.min(usize::from(u16::MAX)) as u16).to_be_bytes()
}

/// 0x47 btcInputByTxid.
pub fn input_by_txid(input: &[u8], v: &BtcAt) -> Vec<u8> {
    if input.len() != 36 {
        return vec![];
    }
    let (index, max_sig) = (u16_at(input, 32), u16_at(input, 34));
    let Some(rec) = txid_of(input).and_then(|t| v.index.tx(&t, v.height)) else { return vec![] };
    let Some(i) = rec.tx.input.get(index) else { return vec![] };
    let Some(value) = spent_value(&i.previous_output, v) else { return vec![] };
    let sig = i.script_sig.as_bytes();
    let mut out = Vec::with_capacity(50 + sig.len().min(max_sig));
    out.extend_from_slice(&sat16(i.witness.len()));
    out.extend_from_slice(&value.to_be_bytes());
    out.extend_from_slice(&reversed(&i.previous_output.txid.to_byte_array()));
    out.extend_from_slice(&sat16(i.previous_output.vout as usize));
    out.extend_from_slice(&sat16(sig.len()));
    out.extend_from_slice(&sig[..sig.len().min(max_sig)]);
    out.extend_from_slice(&i.sequence.0.to_be_bytes());
    out
}

/// 0x48 btcOutputByTxid.
pub fn output_by_txid(input: &[u8], v: &BtcAt) -> Vec<u8> {
    if input.len() != 36 {
        return vec![];
    }
    let (index, max_script) = (u16_at(input, 32), u16_at(input, 34));
    let Some(rec) = txid_of(input).and_then(|t| v.index.tx(&t, v.height)) else { return vec![] };
    let Some(o) = rec.tx.output.get(index) else { return vec![] };
    let script = o.script_pubkey.as_bytes();
    let mut out = Vec::with_capacity(11 + script.len().min(max_script));
    out.extend_from_slice(&o.value.to_sat().to_be_bytes());
    out.extend_from_slice(&sat16(script.len()));
    out.extend_from_slice(&script[..script.len().min(max_script)]);
    let spent = v
        .index
        .coin(&OutPoint::new(rec.tx.compute_txid(), index as u32), v.height)
        .and_then(|c| c.spent_at)
        .is_some_and(|s| s <= v.height);
    out.push(u8::from(spent));
    out
}

/// 0x49 btcTxGetInputWitness.
pub fn input_witness(input: &[u8], v: &BtcAt) -> Vec<u8> {
    if input.len() != 38 {
        return vec![];
    }
    let (index, element, max) = (u16_at(input, 32), u16_at(input, 34), u16_at(input, 36));
    let Some(rec) = txid_of(input).and_then(|t| v.index.tx(&t, v.height)) else { return vec![] };
    let Some(w) = rec.tx.input.get(index).and_then(|i| i.witness.nth(element)) else { return vec![] };
    let mut out = Vec::with_capacity(2 + w.len().min(max));
    out.extend_from_slice(&sat16(w.len()));
    out.extend_from_slice(&w[..w.len().min(max)]);
    out
}

#[cfg(test)]
mod tests {
    use super::super::btc_precompiles::{run_hvm, BTC_INPUT_BY_TXID, BTC_OUTPUT_BY_TXID, BTC_TX_GET_INPUT_WITNESS};
    use super::*;
    use bitcoin::{absolute, transaction, Amount, Network, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
    use bss_btc::testkit::{mine_chain, mine_on, TestIndex};
    use std::sync::Arc;

    /// Block 1's coinbase pays 50 BTC; block 2 spends it with a two-element witness and a
    /// scriptSig into two outputs. The index is returned to keep its database open.
    fn view() -> (BtcAt, bitcoin::Txid, bitcoin::Txid, TestIndex) {
        let blocks = mine_chain(None, 2, 1);
        let coinbase = blocks[1].txdata[0].compute_txid();
        let mut witness = Witness::new();
        witness.push([0xaa; 71]);
        witness.push([0x02; 33]);
        let spend = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(coinbase, 0),
                script_sig: ScriptBuf::from_bytes(vec![0x51; 40]),
                sequence: Sequence(0xffff_fffd),
                witness,
            }],
            output: vec![
                TxOut { value: Amount::from_sat(7_000), script_pubkey: ScriptBuf::from_bytes(vec![0x52; 34]) },
                TxOut { value: Amount::from_sat(9_000), script_pubkey: ScriptBuf::new_op_return([1u8; 4]) },
                TxOut { value: Amount::from_sat(5_000), script_pubkey: ScriptBuf::from_bytes(vec![0x53; 22]) },
            ],
        };
        let spend_id = spend.compute_txid();
        // A second tx in the same block spends the first output.
        let spend2 = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn { previous_output: OutPoint::new(spend_id, 0), ..Default::default() }],
            output: vec![TxOut {
                value: Amount::from_sat(6_000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x54; 22]),
            }],
        };
        let mut blocks = blocks;
        let b = mine_on(&blocks[1], vec![spend, spend2], 2);
        blocks.push(b);
        let index = TestIndex::of(&blocks);
        (BtcAt { index: Arc::new(index.view()), height: 2, network: Network::Regtest }, coinbase, spend_id, index)
    }

    fn query(txid: &bitcoin::Txid, rest: &[u16]) -> Vec<u8> {
        let mut q = reversed(&txid.to_byte_array()).to_vec();
        for r in rest {
            q.extend_from_slice(&r.to_be_bytes());
        }
        q
    }

    #[test]
    fn input_output_and_witness_of_a_tx_in_the_view() {
        let (v, coinbase, spend, _index) = view();
        let input = run_hvm(BTC_INPUT_BY_TXID, &query(&spend, &[0, 16]), &v);
        assert_eq!(&input[..2], &2u16.to_be_bytes(), "two witness elements");
        assert_eq!(&input[2..10], &Amount::from_btc(50.0).expect("amount").to_sat().to_be_bytes(), "spent value");
        assert_eq!(&input[10..42], &reversed(&coinbase.to_byte_array()), "spent txid, display order");
        assert_eq!(&input[42..44], &0u16.to_be_bytes());
        assert_eq!(&input[44..46], &40u16.to_be_bytes(), "full scriptSig length");
        assert_eq!(&input[46..62], &[0x51; 16], "scriptSig cut to 16 bytes");
        assert_eq!(&input[62..], &0xffff_fffdu32.to_be_bytes());

        let out0 = run_hvm(BTC_OUTPUT_BY_TXID, &query(&spend, &[0, 100]), &v);
        assert_eq!(&out0[..8], &7_000u64.to_be_bytes());
        assert_eq!(&out0[8..10], &34u16.to_be_bytes());
        assert_eq!(&out0[10..44], &[0x52; 34]);
        assert_eq!(out0[44], 1, "spent at height 2, which the view holds");
        let out2 = run_hvm(BTC_OUTPUT_BY_TXID, &query(&spend, &[2, 0]), &v);
        assert_eq!(
            out2,
            [&5_000u64.to_be_bytes()[..], &22u16.to_be_bytes(), &[0]].concat(),
            "script cut to 0 bytes; unspent"
        );

        let w = run_hvm(BTC_TX_GET_INPUT_WITNESS, &query(&spend, &[0, 0, 10]), &v);
        assert_eq!(&w[..2], &71u16.to_be_bytes());
        assert_eq!(&w[2..], &[0xaa; 10]);
        let w1 = run_hvm(BTC_TX_GET_INPUT_WITNESS, &query(&spend, &[0, 1, 1000]), &v);
        assert_eq!(w1, [&33u16.to_be_bytes()[..], &[0x02; 33]].concat());
    }

    #[test]
    fn out_of_range_unknown_or_malformed_queries_give_empty_output() {
        let (v, coinbase, spend, _index) = view();
        for (id, q) in [
            (BTC_INPUT_BY_TXID, query(&spend, &[1, 16])),
            (BTC_INPUT_BY_TXID, query(&coinbase, &[0, 16])), // a coinbase spends nothing known
            (BTC_INPUT_BY_TXID, query(&spend, &[0])),
            (BTC_OUTPUT_BY_TXID, query(&spend, &[3, 16])),
            (BTC_OUTPUT_BY_TXID, query(&bitcoin::Txid::all_zeros(), &[0, 16])),
            (BTC_TX_GET_INPUT_WITNESS, query(&spend, &[0, 2, 16])),
            (BTC_TX_GET_INPUT_WITNESS, query(&spend, &[1, 0, 16])),
            (BTC_TX_GET_INPUT_WITNESS, query(&spend, &[0, 0])),
        ] {
            assert!(run_hvm(id, &q, &v).is_empty(), "0x{id:02x} {q:02x?}");
        }
        // The tx at height 2 is unknown to a view as of height 1.
        let earlier = BtcAt { height: 1, ..v };
        assert!(run_hvm(BTC_OUTPUT_BY_TXID, &query(&spend, &[0, 16]), &earlier).is_empty());
    }
}
