use super::messages::{FromNetwork, PeerConnected, SyncedBlocks};
use crate::chain::{Certified, ChainError, ChainHandle};
use crate::mempool::MempoolHandle;
use crate::network::NetworkHandle;
use actix::prelude::*;
use alloy_primitives::{keccak256, Bytes, B256};
use bss_consensus::inclusion::MAX_LIST_TXS;
use bss_consensus::native::NativeEngine;
use bss_consensus::native::NativeMessage;
use bss_consensus::Block;
use bss_consensus::{Effect, Engine, Input};
use bss_storage::StorageHandle;
use std::collections::{HashSet, VecDeque};
use std::time::Duration;
use tracing::{debug, error, info};

/// Most consecutive commits handed to the chain service at once. Executing a block on a run
/// of uncommitted ones reads through each of them, so a run stays short.
const MAX_COMMIT_RUN: usize = 32;

/// Drives the native HotStuff engine: feeds it inputs and carries out its effects, in order.
/// Building, validating and committing blocks are the chain service's; this actor only keeps
/// the order (persist-before-sign) and the timers.
pub struct ConsensusActor {
    engine: NativeEngine,
    operator_index: u16,
    chain: ChainHandle,
    storage: StorageHandle,
    network: Option<NetworkHandle>,
    lists: ListSource,
    misbehaviour: Option<super::byzantine::Misbehaviour>,
    queue: VecDeque<Effect<NativeMessage>>,
    busy: bool,
    /// Set when the chain refused to go on (fork guard): the engine is no longer driven.
    halted: bool,
    sync_requests: metrics::Counter,
}

/// What the consensus actor drives and talks to.
pub struct ConsensusParts {
    pub operator_index: u16,
    pub chain: ChainHandle,
    pub storage: StorageHandle,
    /// None for a federation of one.
    pub network: Option<NetworkHandle>,
    pub lists: ListSource,
    /// Byzantine wire modes (test clusters only; None on an honest operator).
    pub misbehaviour: Option<super::byzantine::Misbehaviour>,
}

/// Where this operator's inclusion lists come from: the txs its mempool has held for
/// `deadline` blocks (README "Censorship resistance").
#[derive(Clone)]
pub struct ListSource {
    pub mempool: MempoolHandle,
    pub chain_id: u64,
    pub deadline: u64,
    /// Byzantine `false-lists` test mode: list made-up txs and refuse blocks without them.
    pub false_lists: bool,
    /// Byzantine `list-txs:FILE` test mode: list the txs FILE names, and vote normally.
    pub list_file: Option<std::path::PathBuf>,
}

impl ListSource {
    /// The list this operator signs with its vote for `block` (for `block`'s child).
    async fn due_after(&self, block: &Block) -> Vec<Bytes> {
        if self.false_lists {
            return crate::node::byzantine::false_claims(self.chain_id, block.number());
        }
        if let Some(file) = &self.list_file {
            let mut txs = crate::node::byzantine::listed_in(file);
            txs.truncate(MAX_LIST_TXS);
            return txs;
        }
        let Ok(due) = self.mempool.due(block.number() + 1, self.deadline, MAX_LIST_TXS + 8).await else {
            return vec![];
        };
        let carried: HashSet<B256> = block.transactions.iter().map(keccak256).collect();
        due.into_iter().filter(|t| !carried.contains(&t.hash)).map(|t| t.raw.clone()).take(MAX_LIST_TXS).collect()
    }

    /// `false-lists`: the block must carry what this operator claimed its parent's child needs.
    fn false_claim_refusal(&self, block: &Block) -> Option<String> {
        if !self.false_lists {
            return None; // an honest operator signs no made-up txs on its validation path
        }
        let parent = block.number().checked_sub(1)?;
        let claimed = crate::node::byzantine::false_claims(self.chain_id, parent);
        (!claimed.iter().all(|c| block.transactions.contains(c)))
            .then(|| "the block omits txs this operator listed (false-lists mode)".to_string())
    }
}

impl ConsensusActor {
    pub fn new(engine: NativeEngine, p: ConsensusParts) -> Self {
        Self {
            engine,
            operator_index: p.operator_index,
            chain: p.chain,
            storage: p.storage,
            network: p.network,
            lists: p.lists,
            misbehaviour: p.misbehaviour,
            queue: VecDeque::new(),
            busy: false,
            halted: false,
            sync_requests: crate::telemetry::counter(
                "bss_consensus_sync_requests_total",
                "Block sync requests this replica sent",
            ),
        }
    }

    fn input(&mut self, input: Input<NativeMessage>, ctx: &mut Context<Self>) {
        if self.halted {
            return;
        }
        let effects = self.engine.handle(input);
        self.queue.extend(effects);
        self.drive(ctx);
    }

