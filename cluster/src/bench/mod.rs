//! `bss bench`: the throughput run. Starts a local federation (or attaches to one with `--rpc`),
//! funds sender accounts, pre-signs transactions, sends them in JSON-RPC batches across every
//! operator at a target rate (or as fast as they are accepted), and measures from the commits:
//! tx/s, gas/s, blocks/s, commit latency percentiles, rejected txs, per-operator CPU and RSS,
//! next to this machine's ceilings (signature recovery and raw revm).

mod catchup;
pub mod client;
pub mod load;
mod observe;
mod phases;
mod procs;
mod report;
mod sweep;

use crate::devnet::{self, DevnetArgs, Extras, LocalFederation};
use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, TxKind, U256};
use bss_actors::hvm::accounts::{derive_accounts, DEV_MNEMONIC};
use bss_actors::hvm::bytecode::{deploy_initcode, token_runtime};
use bss_actors::hvm::limits;
use clap::Args;
use client::{hex_u64, RpcClient};
use eyre::{bail, eyre, Result, WrapErr};
use indicatif::{ProgressBar, ProgressStyle};
use load::{SendLog, TxKindArg};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Operators to start (ignored with --rpc).
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Consensus engine of the started federation.
    #[arg(long, default_value = "native")]
    engine: String,
    /// Attach to a running federation instead: one JSON-RPC URL per operator.
    #[arg(long = "rpc", num_args = 1..)]
    rpc: Vec<String>,
    /// Sender accounts (each sends its transactions in nonce order through one connection).
    #[arg(long, default_value_t = 2_000)]
    senders: usize,
    /// Target send rate in tx/s; 0 sends as fast as the operators accept.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// How long to send.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// What the transactions do.
    #[arg(long, value_enum, default_value = "eth")]
    kind: TxKindArg,
    /// Block gas limit of the started federation.
    #[arg(long, default_value_t = 100_000_000)]
    gas_limit: u64,
    /// Transactions per JSON-RPC batch request.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Sender threads (spread over the operators).
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Block time of the started federation.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    block_time: Duration,
    /// Most transactions to pre-sign (as-fast-as-possible mode signs for 20,000 tx/s).
    #[arg(long, default_value_t = 600_000)]
    max_txs: usize,
    /// RPC port of operator 0 of the started federation.
    #[arg(long, default_value_t = 18_545)]
    base_port: u16,
    /// Accounts in the started federation's genesis state besides the senders (1 wei each, at
    /// deterministic addresses): does throughput hold as the state grows?
    #[arg(long, default_value_t = 0)]
    accounts: u64,
    /// Runs per measured point, each on a fresh federation; figures are the median with the
    /// spread (min–max), in `DIR/scale.json`.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Measure how throughput grows: `nodes=4,7,10` (operators) or `accounts=0,100000,1000000`
    /// (genesis state size); each value --repeat times. Writes `DIR/scale.json` and
    /// `DIR/scale.svg`, every run in `DIR/<axis>-<value>/run-<k>`.
    #[arg(long)]
    sweep: Option<String>,
    /// After the load, stop the last operator, wipe its data and start it again: how fast it
    /// syncs the chain back (blocks/s and tx/s, in the table and summary.json).
    #[arg(long)]
    catch_up: bool,
    /// Where summary.json, timeline.csv, timeline.svg (and the federation's data) go.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
}

