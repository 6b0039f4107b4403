//! `bss devnet`: a local federation with generated keys, configs and data dirs.
//!
//! Every operator runs as a separate `bss node` process on loopback (node i: JSON-RPC on
//! base-port + i, operator network on p2p-base-port + i) with its log in DATA_DIR/node{i}.log, so
//! the terminal shows only the banner and status lines; all stop together on Ctrl-C.

use crate::btc_url::BtcUrl;
use bss_actors::hvm::accounts::derive_accounts;
use bss_actors::node::{GenesisConfig, NodeConfig};
use bss_consensus::OperatorSigner;
use clap::Args;
use eyre::{bail, Result, WrapErr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args, Clone)]
pub struct DevnetArgs {
    /// Number of operators (1 to 10).
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Node i serves JSON-RPC on 127.0.0.1:(base-port + i).
    #[arg(long, default_value_t = 8545)]
    pub base_port: u16,
    /// Node i listens for operators on 127.0.0.1:(p2p-base-port + i). Default: base-port + 1000.
    #[arg(long)]
    pub p2p_base_port: Option<u16>,
    /// Consensus engine: native or hotstuff-rs.
    #[arg(long, default_value = "native")]
    pub engine: String,
    /// Where keys, configs and chain data go.
    #[arg(long, default_value = "devnet-data")]
    pub data_dir: PathBuf,
    /// Chain id of the devnet.
    #[arg(long, default_value_t = 1337)]
    pub chain_id: u64,
    /// Minimum time between blocks.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub block_time: Duration,
    /// First round timeout.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub round_timeout: Duration,
    /// Delete existing devnet data first.
    #[arg(long)]
    pub fresh: bool,
    /// Port of the embedded Bitcoin regtest node's RPC.
    #[arg(long, default_value_t = 18443)]
    pub btc_port: u16,
    /// How often the embedded regtest node mines a block.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub btc_block_interval: Duration,
    /// Use this bitcoind (http://user:pass@host:port) instead of starting the embedded one.
    #[arg(long)]
    pub bitcoind: Option<String>,
    /// Every this many L2 blocks a keystone is anchored in Bitcoin.
    #[arg(long, default_value_t = 5)]
    pub keystone_interval: u64,
    /// Bitcoin confirmations that make a keystone's blocks superfinal.
    #[arg(long, default_value_t = 2)]
    pub superfinality_confirmations: u64,
    /// Make operator I Byzantine: `I=censor:0xADDR` or `I=false-lists` (repeatable). Writes
    /// `allow_byzantine = true` into that operator's config. For tests and demos only.
    #[arg(long = "byzantine", value_name = "I=MODE")]
    pub byzantine: Vec<String>,
    /// Anchor with one `bss pop-miner` (its key in DATA_DIR/pop-miner.key, funded from the
    /// embedded regtest) instead of the operators' own submitters.
    #[arg(long)]
    pub pop_miner: bool,
}

impl DevnetArgs {
    /// A fresh federation without Bitcoin, for tools that start their own (bench, chaos).
    pub fn without_bitcoin(
        nodes: usize,
        base_port: u16,
        engine: &str,
        data_dir: PathBuf,
        block_time: Duration,
        round_timeout: Duration,
    ) -> Self {
        Self {
            nodes,
            base_port,
            p2p_base_port: None,
            engine: engine.into(),
            data_dir,
            chain_id: 1337,
            block_time,
            round_timeout,
            fresh: true,
            btc_port: 0,
            btc_block_interval: Duration::ZERO,
            bitcoind: None,
            keystone_interval: 5,
            superfinality_confirmations: 2,
            byzantine: vec![],
            pop_miner: false,
        }
    }
}

/// The Bitcoin node of a devnet: the embedded regtest as a child process, or an external URL.
pub struct DevnetBitcoin {
    child: Option<Child>,
    /// With credentials (http://user:pass@host:port): for this process's own client, never
    /// printed or passed on a command line.
    pub url: String,
    /// What the banner shows: the URL with the password replaced by where to find it.
    pub shown: String,
    /// What the operators' `[btc]` sections say.
    pub section: String,
}

