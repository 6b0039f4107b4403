use super::messages::{Certified, ChainError, ChainHandle, Commit, CommittedBlock, Propose, Validate};
use super::metrics::ChainMetrics;
use super::pending::{Entry, PendingBlocks};
use crate::btc::{BtcLink, BtcView};
use crate::executor::{ExecutorError, ExecutorHandle};
use crate::hvm::execute::ProposalFields;
use crate::hvm::fees::next_base_fee;
use crate::hvm::{ExecutedBlock, SignedTx};
use crate::mempool::MempoolHandle;
use actix::prelude::*;
use alloy_primitives::{Address, Bytes, B256};
use bss_consensus::{Block, BlockHeader};
use bss_storage::{StorageHandle, StoreReader};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, oneshot};
use tracing::{debug, error, info, warn};

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// This operator's clock: the system's, moved by `skew_ms` (the `clock-skew:MS` test mode).
fn clock_ms(skew_ms: i64) -> u64 {
    now_ms().saturating_add_signed(skew_ms)
}

#[derive(Clone, Debug)]
pub struct ChainConfig {
    pub operator_index: u16,
    pub min_base_fee: u64,
    /// Most transactions a proposal takes from the mempool.
    pub max_block_txs: usize,
    /// How far ahead of this node's clock a proposal's timestamp may be.
    pub max_clock_drift: Duration,
    /// This node's Bitcoin view, and how long a proposal may wait for it to reach its BTC tip.
    pub btc: Option<(BtcLink, Duration)>,
    /// Refuses blocks that conflict with superfinal keystones (with `[pop]`).
    pub guard: Option<crate::pop::ForkGuard>,
    /// Senders whose txs this node leaves out of its proposals (Byzantine `censor` mode only).
    pub censored: std::sync::Arc<std::collections::HashSet<Address>>,
    /// Byzantine test mode `skip-mints`: its proposals leave out the hBTC mints due.
    pub skip_mints: bool,
    /// Test mode `clock-skew:MS`: this operator's clock runs MS milliseconds off. 0 otherwise.
    pub clock_skew_ms: i64,
}

/// What the chain service talks to.
pub struct ChainParts {
    pub cfg: ChainConfig,
    pub executor: ExecutorHandle,
    pub mempool: MempoolHandle,
    pub storage: StorageHandle,
    pub reader: StoreReader,
    /// The committed head at start.
    pub head: BlockHeader,
}

pub struct ChainActor {
    cfg: ChainConfig,
    executor: ExecutorHandle,
    mempool: MempoolHandle,
    storage: StorageHandle,
    reader: StoreReader,
    commits: broadcast::Sender<CommittedBlock>,
    head: BlockHeader,
    /// Blocks handed to storage whose write is not confirmed yet (number → hash). `head` moves,
    /// and commits are announced, once they are written; meanwhile blocks execute on them.
    in_flight: BTreeMap<u64, B256>,
    /// Fires once the last queued write has been handled here: each write's handling waits for
    /// the one before, so the head only moves forward and blocks are announced in order.
    last_write: Option<oneshot::Receiver<()>>,
    pending: PendingBlocks,
    /// Set when the fork guard refused the chain: nothing more is committed.
    halted: Option<String>,
    metrics: ChainMetrics,
}

impl ChainActor {
    /// Starts the service on the current arbiter.
    pub fn start(p: ChainParts) -> ChainHandle {
        let commits = broadcast::channel(1024).0;
        let actor = ChainActor {
            cfg: p.cfg,
            executor: p.executor,
            mempool: p.mempool,
            storage: p.storage,
            reader: p.reader,
            commits: commits.clone(),
            head: p.head,
            in_flight: BTreeMap::new(),
            last_write: None,
            pending: PendingBlocks::default(),
            halted: None,
            metrics: ChainMetrics::register(),
        };
        ChainHandle { addr: actor.start(), commits }
    }