fn funding_wei() -> U256 {
    U256::from(10u128.pow(24))
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.senders == 0 || args.threads == 0 || args.batch == 0 || args.repeat == 0 {
        bail!("--senders, --threads, --batch and --repeat must be at least 1");
    }
    let sweep = args.sweep.as_deref().map(sweep::parse).transpose()?;
    if (sweep.is_some() || args.repeat > 1) && !args.rpc.is_empty() {
        bail!("--sweep and --repeat start their own federations: leave out --rpc");
    }
    println!("measuring this machine's ceilings…");
    let machine = report::MachineLimits {
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        sig_recovery_per_sec_per_core: limits::sender_recovery_per_sec(20_000),
        raw_revm_transfers_per_sec: limits::raw_revm_transfers_per_sec(50_000),
    };
    println!(
        "  signature recovery {:.0}/s per core, raw revm {:.0} transfers/s",
        machine.sig_recovery_per_sec_per_core, machine.raw_revm_transfers_per_sec
    );
    if sweep.is_none() && args.repeat == 1 {
        return run_one(&args, machine).map(|_| ());
    }
    let values: Vec<Option<u64>> = match &sweep {
        Some(s) => s.values.iter().copied().map(Some).collect(),
        None => vec![None],
    };
    let mut points = vec![];
    for value in values {
        let mut runs = vec![];
        for k in 0..args.repeat {
            let mut a = args.clone();
            let dir = match (&sweep, value) {
                (Some(s), Some(v)) => {
                    match s.axis {
                        sweep::Axis::Nodes => a.nodes = v as usize,
                        sweep::Axis::Accounts => a.accounts = v,
                    }
                    format!("{}-{v}", s.axis.name())
                }
                _ => "repeat".into(),
            };
            a.out = args.out.join(dir).join(format!("run-{k}"));
            println!("\n== {} run {} of {}", value.map_or(String::new(), |v| format!("{v}:")), k + 1, args.repeat);
            runs.push(run_one(&a, machine.clone())?);
            // The federation's data (a million-account state is large); the results stay.
            let _ = std::fs::remove_dir_all(a.out.join("federation"));
        }
        points.push(sweep::point(value, &runs));
    }
    let axis = sweep.as_ref().map(|s| s.axis);
    println!("\nmedian of {} run(s) per point, with the spread:", args.repeat);
    print!("{}", sweep::table(axis, &points));
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(
        args.out.join("scale.json"),
        serde_json::to_string_pretty(&json!({ "axis": axis, "repeat": args.repeat, "points": points }))?,
    )?;
    if let Some(axis) = axis {
        std::fs::write(args.out.join("scale.svg"), sweep::svg(axis, &points))?;
    }
    println!("results: {}/scale.json{}", args.out.display(), if axis.is_some() { ", scale.svg" } else { "" });
    Ok(())
}

/// One measured run: a fresh federation (or the one at --rpc), its summary written to --out.
fn run_one(args: &BenchArgs, machine: report::MachineLimits) -> Result<report::Summary> {
    let keys = load::sender_keys(args.senders);

    let mut federation: Option<LocalFederation> = None;
    let rpc: Vec<String> = if args.rpc.is_empty() {
        let dev = DevnetArgs::without_bitcoin(
            args.nodes,
            args.base_port,
            &args.engine,
            args.out.join("federation"),
            args.block_time,
            Duration::from_secs(1),
        );
        let extras = Extras {
            alloc: keys.iter().map(|k| (k.address, funding_wei())).collect(),
            gas_limit: Some(args.gas_limit),
            consensus: "max_block_txs = 100000".into(),
            mempool: "max_txs = 2000000\nmax_per_sender = 100000\nmax_nonce_gap = 100000".into(),
            btc: String::new(),
            pop: false,
            filler_accounts: args.accounts,
            tunnel: false,
            confirmations_lag: None,
        };
        println!("starting {} operator(s) in {}…", args.nodes, dev.data_dir.display());
        let configs = devnet::prepare(&dev, &extras)?;
        let fed = LocalFederation::launch(&dev, &configs)?;
        let urls = fed.rpc.clone();
        federation = Some(fed);
        urls
    } else {
        args.rpc.clone()
    };
    let mut result = bench(args, &keys, &rpc, federation.as_ref(), machine);
    if let (Ok(summary), Some(fed), true) = (&mut result, &mut federation, args.catch_up) {
        match catchup::measure(fed, CATCH_UP_TIMEOUT) {
            Ok(c) => {
                println!("  wiped operator {} caught up: {c}", c.operator);
                summary.catch_up = Some(c);
                report::write_summary(&args.out, summary)?;
            }
            Err(e) => result = Err(e),
        }
    }
    if let Some(mut f) = federation {
        f.stop();
    }
    result
}

/// How long a wiped operator may take to sync the chain back (`--catch-up`).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(600);