/// Splits http://user:pass@host:port into the `[btc]` section's fields.
fn btc_section(url: &str) -> Result<String> {
    let parsed = BtcUrl::parse(url).wrap_err("--bitcoind")?;
    let mut out = format!("[btc]\nrpc_url = \"{}\"\n", parsed.url);
    if let Some((u, p)) = parsed.credentials {
        out.push_str(&format!("rpc_user = \"{u}\"\nrpc_password = \"{p}\"\n"));
    }
    Ok(out)
}

impl DevnetBitcoin {
    pub fn start(args: &DevnetArgs) -> Result<Self> {
        if let Some(url) = &args.bitcoind {
            let shown = bss_actors::btc::source::redact_url(url);
            return Ok(Self { child: None, url: url.clone(), shown, section: btc_section(url)? });
        }
        let dir = args.data_dir.join("bitcoin");
        std::fs::create_dir_all(&dir)?;
        // A random password per devnet, kept 0600 beside the chain; the child reads it from its
        // environment, so it shows neither in `ps` nor in any log.
        let pass_file = dir.join("rpc.password");
        if !pass_file.exists() {
            let mut secret = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
            crate::write_secret(&pass_file, &hex::encode(secret))?;
        }
        let pass = std::fs::read_to_string(&pass_file)?.trim().to_string();
        let user = "bss";
        let addr = format!("127.0.0.1:{}", args.btc_port);
        let exe = std::env::current_exe().wrap_err("locating the bss binary")?;
        let log = std::fs::File::create(args.data_dir.join("bitcoin.log"))?;
        let child = Command::new(exe)
            .args(["btc-regtest", "--rpc-user", user, "--rpc-bind", &addr])
            .env(crate::regtest::cmd::PASSWORD_ENV, &pass)
            .arg("--block-interval")
            .arg(humantime::format_duration(args.btc_block_interval).to_string())
            .arg("--data-dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .wrap_err("starting the embedded Bitcoin regtest node")?;
        let url = format!("http://{user}:{pass}@{addr}");
        let shown = format!("http://{user}:<password in {}>@{addr}", pass_file.display());
        let mut btc = Self { child: Some(child), section: btc_section(&url)?, url, shown };
        // Its RPC needs auth: a connect is enough to know it listens.
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                btc.stop();
                bail!(
                    "the embedded Bitcoin regtest node did not come up on {addr}; see {}",
                    args.data_dir.join("bitcoin.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(btc)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_all(std::slice::from_mut(&mut c));
        }
    }
}

/// What a launcher may add to the generated configs (the benchmark uses this).
#[derive(Clone, Default)]
pub struct Extras {
    /// Further prefunded accounts: (address, wei).
    pub alloc: Vec<(alloy_primitives::Address, alloy_primitives::U256)>,
    pub gas_limit: Option<u64>,
    /// Appended to the [consensus] section.
    pub consensus: String,
    /// Appended to the [mempool] section.
    pub mempool: String,
    /// A `[btc]` section for every operator (empty: no Bitcoin view).
    pub btc: String,
    /// With `btc`: a `[pop]` section per operator, each with its own Bitcoin key.
    pub pop: bool,
    /// Genesis filler accounts (a large starting state).
    pub filler_accounts: u64,
    /// With `btc`: a BTC tunnel (`[genesis.tunnel]`, a custody key per operator).
    pub tunnel: bool,
    /// The genesis's `confirmations_lag` (None: its default, 1).
    pub confirmations_lag: Option<u64>,
}

/// Writes (or reuses) keys, genesis and one config per operator; returns the config paths.
pub fn prepare(args: &DevnetArgs, extras: &Extras) -> Result<Vec<PathBuf>> {
    if !(1..=10).contains(&args.nodes) {
        bail!("--nodes {}: a devnet has 1 to 10 operators", args.nodes);
    }
    if args.fresh && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir).wrap_err("removing old devnet data")?;
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let p2p_base = args.p2p_base_port.unwrap_or(args.base_port.saturating_add(1000));
    let mut keys = Vec::new();
    for i in 0..args.nodes {
        let dir = args.data_dir.join(format!("node{i}"));
        std::fs::create_dir_all(&dir)?;
        let key_path = dir.join("operator.key");
        let signer = if key_path.exists() {
            OperatorSigner::from_hex(&std::fs::read_to_string(&key_path)?).map_err(|e| eyre::eyre!("{e}"))?
        } else {
            let s = OperatorSigner::generate();
            crate::write_secret(&key_path, &s.secret_hex())?;
            s
        };
        keys.push(signer.public().to_hex());
    }
    let mut genesis: GenesisConfig = toml::from_str(&format!("chain_id = {}", args.chain_id))?;
    if let Some(g) = extras.gas_limit {
        genesis.gas_limit = g;
    }
    genesis.filler_accounts = extras.filler_accounts;
    genesis.alloc = extras
        .alloc
        .iter()
        .map(|(address, wei)| bss_actors::node::config::AllocEntry { address: *address, balance: wei.to_string() })
        .collect();
    if extras.tunnel && !extras.btc.is_empty() {
        let custody: Vec<String> = (0..args.nodes)
            .map(|i| custody_key(&args.data_dir.join(format!("node{i}"))).map(|k| k.public().to_string()))
            .collect::<Result<_>>()?;
        genesis.tunnel = Some(toml::from_str(&format!("custody_keys = {custody:?}"))?);
    }
    // The operator set, every operator's keystone key (only their keystones count) and the
    // Bitcoin-side rules live in the genesis, which every operator shares and whose hash pins them.
    let pop = extras.pop && !extras.btc.is_empty();
    genesis.federation.operators = keys.clone();
    if pop {
        genesis.federation.keystone_keys = (0..args.nodes)
            .map(|i| pop_key(&args.data_dir.join(format!("node{i}"))).map(|w| w.public_key().to_string()))
            .collect::<Result<_>>()?;
        genesis.federation.keystone_interval = args.keystone_interval;
        genesis.federation.superfinality_confirmations = args.superfinality_confirmations;
    }
    if let Some(lag) = extras.confirmations_lag {
        genesis.federation.confirmations_lag = lag;
    }
    #[derive(serde::Serialize)]
    struct GenesisFile<'a> {
        genesis: &'a GenesisConfig,
    }
    std::fs::write(args.data_dir.join("genesis.toml"), toml::to_string(&GenesisFile { genesis: &genesis })?)?;
    let addrs: Vec<String> = (0..args.nodes).map(|i| format!("\"127.0.0.1:{}\"", p2p_base as usize + i)).collect();
    let byzantine = byzantine_modes(&args.byzantine, args.nodes)?;
    let mut configs = Vec::new();
    for i in 0..args.nodes {
        let modes = match byzantine.get(&i) {
            Some(m) => {
                let quoted: Vec<String> = m.iter().map(|s| format!("{s:?}")).collect();
                format!("allow_byzantine = true\nbyzantine = [{}]\n", quoted.join(", "))
            }
            None => String::new(),
        };
        let text = format!(
            "# Generated by `bss devnet`.\ndata_dir = \"node{i}\"\ngenesis_file = \"genesis.toml\"\n\
             operator_key_file = \"node{i}/operator.key\"\n{modes}\n[operators]\naddrs = [{}]\n\n\
             [consensus]\nengine = \"{}\"\nblock_time = \"{}\"\nbase_timeout = \"{}\"\n{}\n\
             [mempool]\n{}\n[rpc]\naddr = \"127.0.0.1:{}\"\n\n[network]\nlisten = \"127.0.0.1:{}\"\n\n{}",
            addrs.join(", "),
            args.engine,
            humantime::format_duration(args.block_time),
            humantime::format_duration(args.round_timeout),
            extras.consensus,
            extras.mempool,
            args.base_port as usize + i,
            p2p_base as usize + i,
            extras.btc,
        );
        let mut text = text;
        if pop && args.pop_miner {
            // Operators sign keystones; the PoP miner posts them.
            text.push_str("\n[pop]\n");
        } else if pop {
            text.push_str(&format!("\n[pop]\nbtc_key_file = \"node{i}/pop.key\"\n"));
        }
        if genesis.tunnel.is_some() {
            text.push_str(&format!("\n[tunnel]\ncustody_key_file = \"node{i}/custody.key\"\n"));
        }
        let path = args.data_dir.join(format!("node{i}.toml"));
        // It may hold the Bitcoin RPC password: readable by its owner only.
        crate::write_secret(&path, &text)?;
        configs.push(path);
    }
    Ok(configs)
}

