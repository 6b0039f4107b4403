use crate::telemetry::{counter, gauge};
use metrics::{Counter, Gauge};

/// The mempool's metrics.
#[derive(Clone)]
pub struct MempoolMetrics {
    pub size: Gauge,
    pub bytes: Gauge,
    pub pending: Gauge,
    pub queued: Gauge,
    pub accepted: Counter,
    pub rejected: Counter,
    pub evicted: Counter,
    pub expired: Counter,
    pub dropped_invalid: Counter,
}

impl MempoolMetrics {
    pub fn register() -> Self {
        Self {
            size: gauge("bss_mempool_size", "Transactions in the pool"),
            bytes: gauge("bss_mempool_bytes", "Encoded bytes of the pooled transactions"),
            pending: gauge("bss_mempool_pending", "Pooled transactions ready for a block (no nonce gap)"),
            queued: gauge("bss_mempool_queued", "Pooled transactions waiting behind a nonce gap"),
            accepted: counter("bss_mempool_accepted_total", "Transactions admitted"),
            rejected: counter("bss_mempool_rejected_total", "Transactions refused by the pool's rules"),
            evicted: counter("bss_mempool_evicted_total", "Transactions evicted to make room"),
            expired: counter("bss_mempool_expired_total", "Queued transactions that expired"),
            dropped_invalid: counter(
                "bss_mempool_dropped_invalid_total",
                "Transactions dropped because a block builder found them invalid",
            ),
        }
    }
}
