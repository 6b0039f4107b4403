//! Builds the Bitcoin index block by block — the watcher's half of [`BtcIndex`]. Each connected
//! or disconnected block is one atomic batch in the node's database (through the storage
//! service), so a restart resumes from the last block written instead of rebuilding from
//! bitcoind; the in-memory part is reloaded from the same records.

use super::inbox::{messages_in, InboxFilter, InboxMessage};
use super::index::{read, BtcIndex, CoinRecord, Sighting};
use super::records::{
    coin_key, script_key, script_output_key, StoredBlock, StoredCoin, StoredStale, StoredTx, META_COUNT, META_START,
};
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, OutPoint, ScriptBuf, Txid};
use bss_storage::{AuxBatch, AuxSnapshot, AuxSpace, StorageError, StoreReader};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

/// Where the writer's batches go: the storage service in a node, a store in tests.
pub type IndexSink = bss_storage::AuxWriter;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("the Bitcoin index in this data dir starts at height {stored}, [btc] start_height is {configured}; use a fresh data dir or the old start_height")]
    StartMismatch { stored: u64, configured: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot start the watcher thread: {0}")]
    Thread(std::io::Error),
}

pub struct IndexWriter {
    index: BtcIndex,
    sink: IndexSink,
    reader: StoreReader,
    /// Which forced-tx envelopes are kept and counted towards a Bitcoin block's cap.
    inbox: InboxFilter,
    /// Which keystones count: each sighting's certificate is judged once, here.
    keystones: Option<Arc<crate::finality::KeystoneRules>>,
}

fn inbox_key(height: u64, position: u32) -> Vec<u8> {
    [&height.to_be_bytes()[..], &position.to_be_bytes()].concat()
}

/// height ‖ position of the tx in its block ‖ output: stored sightings read back in Bitcoin
/// order, the order a live index holds them in. (Keyed by txid, as they once were, a restarted
/// node read same-block keystones back in txid order, counted another one of two keystones for
/// one L2 number than its peers did, and refused every proposal's anchors: the federation halted.)
fn sighting_key(height: u64, position: usize, vout: usize) -> Vec<u8> {
    let (p, v) = (u32::try_from(position).unwrap_or(u32::MAX), u32::try_from(vout).unwrap_or(u32::MAX));
    [&height.to_be_bytes()[..], &p.to_be_bytes(), &v.to_be_bytes()].concat()
}

