//! The Bitcoin view a node has indexed: the best chain's headers from `start_height`, every
//! transaction in those blocks, and every output with the height that created it and the height
//! that spent it. Queries are answered *as of* a height, so that an L2 block whose BTC tip is at
//! height H gets the same answer on every replica, whatever their watchers have seen since.
//!
//! A [`BtcIndex`] is an immutable snapshot, cheap to clone and publish:
//! * in memory only what grows with the chain itself — its headers — and the watched data, the
//!   keystone sightings, in persistent collections (`imbl`) that share every unchanged part
//!   between snapshots;
//! * transactions, outputs and outputs-by-script on disk, in the node's database (written by
//!   [`IndexWriter`](super::index_writer::IndexWriter) through the storage service), read
//!   through a storage snapshot taken with the in-memory part, so the two always agree.

use super::records::{coin_key, script_key, StoredCoin, StoredTx, META_COUNT};
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, OutPoint, ScriptBuf, Transaction, Txid};
use bss_storage::{AuxSnapshot, AuxSpace};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct TxRecord {
    pub height: u64,
    pub block: BlockHash,
    pub tx: Arc<Transaction>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinRecord {
    pub value: u64,
    pub script: ScriptBuf,
    pub height: u64,
    pub spent_at: Option<u64>,
}

/// Keystone-shaped data seen in a block of the best chain: an OP_RETURN payload starting with
/// [`KEYSTONE_MAGIC`], or the certified keystone a keystone-leaf spend carries in its witness
/// (in its canonical encoding, see `keystone`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sighting {
    pub height: u64,
    pub block: BlockHash,
    pub txid: Txid,
    pub payload: Vec<u8>,
    /// Scripts of the coins this tx spends that the index knows (created at or after
    /// `start_height`), in input order (version 2 judged writers by them; kept for reading
    /// databases that hold such sightings).
    pub spent_scripts: Vec<ScriptBuf>,
    /// Whether the payload is a keystone whose certificate verifies, as the index judged it
    /// with the node's keystone rules when it read the block (None: read without rules).
    /// Not stored: a node re-judges its sightings when it opens its index.
    #[serde(skip)]
    pub certified: Option<bool>,
}

/// Magic prefix of the keystone payloads the index collects (DESIGN.md §7).
pub const KEYSTONE_MAGIC: &[u8] = b"BSS";

/// Slots of witness-borne keystones in a tx: after any output index (`slot` in
/// [`keystone_payloads`]), so a tx's sightings sort in one deterministic order.
const WITNESS_SLOT: usize = 1 << 24;

/// The keystone-shaped payloads of `tx`, each with its slot (an output index, or
/// `WITNESS_SLOT + input index`): OP_RETURN outputs starting with the magic, and the
/// witnesses of keystone-leaf spends (a leaf whose data does not decode yields its first data
/// item, which then counts as malformed).
pub fn keystone_payloads(tx: &Transaction) -> Vec<(usize, Vec<u8>)> {
    let mut out = vec![];
    for (vout, o) in tx.output.iter().enumerate() {
        if o.script_pubkey.is_op_return() {
            let payload = op_return_payload(&o.script_pubkey);
            if payload.starts_with(KEYSTONE_MAGIC) {
                out.push((vout, payload));
            }
        }
    }
    if tx.is_coinbase() {
        return out;
    }
    for (i, input) in tx.input.iter().enumerate() {
        match crate::pop_tx::witness_keystone(&input.witness) {
            Some(Ok(c)) => out.push((WITNESS_SLOT + i, c.encode())),
            Some(Err(_)) => out.push((WITNESS_SLOT + i, input.witness.nth(1).unwrap_or_default().to_vec())),
            None => {}
        }
    }
    out
}

/// Most outputs of one script a query walks (a dust-spammed address is also priced per output
/// by the precompiles, see `GAS_PER_SCANNED_OUTPUT`).
pub const MAX_SCRIPT_SCAN: usize = 100_000;

