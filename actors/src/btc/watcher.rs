//! The BtcWatcher: a thread that follows a Bitcoin node's best chain over RPC, indexes every block
//! it fetches, rolls back and forward through reorgs of any depth, survives the node going away
//! (exponential backoff, a log line when it goes and when it comes back, metrics), and publishes
//! each new view as an immutable snapshot. Nothing waits on it: readers take the latest snapshot.
//!
//! Supervision: a panic restarts the loop after a backoff (`bss_actor_restarts_total{actor=
//! "btc_watcher"}`), resuming from the last view it published, which readers kept using.

use super::index::BtcIndex;
use super::index_writer::{IndexError, IndexSink, IndexWriter};
use super::source::{BitcoinSource, SourceError};
use bss_storage::StoreReader;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

#[derive(Clone, Debug)]
pub struct WatcherConfig {
    /// How often to ask for the best block when nothing is happening.
    pub poll_interval: Duration,
    /// First Bitcoin height the index holds.
    pub start_height: u64,
    /// Longest wait between retries while the Bitcoin node is unreachable.
    pub max_backoff: Duration,
}

/// The latest published Bitcoin view, cheap to clone and to read from any thread.
#[derive(Clone)]
pub struct BtcView {
    rx: watch::Receiver<Arc<BtcIndex>>,
    up: watch::Receiver<bool>,
}

impl BtcView {
    /// Whether the last call to the Bitcoin node succeeded.
    pub fn connected(&self) -> bool {
        *self.up.borrow()
    }

    pub fn current(&self) -> Arc<BtcIndex> {
        self.rx.borrow().clone()
    }

    /// Waits (up to `timeout`) for the first successful round with the Bitcoin node.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut up = self.up.clone();
        let connected = tokio::time::timeout(timeout, up.wait_for(|u| *u)).await.is_ok_and(|r| r.is_ok());
        connected
    }

    /// Waits (up to `timeout`) until the view satisfies `ready`; returns the last view either way.
    pub async fn wait_for(&self, timeout: Duration, ready: impl Fn(&BtcIndex) -> bool) -> Arc<BtcIndex> {
        let mut rx = self.rx.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let view = rx.borrow_and_update().clone();
            if ready(&view) {
                return view;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return rx.borrow().clone(),
            }
        }
    }

    /// `wait_for` for threads without a tokio runtime (hotstuff-rs's): checks every 20 ms.
    pub fn wait_for_blocking(&self, timeout: Duration, ready: impl Fn(&BtcIndex) -> bool) -> Arc<BtcIndex> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let view = self.current();
            if ready(&view) || std::time::Instant::now() >= deadline {
                return view;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A view that never changes (tests, and nodes without Bitcoin).
    pub fn fixed(index: BtcIndex) -> (Self, watch::Sender<Arc<BtcIndex>>) {
        let (tx, rx) = watch::channel(Arc::new(index));
        let (_, up) = watch::channel(true);
        (Self { rx, up }, tx)
    }
}

/// Control of the watcher thread (fault injection for the supervision tests).
#[derive(Clone)]
pub struct WatcherHandle {
    control: std::sync::mpsc::SyncSender<()>,
}

impl WatcherHandle {
    /// Makes the watcher panic at its next round.
    pub fn inject_panic(&self) {
        let _ = self.control.try_send(());
    }
}

/// Starts the watcher thread under its supervision policy; it stops once every `BtcView` is
/// dropped. The index resumes from what `reader`'s database holds (see `IndexWriter`).
pub fn spawn(
    source: impl BitcoinSource,
    cfg: WatcherConfig,
    sink: IndexSink,
    reader: StoreReader,
) -> Result<(BtcView, WatcherHandle), IndexError> {
    let writer = IndexWriter::open(sink.clone(), reader.clone(), cfg.start_height)?;
    if let Some(h) = writer.best_height() {
        info!(target: "btc", best = h, start = cfg.start_height, "Bitcoin index resumed from disk");
    }
    let (tx, rx) = watch::channel(Arc::new(writer.view()));
    let (up_tx, up) = watch::channel(false);
    let (control, faults) = std::sync::mpsc::sync_channel(1);
    let mut first = Some(writer);
    std::thread::Builder::new()
        .name("btc-watcher".into())
        .spawn(move || {
            crate::supervision::restart_on_panic("btc_watcher", Duration::from_millis(500), || {
                // A restart reloads the index from disk, where every connected block is.
                let writer = match first.take() {
                    Some(w) => w,
                    None => IndexWriter::open(sink.clone(), reader.clone(), cfg.start_height)
                        .unwrap_or_else(|e| crate::fatal::stop("btc_watcher", format!("reopening the index: {e}"))),
                };
                run(&source, &cfg, writer, &tx, &up_tx, &faults)
            })
        })
        .map_err(IndexError::Thread)?;
    Ok((BtcView { rx, up }, WatcherHandle { control }))
}

