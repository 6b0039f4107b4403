//! Admission of gossiped transactions: one task takes batches from a bounded queue and admits
//! them through [`TxIngress`], at most two batches at once (sender recovery runs on blocking
//! threads, one per core here). A full queue drops the batch (counted by the caller).
//!
//! The same queue brings the senders this node recovered while validating proposals whose
//! transactions its pool did not hold ([`RecoveredSenders`]): when gossip brings one of those
//! transactions later, its sender is not recovered again.

use super::recovered::{RecoveredSenders, RECOVERED_SENDERS};
use super::TxIngress;
use crate::telemetry::counter;
use alloy_primitives::{keccak256, Address, Bytes, B256};
use metrics::Counter;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Gossip batches waiting for admission; past this they are dropped (and counted).
const QUEUE: usize = 256;

/// What the admission task's queue carries.
#[derive(Debug)]
pub(crate) enum Inbound {
    Batch(Vec<Bytes>),
    Recovered(Vec<(B256, Address)>),
}

/// Cloneable handle to the gossip admission task.
#[derive(Clone)]
pub struct GossipAdmission {
    tx: mpsc::Sender<Inbound>,
}

impl GossipAdmission {
    /// Starts the admission task on the current arbiter.
    pub fn start(ingress: TxIngress) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let reused = counter(
            "bss_gossip_senders_reused_total",
            "Gossiped transactions whose sender this node had recovered while validating a proposal (not recovered again)",
        );
        actix::spawn(admit(rx, ingress, reused));
        Self { tx }
    }

    /// Queues a batch; false when the queue is full (the batch is dropped).
    pub fn try_admit(&self, txs: Vec<Bytes>) -> bool {
        self.tx.try_send(Inbound::Batch(txs)).is_ok()
    }

    /// Hands over senders recovered while validating a proposal, by transaction hash. Dropped
    /// when the queue is full: gossip then recovers them again, nothing else changes.
    pub fn recovered(&self, senders: Vec<(B256, Address)>) {
        if !senders.is_empty() {
            let _ = self.tx.try_send(Inbound::Recovered(senders));
        }
    }
}

#[cfg(test)]
impl GossipAdmission {
    /// A handle with no admission task behind it: the test reads what arrives.
    pub(crate) fn probe() -> (Self, mpsc::Receiver<Inbound>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, rx)
    }
}

async fn admit(mut rx: mpsc::Receiver<Inbound>, ingress: TxIngress, reused: Counter) {
    let workers = Arc::new(tokio::sync::Semaphore::new(2));
    let mut recovered = RecoveredSenders::new(RECOVERED_SENDERS);
    while let Some(inbound) = rx.recv().await {
        let txs = match inbound {
            Inbound::Recovered(senders) => {
                for (hash, sender) in senders {
                    recovered.insert(hash, sender);
                }
                continue;
            }
            Inbound::Batch(txs) => txs,
        };
        // Hashing costs a few hundred ns a tx; it is only done while there is something to find.
        let txs: Vec<(Bytes, Option<(B256, Address)>)> = if recovered.is_empty() {
            txs.into_iter().map(|raw| (raw, None)).collect()
        } else {
            txs.into_iter()
                .map(|raw| {
                    let hash = keccak256(&raw);
                    let known = recovered.take(&hash).map(|sender| (hash, sender));
                    (raw, known)
                })
                .collect()
        };
        reused.increment(txs.iter().filter(|(_, k)| k.is_some()).count() as u64);
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
