//! The one way a node stops on a failure it cannot recover from: a storage write that failed, a
//! safety rule that would be broken, a critical actor (the mempool) that died. Every such path
//! in every crate calls [`stop`], so the log line, the metric and the exit code are the same.

/// The exit code of a node stopped by a fatal error (README: "Exit codes").
pub const EXIT_FATAL: i32 = 2;

/// Logs the reason, counts it in `bss_fatal_errors_total{subsystem}` and ends the process with
/// [`EXIT_FATAL`]. It does not return: nothing after a fatal error may sign or write.
pub fn stop(subsystem: &'static str, reason: impl std::fmt::Display) -> ! {
    tracing::error!(target: "fatal", subsystem, reason = %reason, exit_code = EXIT_FATAL, "fatal: stopping the node");
    metrics::counter!("bss_fatal_errors_total", "subsystem" => subsystem).increment(1);
    eprintln!("bss: fatal error in {subsystem}: {reason} (exit code {EXIT_FATAL})");
    std::process::exit(EXIT_FATAL)
}
