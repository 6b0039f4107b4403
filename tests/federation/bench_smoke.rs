//! `bss bench` as a user runs it, briefly: it must start a federation, commit what it sends, and
//! leave summary.json with the documented fields.

use crate::support::*;
use serde_json::Value;
use std::process::Command;

#[test]
fn bss_bench_writes_a_summary() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("bench");
    let base = free_runs(4, &[0, 1000]);
    let run = Command::new(BSS)
        .args(["bench", "--nodes", "4", "--duration", "3s", "--rate", "300", "--senders", "50", "--threads", "2"])
        .args(["--base-port", &base.to_string(), "--out"])
        .arg(&out)
        .output()
        .expect("run bss bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "bss bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary")).expect("json");
    for key in ["committed_tps", "gas_per_s", "latency_ms_p50", "latency_ms_p99", "rejected"] {
        assert!(summary[key].is_number(), "summary.json lacks {key}: {summary}");
    }
    assert!(summary["machine"]["sig_recovery_per_sec_per_core"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(summary["machine"]["raw_revm_transfers_per_sec"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(summary["committed"], summary["sent"], "not everything sent was committed: {summary}");
    assert!(summary["committed_tps"].as_f64().unwrap_or(0.0) > 0.0);
    // The fee market is read off every block: 300 tx/s is far below the target gas, so the base
    // fee stays at its floor (1 gwei) and never prices the load out.
    let base_fee = summary["base_fee_gwei_max"].as_f64().unwrap_or(0.0);
    assert!((1.0..100.0).contains(&base_fee), "base fee {base_fee} gwei: {summary}");
    assert_eq!(summary["blocks_priced_out"], 0, "{summary}");
    assert!(out.join("timeline.svg").exists() && out.join("timeline.csv").exists());
    assert!(stdout.contains("committed tx/s"), "{stdout}");
}
