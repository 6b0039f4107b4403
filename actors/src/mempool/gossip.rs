//! Admission of gossiped transactions: one task takes batches from a bounded queue and admits
//! them through [`TxIngress`], at most two batches at once (sender recovery runs on blocking
//! threads, one per core here). A full queue drops the batch (counted by the caller).

use super::TxIngress;
use alloy_primitives::Bytes;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Gossip batches waiting for admission; past this they are dropped (and counted).
const QUEUE: usize = 256;

/// Cloneable handle to the gossip admission task.
#[derive(Clone)]
pub struct GossipAdmission {
    tx: mpsc::Sender<Vec<Bytes>>,
}

impl GossipAdmission {
    /// Starts the admission task on the current arbiter.
    pub fn start(ingress: TxIngress) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        actix::spawn(admit(rx, ingress));
        Self { tx }
    }

    /// Queues a batch; false when the queue is full (the batch is dropped).
    pub fn try_admit(&self, txs: Vec<Bytes>) -> bool {
        self.tx.try_send(txs).is_ok()
    }
}

async fn admit(mut rx: mpsc::Receiver<Vec<Bytes>>, ingress: TxIngress) {
    let workers = Arc::new(tokio::sync::Semaphore::new(2));
    while let Some(txs) = rx.recv().await {
        let Ok(worker) = workers.clone().acquire_owned().await else { return };
        let ingress = ingress.clone();
        actix::spawn(async move {
            // Already-known and stale txs are normal in gossip; nothing to report.
            if let Err(e) = ingress.admit_many(txs).await {
                tracing::debug!(target: "mempool", error = %e, "gossip batch not admitted");
            }
            drop(worker);
        });
    }
}
