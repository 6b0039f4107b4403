//! `bss devnet`: a local federation with generated keys, configs and data dirs.

use bss_actors::hvm::accounts::derive_accounts;
use bss_actors::node::{GenesisConfig, NodeConfig};
use bss_consensus::OperatorSigner;
use clap::Args;
use eyre::{bail, Result, WrapErr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct DevnetArgs {
    /// Number of operators. This build runs a federation of one.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Node i serves JSON-RPC on 127.0.0.1:(base-port + i).
    #[arg(long, default_value_t = 8545)]
    base_port: u16,
    /// Where keys, configs and chain data go.
    #[arg(long, default_value = "devnet-data")]
    data_dir: PathBuf,
    /// Chain id of the devnet.
    #[arg(long, default_value_t = 1337)]
    chain_id: u64,
    /// Time between blocks.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    block_time: Duration,
    /// Delete existing devnet data first.
    #[arg(long)]
    fresh: bool,
}

pub fn run(args: DevnetArgs) -> Result<()> {
    if args.nodes != 1 {
        bail!("--nodes {}: multi-operator federations need the BFT engines, which this build does not have yet; use --nodes 1", args.nodes);
    }
    if args.fresh && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir).wrap_err("removing old devnet data")?;
    }
    let node_dir = args.data_dir.join("node0");
    std::fs::create_dir_all(&node_dir)?;
    let key_path = node_dir.join("operator.key");
    let signer = if key_path.exists() {
        OperatorSigner::from_hex(&std::fs::read_to_string(&key_path)?).map_err(|e| eyre::eyre!("{e}"))?
    } else {
        let s = OperatorSigner::generate();
        crate::write_secret(&key_path, &s.secret_hex())?;
        s
    };
    let genesis: GenesisConfig = toml::from_str(&format!("chain_id = {}", args.chain_id))?;
    std::fs::write(args.data_dir.join("genesis.toml"), format!("[genesis]\n{}", toml::to_string(&genesis)?))?;
    let config_text = format!(
        "data_dir = \"node0\"\ngenesis_file = \"genesis.toml\"\noperator_key_file = \"node0/operator.key\"\n\n\
         [operators]\nkeys = [\"{}\"]\n\n[consensus]\nblock_time = \"{}\"\n\n[rpc]\naddr = \"127.0.0.1:{}\"\n",
        signer.public().to_hex(),
        humantime::format_duration(args.block_time),
        args.base_port,
    );
    let config_path = args.data_dir.join("node0.toml");
    std::fs::write(&config_path, config_text)?;
    let (cfg, genesis) = NodeConfig::load(&config_path)?;
    let accounts = derive_accounts(&genesis.dev_mnemonic, genesis.dev_accounts).map_err(|e| eyre::eyre!("{e}"))?;
    let chain_id = genesis.chain_id;
    crate::run_node(cfg, genesis, move |h| {
        println!();
        println!("bss devnet — {} operator(s), chain id {chain_id}", args.nodes);
        println!("  operator 0  JSON-RPC  http://{}   (ws://{})", h.rpc_addr, h.rpc_addr);
        println!("              metrics   http://{}/metrics", h.rpc_addr);
        println!("  config      {}", config_path.display());
        println!();
        println!(
            "Dev accounts (10,000 ETH each, mnemonic \"test test test test test test test test test test test junk\"):"
        );
        for (i, a) in accounts.iter().enumerate() {
            println!("  ({i}) {}  0x{}", a.address, a.secret_hex());
        }
        println!();
        println!("Ctrl-C to stop.");
    })
}
