//! `bss bench --repeat R [--sweep nodes=4,7,10 | --sweep accounts=0,100000,1000000]`: every point
//! runs R times, each on a fresh federation, and is reported as the median with its spread (this
//! machine is noisy: one run proves little). Writes `scale.json` and `scale.svg` (committed tx/s
//! and p99 latency against the swept value, medians joined, min–max bars) next to the runs.

use super::report::{nice_step, y_grid, Summary};
use eyre::{bail, Result};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    /// Operators in the federation.
    Nodes,
    /// Genesis filler accounts (the state's size).
    Accounts,
}

impl Axis {
    pub fn name(self) -> &'static str {
        match self {
            Axis::Nodes => "nodes",
            Axis::Accounts => "accounts",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sweep {
    pub axis: Axis,
    pub values: Vec<u64>,
}

/// `nodes=4,7,10` or `accounts=0,1000000`.
pub fn parse(s: &str) -> Result<Sweep> {
    let Some((name, list)) = s.split_once('=') else { bail!("--sweep takes nodes=A,B,… or accounts=A,B,…") };
    let axis = match name.trim() {
        "nodes" => Axis::Nodes,
        "accounts" => Axis::Accounts,
        other => bail!("--sweep: unknown axis {other:?} (nodes or accounts)"),
    };
    let values: Vec<u64> = list
        .split(',')
        .map(|v| v.trim().replace('_', "").parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|e| eyre::eyre!("--sweep {name}: {e}"))?;
    if values.is_empty() || (axis == Axis::Nodes && values.iter().any(|n| !(1..=64).contains(n))) {
        bail!("--sweep {name}: give one or more values (operators: 1 to 64)");
    }
    Ok(Sweep { axis, values })
}

/// The median of some runs and their extremes.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn spread(mut v: Vec<f64>) -> Spread {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return Spread { median: 0.0, min: 0.0, max: 0.0 };
    }
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 };
    Spread { median, min: v[0], max: v[v.len() - 1] }
}

#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// The swept value (None without --sweep).
    pub value: Option<u64>,
    pub runs: usize,
    pub committed_tps: Spread,
    pub latency_ms_p50: Spread,
    pub latency_ms_p99: Spread,
    /// The largest operator RSS of each run.
    pub rss_mib_max: Spread,
    /// Mean CPU of one operator process over each run, % of one core.
    pub cpu_percent_per_operator: Spread,
}

pub fn point(value: Option<u64>, runs: &[Summary]) -> Point {
    let of = |f: &dyn Fn(&Summary) -> f64| spread(runs.iter().map(f).collect());
    Point {
        value,
        runs: runs.len(),
        committed_tps: of(&|s| s.committed_tps),
        latency_ms_p50: of(&|s| s.latency_ms_p50),
        latency_ms_p99: of(&|s| s.latency_ms_p99),
        rss_mib_max: of(&|s| s.nodes.iter().map(|n| n.rss_mib_max).fold(0.0, f64::max)),
        cpu_percent_per_operator: of(&|s| {
            s.nodes.iter().map(|n| n.cpu_percent).sum::<f64>() / s.nodes.len().max(1) as f64
        }),
    }
}

pub fn table(axis: Option<Axis>, points: &[Point]) -> String {
    let mut t = String::new();
    let head = axis.map_or("", Axis::name);
    let _ = writeln!(
        t,
        "{head:>10}  {:>26}  {:>24}  {:>24}  {:>18}  runs",
        "committed tx/s (min–max)", "p50 ms (min–max)", "p99 ms (min–max)", "max RSS MiB"
    );
    let f = |s: &Spread| format!("{:.0} ({:.0}–{:.0})", s.median, s.min, s.max);
    for p in points {
        let _ = writeln!(
            t,
            "{:>10}  {:>26}  {:>24}  {:>24}  {:>18}  {}",
            p.value.map_or("—".into(), |v| v.to_string()),
            f(&p.committed_tps),
            f(&p.latency_ms_p50),
            f(&p.latency_ms_p99),
            f(&p.rss_mib_max),
            p.runs
        );
    }
    t
}

