//! `bss btc-regtest`: run the embedded regtest node on its own.

use bitcoin::{Address, CompressedPublicKey, Network, PrivateKey};
use bss_regtest::methods::Ctx;
use bss_regtest::node::RegtestHandle;
use bss_regtest::rpc::serve;
use clap::Args;
use eyre::{eyre, Result, WrapErr};
use rand::RngCore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Where `bss btc-regtest` reads its RPC password from.
pub const PASSWORD_ENV: &str = "BSS_BTC_RPC_PASSWORD";

#[derive(Args)]
pub struct RegtestArgs {
    /// Chain data (and the .cookie file when no --rpc-user is given).
    #[arg(long, default_value = "btc-regtest-data")]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:18443")]
    rpc_bind: SocketAddr,
    /// RPC user; without one, a random cookie is written to DATA_DIR/.cookie, as bitcoind does.
    #[arg(long, requires = "rpc_password")]
    rpc_user: Option<String>,
    /// The password: from the environment (BSS_BTC_RPC_PASSWORD), so it stays out of `ps`.
    #[arg(long, env = PASSWORD_ENV, hide_env_values = true)]
    rpc_password: Option<String>,
    /// Mine a block this often (0 disables; blocks then come from generatetoaddress).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    block_interval: Duration,
    /// Where timer-mined coinbases pay (default: a fixed development key's P2WPKH address).
    #[arg(long)]
    mine_to: Option<String>,
    /// On a fresh chain, mine 3 coinbases to each of these addresses (comma-separated), then 100
    /// blocks so they are spendable: funds for PoP keystone keys in a compose federation.
    #[arg(long, value_delimiter = ',')]
    fund: Vec<String>,
}

/// The development mining address: P2WPKH of a fixed, public secret (never for real funds).
pub fn dev_mining_address() -> Address {
    let secret = bitcoin::secp256k1::SecretKey::from_slice(&[0x42; 32]).unwrap_or_else(|e| unreachable!("{e}"));
    let key = PrivateKey::new(secret, Network::Regtest);
    let secp = bitcoin::secp256k1::Secp256k1::signing_only();
    let pk = CompressedPublicKey::from_private_key(&secp, &key).unwrap_or_else(|e| unreachable!("{e}"));
    Address::p2wpkh(&pk, Network::Regtest)
}

pub fn run(args: RegtestArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)?;
    let (user, password) = match (&args.rpc_user, &args.rpc_password) {
        (Some(u), Some(p)) => (u.clone(), p.clone()),
        _ => {
            let mut secret = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            let (u, p) = ("__cookie__".to_string(), hex::encode(secret));
            let cookie = args.data_dir.join(".cookie");
            crate::write_secret(&cookie, &format!("{u}:{p}"))?;
            (u, p)
        }
    };
    let regtest_address = |a: &str, flag: &str| {
        Address::from_str(a)
            .ok()
            .and_then(|a| a.require_network(Network::Regtest).ok())
            .ok_or_else(|| eyre!("{flag} {a}: not a regtest address"))
    };
    let mine_to = match &args.mine_to {
        Some(a) => regtest_address(a, "--mine-to")?,
        None => dev_mining_address(),
    };
    let fund = args.fund.iter().map(|a| regtest_address(a, "--fund")).collect::<Result<Vec<_>>>()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let node = RegtestHandle::start(&args.data_dir).map_err(|e| eyre!("{e}"))?;
        let fresh = node.with(|s| s.tip_height()).await.unwrap_or(0) == 0;
        if fresh && !fund.is_empty() {
            for a in &fund {
                node.mine(3, a.script_pubkey()).await.map_err(|e| eyre!("funding {a}: {e}"))?;
            }
            node.mine(100, mine_to.script_pubkey()).await.map_err(|e| eyre!("maturing the funding: {e}"))?;
            println!("  funded  {} address(es) with 3 mature coinbases each", fund.len());
        }
        let ctx = Ctx { node: node.clone(), started: Instant::now() };
        let (handle, bound) = serve(args.rpc_bind, &user, &password, ctx)
            .await
            .wrap_err_with(|| format!("cannot listen on {}", args.rpc_bind))?;
        println!("bss btc-regtest — Bitcoin regtest chain");
        match &args.rpc_user {
            Some(_) => println!("  RPC     http://{user}:***@{bound}  (the password you gave)"),
            None => println!("  RPC     http://{bound}  (cookie {})", args.data_dir.join(".cookie").display()),
        }
        println!("  data    {}", args.data_dir.display());
        println!("  mining  every {} to {mine_to}", humantime::format_duration(args.block_interval));
        if !args.block_interval.is_zero() {
            let script = mine_to.script_pubkey();
            let interval = args.block_interval;
            tokio::spawn(async move {
                let mut t = tokio::time::interval(interval);
                t.tick().await;
                loop {
                    t.tick().await;
                    if let Err(e) = node.mine(1, script.clone()).await {
                        tracing::error!(target: "regtest", error = %e, "mining failed");
                    }
                }
            });
        }
        tokio::signal::ctrl_c().await?;
        let _ = handle.stop();
        println!("bss btc-regtest: stopped");
        Ok::<(), eyre::Report>(())
    })
}