impl IndexWriter {
    /// Opens the index stored in the node's database (or starts one at `start_height`).
    pub fn open(sink: IndexSink, reader: StoreReader, start_height: u64) -> Result<Self, IndexError> {
        let snap = reader.aux_snapshot();
        let mut index = BtcIndex::new(start_height);
        // A new index records where it starts with its first block (`open` runs on any thread,
        // also async ones, so it writes nothing).
        let stored = snap.get(AuxSpace::BtcMeta, META_START)?.and_then(|v| v.try_into().ok().map(u64::from_be_bytes));
        if let Some(stored) = stored.filter(|s| *s != start_height) {
            return Err(IndexError::StartMismatch { stored, configured: start_height });
        }
        for (key, value) in snap.prefix(AuxSpace::BtcBlocks, &[], usize::MAX)? {
            let height = key.as_slice().try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX);
            if height != start_height + index.chain.len() as u64 {
                return Err(StorageError::Corrupt { keyspace: "btc_blocks", reason: format!("gap at {height}") }.into());
            }
            let b = StoredBlock::decode(&value);
            index.chain.push_back((b.hash, b.header));
            index.seen.insert(b.hash, (height, b.header));
        }
        // Headers of kept stale blocks: a reorg's fork point is found from them after a restart.
        for (_, value) in snap.prefix(AuxSpace::BtcStale, &[], usize::MAX)? {
            let s = StoredStale::decode(&value);
            index.seen.insert(s.block.block_hash(), (s.height, s.block.header));
        }
        for (_, value) in snap.prefix(AuxSpace::BtcInbox, &[], usize::MAX)? {
            let m: InboxMessage = bss_consensus::codec::decode(&value)
                .map_err(|e| StorageError::Corrupt { keyspace: "btc_inbox", reason: e.to_string() })?;
            index.inbox.push_back(m);
        }
        let mut sightings = vec![];
        for (_, value) in snap.prefix(AuxSpace::BtcSightings, &[], usize::MAX)? {
            let s: Sighting = bss_consensus::codec::decode(&value)
                .map_err(|e| StorageError::Corrupt { keyspace: "btc_sightings", reason: e.to_string() })?;
            sightings.push(s);
        }
        // Databases written with txid keys: put each block's sightings back in block order.
        let mut positions: HashMap<u64, HashMap<Txid, usize>> = HashMap::new();
        for w in sightings.windows(2).filter(|w| w[0].height == w[1].height) {
            if let Entry::Vacant(e) = positions.entry(w[0].height) {
                let txids = snap
                    .get(AuxSpace::BtcBlocks, &w[0].height.to_be_bytes())?
                    .map(|raw| StoredBlock::decode(&raw).txids);
                e.insert(txids.unwrap_or_default().into_iter().enumerate().map(|(i, t)| (t, i)).collect());
            }
        }
        sightings
            .sort_by_key(|s| (s.height, positions.get(&s.height).and_then(|p| p.get(&s.txid)).copied().unwrap_or(0)));
        index.sightings.extend(sightings);
        Ok(Self { index, sink, reader, inbox: InboxFilter::any(), keystones: None })
    }

    /// Judges each keystone sighting's certificate with `rules` as it is indexed (and those
    /// already stored, now): the signature checks run once per sighting, not per query.
    pub fn with_keystone_rules(mut self, rules: crate::finality::KeystoneRules) -> Self {
        let judged: Vec<Sighting> = self
            .index
            .sightings
            .iter()
            .map(|s| Sighting { certified: Some(rules.check(&s.payload).is_ok()), ..s.clone() })
            .collect();
        self.index.sightings = judged.into_iter().collect();
        self.keystones = Some(Arc::new(rules));
        self
    }

    /// Keeps only the inbox envelopes `filter` accepts (a node: its chain's, that decode).
    pub fn with_inbox_filter(mut self, filter: InboxFilter) -> Self {
        self.inbox = filter;
        self
    }

    /// The current view, with a storage snapshot that matches it.
    pub fn view(&self) -> BtcIndex {
        let mut v = self.index.clone();
        v.db = Some(self.reader.aux_snapshot());
        v.inbox_filter = self.inbox;
        v.keystone_rules = self.keystones.clone();
        v
    }

    pub fn start_height(&self) -> u64 {
        self.index.start_height()
    }

    pub fn best_height(&self) -> Option<u64> {
        self.index.best_height()
    }

    pub fn best_hash(&self) -> Option<BlockHash> {
        self.index.best_hash()
    }

    /// Adds the block at `best_height + 1` (or at `start_height` for the first one).
    pub fn connect(&mut self, block: &Block) -> Result<u64, StorageError> {
        let height = self.index.best_height().map_or(self.index.start_height, |h| h + 1);
        let hash = block.block_hash();
        let snap = self.reader.aux_snapshot();
        let mut touched = Touched::new(&snap);
        let mut batch = AuxBatch::new(false);
        let mut sightings = Vec::new();
        let mut txids = Vec::with_capacity(block.txdata.len());
        for (position, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            txids.push(txid);
            if !tx.is_coinbase() {
                for i in &tx.input {
                    if let Some(mut c) = touched.coin(&i.previous_output) {
                        c.spent_at = Some(height);
                        touched.coins.insert(i.previous_output, Some(c));
                    }
                }
            }
            let payloads = super::index::keystone_payloads(tx);
            if !payloads.is_empty() {
                let spent_scripts: Vec<ScriptBuf> =
                    tx.input.iter().filter_map(|i| touched.coin(&i.previous_output).map(|c| c.script)).collect();
                for (slot, payload) in payloads {
                    let key = sighting_key(height, position, slot);
                    let certified = self.keystones.as_ref().map(|r| r.check(&payload).is_ok());
                    let spent_scripts = spent_scripts.clone();
                    sightings.push((key, Sighting { height, block: hash, txid, payload, spent_scripts, certified }));
                }
            }
            for (vout, out) in tx.output.iter().enumerate() {
                if out.script_pubkey.is_op_return() {
                    continue;
                }
                let o = OutPoint::new(txid, vout as u32);
                let script = out.script_pubkey.clone();
                batch.put(AuxSpace::BtcScripts, script_output_key(&script, &o), []);
                touched.count(&script, 1);
                touched.coins.insert(o, Some(CoinRecord { value: out.value.to_sat(), script, height, spent_at: None }));
            }
            batch.put(AuxSpace::BtcTxs, txid.as_byte_array().to_vec(), StoredTx::encode(height, &hash, tx));
        }
        touched.into_batch(&mut batch);
        let with_ids: Vec<_> = txids.iter().copied().zip(block.txdata.iter()).collect();
        let inbox = messages_in(height, &hash, &with_ids, &self.inbox);
        for m in &inbox {
            let value = bss_consensus::codec::encode(m)
                .map_err(|e| StorageError::Encode { what: "inbox message", reason: e.to_string() })?;
            batch.put(AuxSpace::BtcInbox, inbox_key(height, m.position), value);
        }
        for (key, s) in &sightings {
            let value = bss_consensus::codec::encode(s)
                .map_err(|e| StorageError::Encode { what: "sighting", reason: e.to_string() })?;
            batch.put(AuxSpace::BtcSightings, key.clone(), value);
        }
        batch.put(AuxSpace::BtcBlocks, height.to_be_bytes(), StoredBlock::encode(&hash, &block.header, &txids));
        batch.put(AuxSpace::BtcMeta, META_START, self.index.start_height.to_be_bytes());
        write(&self.sink, batch)?;
        self.index.chain.push_back((hash, block.header));
        self.index.seen.insert(hash, (height, block.header));
        self.index.sightings.extend(sightings.into_iter().map(|(_, s)| s));
        self.index.inbox.extend(inbox);
        Ok(height)
    }

    /// Removes the best block (a reorg rolls back one block at a time).
    pub fn disconnect_tip(&mut self) -> Result<Option<BlockHash>, StorageError> {
        let Some(height) = self.index.best_height() else { return Ok(None) };
        let snap = self.reader.aux_snapshot();
        let Some(raw) = snap.get(AuxSpace::BtcBlocks, &height.to_be_bytes())? else {
            return Err(StorageError::Corrupt {
                keyspace: "btc_blocks",
                reason: format!("best block {height} missing"),
            });
        };
        let stored = StoredBlock::decode(&raw);
        let mut touched = Touched::new(&snap);
        let mut batch = AuxBatch::new(false);
        let mut txdata = Vec::with_capacity(stored.txids.len());
        for txid in stored.txids.iter().rev() {
            let Some(raw) = snap.get(AuxSpace::BtcTxs, txid.as_byte_array())? else { continue };
            let Some(StoredTx { tx, .. }) = StoredTx::decode(&raw) else { continue };
            txdata.push(tx.clone());
            for vout in 0..tx.output.len() {
                let o = OutPoint::new(*txid, vout as u32);
                if let Some(c) = touched.coin(&o) {
                    batch.delete(AuxSpace::BtcScripts, script_output_key(&c.script, &o));
                    touched.count(&c.script, -1);
                    touched.coins.insert(o, None);
                }
            }
            if !tx.is_coinbase() {
                for i in &tx.input {
                    if let Some(mut c) = touched.coin(&i.previous_output).filter(|c| c.spent_at == Some(height)) {
                        c.spent_at = None;
                        touched.coins.insert(i.previous_output, Some(c));
                    }
                }
            }
            batch.delete(AuxSpace::BtcTxs, txid.as_byte_array().to_vec());
        }
        touched.into_batch(&mut batch);
        // Every key of the block, whichever format wrote it.
        for (key, _) in snap.prefix(AuxSpace::BtcSightings, &height.to_be_bytes(), usize::MAX)? {
            batch.delete(AuxSpace::BtcSightings, key);
        }
        for m in self.index.inbox.iter().filter(|m| m.height == height) {
            batch.delete(AuxSpace::BtcInbox, inbox_key(height, m.position));
        }
        batch.delete(AuxSpace::BtcBlocks, height.to_be_bytes());
        // Kept by hash: a certified L2 block may have this block in its Bitcoin view.
        txdata.reverse();
        let block = Block { header: stored.header, txdata };
        batch.put(AuxSpace::BtcStale, stored.hash.as_byte_array().to_vec(), StoredStale::encode(height, &block));
        write(&self.sink, batch)?;
        self.index.chain.pop_back();
        self.index.sightings.retain(|s| s.height < height);
        self.index.inbox.retain(|m| m.height < height);
        Ok(Some(stored.hash))
    }
}

