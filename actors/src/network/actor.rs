use super::conn::{self, ConnCtx};
use super::messages::{Broadcast, Connected, Disconnected, Gossip, Incoming, Peers, SendTo};
use super::noise::LocalIdentity;
use super::wire::{encode, WireMessage};
use super::NetworkConfig;
use crate::consensus::{FromNetwork, SyncedBlocks};
use crate::mempool::TxIngress;
use actix::prelude::*;
use alloy_primitives::Bytes;
use bss_consensus::native::NativeMessage;
use bss_storage::StoreReader;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// An established connection: its id, its outgoing frame queue and the bytes queued on it.
type PeerConn = (u64, mpsc::Sender<Arc<Vec<u8>>>, Arc<AtomicUsize>);

/// Gossip batches waiting for admission; past this they are dropped (and counted).
const GOSSIP_QUEUE: usize = 256;
/// Sync pages being built at once; further requests are dropped (the requester asks again).
const SYNC_SERVERS: usize = 2;

pub struct NetworkActor {
    cfg: NetworkConfig,
    conn: Option<ConnCtx>,
    template: (u64, u16, bss_consensus::OperatorSigner, bss_consensus::OperatorSet),
    addrs: Vec<String>,
    listener: Option<std::net::TcpListener>,
    peers: HashMap<u16, PeerConn>,
    consensus: Option<Recipient<FromNetwork>>,
    synced: Option<Recipient<SyncedBlocks>>,
    engine: Option<crossbeam_channel::Sender<(u16, Bytes)>>,
    reader: StoreReader,
    gossip: Vec<Bytes>,
    gossip_bytes: usize,
    /// Gossiped batches on their way to the one admission task.
    admit: mpsc::Sender<Vec<Bytes>>,
    admit_rx: Option<(mpsc::Receiver<Vec<Bytes>>, TxIngress)>,
    sync_slots: Arc<tokio::sync::Semaphore>,
    /// Per operator: when it was last heard from, and the highest round and height it showed.
    seen: HashMap<u16, (std::time::Instant, u64, u64)>,
}

pub struct NetworkParts {
    pub cfg: NetworkConfig,
    pub chain_id: u64,
    pub me: u16,
    pub signer: bss_consensus::OperatorSigner,
    pub operators: bss_consensus::OperatorSet,
    /// `host:port` of every operator, by index (this node's own entry is not dialed).
    pub addrs: Vec<String>,
    /// Bound by the node before anything else starts, so a busy port is a clear start-up error.
    pub listener: std::net::TcpListener,
    /// Where the native engine's messages go (None when another engine runs).
    pub consensus: Option<Recipient<FromNetwork>>,
    pub synced: Option<Recipient<SyncedBlocks>>,
    /// Where another engine's frames go, with the authenticated sender.
    pub engine: Option<crossbeam_channel::Sender<(u16, Bytes)>>,
    pub ingress: TxIngress,
    pub reader: StoreReader,
}

impl NetworkActor {
    pub fn new(p: NetworkParts) -> Self {
        let (admit, admit_rx) = mpsc::channel(GOSSIP_QUEUE);
        Self {
            cfg: p.cfg,
            conn: None,
            template: (p.chain_id, p.me, p.signer, p.operators),
            addrs: p.addrs,
            listener: Some(p.listener),
            peers: HashMap::new(),
            consensus: p.consensus,
            synced: p.synced,
            engine: p.engine,
            reader: p.reader,
            gossip: Vec::new(),
            gossip_bytes: 0,
            admit,
            admit_rx: Some((admit_rx, p.ingress)),
            sync_slots: Arc::new(tokio::sync::Semaphore::new(SYNC_SERVERS)),
            seen: HashMap::new(),
        }
    }

