use crate::telemetry::{counter, counter_of, gauge};
use metrics::{Counter, Gauge};

const DROPPED: &str = "bss_consensus_dropped_messages_total";
const DROPPED_HELP: &str = "Consensus messages dropped unverified, by reason";

/// The native engine's metrics.
#[derive(Clone)]
pub struct NativeMetrics {
    pub round: Gauge,
    pub leader: Gauge,
    pub votes_sent: Counter,
    pub votes_received: Counter,
    pub invalid_messages: Counter,
    pub refused_proposals: Counter,
    pub dropped_future_round: Counter,
    pub dropped_equivocating_vote: Counter,
    pub round_timer_fired: Counter,
    pub timeouts: Counter,
    pub refused_inclusion: Counter,
    pub awaiting_lists: Counter,
}

impl NativeMetrics {
    pub fn register() -> Self {
        Self {
            round: gauge("bss_consensus_round", "The round this replica is in"),
            leader: gauge("bss_consensus_leader", "The leader of the current round (operator index)"),
            votes_sent: counter("bss_consensus_votes_sent_total", "Votes this replica signed"),
            votes_received: counter("bss_consensus_votes_received_total", "Valid votes received"),
            invalid_messages: counter(
                "bss_consensus_invalid_messages_total",
                "Messages with a bad signature or certificate",
            ),
            refused_proposals: counter(
                "bss_consensus_refused_proposals_total",
                "Proposals this replica refused after validation",
            ),
            dropped_future_round: counter_of(DROPPED, "reason", "future_round", DROPPED_HELP),
            dropped_equivocating_vote: counter_of(DROPPED, "reason", "equivocating_vote", DROPPED_HELP),
            round_timer_fired: counter(
                "bss_consensus_round_timer_fired_total",
                "Round timer firings in the current round (a period without progress)",
            ),
            timeouts: counter("bss_consensus_timeouts_total", "Rounds this replica timed out"),
            refused_inclusion: counter(
                "bss_consensus_refused_inclusion_total",
                "Proposals refused because their embedded inclusion lists break the rule",
            ),
            awaiting_lists: counter(
                "bss_consensus_awaiting_lists_total",
                "Times this leader held its proposal back until 2f+1 inclusion lists arrived",
            ),
        }
    }
}
