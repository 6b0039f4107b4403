//! The miner's own coins, followed block by block from bitcoind (no wallet RPC): outputs paying
//! its PoP address that no scanned block spends. On a reorg (a scanned block no longer on the
//! best chain) the miner starts a new `Coins` and rescans its window: a spend in an orphaned
//! block must give the coin back, and a rescan is the simplest correct way to get that.

use bitcoin::{Block, BlockHash, OutPoint, ScriptBuf, Txid};
use std::collections::{BTreeMap, HashSet};

#[derive(Default)]
pub struct Coins {
    /// Height → hash of every scanned block (from the scan start).
    scanned: BTreeMap<u64, BlockHash>,
    /// Unspent outputs of ours: value, the height that created them, whether a coinbase did.
    unspent: BTreeMap<OutPoint, (u64, u64, bool)>,
    /// Txids in scanned blocks (to see that a keystone tx confirmed).
    confirmed: BTreeMap<Txid, u64>,
}

impl Coins {
    pub fn tip(&self) -> Option<(u64, BlockHash)> {
        self.scanned.iter().next_back().map(|(h, b)| (*h, *b))
    }

    pub fn connect(&mut self, height: u64, block: &Block, mine: &ScriptBuf) {
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            self.confirmed.insert(txid, height);
            if !tx.is_coinbase() {
                for i in &tx.input {
                    self.unspent.remove(&i.previous_output);
                }
            }
            for (vout, o) in tx.output.iter().enumerate() {
                if o.script_pubkey == *mine {
                    self.unspent.insert(OutPoint::new(txid, vout as u32), (o.value.to_sat(), height, tx.is_coinbase()));
                }
            }
        }
        self.scanned.insert(height, block.block_hash());
    }

    pub fn is_confirmed(&self, txid: &Txid) -> bool {
        self.confirmed.contains_key(txid)
    }

    /// The largest coin not in `busy`, with enough confirmations to spend (coinbases: 100).
    pub fn largest(&self, busy: &HashSet<OutPoint>, best: u64) -> Option<(OutPoint, u64)> {
        self.unspent
            .iter()
            .filter(|(o, (_, h, coinbase))| !busy.contains(o) && (!coinbase || best.saturating_sub(*h) + 1 >= 100))
            .max_by_key(|(_, (v, _, _))| *v)
            .map(|(o, (v, _, _))| (*o, *v))
    }

    pub fn balance(&self) -> u64 {
        self.unspent.values().map(|(v, _, _)| v).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{absolute, transaction, Amount, Sequence, Transaction, TxIn, TxOut, Witness};

    fn tx(inputs: Vec<OutPoint>, outputs: Vec<(u64, ScriptBuf)>) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: inputs
                .into_iter()
                .map(|previous_output| TxIn {
                    previous_output,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::default(),
                })
                .collect(),
            output: outputs.into_iter().map(|(v, s)| TxOut { value: Amount::from_sat(v), script_pubkey: s }).collect(),
        }
    }

    fn block(txdata: Vec<Transaction>) -> Block {
        Block { header: bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header, txdata }
    }

    /// Coinbases mature after 100 blocks, spends remove coins, change comes back, a keystone tx
    /// counts as confirmed once a scanned block holds it.
    #[test]
    fn coins_follow_blocks_and_respect_maturity() {
        let mine = ScriptBuf::from_bytes(vec![0x51, 0x20, 7]);
        let other = ScriptBuf::from_bytes(vec![0x00]);
        let coinbase = tx(vec![OutPoint::null()], vec![(50_000, mine.clone())]);
        let paid = tx(vec![OutPoint::new(Txid::from_byte_array([1; 32]), 0)], vec![(20_000, mine.clone()), (5, other)]);
        let mut c = Coins::default();
        c.connect(1, &block(vec![coinbase.clone(), paid.clone()]), &mine);
        let (cb, plain) = (OutPoint::new(coinbase.compute_txid(), 0), OutPoint::new(paid.compute_txid(), 0));
        assert_eq!(c.balance(), 70_000);
        assert_eq!(c.largest(&HashSet::new(), 1), Some((plain, 20_000)), "the coinbase is immature");
        assert_eq!(c.largest(&HashSet::new(), 100), Some((cb, 50_000)));
        assert_eq!(c.largest(&[cb].into_iter().collect(), 100), Some((plain, 20_000)), "busy coins are skipped");
        let keystone = tx(vec![plain], vec![(19_800, mine.clone())]);
        c.connect(2, &block(vec![keystone.clone()]), &mine);
        assert!(c.is_confirmed(&keystone.compute_txid()));
        assert_eq!(c.balance(), 69_800);
        assert_eq!(c.tip().map(|(h, _)| h), Some(2));
    }
}
