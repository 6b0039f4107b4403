//! The regtest node's owner task: the chain, its mempool and its fjall store, owned by one task
//! that runs requests from the RPC server and the block timer in turn (no shared locks).

use super::chain::{Chain, ChainError, TipChange};
use super::mempool::{Accepted, Mempool, Reject, MIN_RELAY_SAT_PER_KVB};
use super::utxo::Coin;
use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::{Amount, Block, BlockHash, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::collections::{HashSet, VecDeque};
use std::path::Path;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// Core's block weight limit less room for the coinbase.
const BLOCK_TX_WEIGHT: u64 = 4_000_000 - 4_000;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] fjall::Error),
    #[error("stored block {0} is unreadable: {1}")]
    Corrupt(String, String),
}

struct Store {
    db: Database,
    blocks: Keyspace,
    meta: Keyspace,
}

impl Store {
    fn open(dir: &Path) -> Result<Self, NodeError> {
        let db = Database::builder(dir.join("chain")).open()?;
        let blocks = db.keyspace("blocks", KeyspaceCreateOptions::default)?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
        Ok(Self { db, blocks, meta })
    }

    /// Blocks are keyed by height ‖ hash, so a reload meets parents before children.
    fn put_block(&self, height: u64, block: &Block) -> Result<(), NodeError> {
        let mut key = height.to_be_bytes().to_vec();
        key.extend_from_slice(&block.block_hash().to_byte_array());
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&self.blocks, key, encode::serialize(block));
        batch.commit()?;
        Ok(())
    }

    fn put_invalid(&self, invalid: &HashSet<BlockHash>) -> Result<(), NodeError> {
        let bytes: Vec<u8> = invalid.iter().flat_map(|h| h.to_byte_array()).collect();
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&self.meta, "invalid", bytes);
        batch.commit()?;
        Ok(())
    }

    fn load(&self) -> Result<Chain, NodeError> {
        let mut chain = Chain::new();
        for guard in self.blocks.iter() {
            let (k, v) = guard.into_inner()?;
            let block: Block =
                encode::deserialize(&v).map_err(|e| NodeError::Corrupt(hex::encode(&k), e.to_string()))?;
            match chain.accept(block) {
                Ok(_) | Err(ChainError::Duplicate) => {}
                Err(e) => return Err(NodeError::Corrupt(hex::encode(&k), e.to_string())),
            }
        }
        if let Some(v) = self.meta.get("invalid")? {
            let set = v.chunks(32).filter_map(|c| <[u8; 32]>::try_from(c).ok()).map(BlockHash::from_byte_array);
            chain.set_invalid(set.collect());
        }
        Ok(chain)
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Where a transaction was found.
pub struct TxInfo {
    pub tx: Transaction,
    /// Block hash, height, confirmations and block time, for a confirmed tx.
    pub block: Option<(BlockHash, u64, i64, u32)>,
}

/// Everything the node owns. Only the owner task touches it.
pub struct NodeState {
    pub chain: Chain,
    pub mempool: Mempool,
    store: Store,
    /// (height, sat/kvB) of recently mined mempool txs, for estimatesmartfee.
    mined_feerates: VecDeque<(u64, u64)>,
}

impl NodeState {
    pub fn tip_height(&self) -> u64 {
        self.chain.height()
    }

    /// sendrawtransaction / testmempoolaccept.
    pub fn submit(&mut self, tx: Transaction, max_fee_kvb: u64, test_only: bool) -> Result<Accepted, Reject> {
        let h = self.chain.height();
        let txid = tx.compute_txid();
        let r = self.mempool.accept(tx, self.chain.utxo(), h, now_secs(), max_fee_kvb, test_only);
        match &r {
            Ok(a) if !test_only => {
                info!(target: "regtest", %txid, vsize = a.vsize, fee = a.fee.to_sat(), replaced = a.replaced.len(), "tx accepted")
            }
            Err(e) => info!(target: "regtest", %txid, reason = %e, test_only, "tx rejected"),
            _ => {}
        }
        r
    }

    fn apply(&mut self, change: Option<TipChange>) {
        let Some(change) = change else { return };
        let connected: Vec<&Block> =
            change.connected.iter().filter_map(|h| self.chain.get(h)).map(|e| &e.block).collect();
        for b in &connected {
            let height = self.chain.get(&b.block_hash()).map(|e| e.height).unwrap_or(0);
            for tx in b.txdata.iter().skip(1) {
                if let Some(e) = self.mempool.get(&tx.compute_txid()) {
                    self.mined_feerates.push_back((height, e.feerate_kvb()));
                }
            }
        }
        while self.mined_feerates.len() > 10_000 {
            self.mined_feerates.pop_front();
        }
        let disconnected: Vec<Transaction> = change.disconnected.into_iter().flat_map(|b| b.txdata).collect();
        let h = self.chain.height();
        let utxo = self.chain.utxo();
        self.mempool.on_tip_change(disconnected, &connected, utxo, h, now_secs());
    }

    /// Mines one block on the tip with `txs` (or the mempool's best when `None`), with real PoW,
    /// persists it, then connects it. Fails if the block does not connect (a bad tx).
    pub fn mine_one(&mut self, script: &ScriptBuf, txs: Option<Vec<Transaction>>) -> Result<BlockHash, String> {
        let (txs, fees) = match txs {
            Some(txs) => {
                let mut fees = Amount::ZERO;
                for t in &txs {
                    fees += self.mempool.get(&t.compute_txid()).map(|e| e.fee).unwrap_or(Amount::ZERO);
                }
                (txs, fees)
            }
            None => self.mempool.select(BLOCK_TX_WEIGHT),
        };
        let time = now_secs() as u32;
        let block = self.chain.mine(script.clone(), txs, fees, time, rand::random());
        let hash = block.block_hash();
        let height = self.chain.height() + 1;
        let change = self.chain.accept(block.clone()).map_err(|e| e.to_string())?;
        // Persisted after the checks (a block that does not connect is not kept) but before
        // anyone is told about it.
        if let Err(e) = self.store.put_block(height, &block) {
            tracing::error!(target: "regtest", error = %e, "cannot persist a mined block; stopping");
            std::process::exit(2);
        }
        self.apply(change);
        Ok(hash)
    }

    /// generateblock with submit=false: the block, checked against the tip but not added.
    pub fn unsubmitted_block(&self, script: &ScriptBuf, txs: Vec<Transaction>) -> Result<Block, String> {
        let block = self.chain.mine(script.clone(), txs, Amount::ZERO, now_secs() as u32, rand::random());
        let mut utxo = self.chain.utxo().clone();
        utxo.connect(&block, self.chain.height() + 1).map_err(|e| e.to_string())?;
        Ok(block)
    }

    pub fn mine(&mut self, count: u64, script: &ScriptBuf) -> Result<Vec<BlockHash>, String> {
        (0..count).map(|_| self.mine_one(script, None)).collect()
    }

    pub fn invalidate(&mut self, h: &BlockHash) -> Result<(), ChainError> {
        let change = self.chain.invalidate(h)?;
        if let Err(e) = self.store.put_invalid(self.chain.invalid_set()) {
            warn!(target: "regtest", error = %e, "cannot persist invalidation");
        }
        self.apply(change);
        Ok(())
    }

    pub fn reconsider(&mut self, h: &BlockHash) -> Result<(), ChainError> {
        let change = self.chain.reconsider(h)?;
        if let Err(e) = self.store.put_invalid(self.chain.invalid_set()) {
            warn!(target: "regtest", error = %e, "cannot persist reconsideration");
        }
        self.apply(change);
        Ok(())
    }

    /// A tx from the mempool or the active chain (every tx is indexed, as with -txindex).
    pub fn transaction(&self, txid: &Txid) -> Option<TxInfo> {
        if let Some(e) = self.mempool.get(txid) {
            return Some(TxInfo { tx: e.tx.clone(), block: None });
        }
        let loc = self.chain.utxo().locate(txid)?;
        let entry = self.chain.get(&loc.block)?;
        let tx = entry.block.txdata.iter().find(|t| t.compute_txid() == *txid)?.clone();
        let conf = self.chain.confirmations(&loc.block);
        Some(TxInfo { tx, block: Some((loc.block, loc.height, conf, entry.block.header.time)) })
    }

    /// The output an input spends, looked up through the transaction index.
    pub fn prevout(&self, o: &OutPoint) -> Option<TxOut> {
        self.transaction(&o.txid)?.tx.output.get(o.vout as usize).cloned()
    }

    /// gettxout: the coin and its confirmations (0 for a mempool output).
    pub fn txout(&self, o: &OutPoint, include_mempool: bool) -> Option<(Coin, u64)> {
        let coin =
            if include_mempool { self.mempool.coin(self.chain.utxo(), o)? } else { self.chain.utxo().coin(o)?.clone() };
        let conf = if coin.height > self.chain.height() { 0 } else { self.chain.height() - coin.height + 1 };
        Some((coin, conf))
    }

    /// estimatesmartfee: the median fee rate (sat/kvB) of mempool txs mined in the last
    /// `2 × target + 6` blocks, never below the min relay fee; `None` without data (as bitcoind).
    pub fn estimate_fee(&self, target: u64) -> Option<u64> {
        let since = self.chain.height().saturating_sub(2 * target + 6);
        let mut rates: Vec<u64> = self.mined_feerates.iter().filter(|(h, _)| *h > since).map(|(_, r)| *r).collect();
        if rates.is_empty() {
            return None;
        }
        rates.sort_unstable();
        Some(rates[rates.len() / 2].max(MIN_RELAY_SAT_PER_KVB))
    }
}

type Job = Box<dyn FnOnce(&mut NodeState) + Send>;

/// The way into the owner task: each request is a closure run on the node's state.
#[derive(Clone)]
pub struct RegtestHandle {
    tx: mpsc::Sender<Job>,
}

impl RegtestHandle {
    /// Opens (or creates) the chain in `dir` and starts the owner task on the current runtime.
    pub fn start(dir: &Path) -> Result<Self, NodeError> {
        let store = Store::open(dir)?;
        let chain = store.load()?;
        info!(target: "regtest", height = chain.height(), tip = %chain.tip().block.block_hash(), "chain loaded");
        let mut state = NodeState { chain, mempool: Mempool::default(), store, mined_feerates: VecDeque::new() };
        let (tx, mut rx) = mpsc::channel::<Job>(1024);
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                job(&mut state);
            }
        });
        Ok(Self { tx })
    }

    /// Runs `f` on the node's state; `None` if the node has stopped.
    pub async fn with<T: Send + 'static>(&self, f: impl FnOnce(&mut NodeState) -> T + Send + 'static) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |s| {
            let _ = reply.send(f(s));
        });
        self.tx.send(job).await.ok()?;
        rx.await.ok()
    }

    pub async fn mine(&self, count: u64, script: ScriptBuf) -> Result<Vec<BlockHash>, String> {
        self.with(move |s| s.mine(count, &script)).await.unwrap_or_else(|| Err("node stopped".into()))
    }
}