/// `--byzantine I=MODE` flags by operator.
fn byzantine_modes(flags: &[String], nodes: usize) -> Result<std::collections::BTreeMap<usize, Vec<String>>> {
    let mut out: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
    for f in flags {
        let (i, mode) = f.split_once('=').ok_or_else(|| eyre::eyre!("--byzantine {f:?}: expected I=MODE"))?;
        let i: usize =
            i.trim().parse().map_err(|_| eyre::eyre!("--byzantine {f:?}: {i:?} is not an operator index"))?;
        if i >= nodes {
            bail!("--byzantine {f:?}: the devnet has operators 0 to {}", nodes - 1);
        }
        out.entry(i).or_default().push(mode.trim().to_string());
    }
    for modes in out.values() {
        bss_actors::node::byzantine::Byzantine::parse(modes, true).map_err(|e| eyre::eyre!("--byzantine: {e}"))?;
    }
    Ok(out)
}

/// A random 32-byte secret kept (hex, 0600) in `path`, created on first use.
fn secret_file(path: &Path) -> Result<[u8; 32]> {
    if !path.exists() {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        crate::write_secret(path, &hex::encode(secret))?;
    }
    let bytes = hex::decode(std::fs::read_to_string(path)?.trim())?;
    bytes.try_into().map_err(|_| eyre::eyre!("{}: not 32 bytes", path.display()))
}

