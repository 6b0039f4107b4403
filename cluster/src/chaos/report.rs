//! A campaign's results: the per-run table, `summary.json` and `timeline.svg`.

use super::run::RunReport;
use eyre::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub samples: usize,
}

#[derive(Serialize)]
pub struct Summary {
    pub runs: usize,
    pub failed_runs: Vec<u64>,
    pub safety_violations: usize,
    pub liveness_violations: usize,
    pub lost_acked_txs: usize,
    pub acked_txs: usize,
    /// With `--tunnel`: withdrawals requested, and tunnel invariant violations.
    pub withdrawals: u64,
    pub tunnel_violations: usize,
    /// Txs an operator's storage holds more than once (also counted as safety violations).
    pub duplicated_txs: usize,
    /// Faults whose victim misbehaved (a full disk that did not stop its operator loudly).
    pub fault_violations: usize,
    /// The highest block held superfinal and checked unchanged, over the runs.
    pub superfinal_checked: u64,
    /// Fault kind (`kill`, `pause`, `byzantine:MODE`) → injections.
    pub faults: BTreeMap<String, usize>,
    /// Fault kind → recovery time percentiles, ms (heal until the operator serves the head).
    pub recovery_ms: BTreeMap<String, Percentiles>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}

pub fn summarize(reports: &[RunReport]) -> Summary {
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    let mut times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for f in reports.iter().flat_map(|r| &r.faults) {
        *faults.entry(f.kind.clone()).or_default() += 1;
        if let Some(ms) = f.recovery_ms {
            times.entry(f.kind.clone()).or_default().push(ms);
        }
    }
    let recovery_ms = times
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            (k, Percentiles { p50: percentile(&v, 50.0), p99: percentile(&v, 99.0), samples: v.len() })
        })
        .collect();
    Summary {
        runs: reports.len(),
        failed_runs: reports.iter().filter(|r| r.failed()).map(|r| r.seed).collect(),
        safety_violations: reports.iter().map(|r| r.safety_violations.len()).sum(),
        liveness_violations: reports.iter().filter(|r| r.liveness_violation.is_some()).count(),
        lost_acked_txs: reports.iter().map(|r| r.lost_acked_txs).sum(),
        acked_txs: reports.iter().map(|r| r.acked_txs).sum(),
        withdrawals: reports.iter().map(|r| r.withdrawals).sum(),
        tunnel_violations: reports.iter().map(|r| r.tunnel_violations.len()).sum(),
        duplicated_txs: reports.iter().map(|r| r.duplicated_txs).sum(),
        fault_violations: reports.iter().map(|r| r.fault_violations.len()).sum(),
        superfinal_checked: reports.iter().map(|r| r.superfinal_checked).max().unwrap_or(0),
        faults,
        recovery_ms,
    }
}

pub fn table(reports: &[RunReport], s: &Summary) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "{:>6}  {:<58} {:>10}  recovery (ms)", "seed", "faults", "violations");
    for r in reports {
        let kinds: Vec<String> = r
            .faults
            .iter()
            .map(|f| match f.operator {
                Some(o) => format!("{}@{o}", f.kind),
                None => f.kind.clone(),
            })
            .collect();
        let rec: Vec<String> =
            r.faults.iter().map(|f| f.recovery_ms.map_or("—".into(), |m| format!("{m:.0}"))).collect();
        let violations = r.safety_violations.len()
            + usize::from(r.liveness_violation.is_some())
            + r.lost_acked_txs
            + r.tunnel_violations.len()
            + r.fault_violations.len();
        let _ = writeln!(t, "{:>6}  {:<58} {:>10}  {}", r.seed, kinds.join(" "), violations, rec.join(" "));
        for v in r
            .safety_violations
            .iter()
            .chain(&r.liveness_violation)
            .chain(&r.tunnel_violations)
            .chain(&r.fault_violations)
        {
            let _ = writeln!(t, "        ! {v}");
        }
    }
    let _ = writeln!(
        t,
        "{} run(s): {} safety violations, {} liveness violations, {} of {} acknowledged txs lost, {} txs committed twice, {} faults mishandled",
        s.runs, s.safety_violations, s.liveness_violations, s.lost_acked_txs, s.acked_txs, s.duplicated_txs, s.fault_violations
    );
    if s.withdrawals > 0 || s.tunnel_violations > 0 {
        let _ = writeln!(
            t,
            "tunnel: {} withdrawals, all paid after the heal and the invariant held throughout unless counted here: {} violations",
            s.withdrawals, s.tunnel_violations
        );
    }
    for (k, p) in &s.recovery_ms {
        let _ = writeln!(t, "  {k:<26} ×{:<4} recovery p50 {:>7.0} ms  p99 {:>7.0} ms", s.faults[k], p.p50, p.p99);
    }
    t
}

