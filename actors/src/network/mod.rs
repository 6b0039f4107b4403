//! Network actor: authenticated TCP between operators.
//!
//! * Full mesh; the lower operator index dials the higher and redials with backoff.
//! * Links are Noise XX (X25519, ChaCha20-Poly1305, BLAKE2s; see [`noise`]): each side's Noise
//!   static key is signed by its ed25519 operator key inside the handshake, and checked against
//!   the key the config gives for the claimed index. A wrong chain, an unknown or unexpected
//!   index, or a signature that does not cover the static key Noise authenticated (a relayed or
//!   replayed handshake) drops the connection and counts
//!   `bss_network_handshake_failures_total{reason}`. At most 16 inbound handshakes run at once.
//! * Frames are length-prefixed canonical bincode with a size cap, encrypted and authenticated;
//!   an oversized, undecodable or tampered frame drops the connection and is logged and counted
//!   (`bss_network_bad_frames_total{reason}`), never a panic.
//! * Each peer has a bounded outgoing queue, in frames and in bytes; when it is full new messages
//!   to that peer are dropped (consensus recovers lost messages by timeouts and fetches) and
//!   counted. What a peer sends is bounded the same way: its frames wait (TCP pushes back) once
//!   its byte budget is held by frames the actor has not handled yet.
//! * The network is transport only: what arrives goes where [`Routes`] says — the engine's
//!   inbox, the sync server (`crate::sync_server`), gossip admission
//!   (`crate::mempool::GossipAdmission`) — each through a bounded queue (full → dropped and
//!   counted). Outgoing gossip is cut into frames under half the cap.

pub mod actor;
mod conn;
mod messages;
mod metrics;
pub mod noise;
pub mod peer_inbox;
mod routes;
pub mod wire;

pub use actor::NetworkActor;
pub use messages::{NetworkHandle, PeerView, Peers};
pub use routes::{EngineRoute, Routes};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Where this operator accepts connections from the others.
    pub listen: SocketAddr,
    /// Largest frame accepted from a peer, bytes.
    pub max_frame_bytes: usize,
    /// Outgoing messages queued per peer before new ones are dropped. Default 8,192.
    pub peer_queue: usize,
    /// Bytes queued to one peer, and bytes from one peer waiting to be handled, at most; past
    /// it, outgoing messages are dropped and counted and incoming reads wait. Default 64 MiB.
    pub peer_budget_bytes: usize,
    /// Most blocks in one sync answer (a page). Default 64.
    pub sync_batch: u32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9545)),
            max_frame_bytes: 32 * 1024 * 1024,
            peer_queue: 8_192,
            peer_budget_bytes: 64 * 1024 * 1024,
            sync_batch: 64,
        }
    }
}
