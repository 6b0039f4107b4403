//! The operator link: a Noise XX handshake (`Noise_XX_25519_ChaChaPoly_BLAKE2s`, the `snow` crate)
//! with a fresh X25519 static key per process, bound to the operator's ed25519 identity by a
//! signature inside the handshake payload (as libp2p's Noise spec binds its identity keys), then
//! every frame encrypted and authenticated.
//!
//! Handshake (the dialer is the Noise initiator):
//! ```text
//! -> e
//! <- e, ee, s, es   payload: responder's Identity
//! -> s, se          payload: initiator's Identity
//! ```
//! An [`Identity`] is `operator u16 BE ‖ chain_id u64 BE ‖ ed25519 signature [64]` over
//! `"bss-noise-static-key:" ‖ chain_id ‖ operator ‖ the sender's X25519 static key`. Each side checks
//! the signature against the key its config gives for the claimed index and the static key Noise
//! authenticated, so a relay cannot pose as an operator: replaying an operator's payload next to
//! its own static key fails the signature, and using the operator's static key needs its private
//! half for the DH. Replayed or reordered transport messages fail their AEAD tag (nonces count up
//! per direction).
//!
//! Transport: an application frame (the `u32` length-prefixed bincode of [`super::wire`]) is cut
//! into Noise messages of at most 65,519 plaintext bytes; each travels as `u16 BE length ‖
//! ciphertext`. The receiver decrypts the first message, checks the announced length against its
//! cap before reading on, and drops the peer on any tag failure.

use super::wire::{decode_body, WireError, WireMessage};
use bss_consensus::{OperatorSet, OperatorSigner};
use snow::{HandshakeState, StatelessTransportState};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Largest Noise message, bytes (the Noise spec's limit).
const MAX_NOISE_MSG: usize = 65_535;
const TAG: usize = 16;
/// Plaintext bytes per transport message.
pub const MAX_CHUNK: usize = MAX_NOISE_MSG - TAG;
const IDENTITY_LEN: usize = 2 + 8 + 64;
const SIGNED_PREFIX: &[u8] = b"bss-noise-static-key:";

/// Why a handshake failed; `reason()` labels the metric.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("noise: {0}")]
    Noise(#[from] snow::Error),
    #[error("peer is on chain {0}")]
    WrongChain(u64),
    #[error("peer claims operator {0}, which is not acceptable here")]
    UnexpectedOperator(u16),
    #[error(
        "operator {0}'s identity signature does not cover the Noise static key it used (relayed or forged handshake)"
    )]
    BadIdentity(u16),
    #[error("malformed handshake payload ({0} bytes)")]
    Payload(usize),
    #[error("handshake timed out")]
    Timeout,
}

impl HandshakeError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io(_) => "io",
            Self::Noise(_) => "noise",
            Self::WrongChain(_) => "wrong_chain",
            Self::UnexpectedOperator(_) => "unexpected_operator",
            Self::BadIdentity(_) => "bad_identity",
            Self::Payload(_) => "payload",
            Self::Timeout => "timeout",
        }
    }
}

/// This process's Noise static key and the operator identity that vouches for it.
#[derive(Clone)]
pub struct LocalIdentity {
    pub chain_id: u64,
    pub operator: u16,
    static_private: Arc<Vec<u8>>,
    payload: Arc<Vec<u8>>,
}

impl LocalIdentity {
    /// A fresh X25519 static key, signed by `signer` as operator `operator`.
    pub fn generate(chain_id: u64, operator: u16, signer: &OperatorSigner) -> Result<Self, HandshakeError> {
        let keys = snow::Builder::new(params()).generate_keypair()?;
        Ok(Self::with_static(chain_id, operator, signer, keys.private, &keys.public))
    }

    /// An identity over a given static key (tests use it to replay another operator's payload).
    pub fn with_static(
        chain_id: u64,
        operator: u16,
        signer: &OperatorSigner,
        static_private: Vec<u8>,
        static_public: &[u8],
    ) -> Self {
        let signature = signer.sign(&signed_message(chain_id, operator, static_public));
        Self {
            chain_id,
            operator,
            static_private: Arc::new(static_private),
            payload: Arc::new(encode_identity(chain_id, operator, &signature)),
        }
    }

    /// An identity whose payload is someone else's (an attacker replaying a captured payload).
    pub fn replaying(chain_id: u64, operator: u16, captured_payload: Vec<u8>) -> Result<Self, HandshakeError> {
        let keys = snow::Builder::new(params()).generate_keypair()?;
        Ok(Self { chain_id, operator, static_private: Arc::new(keys.private), payload: Arc::new(captured_payload) })
    }
}

