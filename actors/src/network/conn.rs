//! One connection: the Noise handshake (see [`super::noise`]), then a reader loop and a writer
//! task over the encrypted link.

use super::actor::NetworkActor;
use super::messages::{Connected, Disconnected, Incoming};
use super::noise::{self, HandshakeError, LocalIdentity, SecureLink, SecureReader, SecureWriter};
use super::wire::WireError;
use actix::Addr;
use bss_consensus::OperatorSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, warn};

static CONN_IDS: AtomicU64 = AtomicU64::new(1);

/// How long a peer has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a connection needs; cheap to clone.
#[derive(Clone)]
pub struct ConnCtx {
    pub identity: LocalIdentity,
    pub operators: OperatorSet,
    pub max_frame: usize,
    pub queue: usize,
    /// Bytes from one peer the network actor may hold unprocessed before this connection stops
    /// reading (TCP then pushes back on the peer).
    pub inbound_budget: usize,
    pub actor: Addr<NetworkActor>,
}

/// Runs the handshake: as the dialer when `dialed` names the peer, else as the listener.
pub async fn handshake(
    ctx: &ConnCtx,
    stream: &mut TcpStream,
    dialed: Option<u16>,
) -> Result<SecureLink, HandshakeError> {
    let fut = async {
        match dialed {
            Some(peer) => noise::initiate(stream, &ctx.identity, &ctx.operators, peer).await,
            None => noise::respond(stream, &ctx.identity, &ctx.operators).await,
        }
    };
    let res = tokio::time::timeout(HANDSHAKE_TIMEOUT, fut).await.map_err(|_| HandshakeError::Timeout)?;
    if let Err(e) = &res {
        metrics::counter!("bss_network_handshake_failures_total", "reason" => e.reason()).increment(1);
    }
    res
}

/// After a successful handshake: register with the actor, then pump frames both ways until the
/// connection fails.
pub async fn run(ctx: ConnCtx, stream: TcpStream, link: SecureLink) {
    let peer = link.peer;
    let conn = CONN_IDS.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let mut reader = SecureReader::new(reader, link.transport.clone());
    let mut writer = SecureWriter::new(writer, link.transport);
    let (tx, mut rx) = mpsc::channel::<Arc<Vec<u8>>>(ctx.queue);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let budget = Arc::new(tokio::sync::Semaphore::new(ctx.inbound_budget));
    ctx.actor.do_send(Connected { peer, conn, queue: tx, queued_bytes: queued_bytes.clone() });
    // The writer ends when the network actor drops this connection's queue (a newer connection
    // from the same operator replaced it) or the socket fails; the reader then ends too.
    let mut writer_task = actix::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let sent = writer.send(&frame).await;
            queued_bytes.fetch_sub(frame.len(), Ordering::Relaxed);
            if sent.is_err() {
                break;
            }
        }
    });
    loop {
        let received = tokio::select! {
            r = reader.recv_sized(ctx.max_frame) => r,
            _ = &mut writer_task => {
                debug!(target: "network", peer, "connection replaced or closed; dropping it");
                break;
            }
        };
        match received {
            Ok((msg, bytes)) => {
                metrics::counter!("bss_network_frames_in_total").increment(1);
                // Bounded in frames (the actor's mailbox) and in bytes (this peer's budget): when
                // either is full, stop reading from this peer until there is room.
                let share = u32::try_from(bytes.min(ctx.inbound_budget)).unwrap_or(u32::MAX);
                let Ok(permit) = budget.clone().acquire_many_owned(share).await else { break };
                let mut pending = Incoming { from: peer, msg, _budget: permit };
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
                warn!(target: "network", peer, error = %e, "bad frame; dropping the peer");
                metrics::counter!("bss_network_bad_frames_total", "reason" => e.reason()).increment(1);
                break;
            }
        }
    }
    writer_task.abort();
    ctx.actor.do_send(Disconnected { peer, conn });
}
