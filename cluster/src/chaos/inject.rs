//! The fault schedule of one chaos run: under load, inject faults (never more than f faulty at
//! once, f + 1 with `--beyond-f`), heal each after a while, time every recovery, and record the
//! history the checker needs: every head each operator served, every superfinal block.

use super::backend::Cluster;
use super::btc_faults::{BtcHarness, DEEP_REORG, LAG};
use super::checker::{Ack, History};
use super::disk::Disks;
use super::load::send_load;
use super::run::{FaultRecord, RunConfig, RunReport};
use super::settle::height;
use super::{FaultKind, Rng};
use crate::bench::client::RpcClient;
use eyre::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Health {
    Up,
    Killed,
    Paused,
    Byzantine,
    /// Its links are cut, one-way or slowed.
    Net,
    /// Its disk is full.
    DiskFull,
}

/// Restarts operator `i` with `modes` (empty: honest again), by rewriting its config.
fn restart_as(fed: &mut dyn Cluster, i: usize, honest_config: &str, modes: &[&str]) -> Result<()> {
    let text = if modes.is_empty() {
        honest_config.to_string()
    } else {
        let quoted: Vec<String> = modes.iter().map(|m| format!("{m:?}")).collect();
        // Top-level keys go before the first [section].
        format!("allow_byzantine = true\nbyzantine = [{}]\n{honest_config}", quoted.join(", "))
    };
    crate::write_secret(&fed.config(i), &text)?;
    fed.restart(i)
}

/// Which faults a run injects: its seed, where it starts in the cycle of kinds, how many at least.
pub struct Schedule {
    pub seed: u64,
    pub first_kind: usize,
    pub min_injections: usize,
}

/// What the faults act on besides the operator processes.
pub struct Parts<'a> {
    pub btc: Option<&'a mut BtcHarness>,
    pub disks: Option<&'a Disks>,
}

