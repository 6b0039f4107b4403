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
