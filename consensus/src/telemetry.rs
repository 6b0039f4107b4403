//! Metrics as typed handles: each subsystem declares its metrics once, in a struct built by
//! its `register()` (name, help text shown on `/metrics`, labels), and holds the handles. A
//! name appears in exactly one place, so a metric cannot be exported twice under two names.
//!
//! Handles talk to the recorder installed when they are built: the node installs it
//! (`bss_actors::node::metrics_handle`) before any part starts. Shared by every crate.

use metrics::{Counter, Gauge, Histogram};

pub fn counter(name: &'static str, help: &'static str) -> Counter {
    metrics::describe_counter!(name, help);
    metrics::counter!(name)
}

/// One labelled series of a counter (e.g. `reason="queue_full"`).
pub fn counter_of(name: &'static str, label: &'static str, value: &'static str, help: &'static str) -> Counter {
    metrics::describe_counter!(name, help);
    metrics::counter!(name, label => value)
}

pub fn gauge(name: &'static str, help: &'static str) -> Gauge {
    metrics::describe_gauge!(name, help);
    metrics::gauge!(name)
}

pub fn histogram(name: &'static str, help: &'static str) -> Histogram {
    metrics::describe_histogram!(name, help);
    metrics::histogram!(name)
}

pub fn histogram_of(name: &'static str, label: &'static str, value: &'static str, help: &'static str) -> Histogram {
    metrics::describe_histogram!(name, help);
    metrics::histogram!(name, label => value)
}
