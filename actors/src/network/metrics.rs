use crate::telemetry::{counter, counter_of, gauge};
use metrics::{Counter, Gauge};

const DROPPED: &str = "bss_network_dropped_total";
const DROPPED_HELP: &str = "Messages dropped instead of queued, by reason";

/// The network's metrics (handshake and bad-frame reasons are labelled where they happen).
#[derive(Clone)]
pub struct NetworkMetrics {
    pub peers: Gauge,
    pub frames_out: Counter,
    pub gossip_txs_in: Counter,
    pub dropped_not_connected: Counter,
    pub dropped_peer_bytes: Counter,
    pub dropped_queue_full: Counter,
    pub dropped_consensus_busy: Counter,
    pub dropped_engine_busy: Counter,
    pub dropped_other_engine: Counter,
    pub dropped_gossip_busy: Counter,
}

impl NetworkMetrics {
    pub fn register() -> Self {
        let dropped = |reason| counter_of(DROPPED, "reason", reason, DROPPED_HELP);
        Self {
            peers: gauge("bss_network_peers", "Operators connected"),
            frames_out: counter("bss_network_frames_out_total", "Frames queued to operators"),
            gossip_txs_in: counter("bss_gossip_txs_in_total", "Transactions received by gossip"),
            dropped_not_connected: dropped("not_connected"),
            dropped_peer_bytes: dropped("peer_bytes"),
            dropped_queue_full: dropped("queue_full"),
            dropped_consensus_busy: dropped("consensus_busy"),
            dropped_engine_busy: dropped("engine_busy"),
            dropped_other_engine: dropped("other_engine"),
            dropped_gossip_busy: dropped("gossip_busy"),
        }
    }
}