/// Runs the schedule, heals, and lets the federation settle; returns the report so far (the
/// storage checks are the caller's, once the operators are stopped), the history and the
/// acknowledged txs.
pub fn inject(
    cfg: &RunConfig,
    fed: &mut dyn Cluster,
    keys: Vec<bss_actors::hvm::accounts::DevKey>,
    parts: Parts,
    schedule: Schedule,
) -> Result<(RunReport, History, Vec<Ack>)> {
    let Schedule { seed, first_kind, min_injections } = schedule;
    // Runs side by side (`--parallel`) tell their lines apart by seed.
    let tag = if cfg.tag_lines { format!("  [{seed}] ") } else { "  ".to_string() };
    let Parts { mut btc, disks } = parts;
    // `byzantine:censor` censors the load's first sender.
    let censored = keys.first().map(|k| k.address).unwrap_or_default();
    let rpc = fed.rpc();
    let n = rpc.len();
    let f = (n.saturating_sub(1)) / 3;
    // How many may be faulty at once.
    let budget = if cfg.beyond_f { f + 1 } else { f };
    let mut rng = Rng::new(seed);
    let mut health = vec![Health::Up; n];
    let mut open: Vec<Option<usize>> = vec![None; n]; // index into `faults` of i's open fault
    let honest_configs: Vec<String> =
        (0..n).map(|i| std::fs::read_to_string(fed.config(i))).collect::<std::io::Result<_>>()?;
    let mut clients: Vec<RpcClient> = rpc.iter().map(|a| RpcClient::with_timeout(a, Duration::from_secs(2))).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let (acked_tx, acked_rx) = mpsc::channel::<Ack>();
    let (avoid_tx, avoid_rx) = mpsc::channel();
    let load = {
        let (rpc, stop, rate) = (rpc.clone(), stop.clone(), cfg.rate);
        std::thread::spawn(move || send_load(rpc, keys, rate, stop, acked_tx, avoid_rx))
    };
    // Keeps the load away from an operator (or not), once the load has taken it in.
    let avoid = |which: Option<usize>| {
        let (done_tx, done_rx) = mpsc::channel();
        if avoid_tx.send((which, done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(Duration::from_secs(2));
        }
    };
    let mut history = History::default();
    let mut fault_violations = vec![];
    let tunnel = btc.as_ref().map(|b| {
        let (rpc, stop, url) = (rpc.clone(), stop.clone(), b.url.clone());
        std::thread::spawn(move || super::tunnel::drive(rpc, url, stop))
    });
    // The Bitcoin fault in force (fault index, injected at), and one healed and recovering
    // (fault index, the view height every operator must reach).
    let mut btc_fault: Option<(usize, Instant)> = None;
    // A split in force (fault index, injected at).
    let mut split: Option<(usize, Instant)> = None;
    let mut btc_recovering: Option<(usize, u64)> = None;

    let started = Instant::now();
    let mut faults: Vec<FaultRecord> = vec![];
    // (operator, fault index, head at the heal) waiting for the operator to catch up.
    let mut recovering: Vec<(usize, usize, u64)> = vec![];
    let mut heights = vec![];
    let mut injections = 0;
    // An injection takes 1.5–4 s and its heal as long again.
    let give_up = cfg.duration * 2 + Duration::from_secs(60) + Duration::from_secs(8) * min_injections as u32;
    let mut next_event = started + Duration::from_millis(1_500 + rng.below(2_500));
    while started.elapsed() < cfg.duration
        || injections < min_injections
        || health.iter().any(|h| *h != Health::Up)
        || btc_fault.is_some()
        || split.is_some()
    {
        // A schedule that cannot finish its injections gives up injecting (and heals what is in
        // force) rather than spin; one that cannot heal either stops a minute later.
        if started.elapsed() > give_up + Duration::from_secs(60) {
            break;
        }
        // Between events: sample the head, and time the recoveries.
        std::thread::sleep(Duration::from_millis(100));
        let t = started.elapsed().as_secs_f64();
        // Every reachable operator's head goes into the history; the timeline shows the head of
        // the first operator that is not faulty right now.
        let mut shown = None;
        for i in (0..n).filter(|i| !matches!(health[*i], Health::Killed | Health::Paused)) {
            let h = history.sample_head(t, i, &mut clients[i]);
            if health[i] == Health::Up && shown.is_none() {
                shown = h;
            }
        }
        if let Some(h) = shown {
            heights.push((t, h));
        }
        if btc.is_some() && history.heads.len() % 10 == 0 {
            let i = history.heads.len() / 10 % n;
            if !matches!(health[i], Health::Killed | Health::Paused) {
                history.sample_superfinal(t, i, &mut clients[i]);
            }
        }
        recovering.retain(|(i, k, target)| match height(&mut clients[*i]) {
            Some(h) if h >= *target => {
                let healed = faults[*k].healed_s.unwrap_or(t);
                faults[*k].recovery_ms = Some((t - healed) * 1000.0);
                false
            }
            _ => true,
        });
        if let (Some((k, target)), Some(b)) = (btc_recovering, btc.as_deref()) {
            let up: Vec<usize> = (0..n).filter(|i| health[*i] == Health::Up).collect();
            if up.iter().all(|i| b.caught_up(&mut clients[*i], target)) {
                faults[k].recovery_ms = Some((t - faults[k].healed_s.unwrap_or(t)) * 1000.0);
                btc_recovering = None;
            }
        }
        if Instant::now() < next_event {
            continue;
        }
        next_event = Instant::now() + Duration::from_millis(1_500 + rng.below(2_500));
        // A Bitcoin fault heals on its own clock (2.5 s), whatever the operators do.
        if let (Some((k, at)), Some(b)) = (btc_fault, btc.as_deref_mut()) {
            if at.elapsed() >= Duration::from_millis(2_500) {
                match cfg.kinds.iter().find(|x| x.label() == faults[k].kind) {
                    Some(FaultKind::BtcDown) => b.up()?,
                    Some(FaultKind::BtcSlow) => b.proxy.slow(Duration::ZERO),
                    _ => {}
                }
                faults[k].healed_s = Some(t);
                btc_recovering = b.target().map(|target| (k, target));
                btc_fault = None;
                println!("{tag}{t:6.1}s  heal bitcoin ({})", faults[k].kind);
                continue;
            }
        }
        // A split heals on its own clock too; then every operator must pass the head again.
        if let Some((k, at)) = split {
            if at.elapsed() >= Duration::from_millis(2_500) {
                fed.split(false)?;
                faults[k].healed_s = Some(t);
                let head = (0..n).filter_map(|j| height(&mut clients[j])).max().unwrap_or(0);
                recovering.extend((0..n).map(|i| (i, k, head)));
                split = None;
                println!("{tag}{t:6.1}s  heal the split");
                continue;
            }
        }
        let faulty: Vec<usize> = (0..n).filter(|i| health[*i] != Health::Up).collect();
        let done_injecting =
            (started.elapsed() >= cfg.duration && injections >= min_injections) || started.elapsed() > give_up;
        if !faulty.is_empty() && (faulty.len() >= budget || done_injecting || rng.below(2) == 0) {
            let i = faulty[rng.below(faulty.len() as u64) as usize];
            match health[i] {
                Health::Killed => fed.restart(i)?,
                Health::Byzantine => {
                    restart_as(fed, i, &honest_configs[i], &[])?;
                    avoid(None);
                }
                Health::DiskFull => {
                    if let Some(v) = stopped_loudly(fed, i) {
                        println!("{tag}{t:6.1}s  ! {v}");
                        fault_violations.push(v);
                    }
                    if let Some(d) = disks {
                        d.free(i)?;
                    }
                    fed.restart(i)?;
                }
                Health::Paused => fed.resume(i),
                Health::Net => fed.heal_links(i)?,
                Health::Up => {}
            }
            health[i] = Health::Up;
            let head = (0..n).filter(|j| *j != i).filter_map(|j| height(&mut clients[j])).max().unwrap_or(0);
            if let Some(k) = open[i].take() {
                faults[k].healed_s = Some(t);
                recovering.push((i, k, head));
                println!("{tag}{t:6.1}s  heal operator {i} ({})", faults[k].kind);
            }
        } else if budget > 0 && !done_injecting {
            let kind = &cfg.kinds[(first_kind + injections) % cfg.kinds.len()];
            if *kind == FaultKind::Split {
                if split.is_some() {
                    continue;
                }
                fed.split(true)?;
                println!("{tag}{t:6.1}s  split {{0..{}}} | {{{}..{}}}", n / 2 - 1, n / 2, n - 1);
                split = Some((faults.len(), Instant::now()));
                faults.push(FaultRecord::new(kind, None, t));
                injections += 1;
                continue;
            }
            if kind.is_bitcoin() {
                let Some(b) = btc.as_deref_mut() else { eyre::bail!("Bitcoin faults need --tunnel") };
                if btc_fault.is_some() || btc_recovering.is_some() {
                    continue;
                }
                let what = match kind {
                    FaultKind::BtcReorg => format!("reorg of {} blocks", b.reorg(1 + rng.below(LAG))?),
                    FaultKind::BtcDeepReorg => {
                        let depth = b.reorg(LAG + 1 + rng.below(DEEP_REORG - LAG))?;
                        format!("reorg of {depth} blocks (deeper than the lag {LAG})")
                    }
                    FaultKind::BtcDown => {
                        b.down();
                        "down".into()
                    }
                    _ => {
                        let d = super::btc_faults::slow_delay(rng.below(2_000));
                        b.proxy.slow(d);
                        format!("every reply {} ms late", d.as_millis())
                    }
                };
                println!("{tag}{t:6.1}s  {} ({what})", kind.label());
                btc_fault = Some((faults.len(), Instant::now()));
                faults.push(FaultRecord::new(kind, None, t));
                injections += 1;
                continue;
            }
            let up: Vec<usize> = (0..n).filter(|i| health[*i] == Health::Up).collect();
            let i = up[rng.below(up.len() as u64) as usize];
            match kind {
                FaultKind::Kill => {
                    fed.kill(i);
                    health[i] = Health::Killed;
                }
                FaultKind::Pause => {
                    fed.pause(i);
                    health[i] = Health::Paused;
                }
                FaultKind::Byzantine(mode) if mode == "censor" => {
                    avoid(Some(i));
                    restart_as(fed, i, &honest_configs[i], &[format!("censor:{censored}").as_str()])?;
                    health[i] = Health::Byzantine;
                }
                FaultKind::Byzantine(mode) => {
                    restart_as(fed, i, &honest_configs[i], &[mode.as_str()])?;
                    health[i] = Health::Byzantine;
                }
                FaultKind::Disk => {
                    let Some(d) = disks else { eyre::bail!("the disk fault needs the run's disks") };
                    d.fill(i)?;
                    health[i] = Health::DiskFull;
                }
                FaultKind::ClockSkew { beyond } => {
                    let (lo, span) = if *beyond { (3_000, 3_000) } else { (500, 1_000) };
                    let ms = (lo + rng.below(span)) as i64 * if rng.below(2) == 0 { 1 } else { -1 };
                    restart_as(fed, i, &honest_configs[i], &[format!("clock-skew:{ms}").as_str()])?;
                    health[i] = Health::Byzantine;
                }
                FaultKind::BtcReorg
                | FaultKind::BtcDeepReorg
                | FaultKind::BtcDown
                | FaultKind::BtcSlow
                | FaultKind::Split => {
                    unreachable!("Bitcoin faults and splits are injected above")
                }
                FaultKind::Partition => {
                    fed.isolate(i)?;
                    health[i] = Health::Net;
                }
                FaultKind::OneWay => {
                    fed.drop_outbound(i)?;
                    health[i] = Health::Net;
                }
                FaultKind::Loss => {
                    fed.loss(i, 50 + rng.below(151))?;
                    health[i] = Health::Net;
                }
                FaultKind::Delay => {
                    let delay = Duration::from_millis(100 + rng.below(300));
                    let jitter = Duration::from_millis(rng.below(100));
                    fed.delay(i, delay, jitter)?;
                    health[i] = Health::Net;
                }
            }
            println!("{tag}{t:6.1}s  {} operator {i}", kind.label());
            open[i] = Some(faults.len());
            faults.push(FaultRecord::new(kind, Some(i), t));
            injections += 1;
        }
    }
    // A Bitcoin fault healed last is timed until the operators' views catch up (30 s at most).
    if let (Some((k, target)), Some(b)) = (btc_recovering, btc.as_deref()) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if (0..n).all(|i| b.caught_up(&mut clients[i], target)) {
                let t = started.elapsed().as_secs_f64();
                faults[k].recovery_ms = Some((t - faults[k].healed_s.unwrap_or(t)) * 1000.0);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    let traffic = tunnel.map(|t| t.join().unwrap_or_default());
    let acked: Vec<Ack> = acked_rx.try_iter().collect();
    let mut report = RunReport {
        seed,
        faults,
        safety_violations: vec![],
        liveness_violation: None,
        lost_acked_txs: 0,
        acked_txs: acked.len(),
        blocks_checked: 0,
        heights,
        withdrawals: traffic.as_ref().map_or(0, |t| t.withdrawals),
        tunnel_violations: vec![],
        duplicated_txs: 0,
        fault_violations,
        superfinal_checked: 0,
    };
    super::settle::settle(&rpc, &mut clients, &acked, &mut report, &mut recovering, started);
    if let Some(t) = traffic {
        report.tunnel_violations = t.violations;
        if !t.deposited {
            report.tunnel_violations.push("the tunnel deposit was never sent".into());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        if let Some(v) = super::tunnel::check_settled(&rpc, deadline) {
            report.tunnel_violations.push(v);
        }
    }
    // The last word on each operator's chain: superfinal blocks once more, after the heal.
    if btc.is_some() {
        let t = started.elapsed().as_secs_f64();
        for (i, c) in clients.iter_mut().enumerate() {
            history.sample_superfinal(t, i, c);
        }
    }
    Ok((report, history, acked))
}

/// A full disk must stop its operator with the fatal exit code and a "fatal" line in its log
/// (within 10 s); None if it did.
fn stopped_loudly(fed: &mut dyn Cluster, i: usize) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match fed.exited(i) {
            Some(exit) => {
                let loud = exit.code == Some(bss_storage::fatal::EXIT_FATAL) && exit.log.contains("fatal");
                return (!loud).then(|| {
                    format!(
                        "operator {i} stopped on a full disk with exit code {:?} and without a fatal error in its log",
                        exit.code
                    )
                });
            }
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            None => return Some(format!("operator {i} kept running for 10 s on a full disk")),
        }
    }
}