fn params() -> snow::params::NoiseParams {
    // A constant string that snow's own tests parse; failure would be a build defect.
    #[allow(clippy::expect_used)]
    NOISE_PARAMS.parse().expect("valid Noise parameters")
}

fn signed_message(chain_id: u64, operator: u16, static_public: &[u8]) -> Vec<u8> {
    let mut m = SIGNED_PREFIX.to_vec();
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(&operator.to_be_bytes());
    m.extend_from_slice(static_public);
    m
}

fn encode_identity(chain_id: u64, operator: u16, signature: &[u8; 64]) -> Vec<u8> {
    let mut p = Vec::with_capacity(IDENTITY_LEN);
    p.extend_from_slice(&operator.to_be_bytes());
    p.extend_from_slice(&chain_id.to_be_bytes());
    p.extend_from_slice(signature);
    p
}

/// A peer's identity payload, decoded (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub operator: u16,
    pub chain_id: u64,
    pub signature: [u8; 64],
}

impl Identity {
    pub fn decode(b: &[u8]) -> Result<Self, HandshakeError> {
        if b.len() != IDENTITY_LEN {
            return Err(HandshakeError::Payload(b.len()));
        }
        let operator = u16::from_be_bytes([b[0], b[1]]);
        let mut chain = [0u8; 8];
        chain.copy_from_slice(&b[2..10]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[10..]);
        Ok(Self { operator, chain_id: u64::from_be_bytes(chain), signature })
    }
}

/// Who we accept on a connection: the operator we dialed, or (inbound) any operator below us.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    Dialed(u16),
    InboundBelow(u16),
}

/// An authenticated, encrypted link to operator `peer`.
pub struct SecureLink {
    pub peer: u16,
    pub transport: Arc<StatelessTransportState>,
    /// The peer's identity payload as received (tests replay it).
    pub peer_payload: Vec<u8>,
}

fn check_peer(
    hs: &HandshakeState,
    payload: &[u8],
    me: &LocalIdentity,
    operators: &OperatorSet,
    expect: Expect,
) -> Result<u16, HandshakeError> {
    let id = Identity::decode(payload)?;
    if id.chain_id != me.chain_id {
        return Err(HandshakeError::WrongChain(id.chain_id));
    }
    let acceptable = match expect {
        Expect::Dialed(p) => id.operator == p,
        Expect::InboundBelow(me) => id.operator < me,
    };
    if !acceptable || id.operator as usize >= operators.len() {
        return Err(HandshakeError::UnexpectedOperator(id.operator));
    }
    let remote_static = hs.get_remote_static().ok_or(HandshakeError::BadIdentity(id.operator))?;
    operators
        .verify(id.operator, &signed_message(id.chain_id, id.operator, remote_static), &id.signature)
        .map_err(|_| HandshakeError::BadIdentity(id.operator))?;
    Ok(id.operator)
}

async fn send_msg<S: AsyncWrite + Unpin>(s: &mut S, msg: &[u8]) -> std::io::Result<()> {
    // Noise messages are at most 65,535 bytes, so the length always fits.
    let len = u16::try_from(msg.len()).map_err(|_| std::io::Error::other("noise message too long"))?;
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out).await
}

async fn recv_msg<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await?;
    let n = u16::from_be_bytes(len) as usize;
    s.read_exact(&mut buf[..n]).await?;
    Ok(n)
}

/// Runs the XX handshake as the dialer (Noise initiator).
pub async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    me: &LocalIdentity,
    operators: &OperatorSet,
    peer: u16,
) -> Result<SecureLink, HandshakeError> {
    let mut hs = snow::Builder::new(params()).local_private_key(&me.static_private)?.build_initiator()?;
    let mut msg = vec![0u8; MAX_NOISE_MSG];
    let mut payload = vec![0u8; MAX_NOISE_MSG];
    let n = hs.write_message(&[], &mut msg)?;
    send_msg(s, &msg[..n]).await?;
    let n = recv_msg(s, &mut msg).await?;
    let p = hs.read_message(&msg[..n], &mut payload)?;
    let peer_payload = payload[..p].to_vec();
    let peer = check_peer(&hs, &peer_payload, me, operators, Expect::Dialed(peer))?;
    let n = hs.write_message(&me.payload, &mut msg)?;
    send_msg(s, &msg[..n]).await?;
    Ok(SecureLink { peer, transport: Arc::new(hs.into_stateless_transport_mode()?), peer_payload })
}

