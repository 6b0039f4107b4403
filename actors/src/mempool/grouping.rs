//! Group commit for admissions: transactions that arrive together — a JSON-RPC batch, many
//! clients at once — reach the mempool in one message and the journal in one write, instead of
//! one round trip to each per transaction. Each caller still gets its own answer, and only after
//! its transaction is journaled.
//!
//! Nothing waits to fill a group: the task takes whatever is queued when it is free, so one
//! lone transaction goes alone, and under load the groups grow while the previous one is being
//! written.

use super::messages::MempoolHandle;
use super::pool::SenderState;
use crate::hvm::{SignedTx, TxError};
use alloy_primitives::{Bytes, B256};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Admissions waiting for the group task; callers past this wait for room (backpressure).
const QUEUE: usize = 16_384;
/// Most admissions in one group (one mempool message, one journal write).
const MAX_GROUP: usize = 2_048;

/// Why a grouped admission was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("{0}")]
    Rejected(#[from] TxError),
    #[error("the mempool is not running")]
    Unavailable,
    #[error("journal: {0}")]
    Journal(String),
}

struct Waiting {
    tx: Arc<SignedTx>,
    state: SenderState,
    reply: oneshot::Sender<Result<B256, GroupError>>,
}

/// Cloneable handle to the group task.
#[derive(Clone)]
pub struct AdmissionGroups {
    tx: mpsc::Sender<Waiting>,
}

impl AdmissionGroups {
    /// Starts the group task on the current runtime.
    pub fn start(mempool: MempoolHandle, journal: Option<bss_storage::StorageHandle>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, mempool, journal));
        Self { tx }
    }

    /// Offers one checked transaction; answers once it is in the mempool and journaled.
    pub async fn admit(&self, tx: Arc<SignedTx>, state: SenderState) -> Result<B256, GroupError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Waiting { tx, state, reply }).await.map_err(|_| GroupError::Unavailable)?;
        answer.await.map_err(|_| GroupError::Unavailable)?
    }
}

async fn run(mut rx: mpsc::Receiver<Waiting>, mempool: MempoolHandle, journal: Option<bss_storage::StorageHandle>) {
    let sizes = metrics::histogram!("bss_mempool_admission_group_size");
    let mut group = Vec::new();
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        sizes.record(group.len() as f64);
        let offered = group.iter().map(|w| (w.tx.clone(), w.state)).collect();
        let Ok(results) = mempool.add_many(offered).await else {
            for w in group.drain(..) {
                let _ = w.reply.send(Err(GroupError::Unavailable));
            }
            continue;
        };
        let accepted: Vec<(B256, Bytes)> =
            group.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(w, _)| (w.tx.hash, w.tx.raw.clone())).collect();
        let journaled = match &journal {
            Some(j) => j.journal_txs(accepted).await.map_err(|e| e.to_string()),
            None => Ok(()),
        };
        for (w, result) in group.drain(..).zip(results) {
            let answer = match (result, &journaled) {
                (Ok(hash), Ok(())) => Ok(hash),
                (Ok(_), Err(e)) => Err(GroupError::Journal(e.clone())),
                (Err(e), _) => Err(GroupError::Rejected(e)),
            };
            // A caller that went away (its connection closed) needs no answer.
            let _ = w.reply.send(answer);
        }
    }
}
