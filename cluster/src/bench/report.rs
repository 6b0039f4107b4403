//! The benchmark's outputs: a table on stdout, summary.json, timeline.csv and timeline.svg.

use super::observe::Second;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Clone, Serialize)]
pub struct NodeUsage {
    pub operator: usize,
    pub cpu_percent: f64,
    pub rss_mib_max: f64,
}

#[derive(Clone, Serialize)]
pub struct MachineLimits {
    pub cores: usize,
    /// Sender recoveries (decode + libsecp256k1 recovery) per second on one core.
    pub sig_recovery_per_sec_per_core: f64,
    /// ETH transfers per second through raw revm in memory, one core.
    pub raw_revm_transfers_per_sec: f64,
}

#[derive(Clone, Serialize)]
pub struct Summary {
    pub operators: usize,
    pub engine: String,
    pub kind: super::load::TxKindArg,
    pub senders: usize,
    /// Filler accounts in the started federation's genesis (`--accounts`).
    pub genesis_accounts: u64,
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub block_gas_limit: Option<u64>,
    pub batch: usize,
    pub sent: u64,
    pub rejected: u64,
    pub send_errors: u64,
    pub committed: u64,
    pub committed_tps: f64,
    pub gas_per_s: f64,
    pub blocks_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p90: f64,
    pub latency_ms_p99: f64,
    pub nodes: Vec<NodeUsage>,
    pub machine: MachineLimits,
    /// committed_tps × operators ÷ (signature recoveries/s on all cores): how close to the
    /// crypto ceiling, counting every operator's recovery of every sender.
    pub fraction_of_sig_recovery_limit: f64,
    /// committed_tps ÷ raw revm transfers/s: how close to the execution ceiling.
    pub fraction_of_raw_revm: f64,
    /// µs per committed tx per operator, by phase (started federations only).
    pub phase_us_per_tx: Option<super::phases::PhaseProfile>,
    /// `--catch-up`: a wiped operator syncing the chain back.
    pub catch_up: Option<super::catchup::CatchUp>,
    /// The highest base fee of the blocks watched, gwei.
    pub base_fee_gwei_max: f64,
    /// Blocks whose base fee was above the load's fee cap (100 gwei): the fee market, not the
    /// federation, held the load back in them.
    pub blocks_priced_out: u64,
}

pub fn table(s: &Summary) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "bss bench — {} operator(s), engine {}, {:?} txs, {} senders, {} genesis filler accounts",
        s.operators, s.engine, s.kind, s.senders, s.genesis_accounts
    );
    let rows: Vec<(&str, String)> = vec![
        ("committed tx/s", format!("{:.0}", s.committed_tps)),
        ("gas/s", format!("{:.0}", s.gas_per_s)),
        ("blocks/s", format!("{:.2}", s.blocks_per_s)),
        (
            "commit latency p50 / p90 / p99",
            format!("{:.0} / {:.0} / {:.0} ms", s.latency_ms_p50, s.latency_ms_p90, s.latency_ms_p99),
        ),
        (
            "sent / committed / rejected / errors",
            format!("{} / {} / {} / {}", s.sent, s.committed, s.rejected, s.send_errors),
        ),
        (
            "sig recovery limit (all cores)",
            format!(
                "{:.0} /s  → {:.1}% used",
                s.machine.sig_recovery_per_sec_per_core * s.machine.cores as f64,
                100.0 * s.fraction_of_sig_recovery_limit
            ),
        ),
        (
            "raw revm limit (one core)",
            format!("{:.0} /s  → {:.1}% used", s.machine.raw_revm_transfers_per_sec, 100.0 * s.fraction_of_raw_revm),
        ),
    ];
    let mut rows = rows;
    if let Some(p) = &s.phase_us_per_tx {
        rows.push((
            "µs per tx per operator",
            format!(
                "cpu {:.1}; wall: build {:.1}, validate {:.1}, block writes {:.1}; cpu − build − validate {:.1}",
                p.cpu_us_per_tx, p.build_us_per_tx, p.validate_us_per_tx, p.storage_commit_us_per_tx, p.other_us_per_tx
            ),
        ));
    }
    rows.push((
        "fee market",
        format!(
            "base fee peaked at {:.2} gwei; {} block(s) above the load's {} gwei cap",
            s.base_fee_gwei_max,
            s.blocks_priced_out,
            super::load::MAX_FEE_PER_GAS / 1_000_000_000
        ),
    ));
    for (k, v) in rows {
        let _ = writeln!(t, "  {k:<38} {v}");
    }
    if s.blocks_priced_out > 0 {
        let _ = writeln!(
            t,
            "  ! the base fee priced the load out of {} block(s): the offered gas is above the chain's target \
             (half the block gas limit), so EIP-1559 holds it to the target — this run measured the fee \
             market, not the federation; raise --gas-limit to measure the federation",
            s.blocks_priced_out
        );
    }
    if let Some(c) = &s.catch_up {
        let _ = writeln!(t, "  {:<38} {c}", format!("wiped operator {} catch-up", c.operator));
    }
    for n in &s.nodes {
        let _ =
            writeln!(t, "  operator {:<29} cpu {:>5.0}%   rss {:>6.0} MiB", n.operator, n.cpu_percent, n.rss_mib_max);
    }
    t
}

