//! The Bitcoin view a node has indexed: the best chain's headers from `start_height`, every
//! transaction in those blocks, and every output with the height that created it and the height
//! that spent it. Queries are answered *as of* a height, so that an L2 block whose BTC tip is at
//! height H gets the same answer on every replica, whatever their watchers have seen since.

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, OutPoint, ScriptBuf, Transaction, Txid};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct TxRecord {
    pub height: u64,
    pub block: BlockHash,
    pub tx: Arc<Transaction>,
}

#[derive(Clone, Debug)]
pub struct CoinRecord {
    pub value: u64,
    pub script: ScriptBuf,
    pub height: u64,
    pub spent_at: Option<u64>,
}

/// An OP_RETURN payload starting with a given magic, seen in a block of the best chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sighting {
    pub height: u64,
    pub block: BlockHash,
    pub txid: Txid,
    pub payload: Vec<u8>,
    /// Scripts of the coins this tx spends that the index knows (created at or after
    /// `start_height`), in input order. Who may write a keystone is judged from these.
    pub spent_scripts: Vec<ScriptBuf>,
}

/// Magic prefix of the OP_RETURN payloads the index collects (keystones, DESIGN.md §7).
pub const KEYSTONE_MAGIC: &[u8] = b"BSS";

#[derive(Clone, Debug, Default)]
pub struct BtcIndex {
    start_height: u64,
    /// Best chain from `start_height`: index = height − start_height.
    chain: Vec<(BlockHash, Header)>,
    /// Every header ever connected (also those a reorg removed), to find fork points.
    seen: HashMap<BlockHash, (u64, Header)>,
    block_txids: Vec<Vec<Txid>>,
    txs: HashMap<Txid, TxRecord>,
    coins: HashMap<OutPoint, CoinRecord>,
    by_script: HashMap<ScriptBuf, Vec<OutPoint>>,
    sightings: Vec<Sighting>,
}

impl BtcIndex {
    pub fn new(start_height: u64) -> Self {
        Self { start_height, ..Default::default() }
    }

    pub fn start_height(&self) -> u64 {
        self.start_height
    }

    /// Height of the best block indexed (`None` before the first).
    pub fn best_height(&self) -> Option<u64> {
        (!self.chain.is_empty()).then(|| self.start_height + self.chain.len() as u64 - 1)
    }

    pub fn best_hash(&self) -> Option<BlockHash> {
        self.chain.last().map(|(h, _)| *h)
    }

    pub fn hash_at(&self, height: u64) -> Option<BlockHash> {
        self.entry(height).map(|(h, _)| *h)
    }

    pub fn header_at(&self, height: u64) -> Option<&Header> {
        self.entry(height).map(|(_, h)| h)
    }

    fn entry(&self, height: u64) -> Option<&(BlockHash, Header)> {
        height.checked_sub(self.start_height).and_then(|i| self.chain.get(i as usize))
    }

    /// A header this index has seen, on the best chain or not, with its height.
    pub fn seen(&self, hash: &BlockHash) -> Option<&(u64, Header)> {
        self.seen.get(hash)
    }

    pub fn is_on_best_chain(&self, height: u64, hash: &BlockHash) -> bool {
        self.hash_at(height) == Some(*hash)
    }

