use super::page::answer;
use crate::network::NetworkHandle;
use crate::telemetry::{counter_of, histogram};
use bss_storage::StoreReader;
use metrics::{Counter, Histogram};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use tracing::warn;

/// Requests waiting for the page builder.
const QUEUE: usize = 4;

struct Request {
    from: u16,
    from_number: u64,
    reply: NetworkHandle,
}

pub struct SyncServer;

impl SyncServer {
    /// Starts the page builder thread; `batch` is the most blocks in one page, `max_bytes` the
    /// most bytes of blocks.
    pub fn spawn(reader: StoreReader, batch: u32, max_bytes: usize) -> std::io::Result<SyncServerHandle> {
        let (tx, rx) = sync_channel(QUEUE);
        let page_seconds = histogram("bss_sync_page_seconds", "Time to read one block sync page from storage");
        std::thread::Builder::new()
            .name("bss-sync-server".into())
            .spawn(move || serve(reader, (batch, max_bytes), rx, page_seconds))?;
        let busy = counter_of(
            "bss_network_dropped_total",
            "reason",
            "sync_busy",
            "Messages dropped instead of queued, by reason",
        );
        Ok(SyncServerHandle { tx, busy })
    }
}

fn serve(reader: StoreReader, (batch, max_bytes): (u32, usize), rx: Receiver<Request>, page_seconds: Histogram) {
    while let Ok(Request { from, from_number, reply }) = rx.recv() {
        let started = std::time::Instant::now();
        match answer(&reader, from_number, batch, max_bytes) {
            Ok(msg) => {
                page_seconds.record(started.elapsed().as_secs_f64());
                reply.send_wire(from, msg);
            }
            Err(e) => warn!(target: "sync", from, from_number, error = %e, "cannot serve a sync request"),
        }
    }
}

/// Cloneable handle to the sync server.
#[derive(Clone)]
pub struct SyncServerHandle {
    tx: SyncSender<Request>,
    busy: Counter,
}

impl SyncServerHandle {
    /// Queues operator `from`'s request for blocks from `from_number`; the page goes back through
    /// `reply`. A full queue drops the request (counted).
    pub fn request(&self, from: u16, from_number: u64, reply: NetworkHandle) {
        match self.tx.try_send(Request { from, from_number, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.busy.increment(1),
            Err(TrySendError::Disconnected(_)) => warn!(target: "sync", "the sync server is gone"),
        }
    }
}
