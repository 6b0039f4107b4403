//! hotstuff-rs's `Network` over our authenticated operator transport. Its messages travel as
//! opaque `Engine` frames (borsh, the library's own encoding) on the same TCP connections as
//! everything else, so peers are authenticated by our handshake.
//!
//! Workarounds for hotstuff-rs 0.4:
//! - Its proposals are not signed; what keeps a forged proposal out is that every frame arrives
//!   on a connection whose operator proved its key at the handshake, and we report that
//!   operator (not anything the frame claims) as the sender.
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
use std::time::Duration;

use crate::network::NetworkHandle;

/// How long `recv` waits for a frame before letting the poller look at its shutdown signal.
const RECV_WAIT: Duration = Duration::from_millis(5);

#[derive(Clone)]
pub struct HsNetwork {
    net: Option<NetworkHandle>,
    me: u16,
    /// Operator keys by index (ed25519, the same keys our transport authenticates).
    keys: Vec<VerifyingKey>,
    inbound: Receiver<(u16, Bytes)>,
    /// Messages to ourselves (the library expects its broadcasts to reach itself too).
    loopback: Sender<(u16, Bytes)>,
}

impl HsNetwork {
    pub fn new(
        net: Option<NetworkHandle>,
        me: u16,
        keys: Vec<VerifyingKey>,
        inbound: Receiver<(u16, Bytes)>,
        loopback: Sender<(u16, Bytes)>,
    ) -> Self {
        Self { net, me, keys, inbound, loopback }
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
        if self.loopback.try_send((self.me, frame)).is_err() {
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
        if let Some(n) = &self.net {
            n.broadcast_engine(frame.clone());
        }
        self.to_self(frame);
    }

    fn send(&mut self, peer: VerifyingKey, message: Message) {
        let Some(frame) = Self::encode(&message) else { return };
        match self.keys.iter().position(|k| *k == peer) {
            Some(i) if i as u16 == self.me => self.to_self(frame),
            Some(i) => {
                if let Some(n) = &self.net {
                    n.send_engine(i as u16, frame);
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