    fn send_frame(&mut self, to: u16, frame: Arc<Vec<u8>>) {
        let Some((_, queue, queued)) = self.peers.get(&to) else {
            metrics::counter!("bss_network_dropped_total", "reason" => "not_connected").increment(1);
            return;
        };
        let len = frame.len();
        if queued.load(Ordering::Relaxed).saturating_add(len) > self.cfg.peer_budget_bytes {
            metrics::counter!("bss_network_dropped_total", "reason" => "peer_bytes").increment(1);
            return;
        }
        queued.fetch_add(len, Ordering::Relaxed);
        if queue.try_send(frame).is_err() {
            queued.fetch_sub(len, Ordering::Relaxed);
            metrics::counter!("bss_network_dropped_total", "reason" => "queue_full").increment(1);
        } else {
            metrics::counter!("bss_network_frames_out_total").increment(1);
        }
    }

    /// Encodes once and queues the frame for every connected operator.
    fn broadcast(&mut self, msg: &WireMessage) {
        if let Some(frame) = Self::encode(msg) {
            let peers: Vec<u16> = self.peers.keys().copied().collect();
            for p in peers {
                self.send_frame(p, frame.clone());
            }
        }
    }

    fn encode(msg: &WireMessage) -> Option<Arc<Vec<u8>>> {
        match encode(msg) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                warn!(target: "network", error = %e, "cannot encode an outgoing message");
                None
            }
        }
    }

    /// Builds the page on a blocking thread and queues it for `to`; at most `SYNC_SERVERS` at once.
    fn serve_sync(&mut self, to: u16, from_number: u64, ctx: &mut Context<Self>) {
        let Ok(slot) = self.sync_slots.clone().try_acquire_owned() else {
            metrics::counter!("bss_network_dropped_total", "reason" => "sync_busy").increment(1);
            return;
        };
        let reader = self.reader.clone();
        let batch = self.cfg.sync_batch;
        let me = ctx.address();
        actix::spawn(async move {
            let page = tokio::task::spawn_blocking(move || super::sync_server::page(&reader, from_number, batch)).await;
            drop(slot);
            match page {
                Ok(Ok(Some(msg))) => me.do_send(SendTo { to, msg }),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => warn!(target: "network", error = %e, "cannot serve a sync request"),
                Err(e) => warn!(target: "network", error = %e, "sync page builder failed"),
            }
        });
    }

    /// Queues the gossip collected so far, in frames of at most half the frame cap.
    fn flush_gossip(&mut self) {
        let limit = self.cfg.max_frame_bytes / 2;
        let mut batch = Vec::new();
        let mut size = 0;
        for tx in std::mem::take(&mut self.gossip) {
            if size + tx.len() > limit && !batch.is_empty() {
                self.broadcast(&WireMessage::Txs(std::mem::take(&mut batch)));
                size = 0;
            }
            size += tx.len();
            batch.push(tx);
        }
        if !batch.is_empty() {
            self.broadcast(&WireMessage::Txs(batch));
        }
        self.gossip_bytes = 0;
    }
}

/// Admits gossiped transactions from the bounded queue, at most two batches at once (sender
/// recovery runs on blocking threads, one per core here).
async fn admit_gossip(mut rx: mpsc::Receiver<Vec<Bytes>>, ingress: TxIngress) {
    let workers = Arc::new(tokio::sync::Semaphore::new(2));
    while let Some(txs) = rx.recv().await {
        let Ok(worker) = workers.clone().acquire_owned().await else { return };
        let ingress = ingress.clone();
        actix::spawn(async move {
            // Already-known and stale txs are normal in gossip; nothing to report.
            if let Err(e) = ingress.admit_many(txs).await {
                tracing::debug!(target: "network", error = %e, "gossip batch not admitted");
            }
            drop(worker);
        });
    }
}

/// Most inbound connections in their handshake at once; further ones wait in the kernel's
/// backlog, so a flood of half-open connections cannot take unbounded memory or tasks.
const MAX_PENDING_HANDSHAKES: usize = 16;

async fn accept_loop(listener: TcpListener, ctx: ConnCtx) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let (mut stream, remote) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(target: "network", error = %e, "accept failed");
                continue;
            }
        };
        let ctx = ctx.clone();
        actix::spawn(async move {
            let res = conn::handshake(&ctx, &mut stream, None).await;
            drop(permit);
            match res {
                Ok(link) => {
                    info!(target: "network", peer = link.peer, %remote, "operator connected (inbound, Noise)");
                    conn::run(ctx, stream, link).await;
                }
                Err(e) => warn!(target: "network", %remote, reason = e.reason(), error = %e, "handshake failed"),
            }
        });
    }
}

