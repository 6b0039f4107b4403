//! hotstuff-rs's `Network` over the node's authenticated operator transport. Its messages travel
//! as opaque frames (borsh, the library's own encoding) on the same links as everything else, so
//! peers are authenticated by the node's handshake.
//!
//! Workarounds for hotstuff-rs 0.4:
//! - Its proposals are not signed; what keeps a forged proposal out is that every frame arrives
//!   on a link whose operator proved its key at the handshake, and we report that operator (not
//!   anything the frame claims) as the sender.
//! - Its poller thread calls `recv` in a loop and only yields when nothing comes, which keeps an
//!   idle node's core busy. Our `recv` waits up to 5 ms for a frame instead.

use alloy_primitives::Bytes;
use borsh::{BorshDeserialize, BorshSerialize};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use hotstuff_rs::networking::messages::Message;
use hotstuff_rs::networking::network::Network;
use hotstuff_rs::types::crypto_primitives::VerifyingKey;
use hotstuff_rs::types::update_sets::ValidatorSetUpdates;
use hotstuff_rs::types::validator_set::ValidatorSet;
use std::sync::Arc;
use std::time::Duration;

/// How long `recv` waits for a frame before letting the poller look at its shutdown signal.
const RECV_WAIT: Duration = Duration::from_millis(5);
/// Frames from peers waiting for the library; beyond this they are dropped (and counted).
const INBOUND_FRAMES: usize = 65_536;

/// The node's operator links, as the engine sends on them.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, to: u16, frame: Bytes);
    fn broadcast(&self, frame: Bytes);
}

/// Where the transport delivers hotstuff-rs frames from authenticated operators.
#[derive(Clone)]
pub struct FrameSender(Sender<(u16, Bytes)>);

impl FrameSender {
    /// Hands over a frame from operator `from`; false when the queue is full (dropped).
    pub fn deliver(&self, from: u16, frame: Bytes) -> bool {
        self.0.try_send((from, frame)).is_ok()
    }
}

pub struct FrameReceiver(Receiver<(u16, Bytes)>);

/// The bounded queue between the transport and the engine.
pub fn frame_channel() -> (FrameSender, FrameReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(INBOUND_FRAMES);
    (FrameSender(tx), FrameReceiver(rx))
}

#[derive(Clone)]
pub(crate) struct HsNetwork {
    transport: Option<Arc<dyn Transport>>,
    me: u16,
    /// Operator keys by index (ed25519, the same keys the transport authenticates).
    keys: Vec<VerifyingKey>,
    inbound: Receiver<(u16, Bytes)>,
    /// Messages to ourselves (the library expects its broadcasts to reach itself too).
    loopback: FrameSender,
}

impl HsNetwork {
    pub(crate) fn new(
        transport: Option<Arc<dyn Transport>>,
        me: u16,
        keys: Vec<VerifyingKey>,
        inbound: FrameReceiver,
        loopback: FrameSender,
    ) -> Self {
        Self { transport, me, keys, inbound: inbound.0, loopback }
    }

    fn encode(message: &Message) -> Option<Bytes> {
        match message.try_to_vec() {
            Ok(b) => Some(Bytes::from(b)),
            Err(e) => {
                tracing::error!(target: "hotstuff-rs", error = %e, "cannot encode a message");
                None
            }
        }
    }

    fn to_self(&self, frame: Bytes) {
        if !self.loopback.deliver(self.me, frame) {
            metrics::counter!("bss_network_dropped_total", "reason" => "engine_busy").increment(1);
        }
    }
}

impl Network for HsNetwork {
    /// The operator set is fixed by config; the transport already knows it.
    fn init_validator_set(&mut self, _: ValidatorSet) {}

    fn update_validator_set(&mut self, _: ValidatorSetUpdates) {}

    fn broadcast(&mut self, message: Message) {
        let Some(frame) = Self::encode(&message) else { return };
        if let Some(t) = &self.transport {
            t.broadcast(frame.clone());
        }
        self.to_self(frame);
    }

    fn send(&mut self, peer: VerifyingKey, message: Message) {
        let Some(frame) = Self::encode(&message) else { return };
        match self.keys.iter().position(|k| *k == peer) {
            Some(i) if i as u16 == self.me => self.to_self(frame),
            Some(i) => {
                if let Some(t) = &self.transport {
                    t.send(i as u16, frame);
                }
            }
            None => tracing::warn!(target: "hotstuff-rs", "message for a key outside the operator set dropped"),
        }
    }

    fn recv(&mut self) -> Option<(VerifyingKey, Message)> {
        let (from, frame) = match self.inbound.recv_timeout(RECV_WAIT) {
            Ok(x) => x,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
        };
        let key = *self.keys.get(from as usize)?;
        match Message::try_from_slice(&frame) {
            Ok(m) => Some((key, m)),
            Err(e) => {
                // From an authenticated operator, but garbage: count it and move on.
                metrics::counter!("bss_network_bad_frames_total", "reason" => "engine_decode").increment(1);
                tracing::warn!(target: "hotstuff-rs", from, error = %e, "undecodable hotstuff-rs message");
                None
            }
        }
    }
}