    /// Adds the block at `best_height + 1` (or at `start_height` for the first one).
    pub fn connect(&mut self, block: &Block) -> u64 {
        let height = self.best_height().map_or(self.start_height, |h| h + 1);
        let hash = block.block_hash();
        let mut txids = Vec::with_capacity(block.txdata.len());
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            txids.push(txid);
            if !tx.is_coinbase() {
                for i in &tx.input {
                    if let Some(c) = self.coins.get_mut(&i.previous_output) {
                        c.spent_at = Some(height);
                    }
                }
            }
            for (vout, out) in tx.output.iter().enumerate() {
                if out.script_pubkey.is_op_return() {
                    let payload = op_return_payload(&out.script_pubkey);
                    if payload.starts_with(KEYSTONE_MAGIC) {
                        let spent_scripts = tx
                            .input
                            .iter()
                            .filter_map(|i| self.coins.get(&i.previous_output).map(|c| c.script.clone()))
                            .collect();
                        self.sightings.push(Sighting { height, block: hash, txid, payload, spent_scripts });
                    }
                    continue;
                }
                let o = OutPoint::new(txid, vout as u32);
                self.coins.insert(
                    o,
                    CoinRecord { value: out.value.to_sat(), script: out.script_pubkey.clone(), height, spent_at: None },
                );
                self.by_script.entry(out.script_pubkey.clone()).or_default().push(o);
            }
            self.txs.insert(txid, TxRecord { height, block: hash, tx: Arc::new(tx.clone()) });
        }
        self.chain.push((hash, block.header));
        self.seen.insert(hash, (height, block.header));
        self.block_txids.push(txids);
        height
    }

    /// Removes the best block (a reorg rolls back one block at a time).
    pub fn disconnect_tip(&mut self) -> Option<BlockHash> {
        let (hash, _) = self.chain.pop()?;
        let height = self.start_height + self.chain.len() as u64;
        let txids = self.block_txids.pop().unwrap_or_default();
        for txid in txids.iter().rev() {
            let Some(rec) = self.txs.remove(txid) else { continue };
            for vout in 0..rec.tx.output.len() {
                let o = OutPoint::new(*txid, vout as u32);
                if let Some(c) = self.coins.remove(&o) {
                    if let Some(list) = self.by_script.get_mut(&c.script) {
                        list.retain(|x| *x != o);
                        if list.is_empty() {
                            self.by_script.remove(&c.script);
                        }
                    }
                }
            }
            if !rec.tx.is_coinbase() {
                for i in &rec.tx.input {
                    if let Some(c) = self.coins.get_mut(&i.previous_output) {
                        if c.spent_at == Some(height) {
                            c.spent_at = None;
                        }
                    }
                }
            }
        }
        self.sightings.retain(|s| s.height < height);
        Some(hash)
    }

    /// A transaction confirmed at or below `as_of`.
    pub fn tx(&self, txid: &Txid, as_of: u64) -> Option<&TxRecord> {
        self.txs.get(txid).filter(|r| r.height <= as_of)
    }

    /// The coin, if it existed at `as_of` (spent or not).
    pub fn coin(&self, o: &OutPoint, as_of: u64) -> Option<&CoinRecord> {
        self.coins.get(o).filter(|c| c.height <= as_of)
    }

    /// Unspent outputs paying `script` as of `as_of`, in a stable order (height, txid, vout).
    pub fn utxos(&self, script: &ScriptBuf, as_of: u64) -> Vec<(OutPoint, u64)> {
        let mut out: Vec<(u64, OutPoint, u64)> = self
            .by_script
            .get(script)
            .into_iter()
            .flatten()
            .filter_map(|o| {
                let c = self.coins.get(o)?;
                let unspent = c.height <= as_of && c.spent_at.is_none_or(|s| s > as_of);
                unspent.then_some((c.height, *o, c.value))
            })
            .collect();
        out.sort_by_key(|a| (a.0, a.1.txid.to_byte_array(), a.1.vout));
        out.into_iter().map(|(_, o, v)| (o, v)).collect()
    }

    /// How many outputs paying `script` the index holds (spent or not, at any height): what a
    /// scan of that script's coins has to look at. O(1).
    pub fn outputs_of(&self, script: &ScriptBuf) -> usize {
        self.by_script.get(script).map_or(0, Vec::len)
    }

    /// Keystone-carrying txs on the best chain.
    pub fn sightings(&self) -> &[Sighting] {
        &self.sightings
    }
}

/// The bytes pushed after OP_RETURN (all pushes concatenated).
pub fn op_return_payload(script: &ScriptBuf) -> Vec<u8> {
    let mut out = vec![];
    for ins in script.instructions().skip(1).flatten() {
        if let bitcoin::script::Instruction::PushBytes(b) = ins {
            out.extend_from_slice(b.as_bytes());
        }
    }
    out
}