fn bench(
    args: &BenchArgs,
    keys: &[bss_actors::hvm::accounts::DevKey],
    rpc: &[String],
    federation: Option<&LocalFederation>,
    machine: report::MachineLimits,
) -> Result<report::Summary> {
    let mut c0 = RpcClient::new(&rpc[0]);
    let chain_id = c0
        .call("eth_chainId", json!([]))
        .map_err(|e| eyre!(e))
        .and_then(|v| hex_u64(&v).ok_or_else(|| eyre!("bad chain id")))?;
    let dev = derive_accounts(DEV_MNEMONIC, 10).map_err(|e| eyre!("{e}"))?;
    if federation.is_none() {
        fund(&mut c0, &dev, keys, chain_id)?;
    }
    let token = match args.kind {
        TxKindArg::Eth => Address::ZERO,
        _ => deploy_token(&mut c0, &dev[0], chain_id)?,
    };
    let nonces: Vec<u64> = if federation.is_some() {
        vec![0; keys.len()]
    } else {
        keys.iter()
            .map(|k| {
                c0.call("eth_getTransactionCount", json!([k.address, "pending"]))
                    .ok()
                    .and_then(|v| hex_u64(&v))
                    .unwrap_or(0)
            })
            .collect()
    };
    let secs = args.duration.as_secs_f64();
    let total = if args.rate > 0.0 { (args.rate * secs) as usize } else { (20_000.0 * secs) as usize }
        .min(args.max_txs)
        .max(keys.len());
    let depth = total.div_ceil(keys.len());
    let signed = Arc::new(load::presign(keys, depth, args.kind, token, chain_id, &nonces, args.threads));
    println!("pre-signed {} transactions ({} senders × {depth})", signed.raw.len(), keys.len());

    let pids = federation.map(|f| f.pids()).unwrap_or_default();
    let cpu_start: Vec<_> = pids.iter().map(|p| procs::sample(*p)).collect();
    // Every operator's phase sums, when we know its process (a started federation).
    let scraped: &[String] = if pids.is_empty() { &[] } else { rpc };
    let phases_start = phases::sample(scraped);
    let mut rss_max = vec![0u64; pids.len()];
    let log = Arc::new(SendLog::new(signed.raw.len()));
    let rate_per_lane = args.rate / args.threads as f64;
    let mut handles = Vec::new();
    for lane in 0..args.threads {
        let (url, signed, log) = (rpc[lane % rpc.len()].clone(), signed.clone(), log.clone());
        let batch = args.batch;
        handles.push(std::thread::spawn(move || load::send_lane(url, signed, lane, batch, rate_per_lane, log)));
    }
    {
        let log = log.clone();
        let d = args.duration;
        std::thread::spawn(move || {
            std::thread::sleep(d);
            log.stop.store(true, Ordering::Relaxed);
        });
    }
    let bar = ProgressBar::new(args.duration.as_secs().max(1));
    bar.set_style(
        ProgressStyle::with_template("benchmark {bar:40} {pos}/{len} s  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut last_sample = Instant::now();
    let obs = observe::watch(rpc[0].clone(), signed.clone(), log.clone(), Duration::from_secs(15), |o| {
        let el = log.started.elapsed().as_secs_f64();
        bar.set_position((el as u64).min(args.duration.as_secs()));
        let sent = log.sent.load(Ordering::Relaxed);
        bar.set_message(format!(
            "sent {sent}  committed {}  ({:.0} tx/s)  rejected {}",
            o.committed,
            o.committed as f64 / el.max(1e-3),
            log.rejected.load(Ordering::Relaxed)
        ));
        if last_sample.elapsed() > Duration::from_secs(1) {
            last_sample = Instant::now();
            for (i, p) in pids.iter().enumerate() {
                if let Some(s) = procs::sample(*p) {
                    rss_max[i] = rss_max[i].max(s.rss_kib);
                }
            }
        }
    });
    bar.finish_and_clear();
    for h in handles {
        let _ = h.join();
    }
    let elapsed = log.started.elapsed().as_secs_f64();
    for (i, p) in pids.iter().enumerate() {
        if let Some(s) = procs::sample(*p) {
            rss_max[i] = rss_max[i].max(s.rss_kib);
        }
    }
    let nodes: Vec<report::NodeUsage> = pids
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let end = procs::sample(*p);
            let cpu = match (cpu_start[i], end) {
                (Some(a), Some(b)) => procs::cpu_percent(a, b, elapsed),
                _ => 0.0,
            };
            report::NodeUsage { operator: i, cpu_percent: cpu, rss_mib_max: rss_max[i] as f64 / 1024.0 }
        })
        .collect();
    let phases_end = phases::sample(scraped);
    let cpu_seconds: Vec<f64> = nodes.iter().map(|n| n.cpu_percent / 100.0 * elapsed).collect();
    let phase_us_per_tx = phases::profile(&phases_start, &phases_end, &cpu_seconds, obs.committed);
    let mut lat = obs.latencies_ms.clone();
    lat.sort_by(f64::total_cmp);
    let window = obs.last_commit_s.max(1e-3);
    let committed_tps = obs.committed as f64 / window;
    let summary = report::Summary {
        operators: rpc.len(),
        engine: args.engine.clone(),
        kind: args.kind,
        senders: keys.len(),
        genesis_accounts: federation.map_or(0, |_| args.accounts),
        target_rate: (args.rate > 0.0).then_some(args.rate),
        duration_s: args.duration.as_secs_f64(),
        block_gas_limit: federation.map(|_| args.gas_limit),
        batch: args.batch,
        sent: log.sent.load(Ordering::Relaxed),
        rejected: log.rejected.load(Ordering::Relaxed),
        send_errors: log.errors.load(Ordering::Relaxed),
        committed: obs.committed,
        committed_tps,
        gas_per_s: obs.gas as f64 / window,
        blocks_per_s: obs.blocks as f64 / window,
        latency_ms_p50: observe::percentile(&lat, 50.0),
        latency_ms_p90: observe::percentile(&lat, 90.0),
        latency_ms_p99: observe::percentile(&lat, 99.0),
        nodes,
        // Every operator recovers the sender of every tx once (admission or gossip).
        fraction_of_sig_recovery_limit: committed_tps * rpc.len() as f64
            / (machine.sig_recovery_per_sec_per_core * machine.cores as f64).max(1.0),
        fraction_of_raw_revm: committed_tps / machine.raw_revm_transfers_per_sec.max(1.0),
        phase_us_per_tx,
        machine,
        catch_up: None,
        base_fee_gwei_max: obs.base_fee_max as f64 / 1e9,
        blocks_priced_out: obs.priced_out_blocks,
    };
    report::write_all(&args.out, &summary, &obs.timeline).wrap_err("writing the results")?;
    print!("{}", report::table(&summary));
    println!("results: {}/summary.json, timeline.csv, timeline.svg", args.out.display());
    Ok(summary)
}