/// Runs the XX handshake as the listener (Noise responder).
pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    me: &LocalIdentity,
    operators: &OperatorSet,
) -> Result<SecureLink, HandshakeError> {
    let mut hs = snow::Builder::new(params()).local_private_key(&me.static_private)?.build_responder()?;
    let mut msg = vec![0u8; MAX_NOISE_MSG];
    let mut payload = vec![0u8; MAX_NOISE_MSG];
    let n = recv_msg(s, &mut msg).await?;
    hs.read_message(&msg[..n], &mut payload)?;
    let n = hs.write_message(&me.payload, &mut msg)?;
    send_msg(s, &msg[..n]).await?;
    let n = recv_msg(s, &mut msg).await?;
    let p = hs.read_message(&msg[..n], &mut payload)?;
    let peer_payload = payload[..p].to_vec();
    let peer = check_peer(&hs, &peer_payload, me, operators, Expect::InboundBelow(me.operator))?;
    Ok(SecureLink { peer, transport: Arc::new(hs.into_stateless_transport_mode()?), peer_payload })
}

/// Encrypts application frames onto a stream.
pub struct SecureWriter<W> {
    inner: W,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    buf: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> SecureWriter<W> {
    pub fn new(inner: W, transport: Arc<StatelessTransportState>) -> Self {
        Self { inner, transport, nonce: 0, buf: Vec::new() }
    }

    /// Sends one frame (already length-prefixed, see `wire::encode`).
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), WireError> {
        self.buf.clear();
        for chunk in frame.chunks(MAX_CHUNK) {
            let start = self.buf.len();
            self.buf.resize(start + 2 + chunk.len() + TAG, 0);
            let n = self
                .transport
                .write_message(self.nonce, chunk, &mut self.buf[start + 2..])
                .map_err(|e| WireError::Encode(e.to_string()))?;
            self.nonce += 1;
            self.buf[start..start + 2].copy_from_slice(&(n as u16).to_be_bytes());
        }
        self.inner.write_all(&self.buf).await?;
        Ok(())
    }
}

/// Decrypts application frames from a stream.
pub struct SecureReader<R> {
    inner: R,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    msg: Vec<u8>,
    plain: Vec<u8>,
}

impl<R: AsyncRead + Unpin> SecureReader<R> {
    pub fn new(inner: R, transport: Arc<StatelessTransportState>) -> Self {
        Self { inner, transport, nonce: 0, msg: vec![0u8; MAX_NOISE_MSG], plain: vec![0u8; MAX_NOISE_MSG] }
    }

    /// Decrypts the next Noise message, appending its plaintext to `out`.
    async fn next_chunk(&mut self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let n = recv_msg(&mut self.inner, &mut self.msg).await?;
        let p =
            self.transport.read_message(self.nonce, &self.msg[..n], &mut self.plain).map_err(|_| WireError::Auth)?;
        self.nonce += 1;
        out.extend_from_slice(&self.plain[..p]);
        Ok(())
    }

    /// The next frame; frames announcing more than `limit` bytes are refused before they are read.
    pub async fn recv(&mut self, limit: usize) -> Result<WireMessage, WireError> {
        self.recv_sized(limit).await.map(|(m, _)| m)
    }

