//! A view of a Bitcoin chain that is no longer the best one: what a certified L2 block whose
//! Bitcoin tip a reorg orphaned saw when it was built. The blocks from the fork point up to that
//! tip are kept by hash (`AuxSpace::BtcStale`: stored when the watcher rolls them back, or
//! fetched from bitcoind, which keeps stale blocks it has seen). Below the fork point both chains
//! are the same, so the best-chain index answers as of the fork point; above it an in-memory
//! overlay of those blocks answers. A replica can then re-execute a certified block whatever
//! Bitcoin did since (README "Threat model").

use super::inbox::{messages_in, InboxMessage};
use super::index::{read, BtcIndex, CoinRecord, Sighting, TxRecord};
use super::records::StoredStale;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, OutPoint, Txid};
use bss_storage::AuxSpace;
use std::collections::HashMap;
use std::sync::Arc;

/// Deepest fork a view is rebuilt for (a day of Bitcoin blocks): a certified block on a fork
/// deeper than this waits, as before.
pub const MAX_FORK_DEPTH: usize = 144;

/// The blocks above the fork point, digested.
#[derive(Debug, Default)]
pub(crate) struct ForkOverlay {
    /// Last height both chains share.
    pub(crate) fork: u64,
    pub(crate) txids: HashMap<u64, Vec<Txid>>,
    pub(crate) txs: HashMap<Txid, TxRecord>,
    /// Outputs the overlay creates (with their spends in it).
    pub(crate) coins: HashMap<OutPoint, CoinRecord>,
    /// Coins from below the fork point that the overlay spends, at the height it does.
    pub(crate) spends: HashMap<OutPoint, u64>,
    /// Outputs the overlay creates, by script key, in (height, position) order.
    pub(crate) by_script: HashMap<[u8; 32], Vec<OutPoint>>,
}

impl ForkOverlay {
    /// The coin as the fork sees it at `as_of` (`base`: the best-chain index).
    pub(crate) fn coin(&self, base: &BtcIndex, o: &OutPoint, as_of: u64) -> Option<CoinRecord> {
        if let Some(c) = self.coins.get(o) {
            return (c.height <= as_of).then(|| c.clone());
        }
        let mut c = base.best_coin(o, as_of.min(self.fork))?;
        // A spend on the best chain above the fork point is not this chain's.
        c.spent_at = c.spent_at.filter(|s| *s <= self.fork).or_else(|| self.spends.get(o).copied());
        Some(c)
    }
}

impl BtcIndex {
    /// The view as of the Bitcoin block `tip_hash` at `tip_height`: this index when the block is
    /// on its best chain, else the fork that leads to it, rebuilt from kept blocks (None when a
    /// block of that fork is not kept, or the fork is deeper than [`MAX_FORK_DEPTH`]).
    pub fn as_of_tip(self: &Arc<Self>, tip_height: u64, tip_hash: &BlockHash) -> Option<Arc<BtcIndex>> {
        if self.is_on_best_chain(tip_height, tip_hash) {
            return Some(self.clone());
        }
        self.fork_view(tip_height, tip_hash).map(Arc::new)
    }

    /// Whether this view answers as of `tip_hash` (on the best chain, or a kept fork).
    pub fn holds_tip(&self, tip_height: u64, tip_hash: &BlockHash) -> bool {
        self.is_on_best_chain(tip_height, tip_hash) || self.fork_blocks(tip_height, tip_hash).is_some()
    }

    /// The kept blocks from the best chain up to `tip_hash`, oldest first.
    fn fork_blocks(&self, tip_height: u64, tip_hash: &BlockHash) -> Option<Vec<(u64, bitcoin::Block)>> {
        let db = self.db.as_ref()?;
        let (mut hash, mut height) = (*tip_hash, tip_height);
        let mut blocks = Vec::new();
        loop {
            if blocks.len() >= MAX_FORK_DEPTH || height < self.start_height {
                return None;
            }
            let stale = StoredStale::decode(&read("stale block", db.get(AuxSpace::BtcStale, hash.as_byte_array()))?);
            if stale.height != height || stale.block.block_hash() != hash {
                return None;
            }
            let prev = stale.block.header.prev_blockhash;
            blocks.push((height, stale.block));
            let below = height.checked_sub(1)?;
            if self.is_on_best_chain(below, &prev) {
                blocks.reverse();
                return Some(blocks);
            }
            (hash, height) = (prev, below);
        }
    }