    fn halt(&mut self, why: String) -> ChainError {
        self.metrics.fork_guard_refusals.increment(1);
        if self.halted.is_none() {
            error!(target: "chain", reason = %why, "fork guard: refusing the chain; no further blocks are committed (the node keeps serving reads)");
            self.metrics.halted.set(1.0);
            self.halted = Some(why.clone());
        }
        ChainError::Halted(why)
    }

    /// Compares the stored chain with Bitcoin's superfinal keystones.
    fn check_stored_chain(&mut self) {
        let Some(guard) = &mut self.cfg.guard else { return };
        let reader = &self.reader;
        let head = reader.head_number().ok().flatten().unwrap_or(0);
        if let Err(why) = guard.check_stored(head, |n| reader.header(n).ok().flatten()) {
            self.halt(why);
        }
    }

    /// The highest block committed or handed to storage.
    fn committed_top(&self) -> u64 {
        self.in_flight.keys().next_back().map_or(self.head.number, |n| (*n).max(self.head.number))
    }

    /// The hash of the committed (or handed to storage) block at `number`.
    fn committed_at(&self, number: u64) -> Option<B256> {
        if number == self.head.number {
            return Some(self.head.hash());
        }
        if let Some(hash) = self.in_flight.get(&number) {
            return Some(*hash);
        }
        match self.reader.header(number) {
            Ok(h) => h.map(|h| h.hash()),
            Err(e) => crate::fatal::stop("storage", format!("reading header {number}: {e}")),
        }
    }

    /// The uncommitted chain up to `hash` (which must be known), oldest first.
    fn chain_to(&self, hash: &B256) -> Vec<Entry> {
        self.pending.chain_to(hash, &self.head.hash())
    }

    /// Blocks storage has written, in order: the head moves and they are announced.
    fn written(&mut self, executed: &[Arc<ExecutedBlock>]) {
        for e in executed {
            debug_assert!(e.block.number() > self.head.number, "writes are handled in order");
            self.head = e.block.header.clone();
            self.in_flight.remove(&e.block.number());
            announce_commit(e, &self.mempool, &self.commits, &self.metrics);
        }
        self.pending.prune(self.head.number);
        self.metrics.pending_blocks.set(self.pending.len() as f64);
    }

    fn remember(&mut self, executed: Vec<Arc<ExecutedBlock>>) {
        let head = self.head.number;
        for e in executed.into_iter().filter(|e| e.block.number() > head) {
            self.pending.executed(e);
        }
        self.metrics.pending_blocks.set(self.pending.len() as f64);
    }
}

/// Executes what `chain` has not executed yet (blocks that already carry certificates, or
/// whose proposal this node validated), oldest first; returns every layer.
async fn layers_for(
    chain: Vec<Entry>,
    executor: &ExecutorHandle,
    btc: Option<&BtcView>,
    waits: &metrics::Counter,
) -> Result<Vec<Arc<ExecutedBlock>>, ExecutorError> {
    let mut layers: Vec<Arc<ExecutedBlock>> = Vec::with_capacity(chain.len());
    for e in chain {
        let executed = match e.executed {
            Some(x) => x,
            None => {
                wait_for_btc_tip(btc, &e.block, waits).await;
                executor.execute_certified(layers.clone(), e.block, vec![]).await?
            }
        };
        layers.push(executed);
    }
    Ok(layers)
}

