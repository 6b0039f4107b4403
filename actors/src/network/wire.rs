//! What travels between operators, and how: u32 big-endian length, then the canonical bincode
//! encoding of a [`WireMessage`]. Frames above the configured cap are refused before they are
//! read, and a peer that sends one is disconnected.

use alloy_primitives::Bytes;
use bss_consensus::certificate::SigBytes;
use bss_consensus::native::NativeMessage;
use bss_consensus::{codec, Block, BlockHeader, Certificate, CommitProof};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireMessage {
    /// First frame on a connection: who I claim to be, and a challenge for you.
    Hello {
        chain_id: u64,
        operator: u16,
        nonce: [u8; 32],
    },
    /// Proof of identity: my signature over your challenge.
    Auth {
        signature: SigBytes,
    },
    Consensus(NativeMessage),
    /// Gossiped raw transactions (EIP-2718).
    Txs(Vec<Bytes>),
    SyncRequest {
        from_number: u64,
        max_blocks: u32,
    },
    SyncResponse {
        blocks: Vec<(Block, Certificate)>,
        headers: Vec<BlockHeader>,
        proof: Option<CommitProof>,
    },
    /// A message of another consensus engine (hotstuff-rs), opaque to the transport.
    Engine(Bytes),
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
}

/// What an operator signs to prove its identity on a connection.
pub fn auth_message(chain_id: u64, challenge: &[u8; 32], signer_index: u16) -> Vec<u8> {
    let mut m = b"bss/auth".to_vec();
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(challenge);
    m.extend_from_slice(&signer_index.to_be_bytes());
    m
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
    codec::decode(&body).map_err(|e| WireError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
