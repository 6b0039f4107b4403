//! One connection: handshake, then a reader loop and a writer task.

use super::actor::NetworkActor;
use super::messages::{Connected, Disconnected, Incoming};
use super::wire::{auth_message, encode, read_frame, write_frame, WireError, WireMessage};
use actix::Addr;
use bss_consensus::certificate::SigBytes;
use bss_consensus::{OperatorSet, OperatorSigner};
use rand::RngCore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, warn};

static CONN_IDS: AtomicU64 = AtomicU64::new(1);

/// Everything a connection needs; cheap to clone.
#[derive(Clone)]
pub struct ConnCtx {
    pub chain_id: u64,
    pub me: u16,
    pub signer: OperatorSigner,
    pub operators: OperatorSet,
    pub max_frame: usize,
    pub queue: usize,
    pub actor: Addr<NetworkActor>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("peer is on chain {0}")]
    WrongChain(u64),
    #[error("peer claims operator {0}, which is not acceptable here")]
    UnexpectedOperator(u16),
    #[error("peer failed to prove the key of operator {0}")]
    BadSignature(u16),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("handshake timed out")]
    Timeout,
}

/// Runs the handshake; `expected` is the peer index when we dialed it.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    ctx: &ConnCtx,
    stream: &mut S,
    expected: Option<u16>,
) -> Result<u16, HandshakeError> {
    let fut = async {
        let mut nonce = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        write_frame(stream, &encode(&WireMessage::Hello { chain_id: ctx.chain_id, operator: ctx.me, nonce })?).await?;
        let (peer, peer_nonce) = match read_frame(stream, 1024).await? {
            WireMessage::Hello { chain_id, operator, nonce } => {
                if chain_id != ctx.chain_id {
                    return Err(HandshakeError::WrongChain(chain_id));
                }
                let acceptable = match expected {
                    Some(e) => operator == e,
                    // Lower indexes dial higher ones: an inbound peer must be below us.
                    None => operator < ctx.me,
                };
                if !acceptable || operator as usize >= ctx.operators.len() {
                    return Err(HandshakeError::UnexpectedOperator(operator));
                }
                (operator, nonce)
            }
            _ => return Err(HandshakeError::Protocol("expected Hello")),
        };
        let signature = SigBytes(ctx.signer.sign(&auth_message(ctx.chain_id, &peer_nonce, ctx.me)));
        write_frame(stream, &encode(&WireMessage::Auth { signature })?).await?;
        match read_frame(stream, 1024).await? {
            WireMessage::Auth { signature } => {
                ctx.operators
                    .verify(peer, &auth_message(ctx.chain_id, &nonce, peer), &signature.0)
                    .map_err(|_| HandshakeError::BadSignature(peer))?;
            }
            _ => return Err(HandshakeError::Protocol("expected Auth")),
        }
        Ok(peer)
    };
    tokio::time::timeout(Duration::from_secs(5), fut).await.map_err(|_| HandshakeError::Timeout)?
}

/// After a successful handshake: register with the actor, then pump frames both ways until the
/// connection fails.
pub async fn run(ctx: ConnCtx, stream: TcpStream, peer: u16) {
    let conn = CONN_IDS.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Arc<Vec<u8>>>(ctx.queue);
    ctx.actor.do_send(Connected { peer, conn, queue: tx });
    let writer_task = actix::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if write_frame(&mut writer, &frame).await.is_err() {
                break;
            }
        }
    });
    loop {
        match read_frame(&mut reader, ctx.max_frame).await {
            Ok(WireMessage::Hello { .. } | WireMessage::Auth { .. }) => {
                warn!(target: "network", peer, "handshake frame after the handshake; dropping the peer");
                metrics::counter!("bss_network_bad_frames_total", "reason" => "protocol").increment(1);
                break;
            }
            Ok(msg) => {
                metrics::counter!("bss_network_frames_in_total").increment(1);
                // Bounded: when the network actor's mailbox is full, stop reading from this peer
                // (TCP pushes back on it) until there is room.
                let mut pending = Incoming { from: peer, msg };
                loop {
                    match ctx.actor.try_send(pending) {
                        Ok(()) => break,
                        Err(actix::prelude::SendError::Full(m)) => {
                            pending = m;
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        }
                        Err(actix::prelude::SendError::Closed(_)) => return,
                    }
                }
            }
            Err(WireError::Io(e)) => {
                debug!(target: "network", peer, error = %e, "connection closed");
                break;
            }
            Err(e) => {
                let reason = match e {
                    WireError::TooLarge { .. } => "oversized",
                    _ => "undecodable",
                };
                warn!(target: "network", peer, error = %e, "bad frame; dropping the peer");
                metrics::counter!("bss_network_bad_frames_total", "reason" => reason).increment(1);
                break;
            }
        }
    }
    writer_task.abort();
    ctx.actor.do_send(Disconnected { peer, conn });
}
