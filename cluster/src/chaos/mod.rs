//! `bss chaos`: seeded fault-injection runs against local federations. Each run kills, restarts,
//! pauses (SIGSTOP) and resumes operators, cuts, drops and delays their links, skews their
//! clocks, fills their disks, restarts them Byzantine and honest again, and (with `--tunnel`)
//! reorgs, stops and slows Bitcoin — never more than f faulty at once unless `--beyond-f` —
//! under a transaction load, then heals and checks the invariants over the run's history and
//! every operator's storage read back after it (`checker`): liveness after the heal, one block
//! per height on every operator ever, every acknowledged tx committed once, superfinal blocks
//! fixed, and the tunnel invariant. `--runs N` makes a campaign: seeds S … S+N−1, a progress bar,
//! a table per run, `summary.json` and `timeline.svg` in `--out`; a failing run prints the
//! command that replays it. Exits non-zero on any violation.

mod backend;
mod btc_faults;
mod checker;
mod disk;
mod docker;
mod inject;
mod links;
mod load;
mod report;
mod run;
mod settle;
mod tunnel;

use clap::Args;
use eyre::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct ChaosArgs {
    /// Operators (f = ⌊(n − 1) / 3⌋ may be faulty at once).
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// How long each run injects faults before healing.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Seed of the (first) run's fault schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs in the campaign (seeds seed … seed + runs − 1).
    #[arg(long, default_value_t = 1)]
    runs: u64,
    /// Fault kinds, comma separated: kill, pause, partition (one operator isolated), oneway
    /// (one operator's outbound dropped), delay (one operator's links slowed, with jitter), loss
    /// (5–20 % of one operator's traffic lost), skew
    /// (one operator's clock off: clock_skew within the allowed drift, clock_skew_beyond past it),
    /// disk (one operator's disk full; needs root), btc (with --tunnel: btc_reorg,
    /// btc_deep_reorg, btc_down, btc_slow), byzantine (every mode) or byzantine:MODE. Default: all of them (btc only with
    /// --tunnel, disk only as root, split only with --beyond-f).
    #[arg(long)]
    faults: Option<String>,
    /// Faults each run injects at least (it runs past --duration if need be). Default: enough
    /// for the campaign to cover every kind (⌈kinds ÷ runs⌉).
    #[arg(long)]
    min_faults: Option<usize>,
    /// Background load, tx/s (signed transfers in 50 ms JSON-RPC batches).
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    block_time: Duration,
    /// RPC port of operator 0.
    #[arg(long, default_value_t = 19_545)]
    base_port: u16,
    /// Also run the embedded Bitcoin regtest and BTC tunnel traffic (a deposit, then a
    /// withdrawal every 3 s), and check the tunnel invariant throughout and every withdrawal
    /// paid after the heal. The regtest listens 2000 ports above --base-port.
    #[arg(long)]
    tunnel: bool,
    /// Let f + 1 operators be faulty at once: commits may stop while they are; safety must
    /// hold throughout, and commits must resume within 60 s of the heal.
    #[arg(long)]
    beyond_f: bool,
    /// Where the operators run: `process` (processes on loopback, link faults through TCP
    /// proxies the harness controls) or `docker` (containers of --image on a network of the
    /// run's own; partitions by `docker network disconnect`, one-way loss and splits by iptables
    /// and delay by `tc netem` in the containers' network namespaces; needs root).
    #[arg(long, default_value = "process", value_parser = ["process", "docker"])]
    backend: String,
    /// The operators' image with `--backend docker` (`bash cluster/docker/build.sh` builds it).
    #[arg(long, default_value = "bss:latest")]
    image: String,
    /// Runs side by side (each federation on its own ports, 16 above the previous one's): a
    /// campaign's runs spend most of their time waiting on heals and Bitcoin blocks.
    #[arg(long, default_value_t = 1)]
    parallel: u16,
    /// Where the federations' data and logs, summary.json and timeline.svg go.
    #[arg(long, default_value = "chaos-out")]
    out: PathBuf,
}

