//! The storage service: one blocking thread that owns every write.

use crate::records::CommitBatch;
use crate::store::Store;
use crate::{Result, StorageError};
use alloy_primitives::{Bytes, B256};
use bss_consensus::SafetyData;
use std::sync::mpsc;
use std::time::Instant;
use tokio::sync::oneshot;
use tracing::{error, info_span};

enum Command {
    Commit(Box<CommitBatch>, oneshot::Sender<Result<()>>),
    PutSafety(SafetyData, oneshot::Sender<Result<()>>),
    PutPending(Box<bss_consensus::Block>, oneshot::Sender<Result<()>>),
    Journal { add: Vec<(B256, Bytes)>, remove: Vec<B256>, reply: Option<oneshot::Sender<Result<()>>> },
}

/// Typed handle to the storage thread. Cloneable; the thread stops when every handle is gone.
#[derive(Clone)]
pub struct StorageHandle {
    tx: mpsc::SyncSender<Command>,
}

pub struct StorageService;

impl StorageService {
    /// Starts the storage thread over `store`. `queue` bounds the number of pending commands;
    /// senders wait when it is full (back-pressure on consensus, never dropped writes).
    pub fn spawn(store: Store, queue: usize) -> std::io::Result<StorageHandle> {
        let (tx, rx) = mpsc::sync_channel::<Command>(queue);
        std::thread::Builder::new().name("bss-storage".into()).spawn(move || run(store, rx))?;
        Ok(StorageHandle { tx })
    }
}

fn run(store: Store, rx: mpsc::Receiver<Command>) {
    for cmd in rx {
        match cmd {
            Command::Commit(batch, reply) => {
                let number = batch.block.number();
                let span = info_span!(target: "storage", "commit", number);
                let _g = span.enter();
                let started = Instant::now();
                let res = store.commit(&batch);
                metrics::histogram!("bss_storage_commit_seconds").record(started.elapsed().as_secs_f64());
                if let Err(e) = &res {
                    error!(target: "storage", number, error = %e, "block commit failed");
                }
                let _ = reply.send(res);
            }
            Command::Journal { add, remove, reply } => {
                let res = store.journal(&add, &remove);
                if let Err(e) = &res {
                    error!(target: "storage", error = %e, "mempool journal write failed");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(res);
                }
            }
            Command::PutPending(block, reply) => {
                let res = store.put_pending(&block);
                if let Err(e) = &res {
                    error!(target: "storage", error = %e, "pending block write failed");
                }
                let _ = reply.send(res);
            }
            Command::PutSafety(safety, reply) => {
                let res = store.put_safety(&safety);
                if let Err(e) = &res {
                    error!(target: "storage", error = %e, "safety data write failed");
                }
                let _ = reply.send(res);
            }
        }
    }
}

impl StorageHandle {
    fn send(&self, cmd: Command) -> Result<()> {
        self.tx.send(cmd).map_err(|_| StorageError::ServiceStopped)
    }

    /// Commits a block atomically. Resolves once the batch is written.
    pub async fn commit(&self, batch: CommitBatch) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Commit(Box::new(batch), tx))?;
        rx.await.map_err(|_| StorageError::ServiceStopped)?
    }

    /// Persists consensus safety data durably (fsync). Resolves once it is on disk.
    pub async fn put_safety(&self, safety: SafetyData) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::PutSafety(safety, tx))?;
        rx.await.map_err(|_| StorageError::ServiceStopped)?
    }

    /// Persists a block this replica is about to vote for (fsync). Resolves once it is on disk.
    pub async fn put_pending(&self, block: bss_consensus::Block) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::PutPending(Box::new(block), tx))?;
        rx.await.map_err(|_| StorageError::ServiceStopped)?
    }

    /// Records an accepted transaction so it survives a crash of this process. Resolves once
    /// written (process-crash durable; not fsynced).
    pub async fn journal_tx(&self, hash: B256, raw: Bytes) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Journal { add: vec![(hash, raw)], remove: vec![], reply: Some(tx) })?;
        rx.await.map_err(|_| StorageError::ServiceStopped)?
    }

    /// Journals several accepted transactions in one write.
    pub async fn journal_txs(&self, txs: Vec<(B256, Bytes)>) -> Result<()> {
        if txs.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.send(Command::Journal { add: txs, remove: vec![], reply: Some(tx) })?;
        rx.await.map_err(|_| StorageError::ServiceStopped)?
    }

    /// Forgets transactions that can no longer be included (fire and forget).
    pub fn unjournal(&self, hashes: Vec<B256>) {
        if !hashes.is_empty() {
            let _ = self.send(Command::Journal { add: vec![], remove: hashes, reply: None });
        }
    }

    /// Blocking variant for non-async callers (tests, benchmarks, tools).
    pub fn commit_blocking(&self, batch: CommitBatch) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Commit(Box::new(batch), tx))?;
        rx.blocking_recv().map_err(|_| StorageError::ServiceStopped)?
    }
}
