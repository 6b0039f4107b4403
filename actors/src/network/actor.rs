use super::conn::{self, ConnCtx};
use super::messages::{Broadcast, Connected, Disconnected, Gossip, Incoming, Peers, SendTo};
use super::noise::LocalIdentity;
use super::wire::{encode, WireMessage};
use super::NetworkConfig;
use crate::consensus::{FromNetwork, SyncedBlocks};
use crate::mempool::TxIngress;
use actix::prelude::*;
use alloy_primitives::Bytes;
use bss_storage::StoreReader;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// An established connection: its id and its outgoing frame queue.
type PeerConn = (u64, mpsc::Sender<Arc<Vec<u8>>>);

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
    ingress: TxIngress,
    reader: StoreReader,
    gossip: Vec<Bytes>,
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
            ingress: p.ingress,
            reader: p.reader,
            gossip: Vec::new(),
        }
    }

    fn send_frame(&mut self, to: u16, frame: Arc<Vec<u8>>) {
        let Some((_, queue)) = self.peers.get(&to) else {
            metrics::counter!("bss_network_dropped_total", "reason" => "not_connected").increment(1);
            return;
        };
        if queue.try_send(frame).is_err() {
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

    fn serve_sync(&mut self, to: u16, from_number: u64) {
        let reader = self.reader.clone();
        let batch = self.cfg.sync_batch.max(1) as u64;
        let answer = (|| -> Result<Option<WireMessage>, bss_storage::StorageError> {
            let Some(head) = reader.head_number()? else { return Ok(None) };
            if from_number == 0 || from_number > head {
                return Ok(None);
            }
            let last = head.min(from_number + batch - 1);
            let mut blocks = Vec::new();
            for n in from_number..=last {
                match reader.committed_block(n)? {
                    Some(b) => blocks.push(b),
                    None => return Ok(None),
                }
            }
            let mut headers = Vec::new();
            for n in last + 1..=head {
                match reader.header(n)? {
                    Some(h) => headers.push(h),
                    None => return Ok(None),
                }
            }
            Ok(Some(WireMessage::SyncResponse { blocks, headers, proof: reader.commit_proof()? }))
        })();
        match answer {
            Ok(Some(msg)) => {
                if let Some(frame) = Self::encode(&msg) {
                    self.send_frame(to, frame);
                }
            }
            Ok(None) => {}
            Err(e) => warn!(target: "network", error = %e, "cannot serve a sync request"),
        }
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
            if act.gossip.is_empty() {
                return;
            }
            let txs = std::mem::take(&mut act.gossip);
            act.broadcast(&WireMessage::Txs(txs));
        });
    }
}

impl Handler<Connected> for NetworkActor {
    type Result = ();

    fn handle(&mut self, msg: Connected, _: &mut Self::Context) {
        self.peers.insert(msg.peer, (msg.conn, msg.queue));
        metrics::gauge!("bss_network_peers").set(self.peers.len() as f64);
    }
}

impl Handler<Disconnected> for NetworkActor {
    type Result = ();

    fn handle(&mut self, msg: Disconnected, _: &mut Self::Context) {
        if self.peers.get(&msg.peer).is_some_and(|(c, _)| *c == msg.conn) {
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
        self.gossip.push(msg.0);
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

    fn handle(&mut self, msg: Incoming, _: &mut Self::Context) {
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
            WireMessage::SyncRequest { from_number, .. } => self.serve_sync(msg.from, from_number),
            WireMessage::SyncResponse { blocks, headers, proof } => {
                let delivered = self
                    .synced
                    .as_ref()
                    .is_some_and(|c| c.try_send(SyncedBlocks { from: msg.from, blocks, headers, proof }).is_ok());
                if !delivered {
                    metrics::counter!("bss_network_dropped_total", "reason" => "consensus_busy").increment(1);
                }
            }
            WireMessage::Txs(txs) => {
                metrics::counter!("bss_gossip_txs_in_total").increment(txs.len() as u64);
                let ingress = self.ingress.clone();
                actix::spawn(async move {
                    // Already-known and stale txs are normal in gossip; nothing to report.
                    if let Err(e) = ingress.admit_many(txs).await {
                        tracing::debug!(target: "network", error = %e, "gossip batch not admitted");
                    }
                });
            }
        }
    }
}