/// The Byzantine modes `byzantine` stands for. `censor` censors the load's first sender (a
/// censor acknowledges that sender's txs and drops them, so the load keeps away from it while it
/// censors: the check is that the honest operators get them committed).
pub const BYZANTINE_MODES: [&str; 7] =
    ["withhold-votes", "wrong-root", "equivocate", "replay", "forge-qc", "false-lists", "censor"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Kill,
    Pause,
    Byzantine(String),
    /// One operator cut off from all others (its links closed and refused, both ways).
    Partition,
    /// What one operator sends is dropped; what it receives still arrives.
    OneWay,
    /// One operator's links delayed 100–400 ms, with up to 100 ms of jitter.
    Delay,
    /// 5–20 % of what one operator sends and receives lost.
    Loss,
    /// The federation split in two halves that cannot reach each other (2|2 of four; needs
    /// `--beyond-f`: neither half has a quorum).
    Split,
    /// One operator's clock off by 0.5–1.5 s (within the 2 s drift allowed), or, `beyond`,
    /// by 3–6 s (its proposals, or its votes, are refused).
    ClockSkew {
        beyond: bool,
    },
    /// One operator's disk full (a tmpfs per operator, so it needs root): it must stop loudly
    /// and lose nothing.
    Disk,
    /// The regtest's last 1–2 blocks invalidated, within the operators' lag (needs `--tunnel`).
    BtcReorg,
    /// The regtest's last 3–6 blocks invalidated, deeper than the operators' lag: certified L2
    /// blocks' Bitcoin tips are orphaned (needs `--tunnel`).
    BtcDeepReorg,
    /// The regtest stopped, then started again (needs `--tunnel`).
    BtcDown,
    /// Every Bitcoin RPC reply delayed 1–3 s (needs `--tunnel`).
    BtcSlow,
}

impl FaultKind {
    /// A fault of the Bitcoin node rather than of one operator.
    pub fn is_bitcoin(&self) -> bool {
        matches!(self, FaultKind::BtcReorg | FaultKind::BtcDeepReorg | FaultKind::BtcDown | FaultKind::BtcSlow)
    }
}

/// The network fault kinds (they need the link proxies).
pub const LINK_FAULTS: [&str; 5] = ["partition", "oneway", "delay", "loss", "split"];

impl FaultKind {
    pub fn label(&self) -> String {
        match self {
            FaultKind::Kill => "kill".into(),
            FaultKind::Pause => "pause".into(),
            FaultKind::Byzantine(m) => format!("byzantine:{m}"),
            FaultKind::Partition => "partition".into(),
            FaultKind::OneWay => "oneway".into(),
            FaultKind::Delay => "delay".into(),
            FaultKind::Loss => "loss".into(),
            FaultKind::Split => "split".into(),
            FaultKind::Disk => "disk".into(),
            FaultKind::ClockSkew { beyond: false } => "clock_skew".into(),
            FaultKind::ClockSkew { beyond: true } => "clock_skew_beyond".into(),
            FaultKind::BtcReorg => "btc_reorg".into(),
            FaultKind::BtcDeepReorg => "btc_deep_reorg".into(),
            FaultKind::BtcDown => "btc_down".into(),
            FaultKind::BtcSlow => "btc_slow".into(),
        }
    }

