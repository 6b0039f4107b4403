use super::collect::Refused;
use crate::telemetry::{counter, counter_of};
use metrics::Counter;

/// The attestation service's metrics.
#[derive(Clone)]
pub struct AttestMetrics {
    pub signed: Counter,
    pub received: Counter,
    pub certified: Counter,
    pub dropped: Counter,
}

impl AttestMetrics {
    pub fn register() -> Self {
        Self {
            signed: counter("bss_pop_attestations_signed_total", "Keystone statements this operator signed"),
            received: counter(
                "bss_pop_attestations_received_total",
                "Other operators' keystone signatures that verified and were kept",
            ),
            certified: counter(
                "bss_pop_certificates_total",
                "Keystone certificates (2f+1 signatures) this node assembled and stored",
            ),
            dropped: counter(
                "bss_pop_attestations_dropped_total",
                "Keystone signatures dropped because the sender's queue was full",
            ),
        }
    }

    /// `bss_pop_attestations_refused_total{reason}`.
    pub fn refused(&self, why: Refused) -> Counter {
        counter_of(
            "bss_pop_attestations_refused_total",
            "reason",
            why.label(),
            "Other operators' keystone signatures refused, by reason",
        )
    }
}