/// Operator `dir`'s keystone key (created once): its wallet (P2TR regtest address, public key).
pub fn pop_key(dir: &Path) -> Result<bss_actors::pop::tx::PopWallet> {
    let secret = secret_file(&dir.join("pop.key"))?;
    bss_actors::pop::tx::PopWallet::new(secret, bitcoin::Network::Regtest).map_err(|e| eyre::eyre!("{e}"))
}

/// Operator `dir`'s tunnel custody key (created once; not its keystone key).
/// The devnet PoP miner's wallet (`--pop-miner`), its key generated on first use.
fn miner_key(args: &DevnetArgs) -> Result<bss_actors::pop::tx::PopWallet> {
    let path = args.data_dir.join("pop-miner.key");
    let secret = secret_file(&path)?;
    bss_actors::pop::tx::PopWallet::new(secret, bitcoin::Network::Regtest).map_err(|e| eyre::eyre!("{e}"))
}

/// Starts `bss pop-miner` against operator 0 (the Bitcoin URL goes through its environment).
fn spawn_miner(args: &DevnetArgs, btc: &DevnetBitcoin) -> Result<Child> {
    let exe = std::env::current_exe().wrap_err("locating the bss binary")?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(args.data_dir.join("pop-miner.log"))?;
    Command::new(&exe)
        .args(["pop-miner", "--rpc", &format!("http://127.0.0.1:{}", args.base_port), "--key"])
        .arg(args.data_dir.join("pop-miner.key"))
        .env("BSS_BTC_RPC", &btc.url)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .wrap_err("starting the PoP miner")
}

pub fn custody_key(dir: &Path) -> Result<bss_actors::btc::vault::CustodyKey> {
    let secret = secret_file(&dir.join("custody.key"))?;
    bss_actors::btc::vault::CustodyKey::new(secret).map_err(|e| eyre::eyre!("{e}"))
}

/// The genesis the devnet wrote.
fn written_genesis(args: &DevnetArgs) -> Option<GenesisConfig> {
    let text = std::fs::read_to_string(args.data_dir.join("genesis.toml")).ok()?;
    #[derive(serde::Deserialize)]
    struct File {
        genesis: GenesisConfig,
    }
    Some(toml::from_str::<File>(&text).ok()?.genesis)
}

/// The devnet's vault address (regtest), from the genesis it wrote.
fn vault_address(args: &DevnetArgs) -> Option<String> {
    let vault = written_genesis(args)?.tunnel?.vault().ok()?;
    Some(vault.address(bitcoin::Network::Regtest).to_string())
}

/// Gives every operator's keystone address mature coins on a fresh embedded regtest chain:
/// 3 coinbases each, then 100 blocks so that they can be spent.
pub fn fund_submitters(args: &DevnetArgs, btc: &DevnetBitcoin) -> Result<()> {
    use bitcoincore_rpc::RpcApi;
    if args.bitcoind.is_some() {
        return Ok(());
    }
    let client = BtcUrl::parse(&btc.url)?.client()?;
    if client.get_block_count()? >= 100 {
        return Ok(());
    }
    for i in 0..args.nodes {
        let addr = pop_key(&args.data_dir.join(format!("node{i}")))?.address;
        client.generate_to_address(3, &addr)?;
    }
    if args.pop_miner {
        client.generate_to_address(3, &miner_key(args)?.address)?;
    }
    client.generate_to_address(100, &crate::regtest::cmd::dev_mining_address())?;
    Ok(())
}