    fn fork_view(&self, tip_height: u64, tip_hash: &BlockHash) -> Option<BtcIndex> {
        let blocks = self.fork_blocks(tip_height, tip_hash)?;
        let fork = blocks.first()?.0.checked_sub(1)?;
        let mut view = self.clone();
        view.fork = None;
        view.chain.truncate((fork + 1).checked_sub(self.start_height)? as usize);
        view.sightings.retain(|s| s.height <= fork);
        view.inbox.retain(|m| m.height <= fork);
        let mut o = ForkOverlay { fork, ..Default::default() };
        let mut sightings: Vec<Sighting> = Vec::new();
        let mut inbox: Vec<InboxMessage> = Vec::new();
        for (height, block) in &blocks {
            let hash = block.block_hash();
            let mut ids = Vec::with_capacity(block.txdata.len());
            for tx in &block.txdata {
                let txid = tx.compute_txid();
                ids.push(txid);
                let mut spent_scripts = Vec::new();
                if !tx.is_coinbase() {
                    for i in &tx.input {
                        let p = i.previous_output;
                        if let Some(c) = o.coins.get_mut(&p) {
                            c.spent_at = Some(*height);
                            spent_scripts.push(c.script.clone());
                        } else if let Some(c) = self.best_coin(&p, fork) {
                            o.spends.insert(p, *height);
                            spent_scripts.push(c.script);
                        }
                    }
                }
                for (_, payload) in super::index::keystone_payloads(tx) {
                    let certified = self.keystone_rules.as_ref().map(|r| r.check(&payload).is_ok());
                    let spent_scripts = spent_scripts.clone();
                    sightings.push(Sighting { height: *height, block: hash, txid, payload, spent_scripts, certified });
                }
                for (vout, out) in tx.output.iter().enumerate() {
                    if out.script_pubkey.is_op_return() {
                        continue;
                    }
                    let p = OutPoint::new(txid, vout as u32);
                    let script = out.script_pubkey.clone();
                    o.by_script.entry(super::records::script_key(&script)).or_default().push(p);
                    o.coins
                        .insert(p, CoinRecord { value: out.value.to_sat(), script, height: *height, spent_at: None });
                }
                o.txs.insert(txid, TxRecord { height: *height, block: hash, tx: Arc::new(tx.clone()) });
            }
            let with_ids: Vec<_> = ids.iter().copied().zip(block.txdata.iter()).collect();
            inbox.extend(messages_in(*height, &hash, &with_ids, &self.inbox_filter));
            o.txids.insert(*height, ids);
            view.chain.push_back((hash, block.header));
            view.seen.insert(hash, (*height, block.header));
        }
        view.sightings.extend(sightings);
        view.inbox.extend(inbox);
        view.fork = Some(Arc::new(o));
        Some(view)
    }
}

#[cfg(test)]
mod tests {
    use crate::index::BtcIndex;
    use crate::testkit::{mine_chain, mine_on, TestIndex};
    use bitcoin::{absolute, transaction, Amount, OutPoint, ScriptBuf, Transaction, TxIn, TxOut};
    use std::sync::Arc;