/// Attach mode: the ten dev accounts fund the senders, then we wait for the last funding tx.
fn fund(
    c: &mut RpcClient,
    dev: &[bss_actors::hvm::accounts::DevKey],
    keys: &[bss_actors::hvm::accounts::DevKey],
    chain_id: u64,
) -> Result<()> {
    println!("funding {} senders from the dev accounts…", keys.len());
    let mut last = None;
    for (d, chunk) in dev.iter().zip(keys.chunks(keys.len().div_ceil(dev.len()))) {
        let first = c
            .call("eth_getTransactionCount", json!([d.address, "pending"]))
            .ok()
            .and_then(|v| hex_u64(&v))
            .unwrap_or(0);
        for (nonce, k) in (first..).zip(chunk) {
            let raw = d.sign_raw(TxEip1559 {
                chain_id,
                nonce,
                gas_limit: 21_000,
                max_fee_per_gas: load::MAX_FEE_PER_GAS,
                max_priority_fee_per_gas: 1_000,
                to: TxKind::Call(k.address),
                value: U256::from(10u128.pow(20)),
                ..Default::default()
            });
            last = Some(c.call("eth_sendRawTransaction", json!([raw])).map_err(|e| eyre!("funding: {e}"))?);
        }
    }
    if let Some(h) = last {
        wait_receipt(c, &h)?;
    }
    Ok(())
}

fn deploy_token(c: &mut RpcClient, dev: &bss_actors::hvm::accounts::DevKey, chain_id: u64) -> Result<Address> {
    let nonce =
        c.call("eth_getTransactionCount", json!([dev.address, "pending"])).ok().and_then(|v| hex_u64(&v)).unwrap_or(0);
    let raw = dev.sign_raw(TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 300_000,
        max_fee_per_gas: load::MAX_FEE_PER_GAS,
        max_priority_fee_per_gas: 1_000,
        to: TxKind::Create,
        input: deploy_initcode(&token_runtime()),
        ..Default::default()
    });
    let h = c.call("eth_sendRawTransaction", json!([raw])).map_err(|e| eyre!("deploying the token: {e}"))?;
    let r = wait_receipt(c, &h)?;
    r["contractAddress"].as_str().and_then(|a| a.parse().ok()).ok_or_else(|| eyre!("token deploy failed: {r}"))
}

fn wait_receipt(c: &mut RpcClient, hash: &serde_json::Value) -> Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = c.call("eth_getTransactionReceipt", json!([hash])) {
            if !r.is_null() {
                return Ok(r);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("no receipt for {hash} within 60 s")
}