/// The transactions of the blocks in `run` not executed here yet (`executed` is None), decoded
/// and their senders recovered on every core at once, one list per such block (a sync page's
/// blocks come from no pool). Undecodable ones are left out: executing the block reports them.
async fn decode_unexecuted(run: &[Certified], executed: &[Option<Arc<ExecutedBlock>>]) -> Vec<Vec<Arc<SignedTx>>> {
    let blocks: Vec<Vec<Bytes>> =
        run.iter().zip(executed).filter(|(_, e)| e.is_none()).map(|(c, _)| c.block.transactions.clone()).collect();
    if blocks.iter().all(Vec::is_empty) {
        // The usual commit of a block this node executed already: no thread hop.
        return blocks.iter().map(|_| vec![]).collect();
    }
    let decode = move || {
        let raws: Vec<&[u8]> = blocks.iter().flatten().map(|r| r.as_ref()).collect();
        let mut all = SignedTx::decode_many(&raws).into_iter();
        let per_block: Vec<Vec<Arc<SignedTx>>> =
            blocks.iter().map(|b| all.by_ref().take(b.len()).filter_map(Result::ok).map(Arc::new).collect()).collect();
        per_block
    };
    // A decode cannot panic; if the blocking pool is gone, the executor decodes them itself.
    tokio::task::spawn_blocking(decode).await.unwrap_or_default()
}

/// How often a certified block still waiting for its Bitcoin tip is reported.
const BTC_WAIT_REPORT: Duration = Duration::from_secs(10);
/// How often a certified block waiting for its Bitcoin tip asks the watcher for it by hash.
const BTC_WANT_EVERY: Duration = Duration::from_secs(1);

/// Waits until this node's Bitcoin view holds `block`'s BTC tip, on its best chain or on a kept
/// fork (asking the watcher to fetch it by hash when it is off the best chain). A certified
/// block must be executed against exactly the view its header names: executing it against a
/// lagging view gives another state root (the hVM precompiles would read less). It waits as long
/// as it takes, saying so every 10 s.
async fn wait_for_btc_tip(view: Option<&BtcView>, block: &Block, waits: &metrics::Counter) {
    let attrs = &block.header.btc;
    let (Some(view), Some(tip)) = (view, crate::btc::attributes::tip_hash(attrs)) else { return };
    // On the best chain, or on a fork this node keeps (a reorg deeper than the lag orphaned it).
    let ready = |v: &crate::btc::BtcIndex| v.holds_tip(attrs.tip_height, &tip);
    if ready(&view.current()) {
        return;
    }
    waits.increment(1);
    let (started, mut last_report) = (std::time::Instant::now(), std::time::Instant::now());
    loop {
        // Not there yet: the watcher may be behind, or the tip is off its best chain and was
        // never seen here; bitcoind keeps stale blocks it has seen, so ask for it by hash.
        if view.current().best_height().is_some_and(|b| b >= attrs.tip_height) {
            view.want_stale(attrs.tip_height, tip);
        }
        let v = view.wait_for(BTC_WANT_EVERY, ready).await;
        if ready(&v) {
            info!(target: "chain", number = block.number(), btc_tip = attrs.tip_height, waited_secs = started.elapsed().as_secs_f64(), "the Bitcoin view reached a certified block's tip");
            return;
        }
        if last_report.elapsed() >= BTC_WAIT_REPORT {
            last_report = std::time::Instant::now();
            warn!(target: "chain", number = block.number(), btc_tip = attrs.tip_height, view_best = ?v.best_height(), "a certified block waits for this node's Bitcoin view to reach its tip");
        }
    }
}

/// Senders' next nonces after the uncommitted `layers` (oldest first): where a block built on
/// them takes each sender's txs from.
fn nonces_after(layers: &[Arc<ExecutedBlock>]) -> HashMap<Address, u64> {
    let mut after = HashMap::new();
    for layer in layers {
        // Every account the layer left behind, with its nonce (for non-senders it is unchanged,
        // and the pool takes the larger of it and what it knows).
        for (address, account) in &layer.changes.accounts {
            if let Some(account) = account {
                after.insert(*address, account.nonce);
            }
        }
    }
    after
}

/// The mempool is a critical part: a node that cannot reach it would propose empty blocks
/// while its users' transactions wait. It stops instead.
fn mempool_gone() -> ! {
    crate::fatal::stop("mempool", "the mempool is gone; consensus cannot take transactions")
}

