use super::actor::NetworkActor;
use super::wire::WireMessage;
use actix::prelude::*;
use alloy_primitives::Bytes;
use bss_consensus::native::NativeMessage;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Send one message to one operator.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendTo {
    pub to: u16,
    pub msg: WireMessage,
}

/// Send one message to every other operator.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Broadcast(pub WireMessage);

/// Transactions accepted locally, to gossip to the other operators.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Gossip(pub Bytes);

/// A connection finished its handshake.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Connected {
    pub peer: u16,
    pub conn: u64,
    pub queue: mpsc::Sender<Arc<Vec<u8>>>,
    /// Bytes queued for this peer and not yet written (the writer subtracts what it wrote).
    pub queued_bytes: Arc<AtomicUsize>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Disconnected {
    pub peer: u16,
    pub conn: u64,
}

/// A frame from an authenticated peer.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Incoming {
    pub from: u16,
    pub msg: WireMessage,
    /// This frame's share of the peer's inbound byte budget, returned when the actor is done.
    pub _budget: tokio::sync::OwnedSemaphorePermit,
}

/// Which operators are connected now.
#[derive(Message)]
#[rtype(result = "Vec<u16>")]
pub struct Peers;

/// What this node has seen of one other operator (from its authenticated frames; a Byzantine
/// operator can claim any round, so this is for dashboards, never for decisions).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    pub operator: u16,
    pub connected: bool,
    /// Milliseconds since its last frame (None: never heard from).
    pub last_seen_ms: Option<u64>,
    /// Highest consensus round in its messages.
    pub round: u64,
    /// Highest block number it proposed or served.
    pub height: u64,
}

/// Every other operator as this node sees it.
#[derive(Message)]
#[rtype(result = "Vec<PeerView>")]
pub struct PeerViews;

/// Cloneable, typed handle to the network.
#[derive(Clone)]
pub struct NetworkHandle {
    addr: Addr<NetworkActor>,
}

impl NetworkHandle {
    pub fn new(addr: Addr<NetworkActor>) -> Self {
        Self { addr }
    }

    pub fn send_consensus(&self, to: u16, msg: NativeMessage) {
        self.addr.do_send(SendTo { to, msg: WireMessage::Consensus(msg) });
    }

    pub fn broadcast_consensus(&self, msg: NativeMessage) {
        self.addr.do_send(Broadcast(WireMessage::Consensus(msg)));
    }

    pub fn request_sync(&self, to: u16, from_number: u64) {
        self.addr.do_send(SendTo { to, msg: WireMessage::SyncRequest { from_number, max_blocks: 0 } });
    }

    /// A frame of another consensus engine to one operator.
    pub fn send_engine(&self, to: u16, frame: Bytes) {
        self.addr.do_send(SendTo { to, msg: WireMessage::Engine(frame) });
    }

    pub fn broadcast_engine(&self, frame: Bytes) {
        self.addr.do_send(Broadcast(WireMessage::Engine(frame)));
    }

    /// Any wire message to one operator (the sync server's answers).
    pub(crate) fn send_wire(&self, to: u16, msg: WireMessage) {
        self.addr.do_send(SendTo { to, msg });
    }

    /// This operator's payout signatures, to every other operator.
    pub fn send_tunnel_sigs(&self, batch: u64, version: u32, sigs: Vec<Bytes>) {
        self.addr.do_send(Broadcast(WireMessage::TunnelSigs { batch, version, sigs }));
    }

    /// This operator's keystone signature, to one operator or to all.
    pub fn send_keystone_sig(&self, to: Option<u16>, statement: Vec<u8>, sig: [u8; 64], want: bool) {
        let msg = WireMessage::KeystoneSig { statement: statement.into(), sig: bss_consensus::SigBytes(sig), want };
        match to {
            Some(to) => self.addr.do_send(SendTo { to, msg }),
            None => self.addr.do_send(Broadcast(msg)),
        }
    }

    pub fn gossip(&self, raw: Bytes) {
        self.addr.do_send(Gossip(raw));
    }

    pub async fn peers(&self) -> Vec<u16> {
        self.addr.send(Peers).await.unwrap_or_default()
    }

    pub async fn peer_views(&self) -> Vec<PeerView> {
        self.addr.send(PeerViews).await.unwrap_or_default()
    }
}

/// hotstuff-rs sends its frames over the same links.
impl bss_hotstuff_rs::Transport for NetworkHandle {
    fn send(&self, to: u16, frame: Bytes) {
        self.send_engine(to, frame);
    }

    fn broadcast(&self, frame: Bytes) {
        self.broadcast_engine(frame);
    }
}
