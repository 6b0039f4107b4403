//! One seeded chaos run: start a federation, inject faults (never more than f faulty at once)
//! under load, heal, and check the invariants. Violations are reported, not raised, so that a
//! campaign goes on and counts them.

use super::btc_faults::BtcHarness;
use super::links::{Links, Mode, Proxy};
use super::load::send_load;
use super::{FaultKind, Rng, LINK_FAULTS};
use crate::bench::client::{hex_u64, RpcClient};
use crate::devnet::{self, DevnetArgs, Extras, LocalFederation};
use eyre::Result;
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// What every run of a campaign shares.
pub struct RunConfig {
    pub nodes: usize,
    pub duration: Duration,
    pub rate: f64,
    pub block_time: Duration,
    pub base_port: u16,
    pub out: PathBuf,
    /// The fault kinds to draw from, in the order a campaign cycles through them.
    pub kinds: Vec<FaultKind>,
    /// Run the embedded regtest and BTC tunnel traffic too (`--tunnel`).
    pub tunnel: bool,
    /// Let f + 1 operators be faulty at once (`--beyond-f`): liveness may stop while they are,
    /// safety must hold, and liveness must come back after the heal.
    pub beyond_f: bool,
}

/// One injected fault and how long the federation took to take the operator back.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    pub kind: String,
    /// None: a fault of the Bitcoin node, not of one operator.
    pub operator: Option<usize>,
    pub injected_s: f64,
    pub healed_s: Option<f64>,
    /// From the heal until the operator served a height at least the federation's head at the
    /// heal (None: it did not within the run).
    pub recovery_ms: Option<f64>,
}