impl Actor for ChainActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(target: "chain", head = self.head.number, operator = self.cfg.operator_index, "chain service started");
        if self.cfg.guard.is_some() {
            self.check_stored_chain();
            ctx.run_interval(Duration::from_secs(1), |act, _| act.check_stored_chain());
        }
    }
}

impl Handler<Propose> for ChainActor {
    type Result = ResponseActFuture<Self, Result<Block, ChainError>>;

    fn handle(&mut self, msg: Propose, _: &mut Self::Context) -> Self::Result {
        let Propose { round, parent, ancestors, lists } = msg;
        for b in ancestors {
            self.pending.insert(b);
        }
        let base_fee = next_base_fee(parent.base_fee, parent.gas_used, parent.gas_limit, self.cfg.min_base_fee);
        let fields = ProposalFields {
            round,
            proposer: self.cfg.operator_index,
            timestamp_ms: clock_ms(self.cfg.clock_skew_ms),
            btc: bss_consensus::BtcAttributes { headers: vec![], ..parent.btc.clone() },
            anchors: vec![],
            inclusion: lists,
            forced: vec![],
            mints: vec![],
            skip_mints: self.cfg.skip_mints,
            omit_senders: self.cfg.censored.clone(),
        };
        let (parent_hash, gas_limit, max_txs) = (parent.hash(), parent.gas_limit, self.cfg.max_block_txs);
        let chain = self.chain_to(&parent_hash);
        let (executor, mempool) = (self.executor.clone(), self.mempool.clone());
        let view = self.cfg.btc.as_ref().map(|(l, _)| l.view.clone());
        let waits = self.metrics.btc_view_waits.clone();
        let fut = async move {
            let layers = layers_for(chain, &executor, view.as_ref(), &waits).await?;
            let after = nonces_after(&layers);
            let Ok(candidates) = mempool.select_after(base_fee, gas_limit, max_txs, after).await else {
                mempool_gone()
            };
            let built = executor.build(parent_hash, layers.clone(), fields, candidates).await?;
            Ok::<_, ExecutorError>((layers, built))
        };
        Box::pin(fut.into_actor(self).map(move |res, act, _| {
            let (mut layers, built) = res.inspect_err(|e| {
                error!(target: "chain", round, error = %e, "building a proposal failed");
                act.metrics.proposal_failures.increment(1);
            })?;
            act.mempool.drop_invalid(built.rejected.iter().map(|(h, _)| *h).collect());
            let block = built.block.clone();
            layers.push(built);
            act.remember(layers);
            Ok(block)
        }))
    }
}

impl Handler<Validate> for ChainActor {
    type Result = ResponseActFuture<Self, Result<(), ChainError>>;