    /// `kill,pause,byzantine:equivocate,…`; `byzantine` alone is every mode.
    pub fn parse_list(s: &str) -> Result<Vec<FaultKind>> {
        let mut out = vec![];
        for k in s.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            match k {
                "kill" => out.push(FaultKind::Kill),
                "pause" => out.push(FaultKind::Pause),
                "partition" => out.push(FaultKind::Partition),
                "oneway" => out.push(FaultKind::OneWay),
                "delay" => out.push(FaultKind::Delay),
                "loss" => out.push(FaultKind::Loss),
                "split" => out.push(FaultKind::Split),
                "disk" => out.push(FaultKind::Disk),
                "clock_skew" => out.push(FaultKind::ClockSkew { beyond: false }),
                "clock_skew_beyond" => out.push(FaultKind::ClockSkew { beyond: true }),
                "skew" => out.extend([FaultKind::ClockSkew { beyond: false }, FaultKind::ClockSkew { beyond: true }]),
                "btc_reorg" => out.push(FaultKind::BtcReorg),
                "btc_deep_reorg" => out.push(FaultKind::BtcDeepReorg),
                "btc_down" => out.push(FaultKind::BtcDown),
                "btc_slow" => out.push(FaultKind::BtcSlow),
                "btc" => out.extend([
                    FaultKind::BtcReorg,
                    FaultKind::BtcDeepReorg,
                    FaultKind::BtcDown,
                    FaultKind::BtcSlow,
                ]),
                "byzantine" => out.extend(BYZANTINE_MODES.iter().map(|m| FaultKind::Byzantine(m.to_string()))),
                other => match other.strip_prefix("byzantine:") {
                    Some(m) if BYZANTINE_MODES.contains(&m) => out.push(FaultKind::Byzantine(m.into())),
                    _ => bail!(
                        "--faults: unknown kind {other:?}; known: kill, pause, partition, oneway, delay, loss, split, disk, skew (clock_skew, clock_skew_beyond), btc (btc_reorg, btc_deep_reorg, btc_down, btc_slow), byzantine, byzantine:MODE with MODE one of {}",
                        BYZANTINE_MODES.join(", ")
                    ),
                },
            }
        }
        out.dedup();
        if out.is_empty() {
            bail!("--faults names no fault kind");
        }
        Ok(out)
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// A tiny deterministic generator (xorshift64*), so a seed replays the same schedule.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub fn run(args: ChaosArgs) -> Result<()> {
    let faults = args.faults.clone().unwrap_or_else(|| {
        let mut all = "kill,pause,partition,oneway,delay,loss,skew,byzantine".to_string();
        if is_root() {
            all.push_str(",disk");
        }
        if args.beyond_f {
            all.push_str(",split");
        }
        if args.tunnel {
            all.push_str(",btc");
        }
        all
    });
    let mut kinds = FaultKind::parse_list(&faults)?;
    let docker = args.backend == "docker";
    if docker {
        docker::preflight(&args.image)?;
        let needs_root: Vec<String> = kinds
            .iter()
            .filter(|k| {
                matches!(k, FaultKind::OneWay | FaultKind::Loss | FaultKind::Split | FaultKind::Delay | FaultKind::Disk)
            })
            .map(FaultKind::label)
            .collect();
        if !needs_root.is_empty() && !is_root() {
            bail!(
                "with --backend docker, {} act in the containers' network namespaces or mount disks: run as root, or leave them out of --faults",
                needs_root.join(", ")
            );
        }
        if kinds.contains(&FaultKind::Delay) && !docker::netem_available() {
            if args.faults.is_some() {
                bail!("delay with --backend docker needs the kernel's netem qdisc (sch_netem), which this kernel lacks: leave delay out, or use --backend process");
            }
            println!("note: this kernel has no netem qdisc: the docker backend leaves out `delay`");
            kinds.retain(|k| *k != FaultKind::Delay);
        }
    }
    if !args.beyond_f && kinds.contains(&FaultKind::Split) {
        bail!("split (the federation cut in two halves) takes more than f operators away: it needs --beyond-f");
    }
    if !args.tunnel && kinds.iter().any(FaultKind::is_bitcoin) {
        bail!("Bitcoin fault kinds (btc_reorg, btc_deep_reorg, btc_down, btc_slow) need --tunnel, which starts the Bitcoin node");
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if args.parallel == 0 || args.parallel > 8 {
        bail!("--parallel must be between 1 and 8");
    }
    // Ports from 32768 up are Linux's ephemeral range: the harness's own proxies and clients take
    // them at random, and a federation there can find its port taken.
    let top = u32::from(args.base_port) + 2000 + 16 * u32::from(args.parallel);
    if top >= 32_768 {
        println!("note: --base-port {} reaches port {top}, inside the ephemeral range (32768+): a run may find its port taken", args.base_port);
    }
    let cfg = run::RunConfig {
        tag_lines: args.parallel > 1,
        docker_image: docker.then(|| args.image.clone()),
        nodes: args.nodes,
        duration: args.duration,
        rate: args.rate,
        block_time: args.block_time,
        base_port: args.base_port,
        out: args.out.clone(),
        kinds: kinds.clone(),
        tunnel: args.tunnel,
        beyond_f: args.beyond_f,
    };
    // The run with seed s injects at least m faults, cycling through the kinds from s·m: runs
    // with consecutive seeds cover m·runs consecutive positions of the cycle, so every kind
    // once m·runs ≥ kinds. Both depend on the seed and m only, so one run replays alone.
    let per_run = args.min_faults.unwrap_or((kinds.len() as u64).div_ceil(args.runs) as usize).max(1);
    let f = args.nodes.saturating_sub(1) / 3;
    println!(
        "bss chaos — {} operators, f = {f}{}, {} run(s) from seed {}, {:?} of faults each, kinds: {}",
        args.nodes,
        if args.beyond_f { format!(" (--beyond-f: up to {} faulty at once)", f + 1) } else { String::new() },
        args.runs,
        args.seed,
        args.duration,
        kinds.iter().map(FaultKind::label).collect::<Vec<_>>().join(", ")
    );
    let bar = (args.runs > 1).then(|| {
        let b = ProgressBar::new(args.runs);
        b.set_style(
            ProgressStyle::with_template("campaign {bar:40} {pos}/{len} runs  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let labels = kinds.iter().map(FaultKind::label).collect::<Vec<_>>().join(",");
    let mut reports = vec![];
    let next = std::sync::atomic::AtomicU64::new(0);
    let (runs, first_seed, kind_count) = (args.runs, args.seed, kinds.len() as u64);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<run::RunReport>>();
    std::thread::scope(|scope| -> Result<()> {
        for worker in 0..args.parallel.min(args.runs.min(8) as u16) {
            let (cfg, next, done_tx) = (cfg.clone(), &next, done_tx.clone());
            let cfg = run::RunConfig { base_port: cfg.base_port.saturating_add(worker * 16), ..cfg };
            scope.spawn(move || loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= runs {
                    break;
                }
                let seed = first_seed + k;
                let first_kind = (seed.wrapping_mul(per_run as u64) % kind_count) as usize;
                let r = run::run(&cfg, seed, first_kind, per_run);
                let failed = r.is_err();
                if done_tx.send(r).is_err() || failed {
                    break;
                }
            });
        }
        drop(done_tx);
        for r in done_rx {
            let r = r?;
            if r.failed() {
                println!(
                    "  run with seed {} FAILED — replay: {}",
                    r.seed,
                    replay_command(&args, &labels, r.seed, per_run)
                );
            }
            reports.push(r);
            if let Some(b) = &bar {
                b.inc(1);
                b.set_message(format!("{} failed", reports.iter().filter(|x| x.failed()).count()));
            }
        }
        Ok(())
    })?;
    reports.sort_by_key(|r| r.seed);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let summary = report::summarize(&reports);
    print!("{}", report::table(&reports, &summary));
    report::write(&args.out, &summary, &reports)?;
    println!("results: {}/summary.json, timeline.svg", args.out.display());
    let failed: Vec<u64> = reports.iter().filter(|r| r.failed()).map(|r| r.seed).collect();
    if !failed.is_empty() {
        bail!("{} of {} runs violated an invariant (seeds {failed:?})", failed.len(), reports.len());
    }
    let checked: u64 = reports.iter().map(|r| r.blocks_checked).sum();
    let acked: usize = reports.iter().map(|r| r.acked_txs).sum();
    println!(
        "invariants hold: {} fault events over {} run(s); read back from every operator's storage: {checked} blocks identical on all {} operators and every head they served during the run, {acked} acknowledged txs each committed once, no tx twice{} (seed {})",
        reports.iter().map(|r| r.faults.len()).sum::<usize>(),
        reports.len(),
        args.nodes,
        if summary.superfinal_checked > 0 {
            format!(", superfinal blocks up to {} unchanged", summary.superfinal_checked)
        } else {
            String::new()
        },
        args.seed
    );
    Ok(())
}

fn replay_command(args: &ChaosArgs, faults: &str, seed: u64, min_faults: usize) -> String {
    format!(
        "bss chaos --nodes {} --duration {} --seed {seed} --min-faults {min_faults} --faults {} --rate {} --block-time {}",
        args.nodes,
        humantime::format_duration(args.duration),
        faults,
        args.rate,
        humantime::format_duration(args.block_time)
    ) + if args.tunnel { " --tunnel" } else { "" }
        + if args.beyond_f { " --beyond-f" } else { "" }
        + &if args.backend == "docker" { format!(" --backend docker --image {}", args.image) } else { String::new() }
}