fn banner(args: &DevnetArgs, rpc: &[String], p2p: &[String], logs: &[PathBuf], btc: &str) -> Result<()> {
    let genesis: GenesisConfig = toml::from_str(&format!("chain_id = {}", args.chain_id))?;
    let accounts = derive_accounts(&genesis.dev_mnemonic, genesis.dev_accounts).map_err(|e| eyre::eyre!("{e}"))?;
    println!();
    println!("bss devnet — {} operator(s), engine {}, chain id {}", args.nodes, args.engine, args.chain_id);
    for (i, r) in rpc.iter().enumerate() {
        let log = logs.get(i).map(|l| format!("   log {}", l.display())).unwrap_or_default();
        let p = p2p.get(i).map(|p| format!("   p2p {p}")).unwrap_or_default();
        println!("  operator {i}  JSON-RPC http://{r}  ws://{r}  metrics http://{r}/metrics{p}{log}");
    }
    println!("  bitcoin     regtest RPC {btc}");
    // The genesis hash pins the operator set, every key and the rules (`--genesis` below).
    let hash = written_genesis(args).and_then(|g| g.to_genesis().ok()).map(|g| g.build().0.block.hash());
    if let Some(h) = hash {
        println!("  genesis     {h} (pins the operators, their keys and the rules)");
    }
    let pin = hash.map(|h| format!(" --genesis {h}")).unwrap_or_default();
    let pass_file = args.data_dir.join("bitcoin").join("rpc.password");
    println!(
        "  anchoring   a keystone every {} blocks, superfinal at {} Bitcoin confirmations (`finalized` tag)",
        args.keystone_interval, args.superfinality_confirmations
    );
    if let Some(r) = rpc.first() {
        let btc_env = if args.bitcoind.is_none() {
            format!("BSS_BTC_RPC=\"http://bss:$(cat {})@127.0.0.1:{}\" ", pass_file.display(), args.btc_port)
        } else {
            "BSS_BTC_RPC=<bitcoind URL> ".into()
        };
        println!("              check a block: {btc_env}bss verify block <n> --rpc http://{r}{pin}");
        if let Some(vault) = vault_address(args) {
            println!("  tunnel      vault {vault} (BTC in, hBTC out at 0x4254430000000000000000000000000000000000)");
            println!(
                "              deposit: {btc_env}bss tunnel deposit --rpc http://{r} --to <0x address> --sats 100000"
            );
            println!("              check it: {btc_env}bss verify deposit <btc txid> --rpc http://{r}{pin}");
        }
    }
    println!();
    println!("Dev accounts (10,000 ETH each, mnemonic \"{}\"):", genesis.dev_mnemonic);
    for (i, a) in accounts.iter().enumerate() {
        println!("  ({i}) {}  0x{}", a.address, a.secret_hex());
    }
    println!();
    println!("Ctrl-C to stop.");
    Ok(())
}

/// Operator processes started on loopback.
pub struct LocalFederation {
    pub configs: Vec<PathBuf>,
    pub children: Vec<Child>,
    pub rpc: Vec<String>,
    pub p2p: Vec<String>,
    pub logs: Vec<PathBuf>,
}

impl LocalFederation {
    /// Starts one `bss node` process per config and waits until every RPC answers.
    pub fn launch(args: &DevnetArgs, configs: &[PathBuf]) -> Result<Self> {
        let mut fed =
            LocalFederation { configs: configs.to_vec(), children: vec![], rpc: vec![], p2p: vec![], logs: vec![] };
        for (i, config) in configs.iter().enumerate() {
            let log_path = args.data_dir.join(format!("node{i}.log"));
            fed.children.push(spawn_node(config, &log_path)?);
            fed.logs.push(log_path);
            let (cfg, _) = NodeConfig::load(config)?;
            fed.rpc.push(cfg.rpc.addr.to_string());
            fed.p2p.push(cfg.network.listen.to_string());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, addr) in fed.rpc.iter().enumerate() {
            if !wait_healthy(addr, deadline) {
                fed.stop();
                bail!("operator {i} did not come up; see {}", fed.logs[i].display());
            }
        }
        Ok(fed)
    }

