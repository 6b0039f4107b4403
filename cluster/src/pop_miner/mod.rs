//! `bss pop-miner --rpc URL --btc-rpc URL --key FILE`: a PoP miner that is not an operator.
//!
//! It follows a federation's keystone certificates (`bss_keystoneCertificate`) and posts each
//! keystone that no counted keystone in Bitcoin covers yet, from its own coins (a keystone tx
//! pays its change back to the miner's address, so one funded coin pays for many). It replaces
//! an unconfirmed tx with a higher fee (RBF) after `--bump-after` Bitcoin blocks, up to
//! `--fee-cap`, rebroadcasts on every new Bitcoin block (which repairs a reorg that dropped it),
//! and posts again if a reorg took away the keystone's only counted sighting.
//!
//! What it trusts the node for: only which certificates exist and whether Bitcoin already holds
//! them. A lying node can make it waste fees on junk or post nothing; it can never make a false
//! keystone count, because a keystone counts only when its certificate verifies against the
//! operator keys the genesis pins.

mod coins;

use crate::bench::client::RpcClient;
use crate::btc_url::BtcUrl;
use bitcoin::{OutPoint, Transaction, Txid};
use bitcoincore_rpc::RpcApi;
use bss_actors::pop::keystone::CertifiedKeystone;
use bss_actors::pop::tx::PopWallet;
use coins::Coins;
use eyre::{eyre, Result, WrapErr};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tracing::{info, warn};

#[derive(clap::Args)]
pub struct PopMinerArgs {
    /// A federation operator's JSON-RPC URL.
    #[arg(long)]
    pub rpc: String,
    /// A Bitcoin node's RPC URL (http://user:pass@host:port); or set BSS_BTC_RPC.
    #[arg(long, env = "BSS_BTC_RPC", hide_env_values = true)]
    pub btc_rpc: String,
    /// The miner's secp256k1 secret key file (hex, mode 0600); `bss keygen --btc` makes one.
    #[arg(long)]
    pub key: PathBuf,
    /// Bitcoin network of the addresses it prints.
    #[arg(long, default_value = "regtest")]
    pub network: bitcoin::Network,
    /// First fee rate (sat/vB) when bitcoind has no estimate.
    #[arg(long, default_value_t = 2.0)]
    pub fee_floor: f64,
    /// Highest fee rate (sat/vB) a bump goes to.
    #[arg(long, default_value_t = 50.0)]
    pub fee_cap: f64,
    /// Bitcoin blocks an unconfirmed keystone tx waits before it is replaced with a higher fee.
    #[arg(long, default_value_t = 2)]
    pub bump_after: u64,
    /// How many of the latest keystone numbers it keeps posted.
    #[arg(long, default_value_t = 4)]
    pub window: u64,
    /// Bitcoin blocks back from the tip it scans for its coins at start.
    #[arg(long, default_value_t = 2016)]
    pub scan_blocks: u64,
    /// How often it looks at the federation and Bitcoin.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub poll: Duration,
    /// Stop after this long (default: run until killed).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
}

/// A keystone tx of ours, not yet counted in Bitcoin.
struct Pending {
    tx: Transaction,
    txid: Txid,
    input: OutPoint,
    value: u64,
    rate: f64,
    broadcast_at: u64,
    cert: CertifiedKeystone,
}

struct Miner {
    args: PopMinerArgs,
    wallet: PopWallet,
    l2: RpcClient,
    btc: bitcoincore_rpc::Client,
    coins: Coins,
    pending: BTreeMap<u64, Pending>,
    posted: u64,
    bumps: u64,
    fees: u64,
}

pub fn run(args: PopMinerArgs) -> Result<()> {
    let secret = bss_actors::node::config::read_secret_file(&args.key)?;
    let bytes: [u8; 32] = hex::decode(secret.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| eyre!("{}: not a 32-byte hex secret key", args.key.display()))?;
    let wallet = PopWallet::new(bytes, args.network).map_err(|e| eyre!("{}: {e}", args.key.display()))?;
    let btc = BtcUrl::parse(&args.btc_rpc)?.client()?;
    println!("bss pop-miner: posting keystones of {} to Bitcoin from {}", args.rpc, wallet.address);
    let l2 = RpcClient::new(&args.rpc);
    let mut m = Miner {
        args,
        wallet,
        l2,
        btc,
        coins: Coins::default(),
        pending: BTreeMap::new(),
        posted: 0,
        bumps: 0,
        fees: 0,
    };
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        if let Err(e) = m.round() {
            warn!(target: "pop_miner", error = %e, "round failed; retrying");
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            info!(target: "pop_miner", posted = m.posted, bumps = m.bumps, fees_sats = m.fees, balance_sats = m.coins.balance(), pending = m.pending.len(), "pop-miner status");
        }
        if m.args.duration.is_some_and(|d| started.elapsed() >= d) {
            info!(target: "pop_miner", posted = m.posted, bumps = m.bumps, fees_sats = m.fees, "pop-miner done");
            return Ok(());
        }
        std::thread::sleep(m.args.poll);
    }
}