    fn pay(from: OutPoint, to: &ScriptBuf, sats: u64) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn { previous_output: from, ..Default::default() }],
            output: vec![TxOut { value: Amount::from_sat(sats), script_pubkey: to.clone() }],
        }
    }

    /// Everything the hVM, the mints and the forced txs ask of a view, as of `at` (a spend above
    /// `at` is not part of it: every caller compares it with the tip).
    fn answers(v: &BtcIndex, txs: &[&Transaction], s: &ScriptBuf, at: u64) -> String {
        let mut out = format!("{:?} {:?}\n", v.hash_at(at), v.header_at(at));
        for h in 0..=at {
            out += &format!("{h}: {:?} {:?} {}\n", v.txids_at(h), v.utxos(s, h), v.outputs_of(s, h));
        }
        for t in txs {
            let id = t.compute_txid();
            let coin = v.coin(&OutPoint::new(id, 0), at).map(|c| (c.value, c.height, c.spent_at.filter(|h| *h <= at)));
            out += &format!("{id}: {:?} {coin:?}\n", v.tx(&id, at).map(|r| (r.height, r.block)));
        }
        out
    }

    /// Branch A (heights 3, 4) is the best chain; a reorg replaces it with branch B (3 to 5),
    /// which spends the same coin from below the fork and pays the same script. The fork view of
    /// A's tip answers every query exactly as the index did while A was the best chain.
    #[test]
    fn a_fork_view_answers_as_the_orphaned_chain_did() {
        let s = ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([7; 32]));
        let base = mine_chain(None, 2, 1);
        let t0 = pay(OutPoint::new(bitcoin::Txid::from_byte_array([1; 32]), 0), &s, 5_000);
        let b2 = mine_on(&base[1], vec![t0.clone()], 1);
        let t1 = pay(OutPoint::new(bitcoin::Txid::from_byte_array([2; 32]), 0), &s, 1_000);
        let a3 = mine_on(&b2, vec![t1.clone()], 1);
        let t2 = pay(OutPoint::new(t0.compute_txid(), 0), &s, 4_000);
        let t3 = pay(OutPoint::new(t1.compute_txid(), 0), &s, 900);
        let a4 = mine_on(&a3, vec![t2.clone(), t3.clone()], 1);
        let mut t = TestIndex::of(&base);
        for b in [&b2, &a3, &a4] {
            t.connect(b);
        }
        let txs = [&t0, &t1, &t2, &t3];
        let on_a = [answers(&t.view(), &txs, &s, 3), answers(&t.view(), &txs, &s, 4)];

        // The reorg: B spends t0's coin otherwise, re-mines t1, pays the script more.
        t.disconnect_tip();
        t.disconnect_tip();
        let u2 = pay(OutPoint::new(t0.compute_txid(), 0), &s, 4_500);
        let b3 = mine_on(&b2, vec![u2.clone(), t1.clone()], 2);
        let b4 = mine_on(&b3, vec![], 2);
        let b5 = mine_on(&b4, vec![pay(OutPoint::new(u2.compute_txid(), 0), &s, 4_400)], 2);
        for b in [&b3, &b4, &b5] {
            t.connect(b);
        }
        let best = Arc::new(t.view());
        assert_ne!(answers(&best, &txs, &s, 4), on_a[1], "the best chain now answers otherwise");
        let fork = best.as_of_tip(4, &a4.block_hash()).expect("A's tip is kept");
        assert_eq!(answers(&fork, &txs, &s, 4), on_a[1]);
        let fork3 = best.as_of_tip(3, &a3.block_hash()).expect("and A's first block");
        assert_eq!(answers(&fork3, &txs, &s, 3), on_a[0]);
        assert!(Arc::ptr_eq(&best.as_of_tip(4, &b4.block_hash()).expect("best"), &best));
        // A block never seen, or named at the wrong height, has no view.
        let unseen = mine_on(&b2, vec![], 9);
        assert!(best.as_of_tip(3, &unseen.block_hash()).is_none());
        assert!(best.as_of_tip(5, &a4.block_hash()).is_none());
        // Fetched by hash (as the watcher does for a replica that never saw it), it has one.
        t.writer.keep_stale(3, &unseen).expect("keep");
        assert!(Arc::new(t.view()).holds_tip(3, &unseen.block_hash()));
        // A restarted node still has the kept blocks, and their headers for fork points.
        t.reopen();
        let reopened = Arc::new(t.view());
        assert_eq!(answers(&reopened.as_of_tip(4, &a4.block_hash()).expect("kept"), &txs, &s, 4), on_a[1]);
        assert!(reopened.seen(&a4.block_hash()).is_some());
    }

    /// The hVM prices a script scan by `outputs_of` as of the block's tip: outputs a watcher that
    /// is further ahead has seen do not count (they would change the gas, and the state root).
    #[test]
    fn outputs_of_counts_only_outputs_at_or_below_the_tip() {
        let s = ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([8; 32]));
        let base = mine_chain(None, 2, 1);
        let mut t = TestIndex::of(&base);
        let mut prev = base[1].clone();
        for i in 0..3u8 {
            let b = mine_on(&prev, vec![pay(OutPoint::new(bitcoin::Txid::from_byte_array([i + 10; 32]), 0), &s, 1)], 1);
            t.connect(&b);
            prev = b;
        }
        let v = t.view();
        assert_eq!((v.outputs_of(&s, 1), v.outputs_of(&s, 2), v.outputs_of(&s, 3), v.outputs_of(&s, 4)), (0, 1, 2, 3));
    }

    use bitcoin::hashes::Hash;
}
