//! `bss chaos`: a seeded fault-injection run against a local federation. It kills, restarts,
//! pauses (SIGSTOP) and resumes operators, and restarts them Byzantine (`--byzantine MODE`:
//! withhold-votes, wrong-root, equivocate, replay, forge-qc, false-lists) and honest again —
//! never more than f faulty at once — while sending a light
//! transaction load, then heals everything and checks the invariants: every operator commits
//! after the heal, every operator has the same block at every height, and every acknowledged
//! transaction is committed exactly once. Exits non-zero on a violation; the seed replays the run.

use crate::bench::client::{hex_u64, RpcClient};
use crate::devnet::{self, DevnetArgs, Extras, LocalFederation};
use alloy_consensus::TxEip1559;
use alloy_primitives::{keccak256, Address, TxKind, U256};
use bss_actors::hvm::accounts::{derive_accounts, DEV_MNEMONIC};
use clap::Args;
use eyre::{bail, Result};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ChaosArgs {
    /// Operators (f = ⌊(n − 1) / 3⌋ may be faulty at once).
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// How long to inject faults before healing.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Seed of the fault schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Background load, tx/s.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    block_time: Duration,
    /// RPC port of operator 0.
    #[arg(long, default_value_t = 19_545)]
    base_port: u16,
    /// Where the federation's data and logs go.
    #[arg(long, default_value = "chaos-out")]
    out: PathBuf,
}

/// A tiny deterministic generator (xorshift64*), so a seed replays the same schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Health {
    Up,
    Killed,
    Paused,
    Byzantine,
}

/// The Byzantine modes a run draws from (`censor` is left out: a censor acknowledges txs it
/// drops, which the acknowledged-txs check would count against the federation).
const BYZANTINE_MODES: [&str; 6] = ["withhold-votes", "wrong-root", "equivocate", "replay", "forge-qc", "false-lists"];

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

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

pub fn run(args: ChaosArgs) -> Result<()> {
    let dev = DevnetArgs::without_bitcoin(
        args.nodes,
        args.base_port,
        "native",
        args.out.clone(),
        args.block_time,
        Duration::from_millis(500),
    );
    let configs = devnet::prepare(&dev, &Extras { consensus: "max_timeout = \"3s\"".into(), ..Default::default() })?;
    let mut fed = LocalFederation::launch(&dev, &configs)?;
    let result = chaos(&args, &mut fed);
    fed.stop();
    result
}