impl Miner {
    fn round(&mut self) -> Result<()> {
        let (best, new_block) = self.follow_bitcoin()?;
        let latest = self.l2.call("bss_keystoneCertificate", json!(["latest"])).map_err(|e| eyre!("{e}"))?;
        if latest.is_null() {
            return Ok(());
        }
        let interval = latest["keystoneInterval"].as_u64().unwrap_or(1).max(1);
        let top = latest["number"].as_u64().ok_or_else(|| eyre!("no number in {latest}"))?;
        let low = top.saturating_sub(interval * self.args.window.saturating_sub(1));
        self.pending.retain(|n, _| *n >= low);
        for n in (low..=top).rev().step_by(interval as usize).filter(|n| *n > 0) {
            let c = if n == top {
                latest.clone()
            } else {
                self.l2.call("bss_keystoneCertificate", json!([n])).map_err(|e| eyre!("{e}"))?
            };
            if c.is_null() {
                continue;
            }
            if !c["inBitcoin"].is_null() {
                // Counted in Bitcoin (ours or another poster's): nothing more to pay for.
                self.pending.remove(&n);
                continue;
            }
            match self.pending.get(&n) {
                None => self.post(n, &c, best)?,
                Some(p) if self.coins.is_confirmed(&p.txid) => {}
                Some(p) if best >= p.broadcast_at + self.args.bump_after => self.bump(n, best)?,
                Some(p) if new_block => self.broadcast(&p.tx, n),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Scans new Bitcoin blocks for the miner's coins; on a reorg it rescans its window.
    fn follow_bitcoin(&mut self) -> Result<(u64, bool)> {
        let best = self.btc.get_block_count().wrap_err("getblockcount")?;
        if let Some((h, hash)) = self.coins.tip() {
            let on_best = h <= best && self.btc.get_block_hash(h).ok() == Some(hash);
            if !on_best {
                warn!(target: "pop_miner", height = h, "Bitcoin reorganized under the miner's scan; rescanning");
                self.coins = Coins::default();
            }
        }
        let from = match self.coins.tip() {
            Some((h, _)) => h + 1,
            None => best.saturating_sub(self.args.scan_blocks),
        };
        let script = self.wallet.script();
        for h in from..=best {
            let hash = self.btc.get_block_hash(h).wrap_err("getblockhash")?;
            let block = self.btc.get_block(&hash).wrap_err("getblock")?;
            self.coins.connect(h, &block, &script);
        }
        Ok((best, from <= best))
    }

    fn fee_rate(&self) -> f64 {
        let estimate =
            self.btc.estimate_smart_fee(2, None).ok().and_then(|e| e.fee_rate).map(|r| r.to_sat() as f64 / 1000.0);
        estimate.unwrap_or(self.args.fee_floor).clamp(self.args.fee_floor, self.args.fee_cap)
    }

    fn post(&mut self, n: u64, c: &Value, best: u64) -> Result<()> {
        let raw = c["certificate"].as_str().unwrap_or_default().trim_start_matches("0x");
        let cert = CertifiedKeystone::decode(&hex::decode(raw)?).map_err(|e| eyre!("certificate of {n}: {e}"))?;
        let busy: HashSet<OutPoint> = self.pending.values().map(|p| p.input).collect();
        let Some((input, value)) = self.coins.largest(&busy, best) else {
            warn!(target: "pop_miner", l2 = n, address = %self.wallet.address, "no spendable coin to post a keystone (fund the address)");
            return Ok(());
        };
        let rate = self.fee_rate();
        let tx = self.wallet.keystone_tx(input, value, &cert, rate).map_err(|e| eyre!("{e}"))?;
        let txid = tx.compute_txid();
        info!(target: "pop_miner", l2 = n, %txid, vsize = tx.vsize(), sat_per_vb = rate, signers = ?cert.signers, "posting keystone");
        self.broadcast(&tx, n);
        self.posted += 1;
        self.fees += value - tx.output[0].value.to_sat();
        self.pending.insert(n, Pending { tx, txid, input, value, rate, broadcast_at: best, cert });
        Ok(())
    }

    fn bump(&mut self, n: u64, best: u64) -> Result<()> {
        let Some(p) = self.pending.get_mut(&n) else { return Ok(()) };
        let rate = (p.rate * 1.5).max(self.args.fee_floor).min(self.args.fee_cap);
        if rate <= p.rate {
            p.broadcast_at = best;
            let tx = p.tx.clone();
            self.broadcast(&tx, n);
            return Ok(());
        }
        let tx = self.wallet.keystone_tx(p.input, p.value, &p.cert, rate).map_err(|e| eyre!("{e}"))?;
        info!(target: "pop_miner", l2 = n, txid = %tx.compute_txid(), sat_per_vb = rate, "replacing an unconfirmed keystone tx (RBF)");
        let fee_before = p.value - p.tx.output[0].value.to_sat();
        let fee_after = p.value - tx.output[0].value.to_sat();
        p.txid = tx.compute_txid();
        p.tx = tx.clone();
        p.rate = rate;
        p.broadcast_at = best;
        self.bumps += 1;
        self.fees += fee_after.saturating_sub(fee_before);
        self.broadcast(&tx, n);
        Ok(())
    }

    fn broadcast(&self, tx: &Transaction, n: u64) {
        if let Err(e) = self.btc.send_raw_transaction(tx) {
            let msg = e.to_string();
            if !msg.contains("already") {
                warn!(target: "pop_miner", l2 = n, txid = %tx.compute_txid(), error = %msg, "broadcast failed");
            }
        }
    }
}