#[derive(Clone, Default)]
pub struct BtcIndex {
    pub(super) start_height: u64,
    /// Best chain from `start_height`: index = height − start_height.
    pub(super) chain: imbl::Vector<(BlockHash, Header)>,
    /// Every header ever connected (also those a reorg removed), to find fork points.
    pub(super) seen: imbl::HashMap<BlockHash, (u64, Header)>,
    pub(super) sightings: imbl::Vector<Sighting>,
    /// Bitcoin inbox messages on the best chain, in (height, position) order.
    pub(super) inbox: imbl::Vector<super::inbox::InboxMessage>,
    /// Transactions and outputs, as of this snapshot (None: nothing indexed yet).
    pub(super) db: Option<AuxSnapshot>,
    /// Which forced-tx envelopes count (the writer's), to read a fork's blocks alike.
    pub(super) inbox_filter: super::inbox::InboxFilter,
    /// Which keystones count (the writer's), to judge a fork's sightings alike.
    pub(super) keystone_rules: Option<Arc<super::finality::KeystoneRules>>,
    /// A view of a fork off the best chain: the blocks above its fork point (see `fork`).
    pub(super) fork: Option<Arc<super::fork::ForkOverlay>>,
}

impl std::fmt::Debug for BtcIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtcIndex").field("start", &self.start_height).field("best", &self.best_height()).finish()
    }
}

/// A storage read failing means the disk is failing: the hVM must not answer from half a view.
pub(super) fn read<T>(what: &str, r: Result<T, bss_storage::StorageError>) -> T {
    r.unwrap_or_else(|e| bss_storage::fatal::stop("storage", format!("reading the Bitcoin index ({what}): {e}")))
}

impl BtcIndex {
    /// An empty view starting at `start_height` (what readers see before the first block).
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

    /// A transaction confirmed at or below `as_of`.
    pub fn tx(&self, txid: &Txid, as_of: u64) -> Option<TxRecord> {
        if let Some(f) = &self.fork {
            if let Some(r) = f.txs.get(txid) {
                return (r.height <= as_of).then(|| r.clone());
            }
            return self.best_tx(txid, as_of.min(f.fork));
        }
        self.best_tx(txid, as_of)
    }

    fn best_tx(&self, txid: &Txid, as_of: u64) -> Option<TxRecord> {
        let db = self.db.as_ref()?;
        let raw = read("tx", db.get(AuxSpace::BtcTxs, txid.as_byte_array()))?;
        let stored = StoredTx::decode(&raw)?;
        (stored.height <= as_of).then(|| stored.record())
    }

    /// The txids of the best-chain block at `height`, in block order (empty above the tip).
    pub fn txids_at(&self, height: u64) -> Vec<Txid> {
        if let Some(f) = self.fork.as_ref().filter(|f| height > f.fork) {
            return f.txids.get(&height).cloned().unwrap_or_default();
        }
        let Some(db) = &self.db else { return vec![] };
        if self.entry(height).is_none() {
            return vec![];
        }
        read("block", db.get(AuxSpace::BtcBlocks, &height.to_be_bytes()))
            .map(|raw| super::records::StoredBlock::decode(&raw).txids)
            .unwrap_or_default()
    }

    /// The coin, if it existed at `as_of` (spent or not).
    pub fn coin(&self, o: &OutPoint, as_of: u64) -> Option<CoinRecord> {
        match &self.fork {
            Some(f) => f.coin(self, o, as_of),
            None => self.best_coin(o, as_of),
        }
    }

    /// The coin on the best chain (what the disk holds).
    pub(super) fn best_coin(&self, o: &OutPoint, as_of: u64) -> Option<CoinRecord> {
        let db = self.db.as_ref()?;
        let raw = read("coin", db.get(AuxSpace::BtcCoins, &coin_key(o)))?;
        let coin = StoredCoin::decode(&raw)?.record();
        (coin.height <= as_of).then_some(coin)
    }