/// Two panels side by side: committed tx/s and p99 latency against the swept value.
pub fn svg(axis: Axis, points: &[Point]) -> String {
    let (w, h, pad) = (440.0, 300.0, 60.0);
    let n = points.len().max(1) as f64;
    let x = |i: usize| pad + (w - 2.0 * pad) * (i as f64 + 0.5) / n;
    let panel = |left: f64, title: &str, get: &dyn Fn(&Point) -> Spread, color: &str| -> String {
        let top = points.iter().map(|p| get(p).max).fold(1.0, f64::max);
        let step = nice_step(top, 5.0);
        let max = (top / step).ceil() * step;
        let y = |v: f64| h - pad - (h - 2.0 * pad) * v / max;
        let mut g = format!(
            r#"<g transform="translate({left},0)"><text x="{pad}" y="30" font-size="13">{title}</text><line x1="{pad}" y1="{0}" x2="{1}" y2="{0}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{0}" stroke="black"/>"#,
            h - pad,
            w - pad
        );
        y_grid(&mut g, (pad, w - pad), max, step, &y);
        let mut line = vec![];
        for (i, p) in points.iter().enumerate() {
            let s = get(p);
            let _ = write!(
                g,
                r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{color}"/><circle cx="{0:.1}" cy="{3:.1}" r="4" fill="{color}"/><text x="{0:.1}" y="{4}" font-size="11" text-anchor="middle">{5}</text>"#,
                x(i),
                y(s.min),
                y(s.max),
                y(s.median),
                h - pad + 16.0,
                p.value.map_or("—".into(), |v| v.to_string())
            );
            line.push(format!("{:.1},{:.1}", x(i), y(s.median)));
        }
        let _ = write!(
            g,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/><text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text></g>"#,
            line.join(" "),
            w / 2.0,
            h - pad + 34.0,
            axis.name()
        );
        g
    };
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{h}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{}{}</svg>"#,
        2.0 * w,
        panel(0.0, "committed tx/s (median, min–max)", &|p| p.committed_tps, "#1f77b4"),
        panel(w, "p99 commit latency, ms", &|p| p.latency_ms_p99, "#d62728"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_parse_and_refuse_nonsense() {
        assert_eq!(parse("nodes=4,7,10").expect("ok"), Sweep { axis: Axis::Nodes, values: vec![4, 7, 10] });
        assert_eq!(parse("accounts=0,1_000_000").expect("ok").values, vec![0, 1_000_000]);
        for bad in ["nodes", "size=1", "nodes=", "nodes=0", "nodes=4,x"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spreads_are_medians_with_extremes() {
        let s = spread(vec![5.0, 1.0, 3.0]);
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
        assert_eq!(spread(vec![1.0, 2.0, 4.0, 10.0]).median, 3.0);
    }

    #[test]
    fn the_scale_plot_has_a_point_and_a_bar_per_value() {
        let s = |v: f64| Spread { median: v, min: v * 0.9, max: v * 1.1 };
        let points: Vec<Point> = [(4, 5_000.0), (7, 3_900.0), (10, 2_800.0)]
            .into_iter()
            .map(|(n, tps)| Point {
                value: Some(n),
                runs: 3,
                committed_tps: s(tps),
                latency_ms_p50: s(800.0),
                latency_ms_p99: s(1_500.0),
                rss_mib_max: s(200.0),
                cpu_percent_per_operator: s(40.0),
            })
            .collect();
        let svg = svg(Axis::Nodes, &points);
        assert_eq!(svg.matches("<circle").count(), 6, "three medians on each panel");
        for label in [">4<", ">7<", ">10<", ">nodes<", ">6000<", "p99 commit latency"] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert!(table(Some(Axis::Nodes), &points).contains("5000 (4500–5500)"));
    }
}
