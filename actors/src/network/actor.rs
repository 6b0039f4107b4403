use super::conn::{self, ConnCtx};
use super::messages::{Broadcast, Connected, Disconnected, Gossip, Incoming, NetworkHandle, Peers, SendTo};
use super::metrics::NetworkMetrics;
use super::noise::LocalIdentity;
use super::routes::{EngineRoute, Routes};
use super::wire::{encode, WireMessage};
use super::NetworkConfig;
use crate::consensus::SyncedBlocks;
use actix::prelude::*;
use alloy_primitives::Bytes;
use bss_consensus::native::NativeMessage;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// An established connection: its id, its outgoing frame queue and the bytes queued on it.
type PeerConn = (u64, mpsc::Sender<Arc<Vec<u8>>>, Arc<AtomicUsize>);

pub struct NetworkActor {
    cfg: NetworkConfig,
    conn: Option<ConnCtx>,
    template: (u64, u16, bss_consensus::OperatorSigner, bss_consensus::OperatorSet),
    addrs: Vec<String>,
    listener: Option<std::net::TcpListener>,
    peers: HashMap<u16, PeerConn>,
    routes: Routes,
    metrics: NetworkMetrics,
    gossip: Vec<Bytes>,
    gossip_bytes: usize,
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
    /// Where authenticated inbound messages go.
    pub routes: Routes,
}

impl NetworkActor {
    pub fn new(p: NetworkParts) -> Self {
        Self {
            cfg: p.cfg,
            conn: None,
            template: (p.chain_id, p.me, p.signer, p.operators),
            addrs: p.addrs,
            listener: Some(p.listener),
            peers: HashMap::new(),
            routes: p.routes,
            metrics: NetworkMetrics::register(),
            gossip: Vec::new(),
            gossip_bytes: 0,
            seen: HashMap::new(),
        }
    }

    fn send_frame(&mut self, to: u16, frame: Arc<Vec<u8>>) {
        let Some((_, queue, queued)) = self.peers.get(&to) else {
            self.metrics.dropped_not_connected.increment(1);
            return;
        };
        let len = frame.len();
        if queued.load(Ordering::Relaxed).saturating_add(len) > self.cfg.peer_budget_bytes {
            self.metrics.dropped_peer_bytes.increment(1);
            return;
        }
        queued.fetch_add(len, Ordering::Relaxed);
        if queue.try_send(frame).is_err() {
            queued.fetch_sub(len, Ordering::Relaxed);
            self.metrics.dropped_queue_full.increment(1);
        } else {
            self.metrics.frames_out.increment(1);
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
        // Capped at 1 s: a healed partition costs at most a second of redial wait (the chaos
        // campaign measured up to 5 s of extra recovery with a 5 s cap), and a dial to a peer
        // that is down is one refused TCP connect.
        backoff = (backoff * 2).min(Duration::from_secs(1));
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
        self.metrics.peers.set(self.peers.len() as f64);
        if let EngineRoute::Native(c) = &self.routes.engine {
            if c.peer_connected(msg.peer).is_err() {
                self.metrics.dropped_consensus_busy.increment(1);
            }
        }
    }
}

impl Handler<Disconnected> for NetworkActor {
    type Result = ();

    fn handle(&mut self, msg: Disconnected, _: &mut Self::Context) {
        if self.peers.get(&msg.peer).is_some_and(|(c, _, _)| *c == msg.conn) {
            self.peers.remove(&msg.peer);
        }
        self.metrics.peers.set(self.peers.len() as f64);
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
        let m = self.metrics.clone();
        // Every route is a bounded queue: consensus tolerates lost messages, and overflow is counted.
        match (msg.msg, &self.routes.engine) {
            (WireMessage::Consensus(message), EngineRoute::Native(c)) => {
                if c.deliver(msg.from, message).is_err() {
                    m.dropped_consensus_busy.increment(1);
                }
            }
            (WireMessage::SyncResponse { blocks, headers, proof, more }, EngineRoute::Native(c)) => {
                if c.synced(SyncedBlocks { from: msg.from, blocks, headers, proof, more }).is_err() {
                    m.dropped_consensus_busy.increment(1);
                }
            }
            (WireMessage::Engine(bytes), EngineRoute::HotstuffRs(frames)) => {
                if !frames.deliver(msg.from, bytes) {
                    m.dropped_engine_busy.increment(1);
                }
            }
            (WireMessage::Consensus(_) | WireMessage::SyncResponse { .. } | WireMessage::Engine(_), _) => {
                m.dropped_other_engine.increment(1)
            }
            (WireMessage::SyncRequest { from_number, .. }, _) => {
                self.routes.sync.request(msg.from, from_number, NetworkHandle::new(ctx.address()))
            }
            (WireMessage::TunnelSigs { batch, version, sigs }, _) => match &self.routes.tunnel {
                Some(t) => t.deliver(msg.from, crate::tunnel::SigsFrom { from: msg.from, batch, version, sigs }),
                None => m.dropped_other_engine.increment(1),
            },
            (WireMessage::KeystoneSig { statement, sig, want }, _) => match &self.routes.keystones {
                Some(k) => k.deliver(
                    msg.from,
                    crate::pop::attest::KeystoneSigFrom {
                        from: msg.from,
                        statement: statement.to_vec(),
                        sig: sig.0,
                        want,
                    },
                ),
                None => m.dropped_other_engine.increment(1),
            },
            (WireMessage::Txs(txs), _) => {
                m.gossip_txs_in.increment(txs.len() as u64);
                if !self.routes.gossip.try_admit(txs) {
                    m.dropped_gossip_busy.increment(1);
                }
            }
        }
    }
}