    /// Unspent outputs paying `script` as of `as_of`, in a stable order (height, txid, vout).
    pub fn utxos(&self, script: &ScriptBuf, as_of: u64) -> Vec<(OutPoint, u64)> {
        let mut out: Vec<(u64, OutPoint, u64)> = self
            .script_outpoints(script)
            .into_iter()
            .filter_map(|o| {
                let c = self.coin(&o, as_of)?;
                c.spent_at.is_none_or(|s| s > as_of).then_some((c.height, o, c.value))
            })
            .collect();
        out.sort_by_key(|a| (a.0, a.1.txid.to_byte_array(), a.1.vout));
        out.into_iter().map(|(_, o, v)| (o, v)).collect()
    }

    /// How many outputs paying `script` a scan of that script's coins as of `as_of` looks at
    /// (spent or not, created at or below `as_of`). The same on every replica whatever its
    /// watcher has seen past `as_of`: the hVM prices a scan by it. One read when the index holds
    /// nothing above `as_of`, else a bounded scan.
    pub fn outputs_of(&self, script: &ScriptBuf, as_of: u64) -> usize {
        let Some(db) = &self.db else { return 0 };
        let key = [META_COUNT, &script_key(script)[..]].concat();
        let all = read("script count", db.get(AuxSpace::BtcMeta, &key))
            .and_then(|v| v.try_into().ok().map(u64::from_be_bytes))
            .map_or(0, |n| n as usize);
        if self.fork.is_none() && self.best_height().is_none_or(|b| b <= as_of) {
            return all;
        }
        self.script_outpoints(script).iter().filter(|o| self.coin(o, as_of).is_some()).count()
    }

    /// Every output paying `script` this view knows (at most [`MAX_SCRIPT_SCAN`] from disk): the
    /// best chain's, and on a fork view the overlay's (a tx in both counted once).
    fn script_outpoints(&self, script: &ScriptBuf) -> Vec<OutPoint> {
        let Some(db) = &self.db else { return vec![] };
        let key = script_key(script);
        let keys = read("script outputs", db.prefix(AuxSpace::BtcScripts, &key, MAX_SCRIPT_SCAN));
        let base = keys.iter().filter_map(|(k, _)| super::records::outpoint_of_script_key(k));
        match &self.fork {
            None => base.collect(),
            Some(f) => base
                .filter(|o| !f.coins.contains_key(o))
                .chain(f.by_script.get(&key).into_iter().flatten().copied())
                .collect(),
        }
    }

    /// Bitcoin inbox messages on the best chain, oldest first.
    pub fn inbox(&self) -> impl Iterator<Item = &super::inbox::InboxMessage> {
        self.inbox.iter()
    }

    /// Inbox messages at heights `from..=to`, oldest first (a binary search, not a scan: the
    /// inbox only grows with the chain).
    pub fn inbox_between(&self, from: u64, to: u64) -> Vec<super::inbox::InboxMessage> {
        // The first message at or above `from`: messages are in (height, position) order.
        let start = match self.inbox.binary_search_by(|m| {
            if m.height < from {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        }) {
            Ok(i) | Err(i) => i,
        };
        // `Vector::skip` splits the tree in O(log n) (an iterator's skip would walk).
        self.inbox.skip(start).into_iter().take_while(|m| m.height <= to).collect()
    }

    /// The inbox message carrying the L2 transaction `tx_hash` (the first, if posted twice).
    pub fn inbox_by_tx_hash(&self, tx_hash: &alloy_primitives::B256) -> Option<&super::inbox::InboxMessage> {
        self.inbox.iter().find(|m| m.tx_hash() == *tx_hash)
    }

    /// Keystone-carrying txs on the best chain.
    pub fn sightings(&self) -> impl Iterator<Item = &Sighting> {
        self.sightings.iter()
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