pub fn csv(timeline: &[Second]) -> String {
    let mut out = String::from("second,txs,gas,blocks,latency_ms_p50,latency_ms_p99\n");
    for s in timeline {
        let _ =
            writeln!(out, "{},{},{},{},{:.1},{:.1}", s.t, s.txs, s.gas, s.blocks, s.latency_ms_p50, s.latency_ms_p99);
    }
    out
}

/// A round tick step (1, 2 or 5 × 10^k) giving about `ticks` ticks up to `max`.
pub fn nice_step(max: f64, ticks: f64) -> f64 {
    let raw = (max / ticks).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    let r = raw / magnitude;
    let m = if r <= 1.0 {
        1.0
    } else if r <= 2.0 {
        2.0
    } else if r <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * magnitude
}

/// Horizontal grid lines with round-number labels from 0 to `max` every `step`, between `x`
/// (left, right), at heights `y(value)`.
pub fn y_grid(g: &mut String, x: (f64, f64), max: f64, step: f64, y: &dyn Fn(f64) -> f64) {
    let decimals = if step >= 1.0 { 0 } else { 2 };
    let mut v = 0.0;
    while v <= max + step / 2.0 {
        let _ = write!(
            g,
            r##"<line x1="{0}" y1="{1:.1}" x2="{2}" y2="{1:.1}" stroke="#ddd"/><text x="{3}" y="{4:.1}" font-size="11" text-anchor="end">{v:.5$}</text>"##,
            x.0,
            y(v),
            x.1,
            x.0 - 4.0,
            y(v) + 4.0,
            decimals,
        );
        v += step;
    }
}

