use super::journal::JournalGenerations;
use super::messages::{
    AddMany, AddTx, Committed, Drop, Due, GetMany, GetTx, InjectPanic, JournalReadmitted, PendingNonce, Select, Status,
};
use super::metrics::MempoolMetrics;
use super::pool::{Inserted, Pool, PoolConfig};
use crate::hvm::{SignedTx, TxError};
use actix::prelude::*;
use alloy_primitives::B256;
use std::sync::Arc;
use tracing::{debug, trace, warn};

pub struct MempoolActor {
    pool: Pool,
    metrics: MempoolMetrics,
    journal: Option<(bss_storage::StorageHandle, JournalGenerations)>,
}

impl MempoolActor {
    pub fn new(cfg: PoolConfig) -> Self {
        Self { pool: Pool::new(cfg), metrics: MempoolMetrics::register(), journal: None }
    }

    /// Starts a new journal generation in `storage` after every `min` accepted transactions or
    /// `min_bytes` accepted bytes (or four times the pool's transactions, twice its bytes,
    /// whichever is more), so committed ones leave the journal a generation at a time; the
    /// first once the journal read back at start-up is re-admitted
    /// ([`MempoolHandle::journal_readmitted`](super::MempoolHandle::journal_readmitted)).
    pub fn with_journal(mut self, storage: bss_storage::StorageHandle, min: usize, min_bytes: usize) -> Self {
        self.journal = Some((storage, JournalGenerations::new(min, min_bytes)));
        self
    }

    /// Counts accepted transactions towards the next journal generation, and starts it when due.
    fn journal_accepted(&mut self, n: usize, bytes: usize, ctx: &mut Context<Self>) {
        let Some((storage, generations)) = self.journal.as_mut() else { return };
        if !generations.accepted(n, bytes, self.pool.len(), self.pool.bytes()) {
            return;
        }
        let live: Vec<_> = self.pool.txs().map(|t| (t.hash, t.raw.clone())).collect();
        let storage = storage.clone();
        ctx.spawn(async move { storage.rotate_journal(live).await }.into_actor(self).map(|res, act, _| {
            if let Some((_, g)) = act.journal.as_mut() {
                g.rotated();
            }
            // Storage logs the failure; both generations stay as they were, nothing is lost.
            if let Err(e) = res {
                warn!(target: "mempool", error = %e, "journal rotation failed");
            }
        }));
    }

    fn report(&self) {
        let (pending, queued) = self.pool.counts();
        let m = &self.metrics;
        m.size.set(self.pool.len() as f64);
        m.bytes.set(self.pool.bytes() as f64);
        m.pending.set(pending as f64);
        m.queued.set(queued as f64);
    }
}

/// The mempool's supervision policy: it is critical. A panic in any handler unwinds through
/// here, and the node stops (exit code 2) instead of going on without its transactions.
impl std::ops::Drop for MempoolActor {
    fn drop(&mut self) {
        if std::thread::panicking() {
            crate::fatal::stop("mempool", "the mempool actor panicked");
        }
    }
}

impl Handler<InjectPanic> for MempoolActor {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, _: &mut Self::Context) {
        panic!("injected fault in the mempool");
    }
}

impl Actor for MempoolActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Gauges are refreshed on a timer, not per message, to keep inserts cheap.
        ctx.run_interval(std::time::Duration::from_millis(500), |a, _| a.report());
        // Txs stuck behind a nonce gap past `queued_ttl` leave (a sweep, not a cost per insert).
        ctx.run_interval(std::time::Duration::from_secs(5), |a, _| {
            let expired = a.pool.expire_queued(std::time::Instant::now());
            if !expired.is_empty() {
                debug!(target: "mempool", count = expired.len(), "queued transactions expired");
                a.metrics.expired.increment(expired.len() as u64);
            }
        });
    }
}

