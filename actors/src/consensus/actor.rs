use super::messages::{CommittedBlock, ConsensusHandle, FromNetwork, SyncedBlocks};
use crate::executor::ExecutorHandle;
use crate::hvm::execute::ProposalFields;
use crate::hvm::fees::next_base_fee;
use crate::hvm::ExecutedBlock;
use crate::mempool::MempoolHandle;
use crate::network::NetworkHandle;
use actix::prelude::*;
use alloy_primitives::{Address, B256};
use bss_consensus::native::NativeMessage;
use bss_consensus::CommitProof;
use bss_consensus::{Block, BlockHeader, Certificate, Effect, Engine, Input};
use bss_storage::StorageHandle;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{debug, error, info};

#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    pub operator_index: u16,
    pub min_base_fee: u64,
    /// Most transactions a proposal takes from the mempool.
    pub max_block_txs: usize,
    /// How far ahead of this node's clock a proposal's timestamp may be.
    pub max_clock_drift: Duration,
    /// This node's Bitcoin view, and how long to wait for it to reach a proposal's BTC tip.
    pub btc: Option<(crate::btc::BtcLink, Duration)>,
    /// Refuses blocks that conflict with superfinal keystones (with `[pop]`).
    pub guard: Option<crate::pop::ForkGuard>,
}

pub struct ConsensusActor<E: Engine<Message = NativeMessage>> {
    engine: E,
    cfg: ConsensusConfig,
    network: Option<NetworkHandle>,
    executor: ExecutorHandle,
    mempool: MempoolHandle,
    storage: StorageHandle,
    handle: ConsensusHandle,
    executed: HashMap<B256, Arc<ExecutedBlock>>,
    /// Uncommitted blocks the engine showed us, so missing ancestors can be executed first.
    known: HashMap<B256, Block>,
    queue: VecDeque<Effect<E::Message>>,
    busy: bool,
    /// Set when the fork guard refused the chain: consensus stops, the node keeps serving reads.
    halted: Option<String>,
    reader: Option<bss_storage::StoreReader>,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What the consensus actor drives and talks to.
pub struct ConsensusParts {
    pub cfg: ConsensusConfig,
    pub executor: ExecutorHandle,
    pub mempool: MempoolHandle,
    pub storage: StorageHandle,
    pub handle: ConsensusHandle,
    /// None for a federation of one.
    pub network: Option<NetworkHandle>,
    /// Committed blocks, for the fork guard's check of the stored chain.
    pub reader: Option<bss_storage::StoreReader>,
}

impl<E: Engine<Message = NativeMessage> + Unpin> ConsensusActor<E> {
    pub fn new(engine: E, p: ConsensusParts) -> Self {
        Self {
            engine,
            cfg: p.cfg,
            network: p.network,
            executor: p.executor,
            mempool: p.mempool,
            storage: p.storage,
            handle: p.handle,
            executed: HashMap::new(),
            known: HashMap::new(),
            queue: VecDeque::new(),
            busy: false,
            halted: None,
            reader: p.reader,
        }
    }

    fn input(&mut self, input: Input<E::Message>, ctx: &mut Context<Self>) {
        if self.halted.is_some() {
            return;
        }
        let effects = self.engine.handle(input);
        self.queue.extend(effects);
        self.drive(ctx);
    }

    /// Runs queued effects in order; async ones hold the queue until they finish.
    /// The fork guard refused something: stop taking part in consensus, loudly.
    fn halt(&mut self, why: String) {
        if self.halted.is_none() {
            error!(target: "consensus", reason = %why, "fork guard: refusing the chain; consensus halted (the node keeps serving reads)");
            metrics::gauge!("bss_consensus_halted").set(1.0);
            self.halted = Some(why);
        }
        self.queue.clear();
    }

    /// Compares the stored chain with Bitcoin's superfinal keystones.
    fn check_stored_chain(&mut self) {
        let (Some(guard), Some(reader)) = (&mut self.cfg.guard, &self.reader) else { return };
        let head = reader.head_number().ok().flatten().unwrap_or(0);
        if let Err(why) = guard.check_stored(head, |n| reader.header(n).ok().flatten()) {
            self.halt(why);
        }
    }

