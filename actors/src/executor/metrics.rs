use crate::telemetry::{counter_of, histogram_of};
use metrics::{Counter, Histogram};

const EXECUTION: &str = "bss_execution_seconds";
const LEAVES: &str = "bss_state_leaves_total";
const LEAVES_HELP: &str =
    "State leaves added to or removed from the commitment, by whether their expansion was remembered from a recent block";
const EXECUTION_HELP: &str = "Time to execute a block: building a proposal or re-executing one";

/// The executor's metrics.
#[derive(Clone)]
pub struct ExecutorMetrics {
    pub build_seconds: Histogram,
    pub validate_seconds: Histogram,
    /// Transactions of proposals this node validated that its pool did not hold (decoded and
    /// their senders recovered during validation, on the critical path).
    pub unknown_proposal_txs: Counter,
    /// Blocks executed with the committed head's own changes as their bottom layer.
    pub warm_layer_hits: Counter,
    /// State leaves added to or removed from the commitment with a remembered expansion.
    pub leaves_remembered: Counter,
    /// State leaves expanded (32 blake3 output blocks each).
    pub leaves_expanded: Counter,
    pub restarts: Counter,
}

impl ExecutorMetrics {
    pub fn register() -> Self {
        Self {
            build_seconds: histogram_of(EXECUTION, "kind", "build", EXECUTION_HELP),
            validate_seconds: histogram_of(EXECUTION, "kind", "validate", EXECUTION_HELP),
            unknown_proposal_txs: counter_of(
                "bss_validate_unknown_txs_total",
                "source",
                "proposal",
                "Transactions of validated proposals that this node's pool did not hold (recovered while validating)",
            ),
            warm_layer_hits: counter_of(
                "bss_executor_warm_layer_total",
                "layer",
                "head",
                "Blocks executed on the committed head's changes kept in memory (their reads of what the head touched skip the store)",
            ),
            leaves_remembered: counter_of(LEAVES, "expansion", "remembered", LEAVES_HELP),
            leaves_expanded: counter_of(LEAVES, "expansion", "computed", LEAVES_HELP),
            restarts: counter_of(
                "bss_actor_restarts_total",
                "actor",
                "executor",
                "Restarts of a supervised part after a panic, by part",
            ),
        }
    }
}