    fn handle(&mut self, msg: Validate, _: &mut Self::Context) -> Self::Result {
        let Validate { block, ancestors, proposal } = msg;
        let hash = block.hash();
        let now = clock_ms(self.cfg.clock_skew_ms);
        if proposal && block.header.timestamp_ms > now + self.cfg.max_clock_drift.as_millis() as u64 {
            let ahead_ms = block.header.timestamp_ms - now;
            return Box::pin(actix::fut::ready(Err(ChainError::ClockAhead { ahead_ms })));
        }
        if block.number() <= self.committed_top() {
            // Only the block committed at that height is valid there.
            return Box::pin(actix::fut::ready(match self.committed_at(block.number()) {
                Some(h) if h == hash => Ok(()),
                _ => Err(ChainError::BelowHead { number: block.number(), head: self.committed_top() }),
            }));
        }
        if self.pending.result(&hash).is_some() {
            // Executed before (we built it, or validated it in an earlier round).
            return Box::pin(actix::fut::ready(Ok(())));
        }
        for b in ancestors {
            self.pending.insert(b);
        }
        self.pending.insert(block.clone());
        let mut chain = self.chain_to(&hash);
        chain.pop(); // the block itself, executed below
        let (executor, mempool, btc) = (self.executor.clone(), self.mempool.clone(), self.cfg.btc.clone());
        let waits = self.metrics.btc_view_waits.clone();
        let fut = async move {
            let view = btc.as_ref().map(|(l, _)| l.view.clone());
            let layers = layers_for(chain, &executor, view.as_ref(), &waits).await?;
            let executed = if proposal {
                if let Some((link, wait)) = &btc {
                    // A watcher a little behind the leader's gets a bounded time to catch up.
                    let attrs = &block.header.btc;
                    link.view.wait_for(*wait, |v| crate::btc::view_ready(attrs, v, &link.rules)).await;
                }
                // Transactions this node already holds were decoded and recovered on admission.
                let hashes = block.transactions.iter().map(alloy_primitives::keccak256).collect();
                let Ok(known) = mempool.get_many(hashes).await else { mempool_gone() };
                executor.validate(layers.clone(), block, known).await?
            } else {
                wait_for_btc_tip(view.as_ref(), &block, &waits).await;
                executor.execute_certified(layers.clone(), block, vec![]).await?
            };
            Ok::<_, ExecutorError>((layers, executed))
        };
        Box::pin(fut.into_actor(self).map(|res, act, _| {
            let (mut layers, executed) = res?;
            layers.push(executed);
            act.remember(layers);
            Ok(())
        }))
    }
}

impl Handler<Commit> for ChainActor {
    type Result = AtomicResponse<Self, Result<(), ChainError>>;

    fn handle(&mut self, msg: Commit, _: &mut Self::Context) -> Self::Result {
        let done = |r| AtomicResponse::new(Box::pin(actix::fut::ready(r)));
        if let Some(why) = &self.halted {
            return done(Err(ChainError::Halted(why.clone())));
        }
        let mut todo = Vec::with_capacity(msg.blocks.len());
        let top = self.committed_top();
        for c in msg.blocks {
            if c.block.number() > top {
                todo.push(c);
                continue;
            }
            // Already committed (hotstuff-rs may announce a block twice). A *different* block
            // certified at a committed height means the federation forked: never go on.
            if self.committed_at(c.block.number()) != Some(c.block.hash()) {
                crate::fatal::stop(
                    "chain",
                    format!(
                        "a certificate for block {} conflicts with the committed block at that height",
                        c.block.hash()
                    ),
                );
            }
        }
        let Some(first) = todo.first() else { return done(Ok(())) };
        if let Some(guard) = &mut self.cfg.guard {
            let headers: Vec<&BlockHeader> = todo.iter().map(|c| &c.block.header).collect();
            if let Err(why) = guard.check(&headers) {
                let e = self.halt(why);
                return done(Err(e));
            }
        }
        let known: Vec<Option<Arc<ExecutedBlock>>> =
            todo.iter().map(|c| self.pending.result(&c.block.hash())).collect();
        // The ancestry matters only when some block was never executed here.
        let chain =
            if known.iter().any(Option::is_none) { self.chain_to(&first.block.header.parent_hash) } else { vec![] };
        let (executor, storage) = (self.executor.clone(), self.storage.clone());
        let view = self.cfg.btc.as_ref().map(|(l, _)| l.view.clone());
        let waits = self.metrics.btc_view_waits.clone();
        let fut = async move {
            let mut decoded = decode_unexecuted(&todo, &known).await.into_iter();
            let mut executed: Vec<Arc<ExecutedBlock>> = Vec::with_capacity(todo.len());
            let mut base: Option<Vec<Arc<ExecutedBlock>>> = None;
            let mut chain = Some(chain);
            for (c, known) in todo.iter().zip(known) {
                let e = match known {
                    Some(e) => e,
                    None => {
                        let txs = decoded.next().unwrap_or_default();
                        let failed = |e| (c.block.number(), c.block.hash(), e);
                        if let Some(chain) = chain.take() {
                            base = Some(layers_for(chain, &executor, view.as_ref(), &waits).await.map_err(failed)?);
                        }
                        let mut layers = base.clone().unwrap_or_default();
                        layers.extend(executed.iter().cloned());
                        wait_for_btc_tip(view.as_ref(), &c.block, &waits).await;
                        executor.execute_certified(layers, c.block.clone(), txs).await.map_err(failed)?
                    }
                };
                executed.push(e);
            }
            Ok::<_, (u64, B256, ExecutorError)>((todo, executed))
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).then(move |res, act, _| {
            let (todo, executed) = match res {
                Ok(x) => x,
                Err((number, hash, e)) => crate::fatal::stop(
                    "chain",
                    format!("block {number} ({hash}) is certified but does not execute here: {e}"),
                ),
            };
            let batches: Vec<_> =
                todo.into_iter().zip(&executed).map(|(c, e)| e.commit_batch(c.certificate, c.proof)).collect();
            for e in &executed {
                act.in_flight.insert(e.block.number(), e.block.hash());
                // Blocks certified elsewhere (block sync) were never pending here: they must
                // be, for the next blocks to execute on them until they are written.
                act.pending.executed(e.clone());
            }
            // Storage writes the run while this service goes on (the next blocks execute on
            // these, which stay pending until written); the head moves once they are written.
            async move { storage.queue_commit(batches).await }.into_actor(act).map(move |queued, act, ctx| {
                let last = executed.last().map_or(0, |e| e.block.number());
                let failed = move |e: bss_storage::StorageError| -> ! {
                    crate::fatal::stop("storage", format!("committing blocks up to {last}: {e}"))
                };
                let written = queued.unwrap_or_else(|e| failed(e));
                let before = act.last_write.take();
                let (handled, after) = oneshot::channel();
                act.last_write = Some(after);
                let in_order = async move {
                    if let Some(before) = before {
                        let _ = before.await;
                    }
                    written.await
                };
                ctx.spawn(in_order.into_actor(act).map(move |res, act, _| {
                    if let Err(e) = res {
                        failed(e);
                    }
                    act.written(&executed);
                    let _ = handled.send(());
                }));
                Ok(())
            })
        })))
    }
}

