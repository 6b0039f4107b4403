//! CPU and memory of the operator processes, from /proc (Linux).

#[derive(Clone, Copy, Default)]
pub struct Sample {
    /// utime + stime, clock ticks.
    pub ticks: u64,
    pub rss_kib: u64,
}

/// Linux reports CPU time in USER_HZ, which is 100 on every mainstream platform.
const TICKS_PER_SEC: f64 = 100.0;

pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(Sample { ticks: utime + stime, rss_kib })
}

/// CPU use in percent of one core between two samples `secs` apart.
pub fn cpu_percent(a: Sample, b: Sample, secs: f64) -> f64 {
    (b.ticks.saturating_sub(a.ticks)) as f64 / TICKS_PER_SEC / secs.max(1e-9) * 100.0
}
