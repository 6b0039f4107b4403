//! Where an operator's time per transaction goes during a bench run: its CPU per committed tx
//! (from /proc), and the timed phases its own `/metrics` expose — building proposals, re-executing
//! them, writing each block's batch — as the difference of their `_sum`s between the load's start
//! and end, divided by the txs committed meanwhile. What the phases leave of the CPU is decode,
//! sender recovery, admission, gossip, consensus, signatures and RPC.

use serde::Serialize;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The phase sums of one operator at one moment, seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseSums {
    pub build: f64,
    pub validate: f64,
    pub storage_commit: f64,
}

/// µs per committed tx, averaged over the operators. The phases are wall time: on a starved
/// machine they include waiting for a core, and `other` (CPU less build and validate) is then a
/// lower bound.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseProfile {
    pub cpu_us_per_tx: f64,
    pub build_us_per_tx: f64,
    pub validate_us_per_tx: f64,
    /// Wall time of the block writes (it includes waiting for the disk).
    pub storage_commit_us_per_tx: f64,
    /// CPU not in the timed phases: decode, recovery, admission, gossip, consensus, RPC.
    pub other_us_per_tx: f64,
}

fn get_metrics(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The value of the series whose line starts with `series` (name and labels, exactly).
fn value(text: &str, series: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok())).unwrap_or(0.0)
}

pub fn parse(text: &str) -> PhaseSums {
    PhaseSums {
        build: value(text, "bss_execution_seconds_sum{kind=\"build\"}"),
        validate: value(text, "bss_execution_seconds_sum{kind=\"validate\"}"),
        storage_commit: value(text, "bss_storage_commit_seconds_sum"),
    }
}

pub fn sample(rpc: &[String]) -> Vec<PhaseSums> {
    rpc.iter().map(|a| get_metrics(a).map(|t| parse(&t)).unwrap_or_default()).collect()
}

/// The profile between two samples of every operator, with each one's CPU seconds meanwhile.
pub fn profile(start: &[PhaseSums], end: &[PhaseSums], cpu_seconds: &[f64], committed: u64) -> Option<PhaseProfile> {
    let n = start.len().min(end.len()).min(cpu_seconds.len());
    if n == 0 || committed == 0 {
        return None;
    }
    let per_tx = |total: f64| total / n as f64 / committed as f64 * 1e6;
    let delta = |f: fn(&PhaseSums) -> f64| (0..n).map(|i| (f(&end[i]) - f(&start[i])).max(0.0)).sum::<f64>();
    let (build, validate, storage) = (delta(|p| p.build), delta(|p| p.validate), delta(|p| p.storage_commit));
    let cpu: f64 = cpu_seconds[..n].iter().sum();
    Some(PhaseProfile {
        cpu_us_per_tx: per_tx(cpu),
        build_us_per_tx: per_tx(build),
        validate_us_per_tx: per_tx(validate),
        storage_commit_us_per_tx: per_tx(storage),
        other_us_per_tx: per_tx((cpu - build - validate).max(0.0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_come_from_the_sums_and_divide_by_committed_txs() {
        let text = "# TYPE bss_execution_seconds summary\nbss_execution_seconds{kind=\"build\",quantile=\"0.5\"} 0.01\nbss_execution_seconds_sum{kind=\"build\"} 2.5\nbss_execution_seconds_sum{kind=\"validate\"} 6\nbss_storage_commit_seconds_sum 1.5\n";
        let p = parse(text);
        assert_eq!((p.build, p.validate, p.storage_commit), (2.5, 6.0, 1.5));
        let start = [PhaseSums::default(); 2];
        let end = [p, p];
        // 2 operators, 10 s of CPU each, 100,000 txs: 100 µs of CPU per tx per operator.
        let prof = profile(&start, &end, &[10.0, 10.0], 100_000).expect("profile");
        assert_eq!(prof.cpu_us_per_tx, 100.0);
        assert_eq!((prof.build_us_per_tx, prof.validate_us_per_tx, prof.storage_commit_us_per_tx), (25.0, 60.0, 15.0));
        assert_eq!(prof.other_us_per_tx, 15.0);
        assert!(profile(&start, &end, &[1.0, 1.0], 0).is_none());
    }
}