async fn dial_loop(addr: String, peer: u16, ctx: ConnCtx) {
    let mut backoff = Duration::from_millis(100);
    loop {
        // Resolved on every attempt: the peer's name may only appear once it is up.
        let attempt = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr.as_str())).await;
        if let Ok(Ok(mut stream)) = attempt {
            match conn::handshake(&ctx, &mut stream, Some(peer)).await {
                Ok(link) => {
                    info!(target: "network", peer, %addr, "operator connected (outbound, Noise)");
                    backoff = Duration::from_millis(100);
                    conn::run(ctx.clone(), stream, link).await;
                    warn!(target: "network", peer, %addr, "operator disconnected; redialing");
                }
                Err(e) => warn!(target: "network", peer, %addr, reason = e.reason(), error = %e, "handshake failed"),
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

impl Actor for NetworkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Frames from peers queue here; readers wait when it is full (see conn::run).
        ctx.set_mailbox_capacity(4_096);
        let (chain_id, me, signer, operators) = self.template.clone();
        let identity = match LocalIdentity::generate(chain_id, me, &signer) {
            Ok(id) => id,
            Err(e) => {
                // No randomness for a static key: this node cannot talk to any operator.
                tracing::error!(target: "network", error = %e, "cannot create a Noise static key; stopping the network");
                ctx.stop();
                return;
            }
        };
        let conn_ctx = ConnCtx {
            identity,
            operators,
            max_frame: self.cfg.max_frame_bytes,
            queue: self.cfg.peer_queue,
            inbound_budget: self.cfg.peer_budget_bytes.max(self.cfg.max_frame_bytes),
            actor: ctx.address(),
        };
        self.conn = Some(conn_ctx.clone());
        if let Some((rx, ingress)) = self.admit_rx.take() {
            ctx.spawn(admit_gossip(rx, ingress).into_actor(self));
        }
        if let Some(std_listener) = self.listener.take() {
            let _ = std_listener.set_nonblocking(true);
            match TcpListener::from_std(std_listener) {
                Ok(l) => {
                    info!(target: "network", addr = %self.cfg.listen, operator = me, "listening for operators");
                    ctx.spawn(accept_loop(l, conn_ctx.clone()).into_actor(self));
                }
                Err(e) => warn!(target: "network", error = %e, "cannot listen"),
            }
        }
        for (i, addr) in self.addrs.iter().enumerate() {
            let peer = i as u16;
            if peer > me {
                ctx.spawn(dial_loop(addr.clone(), peer, conn_ctx.clone()).into_actor(self));
            }
        }
        ctx.run_interval(Duration::from_millis(20), |act, _| {
            if !act.gossip.is_empty() {
                act.flush_gossip();
            }
        });
    }
}

impl Handler<Connected> for NetworkActor {
    type Result = ();

    fn handle(&mut self, msg: Connected, _: &mut Self::Context) {
        self.peers.insert(msg.peer, (msg.conn, msg.queue, msg.queued_bytes));
        metrics::gauge!("bss_network_peers").set(self.peers.len() as f64);
    }
}

impl Handler<Disconnected> for NetworkActor {
    type Result = ();

    fn handle(&mut self, msg: Disconnected, _: &mut Self::Context) {
        if self.peers.get(&msg.peer).is_some_and(|(c, _, _)| *c == msg.conn) {
            self.peers.remove(&msg.peer);
        }
        metrics::gauge!("bss_network_peers").set(self.peers.len() as f64);
    }
}

impl Handler<SendTo> for NetworkActor {
    type Result = ();

    fn handle(&mut self, msg: SendTo, _: &mut Self::Context) {
        if let Some(frame) = Self::encode(&msg.msg) {
            self.send_frame(msg.to, frame);
        }
    }
}

impl Handler<Broadcast> for NetworkActor {
    type Result = ();

