use crate::telemetry::{counter, gauge, histogram};
use metrics::{Counter, Gauge, Histogram};

/// The chain service's metrics.
#[derive(Clone)]
pub struct ChainMetrics {
    pub height: Gauge,
    pub committed_blocks: Counter,
    pub committed_txs: Counter,
    pub committed_gas: Counter,
    pub commit_latency: Histogram,
    pub pending_blocks: Gauge,
    pub halted: Gauge,
    pub fork_guard_refusals: Counter,
    pub proposal_failures: Counter,
    pub btc_view_waits: Counter,
}

impl ChainMetrics {
    pub fn register() -> Self {
        Self {
            height: gauge("bss_block_height", "Height of the last committed L2 block"),
            committed_blocks: counter("bss_committed_blocks_total", "L2 blocks committed"),
            committed_txs: counter("bss_committed_txs_total", "Transactions in committed blocks"),
            committed_gas: counter("bss_committed_gas_total", "Gas used by committed blocks"),
            commit_latency: histogram(
                "bss_commit_latency_seconds",
                "From a block's timestamp (its proposal) to its commit here",
            ),
            pending_blocks: gauge("bss_chain_pending_blocks", "Uncommitted blocks the chain service holds"),
            halted: gauge("bss_consensus_halted", "1 when the fork guard refused the chain (no more commits)"),
            fork_guard_refusals: counter(
                "bss_fork_guard_refusals_total",
                "Blocks or stored chains the fork guard refused (they conflict with superfinal keystones)",
            ),
            proposal_failures: counter("bss_proposal_failures_total", "Proposals this operator failed to build"),
            btc_view_waits: counter(
                "bss_executor_btc_view_waits_total",
                "Certified blocks that waited for this node's Bitcoin view to reach their tip",
            ),
        }
    }
}
