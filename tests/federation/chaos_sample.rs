//! A short seeded `bss chaos` run that covers every fault kind (the long campaign is
//! `bss chaos --runs 200 --duration 20s --seed N`): kills, pauses, network faults through the
//! harness's link proxies (an operator isolated, its outbound dropped, its links delayed with
//! jitter, 5–20 % loss), clock skew within and beyond the allowed drift, Bitcoin faults (a reorg within the lag and one deeper, the Bitcoin node down, its RPC slow) and Byzantine
//! restarts under
//! load, then liveness after the heal, one block per height on every operator, every
//! acknowledged tx committed, and the campaign's summary.json and timeline.svg. A third sample
//! runs the docker backend: the operators in containers of an image built from this binary. With `--tunnel`:
//! BTC tunnel traffic on the embedded regtest, the tunnel invariant sampled on every operator
//! throughout, and every withdrawal paid after the heal.

use crate::support::*;
use std::process::Command;

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
}

#[test]
fn seeded_chaos_sample_covers_every_fault_kind_and_keeps_the_invariants() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("chaos");
    let run = Command::new(BSS)
        .args(["chaos", "--nodes", "4", "--duration", "10s", "--seed", "11", "--rate", "100", "--tunnel"])
        .args(["--base-port", &free_runs(4, &[0, 1000, 2000]).to_string(), "--out"])
        .arg(&out)
        .output()
        .expect("run bss chaos");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "bss chaos failed:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("invariants hold"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary.json")).expect("json");
    assert_eq!(summary["runs"], 1);
    assert_eq!(summary["safety_violations"], 0);
    assert_eq!(summary["lost_acked_txs"], 0);
    assert_eq!(summary["tunnel_violations"], 0, "{stdout}");
    assert!(summary["withdrawals"].as_u64() >= Some(1), "no withdrawal during the run:\n{stdout}");
    // The checker read every operator's storage back: no tx twice, no mishandled fault, and
    // keystones made blocks superfinal that it held fixed.
    assert_eq!((summary["duplicated_txs"].clone(), summary["fault_violations"].clone()), (0.into(), 0.into()));
    assert!(summary["superfinal_checked"].as_u64() > Some(0), "nothing superfinal to check:\n{stdout}");
    assert!(stdout.contains("read back from every operator's storage"), "{stdout}");
    for kind in [
        "kill",
        "pause",
        "partition",
        "oneway",
        "delay",
        "loss",
        "clock_skew",
        "clock_skew_beyond",
        "btc_reorg",
        "btc_deep_reorg",
        "btc_down",
        "btc_slow",
        "byzantine:withhold-votes",
        "byzantine:wrong-root",
        "byzantine:equivocate",
        "byzantine:replay",
        "byzantine:forge-qc",
        "byzantine:false-lists",
        "byzantine:censor",
    ]
    .into_iter()
    .chain(running_as_root().then_some("disk"))
    {
        assert!(summary["faults"][kind].as_u64() >= Some(1), "no {kind} fault in the sample:\n{stdout}");
        assert!(summary["recovery_ms"][kind]["p50"].is_number(), "no recovery time for {kind}:\n{stdout}");
    }
    let svg = std::fs::read_to_string(out.join("timeline.svg")).expect("timeline.svg");
    assert!(svg.starts_with("<svg") && svg.contains("polyline") && svg.contains("byzantine:"), "{svg}");
}

/// `--beyond-f`: two of four operators faulty at once (killed, paused, cut off), and a 2|2 split
/// of the federation. Commits may
/// stop while they are; no two operators may ever disagree, every acknowledged tx commits, and
/// commits resume after the heal.
#[test]
fn beyond_f_chaos_keeps_safety_and_liveness_returns_after_the_heal() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("chaos");
    let run = Command::new(BSS)
        .args(["chaos", "--nodes", "4", "--duration", "12s", "--seed", "9", "--rate", "100", "--beyond-f"])
        .args(["--faults", "kill,pause,partition,split"])
        .args(["--base-port", &free_runs(4, &[0, 1000]).to_string(), "--out"])
        .arg(&out)
        .output()
        .expect("run bss chaos");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "bss chaos --beyond-f failed:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("up to 2 faulty at once") && stdout.contains("invariants hold"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary.json")).expect("json");
    assert_eq!((summary["safety_violations"].clone(), summary["liveness_violations"].clone()), (0.into(), 0.into()));
    assert_eq!(summary["lost_acked_txs"], 0);
    assert!(summary["faults"]["split"].as_u64() >= Some(1), "no 2|2 split in the sample:\n{stdout}");
    // Two faults were in force at once at some point (the schedule went past f).
    let faults = summary["run_reports"][0]["faults"].as_array().expect("faults").clone();
    let span =
        |f: &serde_json::Value| (f["injected_s"].as_f64().unwrap_or(0.0), f["healed_s"].as_f64().unwrap_or(f64::MAX));
    let overlap = faults.iter().enumerate().any(|(i, a)| {
        faults[i + 1..].iter().any(|b| {
            let ((a0, a1), (b0, b1)) = (span(a), span(b));
            a0 < b1 && b0 < a1 && a["operator"] != b["operator"]
        })
    });
    assert!(overlap, "never two faulty operators at once:\n{stdout}");
}

/// `--backend docker`: the operators in containers of an image built from this very binary, on a
/// docker network of the run's own; kill, pause, a partition by `docker network disconnect`,
/// one-way loss, random packet loss and a 2|2 split by iptables in the containers' namespaces, a full disk, a
/// Byzantine restart, and with `--tunnel` a Bitcoin reorg: the containers reach the host's regtest
/// through a proxy on their network's gateway. The checker reads every container's storage back
/// from the bind mount.
#[test]
fn docker_backend_chaos_sample_keeps_the_invariants() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let build = Command::new("bash")
        .arg(root.join("cluster/docker/build.sh"))
        .env("BSS_BIN", BSS)
        .env("BSS_IMAGE", "bss:chaos-test")
        .output()
        .expect("build the image");
    assert!(build.status.success(), "image build failed: {}", String::from_utf8_lossy(&build.stderr));
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("chaos");
    // Faults in a container's namespace (nsenter: oneway, loss, split) and the disks' tmpfs need
    // root; the docker CLI's own faults do not.
    let mut kinds = "kill,pause,partition,byzantine:equivocate,btc_reorg".to_string();
    if running_as_root() {
        kinds.push_str(",oneway,loss,split,disk");
    }
    let run = Command::new(BSS)
        .args([
            "chaos",
            "--backend",
            "docker",
            "--image",
            "bss:chaos-test",
            "--beyond-f",
            "--tunnel",
            "--faults",
            &kinds,
        ])
        .args(["--nodes", "4", "--duration", "10s", "--seed", "21", "--rate", "100"])
        .args(["--base-port", &free_runs(4, &[0, 2000]).to_string(), "--out"])
        .arg(&out)
        .output()
        .expect("run bss chaos");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "bss chaos --backend docker failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary.json")).expect("json");
    assert_eq!((summary["safety_violations"].clone(), summary["lost_acked_txs"].clone()), (0.into(), 0.into()));
    for kind in kinds.split(',') {
        assert!(summary["faults"][kind].as_u64() >= Some(1), "no {kind} fault in the sample:\n{stdout}");
    }
    assert!(stdout.contains("invariants hold"), "{stdout}");
    // The containers reached the host's regtest: keystones made blocks superfinal.
    assert!(summary["superfinal_checked"].as_u64() > Some(0), "nothing superfinal:\n{stdout}");
    assert_eq!(summary["tunnel_violations"], 0, "{stdout}");
}
