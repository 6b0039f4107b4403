//! Group commit for admissions: transactions that arrive together — a JSON-RPC batch, many
//! clients at once — reach the mempool in one message and the journal in one write, instead of
//! one round trip to each per transaction. Each caller still gets its own answer, and only after
//! its transaction is journaled.
//!
//! Nothing waits to fill a group: the task takes whatever is queued when it is free, so one
//! lone transaction goes alone, and under load the groups grow while the previous one is being
//! written.
//!
//! Backpressure: while the pool holds `admission_backlog` executable transactions or more, the
//! next group waits (at most `admission_wait`) for blocks to drain it; callers wait with it, so a
//! client sending faster than the federation commits is slowed, and what is accepted is committed
//! within a bounded time instead of queueing without end. Gossip from peers never waits here.
//! Senders' committed nonces and balances are read after the wait, so blocks committed meanwhile
//! are seen.

use super::messages::MempoolHandle;
use super::pool::SenderState;
use crate::hvm::{SignedTx, TxError};
use alloy_primitives::{Address, Bytes, B256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Admissions waiting for the group task; callers past this wait for room (backpressure).
const QUEUE: usize = 16_384;
/// Most admissions in one group (one mempool message, one journal write).
const MAX_GROUP: usize = 2_048;

/// How often a waiting group looks at the pool's backlog again.
const BACKLOG_POLL: Duration = Duration::from_millis(10);

/// When submissions wait for the pool to drain.
#[derive(Clone, Copy, Debug)]
pub struct Backpressure {
    /// Executable txs in the pool at or past which the next group waits.
    pub backlog: usize,
    /// The longest one group waits.
    pub max_wait: Duration,
}

/// Reads a sender's committed nonce and balance (the store in a node; a fixed state in tests).
pub type SenderStates = Arc<dyn Fn(&Address) -> Result<SenderState, String> + Send + Sync>;

/// Why a grouped admission was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("{0}")]
    Rejected(#[from] TxError),
    #[error("the mempool is not running")]
    Unavailable,
    #[error("journal: {0}")]
    Journal(String),
    #[error("reading the sender's account: {0}")]
    State(String),
}

struct Waiting {
    tx: Arc<SignedTx>,
    reply: oneshot::Sender<Result<B256, GroupError>>,
}

/// What the group task talks to.
pub struct GroupParts {
    pub mempool: MempoolHandle,
    pub journal: Option<bss_storage::StorageHandle>,
    pub states: SenderStates,
    pub backpressure: Backpressure,
}

/// Cloneable handle to the group task.
#[derive(Clone)]
pub struct AdmissionGroups {
    tx: mpsc::Sender<Waiting>,
}

impl AdmissionGroups {
    /// Starts the group task on the current runtime.
    pub fn start(parts: GroupParts) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, parts));
        Self { tx }
    }

    /// Offers one checked transaction; answers once it is in the mempool and journaled.
    pub async fn admit(&self, tx: Arc<SignedTx>) -> Result<B256, GroupError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Waiting { tx, reply }).await.map_err(|_| GroupError::Unavailable)?;
        answer.await.map_err(|_| GroupError::Unavailable)?
    }
}

fn answer_all(group: &mut Vec<Waiting>, e: impl Fn() -> GroupError) {
    for w in group.drain(..) {
        let _ = w.reply.send(Err(e()));
    }
}

async fn run(mut rx: mpsc::Receiver<Waiting>, parts: GroupParts) {
    let GroupParts { mempool, journal, states, backpressure } = parts;
    let sizes = metrics::histogram!("bss_mempool_admission_group_size");
    let waits = metrics::histogram!("bss_mempool_admission_wait_seconds");
    let mut group = Vec::new();
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        sizes.record(group.len() as f64);
        let waited = wait_for_room(&mempool, backpressure).await;
        if !waited.is_zero() {
            waits.record(waited.as_secs_f64());
        }
        let txs: Vec<Arc<SignedTx>> = group.iter().map(|w| w.tx.clone()).collect();
        let read = states.clone();
        // Store reads stay off this runtime's thread (it is the node's main arbiter).
        let offered = match tokio::task::spawn_blocking(move || with_states(txs, &*read)).await {
            Ok(Ok(offered)) => offered,
            Ok(Err(e)) => {
                answer_all(&mut group, || GroupError::State(e.clone()));
                continue;
            }
            Err(_) => {
                answer_all(&mut group, || GroupError::Unavailable);
                continue;
            }
        };
        let Ok(results) = mempool.add_many(offered).await else {
            answer_all(&mut group, || GroupError::Unavailable);
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

/// Each tx with its sender's committed state, each sender read once.
fn with_states(
    txs: Vec<Arc<SignedTx>>,
    read: &(dyn Fn(&Address) -> Result<SenderState, String> + Send + Sync),
) -> Result<Vec<(Arc<SignedTx>, SenderState)>, String> {
    let mut seen: HashMap<Address, SenderState> = HashMap::new();
    txs.into_iter()
        .map(|tx| {
            if let Some(state) = seen.get(&tx.sender) {
                return Ok((tx, *state));
            }
            let state = read(&tx.sender)?;
            seen.insert(tx.sender, state);
            Ok((tx, state))
        })
        .collect()
}

/// Waits while the pool's executable backlog is at or past the mark, at most `max_wait`.
async fn wait_for_room(mempool: &MempoolHandle, bp: Backpressure) -> Duration {
    let started = tokio::time::Instant::now();
    let mut waited = Duration::ZERO;
    while started.elapsed() < bp.max_wait {
        match mempool.status().await {
            Ok((pending, _)) if pending >= bp.backlog => {
                tokio::time::sleep(BACKLOG_POLL).await;
                waited = started.elapsed();
            }
            _ => break,
        }
    }
    waited
}
