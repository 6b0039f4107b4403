//! What travels between operators: u32 big-endian length, then the canonical bincode encoding of
//! a [`WireMessage`]. On a link these frames travel inside Noise transport messages
//! ([`super::noise`]). Frames above the configured cap are refused before they are read, and a
//! peer that sends one is disconnected.

use alloy_primitives::Bytes;
use bss_consensus::native::NativeMessage;
use bss_consensus::{codec, Block, BlockHeader, Certificate, CommitProof};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireMessage {
    Consensus(NativeMessage),
    /// Gossiped raw transactions (EIP-2718).
    Txs(Vec<Bytes>),
    SyncRequest {
        from_number: u64,
        max_blocks: u32,
    },
    /// One page of committed blocks (see `sync_server`); `more`: the sender has blocks past it.
    SyncResponse {
        blocks: Vec<(Block, Certificate)>,
        headers: Vec<BlockHeader>,
        proof: Option<CommitProof>,
        more: bool,
    },
    /// A message of another consensus engine (hotstuff-rs), opaque to the transport.
    Engine(Bytes),
    /// This operator's signatures (one per input) over the payout of withdrawal batch number
    /// `batch` (batches are numbered in the order they open), fee version `version`.
    TunnelSigs {
        batch: u64,
        version: u32,
        sigs: Vec<Bytes>,
    },
    /// This operator's ed25519 signature over a keystone statement (56 bytes, see
    /// `bss_btc::keystone`); `want`: the sender is still collecting, answer with yours.
    KeystoneSig {
        statement: Bytes,
        sig: bss_consensus::SigBytes,
        want: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("undecodable frame: {0}")]
    Decode(String),
    #[error("encoding: {0}")]
    Encode(String),
    #[error("frame failed authentication (tampered, replayed or reordered)")]
    Auth,
}

impl WireError {
    /// Label of the `bss_network_bad_frames_total` metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io(_) => "io",
            Self::TooLarge { .. } => "oversized",
            Self::Decode(_) | Self::Encode(_) => "undecodable",
            Self::Auth => "auth",
        }
    }
}

pub fn encode(msg: &WireMessage) -> Result<Vec<u8>, WireError> {
    let body = codec::encode(msg).map_err(|e| WireError::Encode(e.to_string()))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

pub async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, frame: &[u8]) -> Result<(), WireError> {
    w.write_all(frame).await?;
    Ok(())
}

pub async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R, limit: usize) -> Result<WireMessage, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let size = u32::from_be_bytes(len) as usize;
    if size > limit {
        return Err(WireError::TooLarge { size, limit });
    }
    let mut body = vec![0u8; size];
    r.read_exact(&mut body).await?;
    decode_body(&body)
}

/// Decodes a frame's body (what follows the length prefix).
pub fn decode_body(body: &[u8]) -> Result<WireMessage, WireError> {
    codec::decode_untrusted(body).map_err(|e| WireError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(bss_consensus::proptest_cases(256)))]

        /// Arbitrary bytes from a peer decode to a message or an error, never a panic, and never
        /// an allocation the frame cap did not allow.
        #[test]
        fn decoder_never_panics_on_arbitrary_bodies(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(msg) = decode_body(&body) {
                // Canonical: what decodes re-encodes to the same bytes.
                let frame = encode(&msg).expect("encode");
                prop_assert_eq!(&frame[4..], &body[..]);
            }
        }

        /// A valid frame with bytes flipped or cut still only errors.
        #[test]
        fn mutated_frames_only_error(
            txs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let msg = WireMessage::Txs(txs.into_iter().map(Bytes::from).collect());
            let mut frame = encode(&msg).expect("encode");
            for (i, v) in flips {
                let at = 4 + i.index(frame.len() - 4);
                frame[at] ^= v;
            }
            let _ = decode_body(&frame[4..]);
            let _ = decode_body(&frame[4..4 + cut.index(frame.len() - 4)]);
        }
    }

    #[tokio::test]
    async fn frames_roundtrip_and_limits_hold() {
        let msg = WireMessage::Txs(vec![Bytes::from_static(b"abc")]);
        let frame = encode(&msg).expect("encode");
        let back = read_frame(&mut &frame[..], 1024).await.expect("decode");
        assert_eq!(back, msg);
        assert!(matches!(read_frame(&mut &frame[..], 4).await, Err(WireError::TooLarge { .. })));
        let garbage = [0u8, 0, 0, 3, 0xff, 0xff, 0xff];
        assert!(matches!(read_frame(&mut &garbage[..], 1024).await, Err(WireError::Decode(_))));
        let truncated = [0u8, 0, 0, 9, 1];
        assert!(matches!(read_frame(&mut &truncated[..], 1024).await, Err(WireError::Io(_))));
    }
}
