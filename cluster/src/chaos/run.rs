//! One seeded chaos run: start a federation (with `--tunnel`, the embedded regtest, Proof-of-Proof
//! and tunnel traffic too), inject faults under load (`inject`), heal and let it settle
//! (`settle`), stop every operator and check the run's history against what each operator's own
//! storage holds (`checker`). Violations are reported, not raised, so that a campaign goes on and
//! counts them.

use super::backend::{Cluster, Processes};
use super::btc_faults::BtcHarness;
use super::checker;
use super::disk::{self, Disks};
use super::docker::Containers;
use super::links::{Links, Proxy};
use super::{FaultKind, LINK_FAULTS};
use crate::devnet::{self, DevnetArgs, Extras, LocalFederation};
use eyre::Result;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// What every run of a campaign shares.
#[derive(Clone)]
pub struct RunConfig {
    /// Prefix every event line with the run's seed (runs go side by side).
    pub tag_lines: bool,
    /// `Some(image)`: operators in containers of that image (`--backend docker`).
    pub docker_image: Option<String>,
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
    pub fn new(kind: &FaultKind, operator: Option<usize>, injected_s: f64) -> Self {
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
    /// Txs the operators' storage holds more than once (each also a safety violation).
    pub duplicated_txs: usize,
    /// The highest block seen superfinal during the run (Proof-of-Proof runs), held fixed.
    pub superfinal_checked: u64,
    /// Faults whose victim misbehaved: a full disk that did not stop its operator loudly.
    pub fault_violations: Vec<String>,
}

impl RunReport {
    pub fn failed(&self) -> bool {
        !self.safety_violations.is_empty()
            || self.liveness_violation.is_some()
            || self.lost_acked_txs > 0
            || !self.tunnel_violations.is_empty()
            || !self.fault_violations.is_empty()
    }
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
    // A fresh run directory (a run cut short may have left its disks mounted), kept as it is
    // from here on: the regtest and the disks live in it.
    for i in 0..cfg.nodes {
        disk::unmount_stale(&dev.data_dir.join(format!("node{i}")));
    }
    if dev.data_dir.exists() {
        std::fs::remove_dir_all(&dev.data_dir)?;
    }
    std::fs::create_dir_all(&dev.data_dir)?;
    dev.fresh = false;
    let disks = if cfg.kinds.contains(&FaultKind::Disk) { Some(Disks::mount(&dev.data_dir, cfg.nodes)?) } else { None };
    let docker_tag = format!("{}-{seed}", cfg.base_port);
    let keys = super::load::senders(cfg.rate);
    let mut extras = Extras {
        alloc: keys.iter().map(|k| (k.address, alloy_primitives::U256::from(10u128.pow(22)))).collect(),
        consensus: "max_timeout = \"3s\"".into(),
        ..Default::default()
    };
    let mut btc = None;
    if cfg.tunnel {
        // The embedded regtest two thousand ports above the RPC ports, a block a second.
        dev.btc_port = cfg.base_port.saturating_add(2000);
        dev.btc_block_interval = Duration::from_secs(1);
        let b = devnet::DevnetBitcoin::start(&dev)?;
        // Operators reach it through a proxy that `btc_slow` can slow down; containers at the
        // host's address on their network.
        let direct = std::net::SocketAddr::from(([127, 0, 0, 1], dev.btc_port));
        let proxy = match &cfg.docker_image {
            Some(_) => Proxy::start_on(super::docker::create_network(&docker_tag, cfg.nodes)?, direct)?,
            None => Proxy::start(direct)?,
        };
        // `btc_deep_reorg` goes deeper than this lag: certified blocks' Bitcoin tips are
        // orphaned, and every replica still executes them (README, threat model).
        extras.btc = b.section.replace(&direct.to_string(), &proxy.addr.to_string());
        extras.confirmations_lag = Some(super::btc_faults::LAG);
        extras.tunnel = true;
        // Keystones too, so that blocks become superfinal and the checker can hold them fixed.
        extras.pop = true;
        extras.alloc.push((super::tunnel::holder().address, alloy_primitives::U256::from(10u128.pow(22))));
        btc = Some(BtcHarness { dev: dev.clone(), url: b.url.clone(), node: Some(b), proxy });
    }
    let configs = devnet::prepare(&dev, &extras)?;
    if let Some(node) = btc.as_ref().and_then(|b| b.node.as_ref()) {
        devnet::fund_submitters(&dev, node)?;
    }
    let mut cluster: Box<dyn Cluster> = match &cfg.docker_image {
        Some(image) => Box::new(Containers::launch(image, &dev.data_dir, &configs, cfg.base_port, &docker_tag)?),
        None => {
            let links = if cfg.kinds.iter().any(|k| LINK_FAULTS.contains(&k.label().as_str())) {
                Some(route_through_links(&dev, &configs)?)
            } else {
                None
            };
            Box::new(Processes { fed: LocalFederation::launch(&dev, &configs)?, links })
        }
    };
    let schedule = super::inject::Schedule { seed, first_kind, min_injections };
    let parts = super::inject::Parts { btc: btc.as_mut(), disks: disks.as_ref() };
    let result = super::inject::inject(cfg, cluster.as_mut(), keys, parts, schedule);
    cluster.stop();
    if let Some(mut b) = btc {
        b.down();
    }
    let (mut report, history, acked) = result?;
    // Every operator is stopped: read each one's chain back from its storage.
    let mut chains = vec![];
    for i in 0..cfg.nodes {
        match checker::read_back(&dev.data_dir.join(format!("node{i}")).join("db")) {
            Ok(c) => chains.push(c),
            Err(e) => report.safety_violations.push(format!("operator {i}'s storage cannot be read back: {e:#}")),
        }
    }
    if chains.len() == cfg.nodes {
        let verdict = checker::check(&chains, &history, &acked);
        if let Some(lost) = &verdict.first_lost {
            println!("  [{seed}] ! {} acknowledged txs never committed, the first: {lost}", verdict.lost_acked);
        }
        report.safety_violations.extend(verdict.safety);
        report.lost_acked_txs = verdict.lost_acked;
        report.duplicated_txs = verdict.duplicated_txs;
        report.blocks_checked = verdict.common_height;
        report.superfinal_checked = history.superfinal.iter().map(|o| o.height).max().unwrap_or(0);
    }
    drop(disks);
    Ok(report)
}

/// Rewrites every operator's peer list so that operator i dials operator j through the link
/// proxy of (i, j).
fn route_through_links(dev: &DevnetArgs, configs: &[PathBuf]) -> Result<Links> {
    let p2p = dev.p2p_base_port.unwrap_or(dev.base_port.saturating_add(1000));
    let targets: Vec<std::net::SocketAddr> =
        (0..dev.nodes).map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], p2p + i as u16))).collect();
    let links = Links::start(&targets)?;
    for (i, path) in configs.iter().enumerate() {
        let via: Vec<String> =
            (0..dev.nodes).map(|j| format!("\"{}\"", if i == j { targets[j] } else { links.addrs[i][j] })).collect();
        let text = std::fs::read_to_string(path)?;
        let text: Vec<String> = text
            .lines()
            .map(|l| if l.starts_with("addrs = [") { format!("addrs = [{}]", via.join(", ")) } else { l.to_string() })
            .collect();
        crate::write_secret(path, &(text.join("\n") + "\n"))?;
    }
    Ok(links)
}