    /// The next frame and its size in bytes.
    pub async fn recv_sized(&mut self, limit: usize) -> Result<(WireMessage, usize), WireError> {
        let mut data = Vec::new();
        self.next_chunk(&mut data).await?;
        if data.len() < 4 {
            return Err(WireError::Decode("frame shorter than its length prefix".into()));
        }
        let size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if size > limit {
            return Err(WireError::TooLarge { size, limit });
        }
        let total = size + 4;
        while data.len() < total {
            self.next_chunk(&mut data).await?;
        }
        if data.len() != total {
            return Err(WireError::Decode(format!("{} bytes after the frame", data.len() - total)));
        }
        decode_body(&data[4..]).map(|m| (m, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::wire::encode;
    use alloy_primitives::Bytes;

    fn federation() -> (Vec<OperatorSigner>, OperatorSet) {
        let signers: Vec<OperatorSigner> = (1..=4u8).map(|i| OperatorSigner::from_bytes([i; 32])).collect();
        let set = OperatorSet::new(signers.iter().map(|s| s.public()).collect());
        (signers, set)
    }

    #[tokio::test]
    async fn handshake_then_large_frames_roundtrip_and_tampering_is_caught() {
        let (signers, set) = federation();
        let a = LocalIdentity::generate(7, 0, &signers[0]).expect("id");
        let b = LocalIdentity::generate(7, 1, &signers[1]).expect("id");
        let (mut x, mut y) = tokio::io::duplex(1 << 20);
        let (la, lb) = tokio::join!(initiate(&mut x, &a, &set, 1), respond(&mut y, &b, &set));
        let (la, lb) = (la.expect("initiator"), lb.expect("responder"));
        assert_eq!((la.peer, lb.peer), (1, 0));
        // A frame of 200 kB spans several Noise messages.
        let msg = WireMessage::Txs(vec![Bytes::from(vec![7u8; 200_000])]);
        let frame = encode(&msg).expect("encode");
        let (xr, xw) = tokio::io::split(x);
        let (yr, yw) = tokio::io::split(y);
        let mut w = SecureWriter::new(xw, la.transport.clone());
        let mut r = SecureReader::new(yr, lb.transport.clone());
        w.send(&frame).await.expect("send");
        assert_eq!(r.recv(1 << 20).await.expect("recv"), msg);
        // Over the cap: refused from the first chunk.
        w.send(&frame).await.expect("send");
        assert!(matches!(r.recv(1000).await, Err(WireError::TooLarge { .. })));
        // A flipped ciphertext byte fails the tag.
        let (mut raw_in, mut raw_out) = tokio::io::duplex(1 << 20);
        let mut w2 = SecureWriter::new(&mut raw_in, lb.transport.clone());
        w2.send(&encode(&WireMessage::Txs(vec![])).expect("encode")).await.expect("send");
        drop(w2);
        let mut bytes = vec![0u8; 64];
        let n = raw_out.read(&mut bytes).await.expect("read");
        bytes.truncate(n);
        bytes[5] ^= 1;
        let mut r2 = SecureReader::new(&bytes[..], la.transport.clone());
        assert!(matches!(r2.recv(1 << 20).await, Err(WireError::Auth)));
        drop((xr, yw));
    }

    /// Runs both sides of a handshake; a side that fails drops its end, so the other sees it.
    async fn pair(
        dialer: &LocalIdentity,
        listener: &LocalIdentity,
        set: &OperatorSet,
    ) -> (Result<SecureLink, HandshakeError>, Result<SecureLink, HandshakeError>) {
        let (x, y) = tokio::io::duplex(1 << 16);
        let peer = listener.operator;
        tokio::join!(
            async move {
                let mut x = x;
                initiate(&mut x, dialer, set, peer).await
            },
            async move {
                let mut y = y;
                respond(&mut y, listener, set).await
            }
        )
    }

    #[tokio::test]
    async fn a_replayed_identity_next_to_another_static_key_is_refused() {
        let (signers, set) = federation();
        let honest = LocalIdentity::generate(7, 0, &signers[0]).expect("id");
        let target = LocalIdentity::generate(7, 2, &signers[2]).expect("id");
        // The attacker captured operator 0's payload and offers it with its own static key.
        let attacker = LocalIdentity::replaying(7, 0, honest.payload.to_vec()).expect("id");
        let (_, lt) = pair(&attacker, &target, &set).await;
        assert!(matches!(lt, Err(HandshakeError::BadIdentity(0))), "{:?}", lt.err());
        // A key that is not operator 0's, claiming index 0.
        let impostor = LocalIdentity::generate(7, 0, &OperatorSigner::from_bytes([0xee; 32])).expect("id");
        let (_, lt) = pair(&impostor, &target, &set).await;
        assert!(matches!(lt, Err(HandshakeError::BadIdentity(0))));
        // Inbound from an index above the listener's (only lower indexes dial).
        let high = LocalIdentity::generate(7, 3, &signers[3]).expect("id");
        let (_, lt) = pair(&high, &target, &set).await;
        assert!(matches!(lt, Err(HandshakeError::UnexpectedOperator(3))));
        // Another chain: the dialer already refuses the listener's identity.
        let other = LocalIdentity::generate(8, 0, &signers[0]).expect("id");
        let (ld, lt) = pair(&other, &target, &set).await;
        assert!(matches!(ld, Err(HandshakeError::WrongChain(7))));
        assert!(lt.is_err());
        // The honest operator 0 gets through.
        let (ld, lt) = pair(&honest, &target, &set).await;
        assert_eq!((ld.expect("dialer").peer, lt.expect("listener").peer), (2, 0));
    }
}