    fn drive(&mut self, ctx: &mut Context<Self>) {
        if self.halted.is_some() {
            self.queue.clear();
            return;
        }
        while !self.busy {
            let Some(effect) = self.queue.pop_front() else {
                return;
            };
            match effect {
                Effect::RequestProposal { round, parent } => self.propose(round, parent, ctx),
                Effect::RequestValidation { block } => self.validate(block, ctx),
                Effect::PersistSafety(safety) => {
                    let storage = self.storage.clone();
                    self.wait_for(ctx, "persisting safety data", async move { storage.put_safety(safety).await });
                }
                Effect::PersistBlock(block) => {
                    let storage = self.storage.clone();
                    self.wait_for(
                        ctx,
                        "persisting a block before voting",
                        async move { storage.put_pending(block).await },
                    );
                }
                Effect::Commit { block, certificate, proof } => self.commit(block, certificate, proof, ctx),
                Effect::ScheduleTimer { kind, after } => {
                    ctx.run_later(after, move |act, ctx| act.input(Input::TimerFired(kind), ctx));
                }
                Effect::Broadcast(m) => match &self.network {
                    Some(n) => n.broadcast_consensus(m),
                    None => debug!(target: "consensus", "no other operators to broadcast to"),
                },
                Effect::Send { to, message } => {
                    if let Some(n) = &self.network {
                        n.send_consensus(to, message);
                    }
                }
                Effect::RequestSync { peer, from_number } => {
                    if let Some(n) = &self.network {
                        metrics::counter!("bss_consensus_sync_requests_total").increment(1);
                        n.request_sync(peer, from_number);
                    }
                }
            }
        }
    }

    /// Runs a storage write that must finish before any later effect (persist-before-sign).
    /// A failure is fatal.
    fn wait_for<F>(&mut self, ctx: &mut Context<Self>, what: &'static str, fut: F)
    where
        F: std::future::Future<Output = Result<(), bss_storage::StorageError>> + 'static,
    {
        self.busy = true;
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| {
            if let Err(e) = res {
                fatal(&format!("{what} failed: {e}"));
                return;
            }
            act.busy = false;
            act.drive(ctx);
        }));
    }

    /// `hash` and its uncommitted ancestors we know, oldest first (at most 256).
    fn ancestry(&self, hash: &B256) -> Vec<Block> {
        let mut chain = Vec::new();
        let mut cursor = *hash;
        while let Some(b) = self.known.get(&cursor) {
            chain.push(b.clone());
            cursor = b.header.parent_hash;
            if chain.len() >= 256 {
                break;
            }
        }
        chain.reverse();
        chain
    }

    fn propose(&mut self, round: u64, parent: BlockHeader, ctx: &mut Context<Self>) {
        let executor = self.executor.clone();
        let mempool = self.mempool.clone();
        let base_fee = next_base_fee(parent.base_fee, parent.gas_used, parent.gas_limit, self.cfg.min_base_fee);
        let max_txs = self.cfg.max_block_txs;
        let fields = ProposalFields {
            round,
            proposer: self.cfg.operator_index,
            timestamp_ms: now_ms(),
            btc: bss_consensus::BtcAttributes { headers: vec![], ..parent.btc.clone() },
            anchors: vec![],
        };
        let parent_hash = parent.hash();
        let gas_limit = parent.gas_limit;
        // The executor may not have run every ancestor (e.g. blocks fetched from peers).
        let ancestors = self.ancestry(&parent_hash);
        let fut = async move {
            for b in ancestors {
                executor.execute_certified(b).await?;
            }
            let candidates = mempool.select(base_fee, gas_limit, max_txs).await.unwrap_or_default();
            executor.build(parent_hash, fields, candidates).await
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(executed) => {
                act.mempool.drop_invalid(executed.rejected.iter().map(|(h, _)| *h).collect());
                let block = executed.block.clone();
                act.known.insert(block.hash(), block.clone());
                act.executed.insert(block.hash(), executed);
                act.input(Input::ProposalReady { round, block }, ctx);
            }
            Err(e) => {
                error!(target: "consensus", round, error = %e, "building a proposal failed");
                metrics::counter!("bss_proposal_failures_total").increment(1);
                ctx.run_later(Duration::from_millis(200), move |act, ctx| {
                    act.input(Input::TimerFired(bss_consensus::TimerKind::Propose), ctx)
                });
            }
        }));
    }

    fn validate(&mut self, block: Block, ctx: &mut Context<Self>) {
        let executor = self.executor.clone();
        let block_hash = block.hash();
        let limit = now_ms() + self.cfg.max_clock_drift.as_millis() as u64;
        if block.header.timestamp_ms > limit {
            let ahead = block.header.timestamp_ms - now_ms();
            let result = Err(format!("timestamp is {ahead} ms ahead of this node's clock"));
            self.input(Input::ValidationDone { block_hash, result }, ctx);
            return;
        }
        self.known.insert(block_hash, block);
        let chain = self.ancestry(&block_hash);
        let mempool = self.mempool.clone();
        let btc = self.cfg.btc.clone();
        let fut = async move {
            let mut last = None;
            for b in chain {
                if let Some((link, wait)) = &btc {
                    // A watcher a little behind the leader's gets a bounded time to catch up.
                    let attrs = &b.header.btc;
                    link.view.wait_for(*wait, |v| crate::btc::view_ready(attrs, v, &link.rules)).await;
                }
                // Transactions this node already holds were decoded and recovered on admission.
                let hashes = b.transactions.iter().map(alloy_primitives::keccak256).collect();
                let known = mempool.get_many(hashes).await;
                last = Some(executor.validate(b, known).await);
            }
            last.unwrap_or(Err(crate::executor::ExecutorError::Gone))
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let result = match res {
                Ok(executed) => {
                    act.executed.insert(block_hash, executed);
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            };
            act.input(Input::ValidationDone { block_hash, result }, ctx);
        }));
    }

    fn commit(&mut self, block: Block, certificate: Certificate, proof: Option<CommitProof>, ctx: &mut Context<Self>) {
        if let Some(guard) = &mut self.cfg.guard {
            if let Err(why) = guard.check(&[&block.header]) {
                self.halt(why);
                return;
            }
        }
        self.busy = true;
        let hash = block.hash();
        let known = self.executed.remove(&hash);
        let executor = self.executor.clone();
        let storage = self.storage.clone();
        let fut = async move {
            let executed = match known {
                Some(e) => e,
                None => executor.execute_certified(block).await.map_err(|e| e.to_string())?,
            };
            let batch = executed.commit_batch(certificate, proof);
            storage.commit(batch).await.map_err(|e| format!("storage: {e}"))?;
            executor.committed(hash).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(executed)
        };
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(executed) => {
                act.after_commit(&executed);
                act.busy = false;
                act.drive(ctx);
            }
            Err(e) => fatal(&format!("committing block {hash} failed: {e}")),
        }));
    }

    fn after_commit(&mut self, executed: &ExecutedBlock) {
        let header = &executed.block.header;
        let number = header.number;
        self.executed.retain(|_, e| e.block.number() > number);
        self.known.retain(|_, b| b.number() > number);
        announce_commit(executed, &self.mempool, &self.handle);
    }
}