pub fn write(out: &Path, s: &Summary, reports: &[RunReport]) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let runs: Vec<&RunReport> = reports.iter().collect();
    let json = serde_json::json!({ "summary": s, "runs": runs });
    // The summary's fields at the top level, the runs beside them.
    let mut top = serde_json::to_value(s)?;
    top["run_reports"] = json["runs"].clone();
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&top)?)?;
    std::fs::write(out.join("timeline.svg"), timeline_svg(reports))?;
    Ok(())
}

/// Commit rate over time per run (up to 12 runs, stacked), with a band per fault.
fn timeline_svg(reports: &[RunReport]) -> String {
    let (w, h, left) = (900.0, 120.0, 60.0);
    let shown: Vec<&RunReport> = reports.iter().take(12).collect();
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n",
        h * shown.len().max(1) as f64 + 20.0
    );
    for (row, r) in shown.iter().enumerate() {
        let y0 = row as f64 * h + 10.0;
        let end = r.heights.last().map_or(1.0, |p| p.0).max(1.0);
        // Blocks per second over 1 s windows.
        let mut rates: Vec<(f64, f64)> = vec![];
        let mut i = 0;
        for j in 0..r.heights.len() {
            while r.heights[j].0 - r.heights[i].0 > 1.0 {
                i += 1;
            }
            let dt = (r.heights[j].0 - r.heights[i].0).max(0.1);
            rates.push((r.heights[j].0, r.heights[j].1.saturating_sub(r.heights[i].1) as f64 / dt));
        }
        let max_rate = rates.iter().map(|p| p.1).fold(1.0, f64::max).ceil();
        let x = |t: f64| left + t / end * (w - left - 10.0);
        let y = |v: f64| y0 + (h - 25.0) * (1.0 - v / max_rate);
        for f in &r.faults {
            let (a, b) = (x(f.injected_s), x(f.healed_s.unwrap_or(end)));
            let _ = writeln!(
                svg,
                "<rect x=\"{a:.1}\" y=\"{y0:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f4a\" fill-opacity=\"0.18\"><title>{}@{}</title></rect>",
                (b - a).max(1.0),
                h - 25.0,
                f.kind,
                f.operator.map_or("bitcoin".to_string(), |o| o.to_string())
            );
            let _ = writeln!(svg, "<text x=\"{a:.1}\" y=\"{:.1}\" fill=\"#a05\">{}</text>", y0 + 10.0, f.kind);
        }
        let points: Vec<String> = rates.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"#036\" stroke-width=\"1.2\" points=\"{}\"/>",
            points.join(" ")
        );
        let _ = writeln!(
            svg,
            "<text x=\"2\" y=\"{:.1}\">seed {}</text><text x=\"2\" y=\"{:.1}\">{max_rate:.0} blk/s</text><text x=\"{:.1}\" y=\"{:.1}\">{end:.0} s</text>",
            y0 + 12.0,
            r.seed,
            y0 + 26.0,
            w - 40.0,
            y0 + h - 12.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