    /// Starts operator `i` again (after it was killed), appending to its log.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
        self.children[i] = spawn_node(&self.configs[i], &self.logs[i])?;
        Ok(())
    }

    /// Stops operator `i` and deletes its chain database, keeping its operator key (start it
    /// again with `restart`).
    pub fn wipe(&mut self, i: usize) -> Result<()> {
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
        let (cfg, _) = NodeConfig::load(&self.configs[i])?;
        let db = cfg.data_dir.join("db");
        std::fs::remove_dir_all(&db).wrap_err_with(|| format!("wiping operator {i}'s chain at {}", db.display()))?;
        Ok(())
    }

    /// Fails when operator `i`'s process has exited.
    pub fn check_running(&mut self, i: usize) -> Result<()> {
        match self.children[i].try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!("operator {i} exited ({status}); see {}", self.logs[i].display()),
            Err(e) => bail!("operator {i}: {e}"),
        }
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|c| c.id()).collect()
    }

    pub fn stop(&mut self) {
        stop_all(&mut self.children);
    }
}

fn spawn_node(config: &Path, log_path: &Path) -> Result<Child> {
    let exe = std::env::current_exe().wrap_err("locating the bss binary")?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path)?;
    Command::new(&exe)
        .args(["node", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .wrap_err("starting an operator process")
}

pub fn run(mut args: DevnetArgs) -> Result<()> {
    // Cleared before the Bitcoin node starts: its chain lives under the same directory.
    if args.fresh && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir).wrap_err("removing old devnet data")?;
    }
    args.fresh = false;
    std::fs::create_dir_all(&args.data_dir)?;
    let mut btc = DevnetBitcoin::start(&args)?;
    let prepared = prepare(&args, &Extras { btc: btc.section.clone(), pop: true, tunnel: true, ..Default::default() })
        .and_then(|c| fund_submitters(&args, &btc).map(|_| c));
    let configs = match prepared {
        Ok(c) => c,
        Err(e) => {
            btc.stop();
            return Err(e);
        }
    };
    let url = btc.shown.clone();
    let result = match LocalFederation::launch(&args, &configs) {
        Ok(mut fed) => {
            let miner = if args.pop_miner { Some(spawn_miner(&args, &btc)) } else { None }.transpose();
            let r = miner.and_then(|mut miner| {
                if miner.is_some() {
                    println!("PoP miner     posting keystones; log {}", args.data_dir.join("pop-miner.log").display());
                }
                let r = supervise(&args, &mut fed, &url);
                stop_all(miner.as_mut().map(std::slice::from_mut).unwrap_or_default());
                r
            });
            fed.stop();
            println!("bss devnet: all operators stopped");
            r
        }
        Err(e) => Err(e),
    };
    btc.stop();
    result
}

pub fn wait_healthy(addr: &str, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let req = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut out = String::new();
            if s.write_all(req.as_bytes()).is_ok() && s.read_to_string(&mut out).is_ok() && out.contains(" 200 ") {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn supervise(args: &DevnetArgs, fed: &mut LocalFederation, btc: &str) -> Result<()> {
    banner(args, &fed.rpc, &fed.p2p, &fed.logs, btc)?;
    let (children, logs) = (&mut fed.children, &fed.logs);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut reported = vec![false; children.len()];
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = tick.tick() => {
                    // An operator that dies is reported, not fatal: the federation tolerates f
                    // failures, and chaos runs kill operators on purpose.
                    for (i, c) in children.iter_mut().enumerate() {
                        if let Ok(Some(status)) = c.try_wait() {
                            if !reported[i] {
                                reported[i] = true;
                                eprintln!("operator {i} exited ({status}); see {}", logs[i].display());
                            }
                        }
                    }
                    if reported.iter().all(|r| *r) {
                        bail!("every operator has exited");
                    }
                }
            }
        }
    })
}

/// Asks every operator to stop (SIGINT) and waits; kills whatever is still running after 10 s.
fn stop_all(children: &mut [Child]) {
    for c in children.iter() {
        let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in children.iter_mut() {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}