/// Two stacked line charts: committed tx/s (with the offered rate dashed, when there is one),
/// and p50/p99 commit latency, per second; round-number ticks on both axes.
pub fn svg(timeline: &[Second], title: &str, offered: Option<f64>) -> String {
    let (w, h, pad) = (900.0, 260.0, 60.0);
    let n = timeline.len().max(2) as f64;
    let x = |t: f64| pad + (w - 2.0 * pad) * t / (n - 1.0);
    let chart = |top: f64, series: &[(&str, &str, Vec<f64>)], unit: &str, level: Option<f64>| -> String {
        let top_value = series.iter().flat_map(|s| s.2.iter().copied()).chain(level).fold(1.0, f64::max);
        let step = nice_step(top_value, 5.0);
        let max = (top_value / step).ceil() * step;
        let y = |v: f64| top + h - pad - (h - 2.0 * pad) * v / max;
        let mut g = format!(
            r#"<line x1="{pad}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{pad}" y1="{}" x2="{pad}" y2="{}" stroke="black"/>"#,
            top + h - pad,
            w - pad,
            top + h - pad,
            top + pad,
            top + h - pad
        );
        y_grid(&mut g, (pad, w - pad), max, step, &y);
        let t_step = nice_step(n - 1.0, 10.0).max(1.0);
        let mut t = 0.0;
        while t <= n - 1.0 {
            let _ = write!(
                g,
                r#"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="black"/><text x="{0:.1}" y="{3}" font-size="11" text-anchor="middle">{t} s</text>"#,
                x(t),
                top + h - pad,
                top + h - pad + 4.0,
                top + h - pad + 16.0,
            );
            t += t_step;
        }
        let _ = write!(g, r#"<text x="{}" y="{}" font-size="12">{unit}</text>"#, pad, top + pad - 10.0);
        if let Some(level) = level {
            let _ = write!(
                g,
                r##"<line x1="{pad}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#888" stroke-dasharray="6 4"/><text x="{2}" y="{3:.1}" font-size="11" fill="#555">offered {level:.0} tx/s</text>"##,
                y(level),
                w - pad,
                pad + 6.0,
                y(level) - 4.0,
            );
        }
        for (i, (name, color, values)) in series.iter().enumerate() {
            let pts: Vec<String> =
                values.iter().enumerate().map(|(j, v)| format!("{:.1},{:.1}", x(j as f64), y(*v))).collect();
            let _ =
                write!(g, r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#, pts.join(" "));
            let _ = write!(
                g,
                r#"<text x="{}" y="{}" font-size="12" fill="{color}">{name}</text>"#,
                w - pad - 120.0,
                top + pad + 14.0 * i as f64
            );
        }
        g
    };
    let tps: Vec<f64> = timeline.iter().map(|s| s.txs as f64).collect();
    let p50: Vec<f64> = timeline.iter().map(|s| s.latency_ms_p50).collect();
    let p99: Vec<f64> = timeline.iter().map(|s| s.latency_ms_p99).collect();
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="{pad}" y="20" font-size="14">{title}</text>{}{}<text x="{}" y="{}" font-size="11">seconds since the load started</text></svg>"#,
        2.0 * h + 30.0,
        chart(20.0, &[("committed tx/s", "#1f77b4", tps)], "tx/s", offered),
        chart(h + 10.0, &[("p50 latency", "#2ca02c", p50), ("p99 latency", "#d62728", p99)], "ms", None),
        w / 2.0 - 60.0,
        2.0 * h + 25.0,
    )
}

pub fn write_summary(dir: &Path, s: &Summary) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(s).map_err(std::io::Error::other)?)
}

pub fn write_all(dir: &Path, s: &Summary, timeline: &[Second]) -> std::io::Result<()> {
    write_summary(dir, s)?;
    std::fs::write(dir.join("timeline.csv"), csv(timeline))?;
    let title = format!("bss bench: {} operators, {:?}, {:.0} tx/s committed", s.operators, s.kind, s.committed_tps);
    std::fs::write(dir.join("timeline.svg"), svg(timeline, &title, s.target_rate))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(nice_step(4_713.0, 5.0), 1_000.0);
        assert_eq!(nice_step(30.0, 10.0), 5.0);
        assert_eq!(nice_step(1_900.0, 5.0), 500.0);
        assert_eq!(nice_step(0.8, 5.0), 0.2);
    }

    #[test]
    fn the_timeline_labels_seconds_and_draws_the_offered_rate() {
        let timeline: Vec<Second> = (0..31)
            .map(|t| Second {
                t,
                txs: 4_700 + t * 3,
                gas: 0,
                blocks: 5,
                latency_ms_p50: 900.0,
                latency_ms_p99: 1_700.0,
            })
            .collect();
        let svg = svg(&timeline, "test", Some(5_000.0));
        for label in ["offered 5000 tx/s", ">10 s<", ">30 s<", ">1000<", ">5000<", ">2000<"] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert_eq!(svg.matches("offered").count(), 1, "one offered-rate line, on the tx/s chart");
    }
}