fn run(
    source: &impl BitcoinSource,
    cfg: &WatcherConfig,
    mut index: IndexWriter,
    tx: &watch::Sender<Arc<BtcIndex>>,
    up: &watch::Sender<bool>,
    faults: &std::sync::mpsc::Receiver<()>,
) {
    let mut wait = cfg.poll_interval;
    let mut down_since: Option<std::time::Instant> = None;
    while !tx.is_closed() {
        if faults.try_recv().is_ok() {
            panic!("injected fault in the Bitcoin watcher");
        }
        match follow(source, &mut index, tx) {
            Ok(()) => {
                if let Some(since) = down_since.take() {
                    info!(target: "btc", down_secs = since.elapsed().as_secs(), "bitcoin node reachable again");
                }
                metrics::gauge!("bss_btc_rpc_up").set(1.0);
                up.send_replace(true);
                wait = cfg.poll_interval;
            }
            Err(e) => {
                metrics::counter!("bss_btc_rpc_errors_total").increment(1);
                metrics::gauge!("bss_btc_rpc_up").set(0.0);
                up.send_replace(false);
                if down_since.is_none() {
                    down_since = Some(std::time::Instant::now());
                }
                warn!(target: "btc", error = %e, retry_in_ms = wait.as_millis() as u64, "bitcoin node unreachable");
                wait = (wait * 2).min(cfg.max_backoff);
            }
        }
        std::thread::sleep(wait);
    }
}

fn publish(index: &IndexWriter, tx: &watch::Sender<Arc<BtcIndex>>) {
    if let Some(h) = index.best_height() {
        metrics::gauge!("bss_btc_tip_height").set(h as f64);
    }
    tx.send_replace(Arc::new(index.view()));
}

/// A write of the index that fails means the disk is failing.
fn stored<T>(r: Result<T, bss_storage::StorageError>) -> T {
    r.unwrap_or_else(|e| crate::fatal::stop("storage", format!("writing the Bitcoin index: {e}")))
}

/// One round: roll back what the node no longer has on its best chain, then fetch what is new.
fn follow(
    source: &impl BitcoinSource,
    index: &mut IndexWriter,
    tx: &watch::Sender<Arc<BtcIndex>>,
) -> Result<(), SourceError> {
    let count = source.block_count()?;
    let mut depth = 0u64;
    while let Some(h) = index.best_height() {
        if h <= count && Some(source.block_hash(h)?) == index.best_hash() {
            break;
        }
        stored(index.disconnect_tip());
        depth += 1;
    }
    if depth > 0 {
        metrics::counter!("bss_btc_reorgs_total").increment(1);
        metrics::histogram!("bss_btc_reorg_depth").record(depth as f64);
        info!(target: "btc", depth, fork_height = ?index.best_height(), "bitcoin reorg: rolled back");
    }
    let mut changed = depth > 0;
    let mut next = index.best_height().map_or(index.start_height(), |h| h + 1);
    while next <= count {
        let hash = source.block_hash(next)?;
        let block = source.block(&hash)?;
        if index.best_hash().is_some_and(|best| block.header.prev_blockhash != best) {
            // The node reorganised while we were fetching: the next round rolls back.
            break;
        }
        stored(index.connect(&block));
        metrics::counter!("bss_btc_blocks_indexed_total").increment(1);
        changed = true;
        next += 1;
        if next.is_multiple_of(100) {
            publish(index, tx);
        }
    }
    if changed {
        publish(index, tx);
    }
    Ok(())
}
