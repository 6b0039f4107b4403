use super::page::answer;
use crate::network::NetworkHandle;
use crate::telemetry::{counter_of, histogram};
use bss_storage::StoreReader;
use metrics::{Counter, Histogram};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Duration;
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
        let (faults, trigger) = crate::supervision::FaultSwitch::new();
        // Supervision: a panic (a page that cannot be built, say) loses that one request (the
        // requester asks again) and the thread restarts after a backoff with its queue intact.
        std::thread::Builder::new().name("bss-sync-server".into()).spawn(move || {
            crate::supervision::restart_on_panic("sync_server", Duration::from_millis(200), || {
                serve(&reader, (batch, max_bytes), &rx, &page_seconds, &trigger)
            })
        })?;
        let busy = counter_of(
            "bss_network_dropped_total",
            "reason",
            "sync_busy",
            "Messages dropped instead of queued, by reason",
        );
        Ok(SyncServerHandle { tx, busy, faults })
    }
}

fn serve(
    reader: &StoreReader,
    (batch, max_bytes): (u32, usize),
    rx: &Receiver<Request>,
    page_seconds: &Histogram,
    faults: &crate::supervision::FaultTrigger,
) {
    while let Ok(Request { from, from_number, reply }) = rx.recv() {
        faults.check("sync_server");
        let started = std::time::Instant::now();
        match answer(reader, from_number, batch, max_bytes) {
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
    faults: crate::supervision::FaultSwitch,
}

impl SyncServerHandle {
    /// Makes the page builder panic at the next request (fault injection).
    pub fn inject_panic(&self) {
        self.faults.inject_panic();
    }

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