impl FaultRecord {
    fn new(kind: &FaultKind, operator: Option<usize>, injected_s: f64) -> Self {
        Self { kind: kind.label(), operator, injected_s, healed_s: None, recovery_ms: None }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub faults: Vec<FaultRecord>,
    pub safety_violations: Vec<String>,
    pub liveness_violation: Option<String>,
    pub lost_acked_txs: usize,
    pub acked_txs: usize,
    pub blocks_checked: u64,
    /// (seconds since start, committed height of a healthy operator) samples, for the timeline.
    pub heights: Vec<(f64, u64)>,
    /// With `--tunnel`: withdrawals requested, and tunnel invariant violations (sampled during
    /// the run, and after the heal: every withdrawal paid).
    pub withdrawals: u64,
    pub tunnel_violations: Vec<String>,
}

impl RunReport {
    pub fn failed(&self) -> bool {
        !self.safety_violations.is_empty()
            || self.liveness_violation.is_some()
            || self.lost_acked_txs > 0
            || !self.tunnel_violations.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Health {
    Up,
    Killed,
    Paused,
    Byzantine,
    /// Its links are cut, one-way or slowed.
    Net,
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// Restarts operator `i` with `modes` (empty: honest again), by rewriting its config.
fn restart_as(fed: &mut LocalFederation, i: usize, honest_config: &str, modes: &[&str]) -> Result<()> {
    let text = if modes.is_empty() {
        honest_config.to_string()
    } else {
        let quoted: Vec<String> = modes.iter().map(|m| format!("{m:?}")).collect();
        // Top-level keys go before the first [section].
        format!("allow_byzantine = true\nbyzantine = [{}]\n{honest_config}", quoted.join(", "))
    };
    crate::write_secret(&fed.configs[i], &text)?;
    fed.restart(i)
}

fn height(c: &mut RpcClient) -> Option<u64> {
    c.call("eth_blockNumber", json!([])).ok().and_then(|v| hex_u64(&v))
}

/// Runs one seeded schedule. `first_kind` is where this run starts in the campaign's cycle of
/// kinds, and `min_injections` how many faults it injects at least (past `duration` if need
/// be), so that a campaign covers every kind.
pub fn run(cfg: &RunConfig, seed: u64, first_kind: usize, min_injections: usize) -> Result<RunReport> {
    let mut dev = DevnetArgs::without_bitcoin(
        cfg.nodes,
        cfg.base_port,
        "native",
        cfg.out.join(format!("run-{seed}")),
        cfg.block_time,
        Duration::from_millis(500),
    );
    let keys = super::load::senders(cfg.rate);
    let mut extras = Extras {
        alloc: keys.iter().map(|k| (k.address, alloy_primitives::U256::from(10u128.pow(22)))).collect(),
        consensus: "max_timeout = \"3s\"".into(),
        ..Default::default()
    };
    let mut btc = None;
    if cfg.tunnel {
        // The embedded regtest two thousand ports above the RPC ports, a block a second. It
        // lives in the run's directory, which must not be wiped after it starts.
        if dev.data_dir.exists() {
            std::fs::remove_dir_all(&dev.data_dir)?;
        }
        std::fs::create_dir_all(&dev.data_dir)?;
        dev.fresh = false;
        dev.btc_port = cfg.base_port.saturating_add(2000);
        dev.btc_block_interval = Duration::from_secs(1);
        let b = devnet::DevnetBitcoin::start(&dev)?;
        // Operators reach it through a proxy that `btc_slow` can slow down.
        let direct = std::net::SocketAddr::from(([127, 0, 0, 1], dev.btc_port));
        let proxy = Proxy::start(direct)?;
        // The L2 view lags the Bitcoin tip by the deepest reorg `btc_reorg` makes: a deeper one
        // can orphan a certified block's Bitcoin tip (README, threat model).
        extras.btc = b
            .section
            .replace(&direct.to_string(), &proxy.addr.to_string())
            .replace("confirmations_lag = 1", &format!("confirmations_lag = {}", super::btc_faults::MAX_REORG));
        extras.tunnel = true;
        extras.alloc.push((super::tunnel::holder().address, alloy_primitives::U256::from(10u128.pow(22))));
        btc = Some(BtcHarness { dev: dev.clone(), url: b.url.clone(), node: Some(b), proxy });
    }
    let configs = devnet::prepare(&dev, &extras)?;
    // With link faults, operator i dials operator j through the proxy of (i, j).
    let links = if cfg.kinds.iter().any(|k| LINK_FAULTS.contains(&k.label().as_str())) {
        let p2p = dev.p2p_base_port.unwrap_or(dev.base_port.saturating_add(1000));
        let targets: Vec<std::net::SocketAddr> =
            (0..cfg.nodes).map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], p2p + i as u16))).collect();
        let links = Links::start(&targets)?;
        for (i, path) in configs.iter().enumerate() {
            let via: Vec<String> = (0..cfg.nodes)
                .map(|j| format!("\"{}\"", if i == j { targets[j] } else { links.addrs[i][j] }))
                .collect();
            let text = std::fs::read_to_string(path)?;
            let text: Vec<String> =
                text.lines()
                    .map(|l| {
                        if l.starts_with("addrs = [") {
                            format!("addrs = [{}]", via.join(", "))
                        } else {
                            l.to_string()
                        }
                    })
                    .collect();
            crate::write_secret(path, &(text.join("\n") + "\n"))?;
        }
        Some(links)
    } else {
        None
    };
    let mut fed = LocalFederation::launch(&dev, &configs)?;
    let schedule = Schedule { seed, first_kind, min_injections };
    let result = inject_and_check(cfg, &mut fed, links.as_ref(), keys, btc.as_mut(), schedule);
    fed.stop();
    if let Some(mut b) = btc {
        b.down();
    }
    result
}

/// Which faults a run injects: its seed, where it starts in the cycle of kinds, how many at least.
struct Schedule {
    seed: u64,
    first_kind: usize,
    min_injections: usize,
}

