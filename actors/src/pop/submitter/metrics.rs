use crate::telemetry::{counter, gauge, histogram};
use metrics::{Counter, Gauge, Histogram};

/// The PoP submitter's metrics.
#[derive(Clone)]
pub struct PopMetrics {
    pub submitted: Counter,
    pub confirmed: Counter,
    pub fees_sats: Counter,
    pub rbf_bumps: Counter,
    pub unfunded: Counter,
    pub last_tx_vsize: Gauge,
    pub superfinality_seconds: Histogram,
    pub superfinality_btc_blocks: Histogram,
    pub rounds: Counter,
}

impl PopMetrics {
    pub fn register() -> Self {
        Self {
            submitted: counter("bss_pop_keystones_submitted_total", "Keystone txs this operator broadcast"),
            confirmed: counter("bss_pop_keystones_confirmed_total", "Keystone txs of this operator seen in Bitcoin"),
            fees_sats: counter("bss_pop_fees_sats_total", "Fees of this operator's confirmed keystone txs, sats"),
            rbf_bumps: counter("bss_pop_rbf_bumps_total", "Keystone txs replaced with a higher fee"),
            unfunded: counter("bss_pop_unfunded_total", "Keystones this operator had no coin to pay for"),
            last_tx_vsize: gauge("bss_pop_last_tx_vsize", "Virtual size of the last keystone tx, vB"),
            superfinality_seconds: histogram(
                "bss_pop_superfinality_seconds",
                "From a keystone block's commit to its superfinality",
            ),
            superfinality_btc_blocks: histogram(
                "bss_pop_superfinality_btc_blocks",
                "Bitcoin blocks from a keystone falling due to its superfinality",
            ),
            rounds: counter("bss_pop_rounds_total", "Submitter rounds (each after a due keystone or a new view)"),
        }
    }
}
