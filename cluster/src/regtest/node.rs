//! The regtest node's owner task: the chain and its fjall store, driven by typed commands from
//! the RPC server and the block timer (no shared locks).

use super::chain::{Chain, ChainError};
use bitcoin::consensus::encode;
use bitcoin::{Amount, Block, BlockHash, ScriptBuf};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::collections::HashSet;
use std::path::Path;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// What a caller can learn about a block.
#[derive(Clone)]
pub struct BlockInfo {
    pub block: Block,
    pub height: u64,
    pub confirmations: i64,
    pub next: Option<BlockHash>,
    pub chain_work: String,
}

#[derive(Clone)]
pub struct TipInfo {
    pub height: u64,
    pub hash: BlockHash,
    pub time: u32,
    pub chain_work: String,
}

enum Command {
    Tip(oneshot::Sender<TipInfo>),
    HashAt(u64, oneshot::Sender<Option<BlockHash>>),
    Block(BlockHash, oneshot::Sender<Option<BlockInfo>>),
    Mine { count: u64, script: ScriptBuf, reply: oneshot::Sender<Result<Vec<BlockHash>, String>> },
    Invalidate(BlockHash, oneshot::Sender<Result<(), ChainError>>),
    Reconsider(BlockHash, oneshot::Sender<Result<(), ChainError>>),
}

#[derive(Clone)]
pub struct RegtestHandle {
    tx: mpsc::Sender<Command>,
}

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

use bitcoin::hashes::Hash;

fn work_hex(w: bitcoin::pow::Work) -> String {
    hex::encode(w.to_be_bytes())
}

impl RegtestHandle {
    /// Opens (or creates) the chain in `dir` and starts the owner task on the current runtime.
    pub fn start(dir: &Path) -> Result<Self, NodeError> {
        let store = Store::open(dir)?;
        let mut chain = store.load()?;
        info!(target: "regtest", height = chain.height(), tip = %chain.tip().block.block_hash(), "chain loaded");
        let (tx, mut rx) = mpsc::channel::<Command>(1024);
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                match cmd {
                    Command::Tip(reply) => {
                        let t = chain.tip();
                        let _ = reply.send(TipInfo {
                            height: t.height,
                            hash: t.block.block_hash(),
                            time: t.block.header.time,
                            chain_work: work_hex(t.chain_work),
                        });
                    }
                    Command::HashAt(h, reply) => {
                        let _ = reply.send(chain.hash_at(h));
                    }
                    Command::Block(hash, reply) => {
                        let info = chain.get(&hash).map(|e| BlockInfo {
                            block: e.block.clone(),
                            height: e.height,
                            confirmations: chain.confirmations(&hash),
                            next: if chain.is_active(&hash) { chain.hash_at(e.height + 1) } else { None },
                            chain_work: work_hex(e.chain_work),
                        });
                        let _ = reply.send(info);
                    }
                    Command::Mine { count, script, reply } => {
                        let mut hashes = Vec::new();
                        let mut failure = None;
                        for _ in 0..count {
                            let now = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_secs() as u32)
                                .unwrap_or(0);
                            let block = chain.mine(script.clone(), vec![], Amount::ZERO, now, rand::random());
                            let hash = block.block_hash();
                            let height = chain.height() + 1;
                            if let Err(e) = store.put_block(height, &block) {
                                failure = Some(e.to_string());
                                break;
                            }
                            if let Err(e) = chain.accept(block) {
                                failure = Some(e.to_string());
                                break;
                            }
                            hashes.push(hash);
                        }
                        let _ = reply.send(match failure {
                            Some(e) => Err(e),
                            None => Ok(hashes),
                        });
                    }
                    Command::Invalidate(h, reply) => {
                        let r = chain.invalidate(&h);
                        if let Err(e) = store.put_invalid(chain.invalid_set()) {
                            warn!(target: "regtest", error = %e, "cannot persist invalidation");
                        }
                        let _ = reply.send(r);
                    }
                    Command::Reconsider(h, reply) => {
                        let r = chain.reconsider(&h);
                        if let Err(e) = store.put_invalid(chain.invalid_set()) {
                            warn!(target: "regtest", error = %e, "cannot persist reconsideration");
                        }
                        let _ = reply.send(r);
                    }
                }
            }
        });
        Ok(Self { tx })
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    pub async fn tip(&self) -> Option<TipInfo> {
        self.ask(Command::Tip).await
    }
    pub async fn hash_at(&self, h: u64) -> Option<BlockHash> {
        self.ask(|r| Command::HashAt(h, r)).await.flatten()
    }
    pub async fn block(&self, hash: BlockHash) -> Option<BlockInfo> {
        self.ask(|r| Command::Block(hash, r)).await.flatten()
    }
    pub async fn mine(&self, count: u64, script: ScriptBuf) -> Result<Vec<BlockHash>, String> {
        self.ask(|reply| Command::Mine { count, script, reply }).await.unwrap_or_else(|| Err("node stopped".into()))
    }
    pub async fn invalidate(&self, h: BlockHash) -> Result<(), ChainError> {
        self.ask(|r| Command::Invalidate(h, r)).await.unwrap_or(Err(ChainError::NotFound))
    }
    pub async fn reconsider(&self, h: BlockHash) -> Result<(), ChainError> {
        self.ask(|r| Command::Reconsider(h, r)).await.unwrap_or(Err(ChainError::NotFound))
    }
}
