//! A short seeded `bss chaos` run (the long runs are `bss chaos --duration 10m --seed N`):
//! kills, restarts, pauses and resumes operators under load, then checks liveness after the
//! heal, one block per height on every operator, and that every acknowledged tx committed.

use crate::support::*;
use std::process::Command;

#[test]
fn seeded_chaos_sample_keeps_the_invariants() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = Command::new(BSS)
        .args(["chaos", "--nodes", "4", "--duration", "10s", "--seed", "11", "--rate", "10"])
        .args(["--base-port", &free_runs(4, &[0, 1000]).to_string(), "--out"])
        .arg(dir.path().join("chaos"))
        .output()
        .expect("run bss chaos");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "bss chaos failed:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("invariants hold"), "{stdout}");
    assert!(
        stdout.contains("kill -9") || stdout.contains("SIGSTOP") || stdout.contains("byzantine:"),
        "no faults were injected:\n{stdout}"
    );
}