impl IndexWriter {
    /// Whether a block off the best chain is kept (by hash).
    pub fn has_stale(&self, hash: &BlockHash) -> Result<bool, StorageError> {
        Ok(self.reader.aux_snapshot().get(AuxSpace::BtcStale, hash.as_byte_array())?.is_some())
    }

    /// Keeps a block off the best chain, fetched by hash, at `height` (the caller checked that
    /// it links to what it claims).
    pub fn keep_stale(&mut self, height: u64, block: &Block) -> Result<(), StorageError> {
        let mut batch = AuxBatch::new(false);
        let hash = block.block_hash();
        batch.put(AuxSpace::BtcStale, hash.as_byte_array().to_vec(), StoredStale::encode(height, block));
        write(&self.sink, batch)?;
        self.index.seen.insert(hash, (height, block.header));
        Ok(())
    }
}

fn write(sink: &IndexSink, batch: AuxBatch) -> Result<(), StorageError> {
    sink.write_blocking(batch)
}

/// Coins and per-script counts a block changes, over the stored ones.
struct Touched<'a> {
    snap: &'a AuxSnapshot,
    /// None: removed.
    coins: HashMap<OutPoint, Option<CoinRecord>>,
    counts: HashMap<[u8; 32], i64>,
}

impl<'a> Touched<'a> {
    fn new(snap: &'a AuxSnapshot) -> Self {
        Self { snap, coins: HashMap::new(), counts: HashMap::new() }
    }