    fn handle(&mut self, msg: Broadcast, _: &mut Self::Context) {
        self.broadcast(&msg.0);
    }
}

impl Handler<Gossip> for NetworkActor {
    type Result = ();

    fn handle(&mut self, msg: Gossip, _: &mut Self::Context) {
        self.gossip_bytes += msg.0.len();
        self.gossip.push(msg.0);
        if self.gossip_bytes >= self.cfg.max_frame_bytes / 2 {
            self.flush_gossip();
        }
    }
}

impl Handler<super::messages::PeerViews> for NetworkActor {
    type Result = MessageResult<super::messages::PeerViews>;

    fn handle(&mut self, _: super::messages::PeerViews, _: &mut Self::Context) -> Self::Result {
        let me = self.template.1;
        let views = (0..self.addrs.len() as u16)
            .filter(|o| *o != me)
            .map(|operator| {
                let seen = self.seen.get(&operator);
                super::messages::PeerView {
                    operator,
                    connected: self.peers.contains_key(&operator),
                    last_seen_ms: seen.map(|(t, _, _)| t.elapsed().as_millis() as u64),
                    round: seen.map_or(0, |s| s.1),
                    height: seen.map_or(0, |s| s.2),
                }
            })
            .collect();
        MessageResult(views)
    }
}

impl Handler<Peers> for NetworkActor {
    type Result = MessageResult<Peers>;

    fn handle(&mut self, _: Peers, _: &mut Self::Context) -> Self::Result {
        let mut p: Vec<u16> = self.peers.keys().copied().collect();
        p.sort();
        MessageResult(p)
    }
}

impl Handler<Incoming> for NetworkActor {
    type Result = ();

    fn handle(&mut self, msg: Incoming, ctx: &mut Self::Context) {
        let (round, height) = match &msg.msg {
            WireMessage::Consensus(NativeMessage::Proposal(p)) => (p.block.header.round, p.block.header.number),
            WireMessage::Consensus(NativeMessage::Vote(v)) => (v.round, 0),
            WireMessage::Consensus(NativeMessage::Timeout(t)) => (t.round, 0),
            WireMessage::Consensus(NativeMessage::Tc(tc)) => (tc.round, 0),
            WireMessage::Consensus(NativeMessage::Block(b)) => (b.block.header.round, b.block.header.number),
            _ => (0, 0),
        };
        let entry = self.seen.entry(msg.from).or_insert((std::time::Instant::now(), 0, 0));
        *entry = (std::time::Instant::now(), entry.1.max(round), entry.2.max(height));
        match msg.msg {
            WireMessage::Consensus(m) => {
                // Consensus tolerates lost messages; its queue is bounded and overflow is counted.
                let delivered = self
                    .consensus
                    .as_ref()
                    .is_some_and(|c| c.try_send(FromNetwork { from: msg.from, message: m }).is_ok());
                if !delivered {
                    metrics::counter!("bss_network_dropped_total", "reason" => "consensus_busy").increment(1);
                }
            }
            WireMessage::Engine(bytes) => {
                let delivered = self.engine.as_ref().is_some_and(|e| e.try_send((msg.from, bytes)).is_ok());
                if !delivered {
                    metrics::counter!("bss_network_dropped_total", "reason" => "engine_busy").increment(1);
                }
            }
            WireMessage::SyncRequest { from_number, .. } => self.serve_sync(msg.from, from_number, ctx),
            WireMessage::SyncResponse { blocks, headers, proof, more } => {
                let synced = SyncedBlocks { from: msg.from, blocks, headers, proof, more };
                let delivered = self.synced.as_ref().is_some_and(|c| c.try_send(synced).is_ok());
                if !delivered {
                    metrics::counter!("bss_network_dropped_total", "reason" => "consensus_busy").increment(1);
                }
            }
            WireMessage::Txs(txs) => {
                metrics::counter!("bss_gossip_txs_in_total").increment(txs.len() as u64);
                if self.admit.try_send(txs).is_err() {
                    metrics::counter!("bss_network_dropped_total", "reason" => "gossip_busy").increment(1);
                }
            }
        }
    }
}