/// What follows every commit, whichever engine made it: the mempool drops included txs and
/// learns the senders' next nonces, metrics move, and subscribers hear of the block.
pub fn announce_commit(executed: &ExecutedBlock, mempool: &MempoolHandle, handle: &ConsensusHandle) {
    let header = &executed.block.header;
    let number = header.number;
    // Senders' next nonces, from the committed state changes.
    let nonces: HashMap<Address, u64> =
        executed.changes.accounts.iter().map(|(a, rec)| (*a, rec.as_ref().map_or(0, |r| r.nonce))).collect();
    let mut advanced: Vec<(Address, u64)> =
        executed.body.senders.iter().filter_map(|s| nonces.get(s).map(|n| (*s, *n))).collect();
    advanced.sort();
    advanced.dedup();
    mempool.committed(advanced);
    let txs = executed.body.tx_hashes.len();
    metrics::gauge!("bss_block_height").set(number as f64);
    metrics::counter!("bss_committed_txs_total").increment(txs as u64);
    metrics::counter!("bss_committed_gas_total").increment(header.gas_used);
    metrics::counter!("bss_committed_blocks_total").increment(1);
    let latency = now_ms().saturating_sub(header.timestamp_ms) as f64 / 1000.0;
    metrics::histogram!("bss_commit_latency_seconds").record(latency);
    if txs > 0 {
        info!(target: "consensus", number, txs, gas = header.gas_used, round = header.round, "committed");
    } else {
        debug!(target: "consensus", number, round = header.round, "committed empty block");
    }
    let _ = handle.commits.send(CommittedBlock {
        header: header.clone(),
        hash: executed.block.hash(),
        tx_hashes: Arc::new(executed.body.tx_hashes.clone()),
    });
}

/// Storage and safety failures are not recoverable: log loudly and stop the node.
fn fatal(reason: &str) {
    error!(target: "consensus", reason, "fatal: stopping the node");
    metrics::counter!("bss_fatal_errors_total").increment(1);
    System::current().stop_with_code(2);
}

impl<E: Engine<Message = NativeMessage> + Unpin> Handler<FromNetwork> for ConsensusActor<E> {
    type Result = ();

    fn handle(&mut self, msg: FromNetwork, ctx: &mut Self::Context) {
        self.input(Input::Message { from: msg.from, message: msg.message }, ctx);
    }
}

impl<E: Engine<Message = NativeMessage> + Unpin> Handler<SyncedBlocks> for ConsensusActor<E> {
    type Result = ();

    fn handle(&mut self, msg: SyncedBlocks, ctx: &mut Self::Context) {
        // The fork guard judges synced blocks only once the engine has verified their
        // certificates and links, when it asks us to commit them (see `commit`): an unverified
        // header from a peer proves nothing, and halting on one would let any peer stop us.
        if self.halted.is_some() {
            return;
        }
        let SyncedBlocks { from, blocks, headers, proof, more } = msg;
        self.input(Input::Synced { from, blocks, headers, proof, more }, ctx);
    }
}

impl<E: Engine<Message = NativeMessage> + Unpin> Actor for ConsensusActor<E> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bounds what the network can queue here (it drops and counts beyond this).
        ctx.set_mailbox_capacity(8_192);
        info!(target: "consensus", engine = self.engine.name(), operator = self.cfg.operator_index, "consensus started");
        if self.cfg.guard.is_some() {
            self.check_stored_chain();
            ctx.run_interval(Duration::from_secs(1), |act, _| act.check_stored_chain());
        }
        self.input(Input::Start, ctx);
    }
}