    fn coin(&self, o: &OutPoint) -> Option<CoinRecord> {
        match self.coins.get(o) {
            Some(c) => c.clone(),
            None => read("coin", self.snap.get(AuxSpace::BtcCoins, &coin_key(o)))
                .and_then(|raw| StoredCoin::decode(&raw))
                .map(StoredCoin::record),
        }
    }

    fn count(&mut self, script: &bitcoin::ScriptBuf, delta: i64) {
        *self.counts.entry(script_key(script)).or_insert(0) += delta;
    }

    fn into_batch(self, batch: &mut AuxBatch) {
        for (o, c) in self.coins {
            match c {
                Some(c) => batch.put(AuxSpace::BtcCoins, coin_key(&o), StoredCoin::encode(&c)),
                None => batch.delete(AuxSpace::BtcCoins, coin_key(&o)),
            }
        }
        for (k, delta) in self.counts {
            let key = [META_COUNT, &k[..]].concat();
            let stored = read("script count", self.snap.get(AuxSpace::BtcMeta, &key))
                .and_then(|v| v.try_into().ok().map(u64::from_be_bytes))
                .unwrap_or(0);
            let n = stored.saturating_add_signed(delta);
            if n == 0 {
                batch.delete(AuxSpace::BtcMeta, key);
            } else {
                batch.put(AuxSpace::BtcMeta, key, n.to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::index::KEYSTONE_MAGIC;
    use crate::testkit::{mine_chain, mine_on, TestIndex};
    use bitcoin::{absolute, transaction, Amount, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, Txid};

    /// A tx spending a made-up coin with one keystone-shaped OP_RETURN per entry of `tags`.
    fn keystone_like(seed: u8, tags: &[u8]) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(bitcoin::hashes::Hash::from_byte_array([seed; 32]), 0),
                ..Default::default()
            }],
            output: tags
                .iter()
                .map(|t| TxOut {
                    value: Amount::ZERO,
                    script_pubkey: ScriptBuf::new_op_return(
                        <&bitcoin::script::PushBytes>::try_from(&[KEYSTONE_MAGIC, &[*t; 8][..]].concat()[..])
                            .expect("push"),
                    ),
                })
                .collect(),
        }
    }

    fn order(t: &TestIndex) -> Vec<(Txid, Vec<u8>)> {
        t.view().sightings().map(|s| (s.txid, s.payload.clone())).collect()
    }

    /// Regression (found by `bss chaos --tunnel`, seed 11): sightings were stored by txid, so a
    /// restarted node read two keystones of one Bitcoin block back in txid order, counted the
    /// other one of two keystones for the same L2 number, and refused every proposal's anchors.
    #[test]
    fn a_reopened_index_holds_sightings_in_block_order_and_every_output() {
        let chain = mine_chain(None, 2, 1);
        // Two txs whose block order is the reverse of their txid order, and one tx with two
        // keystone outputs.
        let (mut a, mut b) = (keystone_like(1, &[0xa1]), keystone_like(2, &[0xb2]));
        if a.compute_txid() < b.compute_txid() {
            std::mem::swap(&mut a, &mut b);
        }
        let block = mine_on(&chain[1], vec![a, b, keystone_like(3, &[0xc3, 0xc4])], 1);
        let mut t = TestIndex::of(&chain);
        t.connect(&block);
        let live = order(&t);
        assert_eq!(live.len(), 4);
        t.reopen();
        assert_eq!(order(&t), live, "a restarted node must see the sightings as a live one does");
        // A reorg removes them all, from storage too.
        t.disconnect_tip();
        t.reopen();
        assert!(order(&t).is_empty());
    }
}
