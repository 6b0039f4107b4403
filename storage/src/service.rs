//! The storage service: one blocking thread that owns every write.
//!
//! Its queue is a bounded tokio channel: async callers (consensus, mempool admission) wait for
//! room with `.await`, never by blocking the thread they run on; order is kept.

use crate::records::CommitBatch;
use crate::store::Store;
use crate::{Result, StorageError};
use alloy_primitives::{Bytes, B256};
use bss_consensus::SafetyData;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tracing::{debug, error, info_span};

enum Command {
    /// Consecutive blocks, written in one atomic batch.
    Commit(Vec<CommitBatch>, oneshot::Sender<Result<()>>),
    PutSafety(SafetyData, oneshot::Sender<Result<()>>),
    PutPending(Box<bss_consensus::Block>, oneshot::Sender<Result<()>>),
    Journal {
        add: Vec<(B256, Bytes)>,
        remove: Vec<crate::JournalKey>,
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    Aux(crate::AuxBatch, oneshot::Sender<Result<()>>),
    /// A new mempool journal generation holding the live pool.
    RotateJournal(Vec<(B256, Bytes)>, oneshot::Sender<Result<()>>),
}

/// Typed handle to the storage thread. Cloneable; the thread stops when every handle is gone.
#[derive(Clone)]
pub struct StorageHandle {
    tx: mpsc::Sender<Command>,
}

pub struct StorageService;

impl StorageService {
    /// Starts the storage thread over `store`. `queue` bounds the number of pending commands;
    /// senders wait when it is full (back-pressure on consensus, never dropped writes).
    pub fn spawn(store: Store, queue: usize) -> std::io::Result<StorageHandle> {
        let (tx, rx) = mpsc::channel::<Command>(queue.max(1));
        std::thread::Builder::new().name("bss-storage".into()).spawn(move || run(store, rx))?;
        Ok(StorageHandle { tx })
    }
}

fn run(store: Store, mut rx: mpsc::Receiver<Command>) {
    let commit_seconds = bss_consensus::telemetry::histogram(
        "bss_storage_commit_seconds",
        "Time to write one atomic batch of committed blocks (one block, or a sync page)",
    );
    let rotations = bss_consensus::telemetry::counter(
        "bss_mempool_journal_rotations_total",
        "Mempool journal generations started (committed transactions leave the journal a generation at a time)",
    );
    // The mempool journal's active generation. Either is right after a restart: both are read
    // back, and the mempool asks for no rotation (which clears the other) until they are
    // re-admitted.
    let mut journal = 0;
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            Command::Commit(blocks, reply) => {
                let number = blocks.last().map_or(0, |b| b.block.number());
                let span = info_span!(target: "storage", "commit", number, blocks = blocks.len());
                let _g = span.enter();
                let started = Instant::now();
                let res = store.commit(&blocks);
                commit_seconds.record(started.elapsed().as_secs_f64());
                if let Err(e) = &res {
                    error!(target: "storage", number, blocks = blocks.len(), error = %e, "block commit failed");
                }
                let _ = reply.send(res);
            }
            Command::Journal { add, remove, reply } => {
                let res = store.journal(journal, &add, &remove);
                if let Err(e) = &res {
                    error!(target: "storage", error = %e, "mempool journal write failed");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(res);
                }
            }
            Command::RotateJournal(live, reply) => {
                let res = store.rotate_journal(journal, &live).map(|next| {
                    journal = next;
                    rotations.increment(1);
                    debug!(target: "storage", live = live.len(), generation = next, "mempool journal rotated");
                });
                if let Err(e) = &res {
                    error!(target: "storage", error = %e, "mempool journal rotation failed");
                }
                let _ = reply.send(res);
            }
            Command::PutPending(block, reply) => {
                let res = store.put_pending(&block);
                if let Err(e) = &res {
                    error!(target: "storage", error = %e, "pending block write failed");
                }
                let _ = reply.send(res);
            }
            Command::Aux(batch, reply) => {
                let res = store.write_aux(&batch);
                if let Err(e) = &res {
                    error!(target: "storage", ops = batch.len(), error = %e, "service keyspace write failed");
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
    async fn send(&self, cmd: Command) -> Result<()> {
        self.tx.send(cmd).await.map_err(|_| StorageError::ServiceStopped)
    }

    /// Commits a block atomically. Resolves once the batch is written.
    pub async fn commit(&self, batch: CommitBatch) -> Result<()> {
        self.commit_many(vec![batch]).await
    }

    /// Commits consecutive blocks, the first on the head, in one atomic write (block sync
    /// commits a page at a time). Resolves once the batch is written.
    pub async fn commit_many(&self, blocks: Vec<CommitBatch>) -> Result<()> {
        self.queue_commit(blocks).await?.await
    }

    /// Queues consecutive blocks for one atomic write, after everything queued before them, and
    /// resolves once they are queued; the [`Written`] it returns resolves once they are written.
    /// So a caller goes on (executing the next block) while storage writes this run.
    pub async fn queue_commit(&self, blocks: Vec<CommitBatch>) -> Result<Written> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Commit(blocks, tx)).await?;
        Ok(Written(rx))
    }

    /// `queue_commit` for callers outside any async runtime (benchmarks, tools).
    pub fn queue_commit_blocking(&self, blocks: Vec<CommitBatch>) -> Result<Written> {
        let (tx, rx) = oneshot::channel();
        self.tx.blocking_send(Command::Commit(blocks, tx)).map_err(|_| StorageError::ServiceStopped)?;
        Ok(Written(rx))
    }

    /// Persists consensus safety data durably (fsync). Resolves once it is on disk.
    pub async fn put_safety(&self, safety: SafetyData) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::PutSafety(safety, tx)).await?;
        rx.await.map_err(|_| StorageError::ServiceStopped)?
    }

    /// Persists a block this replica is about to vote for (fsync). Resolves once it is on disk.
    pub async fn put_pending(&self, block: bss_consensus::Block) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::PutPending(Box::new(block), tx)).await?;
        rx.await.map_err(|_| StorageError::ServiceStopped)?
    }

    /// Journals several accepted transactions in one write.
    pub async fn journal_txs(&self, txs: Vec<(B256, Bytes)>) -> Result<()> {
        if txs.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.send(Command::Journal { add: txs, remove: vec![], reply: Some(tx) }).await?;
        rx.await.map_err(|_| StorageError::ServiceStopped)?
    }

    /// Starts a new mempool journal generation holding `live`, the pool as it is now; the
    /// generation before the current one is dropped whole. Resolves once written. The caller
    /// waits for one rotation to finish before it snapshots the pool for the next: what was
    /// journaled into the current generation before this rotation is then in that snapshot.
    pub async fn rotate_journal(&self, live: Vec<(B256, Bytes)>) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::RotateJournal(live, tx)).await?;
        rx.await.map_err(|_| StorageError::ServiceStopped)?
    }

    /// Forgets transactions that can no longer be included (fire and forget; when the queue is
    /// full the command waits on a task of its own, so the caller never blocks).
    pub fn unjournal(&self, keys: Vec<crate::JournalKey>) {
        if keys.is_empty() {
            return;
        }
        let cmd = Command::Journal { add: vec![], remove: keys, reply: None };
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.tx.try_send(cmd) {
            let tx = self.tx.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        let _ = tx.send(cmd).await;
                    });
                }
                Err(_) => {
                    let _ = tx.blocking_send(cmd);
                }
            }
        }
    }

    /// Writes a service's batch (Bitcoin index, PoP records). Resolves once written.
    pub async fn write_aux(&self, batch: crate::AuxBatch) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Aux(batch, tx)).await?;
        rx.await.map_err(|_| StorageError::ServiceStopped)?
    }

    /// `write_aux` for service threads outside any async runtime.
    pub fn write_aux_blocking(&self, batch: crate::AuxBatch) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx.blocking_send(Command::Aux(batch, tx)).map_err(|_| StorageError::ServiceStopped)?;
        rx.blocking_recv().map_err(|_| StorageError::ServiceStopped)?
    }

    /// Blocking variant for callers outside any async runtime (tests, benchmarks, tools).
    pub fn commit_blocking(&self, batch: CommitBatch) -> Result<()> {
        self.queue_commit_blocking(vec![batch])?.wait()
    }
}

/// A queued commit: resolves (or [`Written::wait`] returns) once storage has written it.
pub struct Written(oneshot::Receiver<Result<()>>);

impl Written {
    /// Blocks until the write is done (outside any async runtime).
    pub fn wait(self) -> Result<()> {
        self.0.blocking_recv().map_err(|_| StorageError::ServiceStopped)?
    }
}

impl std::future::Future for Written {
    type Output = Result<()>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<()>> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| r.map_err(|_| StorageError::ServiceStopped)?)
    }
}