    /// Runs queued effects in order; async ones hold the queue until they finish.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        while !self.busy && !self.halted {
            let Some(effect) = self.queue.pop_front() else {
                return;
            };
            match effect {
                Effect::RequestProposal { round, parent, lists } => {
                    let (chain, source) = (self.chain.clone(), self.lists.clone());
                    let fut = async move {
                        let block = chain.propose(round, parent, vec![], lists).await?;
                        let due = source.due_after(&block).await;
                        Ok::<_, ChainError>((block, due))
                    };
                    ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
                        Ok((block, due)) => {
                            let block = match &act.misbehaviour {
                                Some(b) => b.spoil(block),
                                None => block,
                            };
                            act.input(Input::ProposalReady { round, block, due }, ctx)
                        }
                        Err(e) => {
                            debug!(target: "consensus", round, error = %e, "no proposal this time; retrying");
                            ctx.run_later(Duration::from_millis(200), move |act, ctx| {
                                act.input(Input::TimerFired(bss_consensus::TimerKind::Propose), ctx)
                            });
                        }
                    }));
                }
                Effect::RequestValidation { block } => {
                    let (chain, block_hash, source) = (self.chain.clone(), block.hash(), self.lists.clone());
                    let fut = async move {
                        let refusal = source.false_claim_refusal(&block);
                        let due = source.due_after(&block).await;
                        let result = chain.validate(block, vec![], true).await.map_err(|e| e.to_string());
                        (refusal.map_or(result, Err), due)
                    };
                    ctx.spawn(fut.into_actor(self).map(move |(result, due), act, ctx| {
                        act.input(Input::ValidationDone { block_hash, result, due }, ctx);
                    }));
                }
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
                Effect::Commit { block, certificate, proof } => {
                    self.busy = true;
                    // A run of commits (a sync page) goes to storage in one write.
                    let mut run = vec![Certified { block, certificate, proof }];
                    while run.len() < MAX_COMMIT_RUN {
                        match self.queue.pop_front() {
                            Some(Effect::Commit { block, certificate, proof }) => {
                                run.push(Certified { block, certificate, proof })
                            }
                            Some(other) => {
                                self.queue.push_front(other);
                                break;
                            }
                            None => break,
                        }
                    }
                    let chain = self.chain.clone();
                    let fut = async move { chain.commit_many(run).await };
                    ctx.wait(fut.into_actor(self).map(|res, act, ctx| {
                        match res {
                            Ok(()) => {}
                            Err(ChainError::Halted(_)) => act.halt(),
                            Err(e) => crate::fatal::stop("consensus", format!("a commit failed: {e}")),
                        }
                        act.busy = false;
                        act.drive(ctx);
                    }));
                }
                Effect::ScheduleTimer { kind, after } => {
                    ctx.run_later(after, move |act, ctx| act.input(Input::TimerFired(kind), ctx));
                }
                Effect::Broadcast(m) => match (&self.network, &mut self.misbehaviour) {
                    (Some(n), Some(b)) => b.broadcast(n, m),
                    (Some(n), None) => n.broadcast_consensus(m),
                    (None, _) => debug!(target: "consensus", "no other operators to broadcast to"),
                },
                Effect::Send { to, message } => {
                    if let Some(n) = &self.network {
                        n.send_consensus(to, message);
                    }
                }
                Effect::RequestSync { peer, from_number } => {
                    if let Some(n) = &self.network {
                        self.sync_requests.increment(1);
                        n.request_sync(peer, from_number);
                    }
                }
            }
        }
    }

    /// The chain refused to go on: stop driving the engine (the node keeps serving reads).
    fn halt(&mut self) {
        error!(target: "consensus", "the chain is halted; consensus stops");
        self.halted = true;
        self.queue.clear();
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
                crate::fatal::stop("storage", format!("{what} failed: {e}"));
            }
            act.busy = false;
            act.drive(ctx);
        }));
    }
}

impl Handler<FromNetwork> for ConsensusActor {
    type Result = ();

    fn handle(&mut self, msg: FromNetwork, ctx: &mut Self::Context) {
        self.input(Input::Message { from: msg.from, message: msg.message }, ctx);
    }
}

impl Handler<PeerConnected> for ConsensusActor {
    type Result = ();

    fn handle(&mut self, msg: PeerConnected, ctx: &mut Self::Context) {
        self.input(Input::PeerConnected { peer: msg.peer }, ctx);
    }
}

impl Handler<SyncedBlocks> for ConsensusActor {
    type Result = ();

    fn handle(&mut self, msg: SyncedBlocks, ctx: &mut Self::Context) {
        // The fork guard judges synced blocks only once the engine has verified their
        // certificates and links, when it asks the chain to commit them: an unverified header
        // from a peer proves nothing, and halting on one would let any peer stop us.
        let SyncedBlocks { from, blocks, headers, proof, more } = msg;
        self.input(Input::Synced { from, blocks, headers, proof, more }, ctx);
    }
}

impl Actor for ConsensusActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bounds what the network can queue here (it drops and counts beyond this).
        ctx.set_mailbox_capacity(8_192);
        info!(target: "consensus", engine = self.engine.name(), operator = self.operator_index, "consensus started");
        self.input(Input::Start, ctx);
    }
}