fn chaos(args: &ChaosArgs, fed: &mut LocalFederation) -> Result<()> {
    let n = fed.children.len();
    let f = (n.saturating_sub(1)) / 3;
    let mut rng = Rng(args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut health = vec![Health::Up; n];
    let honest_configs: Vec<String> =
        fed.configs.iter().map(std::fs::read_to_string).collect::<std::io::Result<_>>()?;
    println!("bss chaos — {n} operators, f = {f}, seed {}, {:?} of faults", args.seed, args.duration);

    // Background load through whichever operators answer.
    let stop = Arc::new(AtomicBool::new(false));
    let (acked_tx, acked_rx) = mpsc::channel::<(usize, u64, String)>();
    let load = {
        let (rpc, stop, rate) = (fed.rpc.clone(), stop.clone(), args.rate);
        std::thread::spawn(move || send_load(rpc, rate, stop, acked_tx))
    };

    let started = Instant::now();
    let mut events = 0;
    while started.elapsed() < args.duration {
        std::thread::sleep(Duration::from_millis(1_500 + rng.below(2_500)));
        let t = started.elapsed().as_secs_f64();
        let faulty: Vec<usize> = (0..n).filter(|i| health[*i] != Health::Up).collect();
        // Recover when the fault budget is used up (or half the time); otherwise inject a fault.
        if !faulty.is_empty() && (faulty.len() >= f || rng.below(2) == 0) {
            let i = faulty[rng.below(faulty.len() as u64) as usize];
            if health[i] == Health::Killed {
                fed.restart(i)?;
                println!("  {t:6.1}s  restart operator {i}");
            } else if health[i] == Health::Byzantine {
                restart_as(fed, i, &honest_configs[i], &[])?;
                println!("  {t:6.1}s  restart operator {i} honest");
            } else {
                signal(fed.children[i].id(), "-CONT");
                println!("  {t:6.1}s  resume (SIGCONT) operator {i}");
            }
            health[i] = Health::Up;
            events += 1;
        } else if f > 0 {
            let up: Vec<usize> = (0..n).filter(|i| health[*i] == Health::Up).collect();
            let i = up[rng.below(up.len() as u64) as usize];
            let kind = rng.below(3);
            if kind == 2 {
                let mode = BYZANTINE_MODES[rng.below(BYZANTINE_MODES.len() as u64) as usize];
                restart_as(fed, i, &honest_configs[i], &[mode])?;
                health[i] = Health::Byzantine;
                println!("  {t:6.1}s  restart operator {i} byzantine:{mode}");
            } else if kind == 0 {
                signal(fed.children[i].id(), "-KILL");
                health[i] = Health::Killed;
                println!("  {t:6.1}s  kill -9 operator {i}");
            } else {
                signal(fed.children[i].id(), "-STOP");
                health[i] = Health::Paused;
                println!("  {t:6.1}s  pause (SIGSTOP) operator {i}");
            }
            events += 1;
        }
    }

    // Heal everything, stop the load, and check.
    for (i, h) in health.iter_mut().enumerate() {
        match *h {
            Health::Killed => fed.restart(i)?,
            Health::Byzantine => restart_as(fed, i, &honest_configs[i], &[])?,
            Health::Paused => signal(fed.children[i].id(), "-CONT"),
            Health::Up => {}
        }
        *h = Health::Up;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    let acked: Vec<(usize, u64, String)> = acked_rx.try_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for addr in &fed.rpc {
        if !devnet::wait_healthy(addr, deadline) {
            bail!("seed {}: an operator did not come back after the heal", args.seed);
        }
    }
    let mut clients: Vec<RpcClient> = fed.rpc.iter().map(|a| RpcClient::new(a)).collect();
    let height = |c: &mut RpcClient| c.call("eth_blockNumber", json!([])).ok().and_then(|v| hex_u64(&v)).unwrap_or(0);
    let top = clients.iter_mut().map(height).max().unwrap_or(0);
    // Liveness after the heal: everyone moves past the highest height seen at the heal.
    loop {
        let hs: Vec<u64> = clients.iter_mut().map(height).collect();
        if hs.iter().all(|h| *h >= top + 5) {
            break;
        }
        if Instant::now() > deadline {
            bail!("seed {}: LIVENESS: heights {hs:?} did not pass {} within 60 s of the heal", args.seed, top + 5);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Safety: one block per height, on every operator.
    let common = clients.iter_mut().map(height).min().unwrap_or(0);
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
            bail!("seed {}: SAFETY: operators disagree at height {h}: {hashes:?}", args.seed);
        }
    }
    // Every acknowledged transaction is committed.
    for (_, _, hash) in &acked {
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
            bail!("seed {}: an acknowledged transaction {hash} was never committed", args.seed);
        }
    }
    println!(
        "invariants hold: {events} fault events, {common} blocks identical on all {n} operators, {} acknowledged txs committed (seed {})",
        acked.len(),
        args.seed
    );
    Ok(())
}

/// Sends transfers from the dev accounts at `rate`, through the first operator that answers;
/// reports each acknowledged tx.
fn send_load(rpc: Vec<String>, rate: f64, stop: Arc<AtomicBool>, acked: mpsc::Sender<(usize, u64, String)>) {
    let keys = match derive_accounts(DEV_MNEMONIC, 4) {
        Ok(k) => k,
        Err(_) => return,
    };
    let mut clients: Vec<RpcClient> = rpc.iter().map(|a| RpcClient::new(a)).collect();
    let mut nonces = vec![0u64; keys.len()];
    let mut i = 0usize;
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.1));
    while !stop.load(Ordering::Relaxed) {
        let s = i % keys.len();
        let raw = keys[s].sign_raw(TxEip1559 {
            chain_id: 1337,
            nonce: nonces[s],
            gas_limit: 21_000,
            max_fee_per_gas: 100_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(Address::with_last_byte(0x99)),
            value: U256::from(1),
            ..Default::default()
        });
        let hash = keccak256(&raw).to_string();
        for k in 0..clients.len() {
            let c = &mut clients[(i + k) % rpc.len()];
            match c.call("eth_sendRawTransaction", json!([raw])) {
                Ok(_) => {
                    let _ = acked.send((s, nonces[s], hash.clone()));
                    nonces[s] += 1;
                    break;
                }
                // Accepted before a crash whose reply we lost: it is ours all the same.
                Err(e) if e.contains("already known") => {
                    let _ = acked.send((s, nonces[s], hash.clone()));
                    nonces[s] += 1;
                    break;
                }
                Err(_) => continue,
            }
        }
        i += 1;
        std::thread::sleep(gap);
    }
}
