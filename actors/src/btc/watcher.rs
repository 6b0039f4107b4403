//! The BtcWatcher: a thread that follows a Bitcoin node's best chain over RPC, indexes every block
//! it fetches, rolls back and forward through reorgs of any depth, survives the node going away
//! (exponential backoff, a log line when it goes and when it comes back, metrics), and publishes
//! each new view as an immutable snapshot. Nothing waits on it: readers take the latest snapshot.
//!
//! Supervision: a panic restarts the loop after a backoff (`bss_actor_restarts_total{actor=
//! "btc_watcher"}`), reloading the index from disk; readers keep the last view it published.

use super::metrics::WatcherMetrics;
use bitcoin::BlockHash;
use bss_btc::index::BtcIndex;
use bss_btc::index_writer::{IndexError, IndexSink, IndexWriter};
use bss_btc::source::{BitcoinSource, SourceError};
use bss_btc::BtcView;
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
    /// Which forced-tx envelopes the index keeps (a node: its chain's, that decode).
    pub inbox: crate::btc::inbox::InboxFilter,
    /// Which keystones count: the index judges each sighting's certificate once, with these.
    pub keystones: Option<crate::btc::finality::KeystoneRules>,
}

/// Control of the watcher thread (fault injection for the supervision tests).
pub type WatcherHandle = crate::supervision::FaultSwitch;

/// Starts the watcher thread under its supervision policy; it stops once every `BtcView` is
/// dropped. The index resumes from what `reader`'s database holds (see `IndexWriter`).
/// The writer with the node's inbox filter and keystone rules.
fn with_rules(w: IndexWriter, cfg: &WatcherConfig) -> IndexWriter {
    let w = w.with_inbox_filter(cfg.inbox);
    match &cfg.keystones {
        Some(k) => w.with_keystone_rules(k.clone()),
        None => w,
    }
}

pub fn spawn(
    source: impl BitcoinSource,
    cfg: WatcherConfig,
    sink: IndexSink,
    reader: StoreReader,
) -> Result<(BtcView, WatcherHandle), IndexError> {
    let writer = with_rules(IndexWriter::open(sink.clone(), reader.clone(), cfg.start_height)?, &cfg);
    if let Some(h) = writer.best_height() {
        info!(target: "btc", best = h, start = cfg.start_height, "Bitcoin index resumed from disk");
    }
    let (tx, rx) = watch::channel(Arc::new(writer.view()));
    let (up_tx, up) = watch::channel(false);
    let (control, faults) = crate::supervision::FaultSwitch::new();
    let (want, wanted) = std::sync::mpsc::sync_channel(WANTED_QUEUE);
    let mut first = Some(writer);
    std::thread::Builder::new()
        .name("btc-watcher".into())
        .spawn(move || {
            crate::supervision::restart_on_panic("btc_watcher", Duration::from_millis(500), || {
                // A restart reloads the index from disk, where every connected block is.
                let writer = match first.take() {
                    Some(w) => w,
                    None => IndexWriter::open(sink.clone(), reader.clone(), cfg.start_height)
                        .map(|w| with_rules(w, &cfg))
                        .unwrap_or_else(|e| crate::fatal::stop("btc_watcher", format!("reopening the index: {e}"))),
                };
                run(&source, &cfg, writer, &tx, &up_tx, &faults, &wanted)
            })
        })
        .map_err(IndexError::Thread)?;
    Ok((BtcView::from_channels(rx, up).with_requests(want), control))
}

fn run(
    source: &impl BitcoinSource,
    cfg: &WatcherConfig,
    mut index: IndexWriter,
    tx: &watch::Sender<Arc<BtcIndex>>,
    up: &watch::Sender<bool>,
    faults: &crate::supervision::FaultTrigger,
    wanted: &std::sync::mpsc::Receiver<(u64, BlockHash)>,
) {
    let m = WatcherMetrics::register();
    let mut wait = cfg.poll_interval;
    let mut down_since: Option<std::time::Instant> = None;
    while !tx.is_closed() {
        faults.check("btc_watcher");
        let requests: Vec<_> = wanted.try_iter().take(WANTED_QUEUE).collect();
        for (height, hash) in &requests {
            if let Err(e) = fetch_stale(source, &mut index, *height, *hash, &m) {
                warn!(target: "btc", error = %e, %hash, "cannot fetch a Bitcoin block off the best chain by hash");
            }
        }
        if !requests.is_empty() {
            publish(&index, tx, &m);
        }
        match follow(source, &mut index, tx, &m) {
            Ok(()) => {
                if let Some(since) = down_since.take() {
                    info!(target: "btc", down_secs = since.elapsed().as_secs(), "bitcoin node reachable again");
                }
                m.rpc_up.set(1.0);
                up.send_replace(true);
                wait = cfg.poll_interval;
            }
            Err(e) => {
                m.rpc_errors.increment(1);
                m.rpc_up.set(0.0);
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

/// Requests for blocks off the best chain a watcher holds at most (more are dropped; the chain
/// asks again).
const WANTED_QUEUE: usize = 16;

/// Fetches the block `hash` at `height` off the best chain, and its ancestors down to the best
/// chain (at most `MAX_FORK_DEPTH`), and keeps them by hash. The hash comes from a certified L2
/// block; a block that does not hash to it, or whose merkle root does not match, is refused.
fn fetch_stale(
    source: &impl BitcoinSource,
    index: &mut IndexWriter,
    mut height: u64,
    mut hash: BlockHash,
    m: &WatcherMetrics,
) -> Result<(), SourceError> {
    for _ in 0..bss_btc::MAX_FORK_DEPTH {
        let view = index.view();
        if view.is_on_best_chain(height, &hash) || stored(index.has_stale(&hash)) || height < index.start_height() {
            return Ok(());
        }
        let block = source.block(&hash)?;
        if block.block_hash() != hash || !block.check_merkle_root() {
            return Err(SourceError::Decode(format!(
                "block {hash} does not hash to what was asked, or its merkle root is wrong"
            )));
        }
        stored(index.keep_stale(height, &block));
        m.stale_fetched.increment(1);
        info!(target: "btc", height, %hash, "kept a Bitcoin block off the best chain that a certified L2 block needs");
        let Some(below) = height.checked_sub(1) else { return Ok(()) };
        (height, hash) = (below, block.header.prev_blockhash);
    }
    Ok(())
}

fn publish(index: &IndexWriter, tx: &watch::Sender<Arc<BtcIndex>>, m: &WatcherMetrics) {
    if let Some(h) = index.best_height() {
        m.tip_height.set(h as f64);
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
    m: &WatcherMetrics,
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
        m.reorgs.increment(1);
        m.reorg_depth.record(depth as f64);
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
        m.blocks_indexed.increment(1);
        changed = true;
        next += 1;
        if next.is_multiple_of(100) {
            publish(index, tx, m);
        }
    }
    if changed {
        publish(index, tx, m);
    }
    Ok(())
}
