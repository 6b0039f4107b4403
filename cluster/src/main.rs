//! `bss`: run a node, a local devnet, or generate operator keys.

mod bench;
mod btc_url;
mod chaos;
mod devnet;
mod force_include;
mod logging;
mod pop_miner;
mod regtest;
mod status;
mod tunnel_cmd;
mod verify;
mod verify_genesis;
mod verify_tunnel;

use bss_actors::node::{self, NodeConfig};
use bss_consensus::OperatorSigner;
use clap::{Parser, Subcommand};
use eyre::{Result, WrapErr};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "bss", version, about = "Bitcoin-Secure Sequencer federation node")]
struct Cli {
    /// Log format: text or json. Filter with RUST_LOG (default: info).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one operator's node from a TOML config.
    Node {
        #[arg(long)]
        config: PathBuf,
        /// A Byzantine test mode (`censor:0xADDR`, `false-lists`; repeatable). Refused unless
        /// the config says `allow_byzantine = true`.
        #[arg(long = "byzantine", value_name = "MODE")]
        byzantine: Vec<String>,
    },
    /// Run a local federation with generated keys, configs and data dirs.
    Devnet(devnet::DevnetArgs),
    /// Throughput benchmark: start (or attach to) a federation and load it with signed txs.
    Bench(bench::BenchArgs),
    /// Seeded fault injection (kill, restart, pause) against a local federation, then invariant checks.
    Chaos(chaos::ChaosArgs),
    /// Run the embedded Bitcoin regtest node (bitcoind-compatible RPC).
    BtcRegtest(regtest::cmd::RegtestArgs),
    /// Check the chain of evidence that an L2 block is final (certificate, keystone, Bitcoin).
    Verify(verify::VerifyArgs),
    /// Post a federation's keystone certificates to Bitcoin as a PoP miner (no operator key needed).
    PopMiner(pop_miner::PopMinerArgs),
    /// Post a signed L2 tx to Bitcoin (taproot envelope) so that every operator must include it.
    ForceInclude(force_include::ForceIncludeArgs),
    /// The BTC tunnel: `bss tunnel deposit` locks BTC in the vault for hBTC.
    Tunnel(tunnel_cmd::TunnelArgs),
    /// One-screen summary of an operator: head, round, peers, mempool, Bitcoin, finality.
    Status(status::StatusArgs),
    /// Generate an operator key pair (ed25519, or with --btc a secp256k1 keystone key), or show
    /// the public key of an existing one.
    Keygen {
        /// A Bitcoin PoP wallet key (`[pop] btc_key_file`, or `bss pop-miner --key`); it prints
        /// the x-only public key and the address to fund.
        #[arg(long)]
        btc: bool,
        /// Write the secret key (hex) to this file (mode 0600); print only the public key.
        #[arg(long, conflicts_with = "show")]
        out: Option<PathBuf>,
        /// Print the public key of the secret key in this file.
        #[arg(long)]
        show: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    logging::init(&cli.log_format);
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Node { config, byzantine } => {
            let (mut cfg, genesis) = NodeConfig::load(&config)?;
            cfg.byzantine.extend(byzantine);
            run_node(cfg, genesis, |h| {
                println!("bss node: operator {} serving JSON-RPC on http://{}", h.operator_index, h.rpc_addr);
            })
        }
        Command::Devnet(args) => devnet::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Chaos(args) => chaos::run(args),
        Command::BtcRegtest(args) => regtest::cmd::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Status(args) => status::run(args),
        Command::PopMiner(args) => pop_miner::run(args),
        Command::ForceInclude(args) => force_include::run(args, cli.log_format == "json"),
        Command::Tunnel(args) => tunnel_cmd::run(args, cli.log_format == "json"),
        Command::Keygen { show: Some(path), btc, .. } => {
            let secret = bss_actors::node::config::read_secret_file(&path)?;
            if btc {
                println!(
                    "keystone key (x-only): {}",
                    btc_public(&secret).wrap_err_with(|| path.display().to_string())?
                );
                let bytes: [u8; 32] = hex::decode(secret.trim())?
                    .try_into()
                    .map_err(|_| eyre::eyre!("{}: not 32 bytes", path.display()))?;
                let wallet = bss_actors::pop::tx::PopWallet::new(bytes, bitcoin::Network::Regtest)
                    .map_err(|e| eyre::eyre!("{e}"))?;
                println!("regtest address (fund it): {}", wallet.address);
                return Ok(());
            }
            let signer = OperatorSigner::from_hex(&secret).map_err(|e| eyre::eyre!("{}: {e}", path.display()))?;
            println!("public key: {}", signer.public().to_hex());
            Ok(())
        }
        Command::Keygen { out, show: None, btc: true } => {
            let mut secret = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
            let secret = hex::encode(secret);
            let public = btc_public(&secret)?;
            match out {
                Some(path) => {
                    write_secret(&path, &secret)?;
                    println!("keystone key (x-only): {public}");
                    println!("secret key written to {}", path.display());
                }
                None => println!("keystone key (x-only): {public}\nsecret key: {secret}"),
            }
            Ok(())
        }
        Command::Keygen { out, show: None, btc: false } => {
            let signer = OperatorSigner::generate();
            match out {
                Some(path) => {
                    write_secret(&path, &signer.secret_hex())?;
                    println!("public key: {}", signer.public().to_hex());
                    println!("secret key written to {}", path.display());
                }
                None => {
                    println!("public key: {}", signer.public().to_hex());
                    println!("secret key: {}", signer.secret_hex());
                }
            }
            Ok(())
        }
    }
}

pub fn write_secret(path: &std::path::Path, secret: &str) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).wrap_err_with(|| format!("cannot write {}", path.display()))?;
    writeln!(f, "{secret}")?;
    Ok(())
}

/// The x-only public key of a hex secp256k1 secret (what `[pop] keystone_keys` lists).
fn btc_public(secret_hex: &str) -> Result<String> {
    let bytes = hex::decode(secret_hex.trim())?;
    let sk = bitcoin::secp256k1::SecretKey::from_slice(&bytes)?;
    Ok(sk.x_only_public_key(&bitcoin::secp256k1::Secp256k1::signing_only()).0.to_string())
}

/// Runs a node in an actix system until Ctrl-C or SIGTERM (what `docker stop` and service
/// managers send), or until a fatal error stops the system.
pub fn run_node(cfg: NodeConfig, genesis: node::GenesisConfig, banner: impl FnOnce(&node::NodeHandle)) -> Result<()> {
    let system = actix::System::new();
    let started = system.block_on(async move { node::start(cfg, genesis).await });
    let handle = started?;
    banner(&handle);
    system.block_on(async {
        actix::spawn(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let signal = tokio::select! {
                r = tokio::signal::ctrl_c() => r.ok().map(|_| "Ctrl-C"),
                Some(_) = async { term.as_mut()?.recv().await } => Some("SIGTERM"),
            };
            if let Some(signal) = signal {
                tracing::info!(target: "node", signal, "shutting down");
                actix::System::current().stop();
            }
        });
    });
    let code = system.run_with_code()?;
    if code != 0 {
        eyre::bail!("node stopped after a fatal error (exit code {code}); see the log");
    }
    println!("bss: stopped cleanly");
    Ok(())
}
