use crate::telemetry::{counter, gauge, histogram};
use metrics::{Counter, Gauge, Histogram};

/// The Bitcoin watcher's metrics.
#[derive(Clone)]
pub struct WatcherMetrics {
    pub rpc_up: Gauge,
    pub rpc_errors: Counter,
    pub tip_height: Gauge,
    pub reorgs: Counter,
    pub reorg_depth: Histogram,
    pub blocks_indexed: Counter,
    pub stale_fetched: Counter,
}

impl WatcherMetrics {
    pub fn register() -> Self {
        Self {
            rpc_up: gauge("bss_btc_rpc_up", "1 when the last call to the Bitcoin node succeeded"),
            rpc_errors: counter("bss_btc_rpc_errors_total", "Failed rounds with the Bitcoin node"),
            tip_height: gauge("bss_btc_tip_height", "Best Bitcoin height indexed"),
            reorgs: counter("bss_btc_reorgs_total", "Bitcoin reorgs the watcher rolled back"),
            reorg_depth: histogram("bss_btc_reorg_depth", "Blocks rolled back per Bitcoin reorg"),
            blocks_indexed: counter("bss_btc_blocks_indexed_total", "Bitcoin blocks indexed"),
            stale_fetched: counter(
                "bss_btc_stale_blocks_fetched_total",
                "Bitcoin blocks off the best chain fetched by hash for a certified L2 block",
            ),
        }
    }
}