impl MempoolActor {
    fn add(&mut self, tx: Arc<SignedTx>, state: super::pool::SenderState) -> Result<B256, TxError> {
        let hash = tx.hash;
        match self.pool.insert(tx, state) {
            Ok(outcome) => {
                self.metrics.accepted.increment(1);
                if let Inserted::Evicted(victims) = outcome {
                    debug!(target: "mempool", count = victims.len(), first = ?victims.first(), "evicted to make room");
                    self.metrics.evicted.increment(victims.len() as u64);
                }
                trace!(target: "mempool", %hash, "accepted");
                Ok(hash)
            }
            Err(e) => {
                self.metrics.rejected.increment(1);
                Err(e)
            }
        }
    }
}

impl Handler<AddTx> for MempoolActor {
    type Result = Result<B256, TxError>;

    fn handle(&mut self, msg: AddTx, ctx: &mut Self::Context) -> Self::Result {
        let bytes = msg.tx.raw.len();
        let res = self.add(msg.tx, msg.state);
        if res.is_ok() {
            self.journal_accepted(1, bytes, ctx);
        }
        res
    }
}

impl Handler<AddMany> for MempoolActor {
    type Result = MessageResult<AddMany>;

    fn handle(&mut self, msg: AddMany, ctx: &mut Self::Context) -> Self::Result {
        let (mut accepted, mut bytes) = (0, 0);
        let results = msg
            .0
            .into_iter()
            .map(|(tx, state)| {
                let len = tx.raw.len();
                let res = self.add(tx, state);
                if res.is_ok() {
                    accepted += 1;
                    bytes += len;
                }
                res
            })
            .collect();
        self.journal_accepted(accepted, bytes, ctx);
        MessageResult(results)
    }
}

impl Handler<Select> for MempoolActor {
    type Result = MessageResult<Select>;

    fn handle(&mut self, msg: Select, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.pool.select_after(msg.base_fee, msg.max_gas, msg.max_count, &msg.after))
    }
}

impl Handler<JournalReadmitted> for MempoolActor {
    type Result = ();

    fn handle(&mut self, _: JournalReadmitted, _: &mut Self::Context) {
        if let Some((_, g)) = self.journal.as_mut() {
            g.readmitted();
        }
    }
}

impl Handler<Committed> for MempoolActor {
    type Result = ();

    fn handle(&mut self, msg: Committed, _: &mut Self::Context) {
        self.pool.on_committed(&msg.advanced);
        self.pool.set_height(msg.height);
    }
}

impl Handler<Due> for MempoolActor {
    type Result = MessageResult<Due>;

    fn handle(&mut self, msg: Due, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.pool.due(msg.upcoming, msg.deadline, msg.max))
    }
}

impl Handler<Drop> for MempoolActor {
    type Result = ();

    fn handle(&mut self, msg: Drop, _: &mut Self::Context) {
        for h in msg.hashes {
            if self.pool.remove(&h).is_some() {
                self.metrics.dropped_invalid.increment(1);
            }
        }
    }
}

impl Handler<GetTx> for MempoolActor {
    type Result = Option<Arc<SignedTx>>;

    fn handle(&mut self, msg: GetTx, _: &mut Self::Context) -> Self::Result {
        self.pool.get(&msg.0)
    }
}

impl Handler<GetMany> for MempoolActor {
    type Result = MessageResult<GetMany>;

    fn handle(&mut self, msg: GetMany, _: &mut Self::Context) -> Self::Result {
        MessageResult(msg.0.iter().filter_map(|h| self.pool.get(h)).collect())
    }
}

impl Handler<PendingNonce> for MempoolActor {
    type Result = Option<u64>;

    fn handle(&mut self, msg: PendingNonce, _: &mut Self::Context) -> Self::Result {
        self.pool.pending_nonce(&msg.0)
    }
}

impl Handler<Status> for MempoolActor {
    type Result = MessageResult<Status>;

    fn handle(&mut self, _: Status, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.pool.counts())
    }
}