fn inject_and_check(
    cfg: &RunConfig,
    fed: &mut LocalFederation,
    links: Option<&Links>,
    keys: Vec<bss_actors::hvm::accounts::DevKey>,
    mut btc: Option<&mut BtcHarness>,
    schedule: Schedule,
) -> Result<RunReport> {
    let Schedule { seed, first_kind, min_injections } = schedule;
    let n = fed.children.len();
    let f = (n.saturating_sub(1)) / 3;
    // How many may be faulty at once.
    let budget = if cfg.beyond_f { f + 1 } else { f };
    let mut rng = Rng::new(seed);
    let mut health = vec![Health::Up; n];
    let mut open: Vec<Option<usize>> = vec![None; n]; // index into `faults` of i's open fault
    let honest_configs: Vec<String> =
        fed.configs.iter().map(std::fs::read_to_string).collect::<std::io::Result<_>>()?;
    let mut clients: Vec<RpcClient> =
        fed.rpc.iter().map(|a| RpcClient::with_timeout(a, Duration::from_secs(2))).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let (acked_tx, acked_rx) = mpsc::channel::<(usize, u64, String)>();
    let load = {
        let (rpc, stop, rate) = (fed.rpc.clone(), stop.clone(), cfg.rate);
        std::thread::spawn(move || send_load(rpc, keys, rate, stop, acked_tx))
    };
    let tunnel = btc.as_ref().map(|b| {
        let (rpc, stop, url) = (fed.rpc.clone(), stop.clone(), b.url.clone());
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
    let mut next_event = started + Duration::from_millis(1_500 + rng.below(2_500));
    while started.elapsed() < cfg.duration
        || injections < min_injections
        || health.iter().any(|h| *h != Health::Up)
        || btc_fault.is_some()
        || split.is_some()
    {
        if started.elapsed() > cfg.duration * 4 + Duration::from_secs(60) {
            break; // a schedule that cannot finish its injections gives up rather than spin
        }
        // Between events: sample the head, and time the recoveries.
        std::thread::sleep(Duration::from_millis(100));
        let t = started.elapsed().as_secs_f64();
        // The federation's head, read from an operator that is not faulty right now.
        if let Some(h) = (0..n).find(|i| health[*i] == Health::Up).and_then(|i| height(&mut clients[i])) {
            heights.push((t, h));
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
                println!("  {t:6.1}s  heal bitcoin ({})", faults[k].kind);
                continue;
            }
        }
        // A split heals on its own clock too; then every operator must pass the head again.
        if let (Some((k, at)), Some(l)) = (split, links) {
            if at.elapsed() >= Duration::from_millis(2_500) {
                l.split(Mode::Pass);
                faults[k].healed_s = Some(t);
                let head = (0..n).filter_map(|j| height(&mut clients[j])).max().unwrap_or(0);
                recovering.extend((0..n).map(|i| (i, k, head)));
                split = None;
                println!("  {t:6.1}s  heal the split");
                continue;
            }
        }
        let faulty: Vec<usize> = (0..n).filter(|i| health[*i] != Health::Up).collect();
        let done_injecting = started.elapsed() >= cfg.duration && injections >= min_injections;
        if !faulty.is_empty() && (faulty.len() >= budget || done_injecting || rng.below(2) == 0) {
            let i = faulty[rng.below(faulty.len() as u64) as usize];
            match health[i] {
                Health::Killed => fed.restart(i)?,
                Health::Byzantine => restart_as(fed, i, &honest_configs[i], &[])?,
                Health::Paused => signal(fed.children[i].id(), "-CONT"),
                Health::Net => {
                    if let Some(l) = links {
                        l.heal(i)
                    }
                }
                Health::Up => {}
            }
            health[i] = Health::Up;
            let head = (0..n).filter(|j| *j != i).filter_map(|j| height(&mut clients[j])).max().unwrap_or(0);
            if let Some(k) = open[i].take() {
                faults[k].healed_s = Some(t);
                recovering.push((i, k, head));
                println!("  {t:6.1}s  heal operator {i} ({})", faults[k].kind);
            }
        } else if budget > 0 && !done_injecting {
            let kind = &cfg.kinds[(first_kind + injections) % cfg.kinds.len()];
            if *kind == FaultKind::Split {
                let Some(l) = links else { eyre::bail!("a split needs the link proxies") };
                if split.is_some() {
                    continue;
                }
                l.split(Mode::Cut);
                println!("  {t:6.1}s  split {{0..{}}} | {{{}..{}}}", n / 2 - 1, n / 2, n - 1);
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
                    FaultKind::BtcReorg => format!("reorg of {} blocks", b.reorg(1 + rng.below(6))?),
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
                println!("  {t:6.1}s  {} ({what})", kind.label());
                btc_fault = Some((faults.len(), Instant::now()));
                faults.push(FaultRecord::new(kind, None, t));
                injections += 1;
                continue;
            }
            let up: Vec<usize> = (0..n).filter(|i| health[*i] == Health::Up).collect();
            let i = up[rng.below(up.len() as u64) as usize];
            match kind {
                FaultKind::Kill => {
                    signal(fed.children[i].id(), "-KILL");
                    health[i] = Health::Killed;
                }
                FaultKind::Pause => {
                    signal(fed.children[i].id(), "-STOP");
                    health[i] = Health::Paused;
                }
                FaultKind::Byzantine(mode) => {
                    restart_as(fed, i, &honest_configs[i], &[mode.as_str()])?;
                    health[i] = Health::Byzantine;
                }
                FaultKind::ClockSkew { beyond } => {
                    let (lo, span) = if *beyond { (3_000, 3_000) } else { (500, 1_000) };
                    let ms = (lo + rng.below(span)) as i64 * if rng.below(2) == 0 { 1 } else { -1 };
                    restart_as(fed, i, &honest_configs[i], &[format!("clock-skew:{ms}").as_str()])?;
                    health[i] = Health::Byzantine;
                }
                FaultKind::BtcReorg | FaultKind::BtcDown | FaultKind::BtcSlow | FaultKind::Split => {
                    unreachable!("Bitcoin faults and splits are injected above")
                }
                FaultKind::Partition | FaultKind::OneWay | FaultKind::Delay => {
                    let Some(l) = links else { eyre::bail!("link faults need the link proxies") };
                    for j in (0..n).filter(|j| *j != i) {
                        match kind {
                            FaultKind::Partition => {
                                l.set(i, j, Mode::Cut);
                                l.set(j, i, Mode::Cut);
                            }
                            FaultKind::OneWay => l.set(i, j, Mode::Drop),
                            _ => {
                                let delay = Duration::from_millis(100 + rng.below(300));
                                let jitter = Duration::from_millis(rng.below(100));
                                l.delay(i, j, delay, jitter);
                                l.delay(j, i, delay, jitter);
                            }
                        }
                    }
                    health[i] = Health::Net;
                }
            }
            println!("  {t:6.1}s  {} operator {i}", kind.label());
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
    let acked: Vec<(usize, u64, String)> = acked_rx.try_iter().collect();
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
    };
    check(fed, &mut clients, &acked, &mut report, &mut recovering, started);
    if let Some(t) = traffic {
        report.tunnel_violations = t.violations;
        if !t.deposited {
            report.tunnel_violations.push("the tunnel deposit was never sent".into());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        if let Some(v) = super::tunnel::check_settled(&fed.rpc, deadline) {
            report.tunnel_violations.push(v);
        }
    }
    Ok(report)
}

/// After the heal: liveness (everyone passes the head seen at the heal within 60 s), safety
/// (one block per height on every operator) and acknowledged txs (each committed).
fn check(
    fed: &LocalFederation,
    clients: &mut [RpcClient],
    acked: &[(usize, u64, String)],
    report: &mut RunReport,
    recovering: &mut Vec<(usize, usize, u64)>,
    started: Instant,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for addr in &fed.rpc {
        if !devnet::wait_healthy(addr, deadline) {
            report.liveness_violation = Some(format!("operator at {addr} did not come back after the heal"));
            return;
        }
    }
    let top = clients.iter_mut().filter_map(height).max().unwrap_or(0);
    loop {
        let t = started.elapsed().as_secs_f64();
        recovering.retain(|(i, k, target)| match height(&mut clients[*i]) {
            Some(h) if h >= *target => {
                let healed = report.faults[*k].healed_s.unwrap_or(t);
                report.faults[*k].recovery_ms = Some((t - healed) * 1000.0);
                false
            }
            _ => true,
        });
        let hs: Vec<u64> = clients.iter_mut().map(|c| height(c).unwrap_or(0)).collect();
        if hs.iter().all(|h| *h >= top + 5) && recovering.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            report.liveness_violation =
                Some(format!("heights {hs:?} did not pass {} within 60 s of the heal", top + 5));
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let common = clients.iter_mut().map(|c| height(c).unwrap_or(0)).min().unwrap_or(0);
    report.blocks_checked = common;
    for h in 1..=common {
        let hashes: Vec<String> = clients
            .iter_mut()
            .map(|c| {
                c.call("eth_getBlockByNumber", json!([format!("{h:#x}"), false]))
                    .ok()
                    .and_then(|b| b["hash"].as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
        if hashes.windows(2).any(|w| w[0] != w[1]) {
            report.safety_violations.push(format!("operators disagree at height {h}: {hashes:?}"));
        }
    }
    for (_, _, hash) in acked {
        let committed = loop {
            let r = clients[0].call("eth_getTransactionReceipt", json!([hash])).unwrap_or_default();
            if !r.is_null() {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !committed {
            report.lost_acked_txs += 1;
        }
    }
}