/// What follows every commit: the mempool drops included txs and learns the senders' next
/// nonces, metrics move, and subscribers hear of the block.
fn announce_commit(
    executed: &ExecutedBlock,
    mempool: &MempoolHandle,
    commits: &broadcast::Sender<CommittedBlock>,
    m: &ChainMetrics,
) {
    let header = &executed.block.header;
    let number = header.number;
    // Senders' next nonces, from the committed state changes.
    let nonces: HashMap<Address, u64> =
        executed.changes.accounts.iter().map(|(a, rec)| (*a, rec.as_ref().map_or(0, |r| r.nonce))).collect();
    let mut advanced: Vec<(Address, u64)> =
        executed.body.senders.iter().filter_map(|s| nonces.get(s).map(|n| (*s, *n))).collect();
    advanced.sort();
    advanced.dedup();
    mempool.committed(number, advanced);
    let txs = executed.body.tx_hashes.len();
    m.height.set(number as f64);
    m.committed_txs.increment(txs as u64);
    m.committed_gas.increment(header.gas_used);
    m.committed_blocks.increment(1);
    m.commit_latency.record(now_ms().saturating_sub(header.timestamp_ms) as f64 / 1000.0);
    if txs > 0 {
        info!(target: "chain", number, txs, gas = header.gas_used, round = header.round, "committed");
    } else {
        debug!(target: "chain", number, round = header.round, "committed empty block");
    }
    let _ = commits.send(CommittedBlock {
        header: header.clone(),
        hash: executed.block.hash(),
        tx_hashes: Arc::new(executed.body.tx_hashes.clone()),
    });
}
