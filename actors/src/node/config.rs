//! Node configuration: serde structs loaded from TOML, every field documented with its default.

use crate::hvm::accounts::{derive_accounts, DEV_MNEMONIC};
use crate::hvm::{ChainSpec, Genesis};
use crate::mempool::PoolConfig;
use crate::rpc::RpcConfig;
use alloy_primitives::{Address, U256};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error("key file {path} is readable by group or others (mode {mode:03o}); run `chmod 600 {path}`")]
    InsecureKeyFile { path: PathBuf, mode: u32 },
}

/// Reads a secret key file (trimmed), refusing one that group or others may read.
pub fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read { path: path.into(), source };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(read_err)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError::InsecureKeyFile { path: path.into(), mode });
        }
    }
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(read_err)
}

/// `[genesis]` (usually its own file shared by every operator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisConfig {
    pub chain_id: u64,
    /// Block gas limit. Default 30,000,000.
    #[serde(default = "default_gas_limit")]
    pub gas_limit: u64,
    /// Genesis base fee, wei. Default 1 gwei.
    #[serde(default = "default_base_fee")]
    pub base_fee: u64,
    /// The base fee never falls below this, wei. Default 1 gwei.
    #[serde(default = "default_base_fee")]
    pub min_base_fee: u64,
    /// Receives priority fees. Default: the zero address.
    #[serde(default)]
    pub fee_recipient: Address,
    /// Fixed so that every operator computes the same genesis. Default 0.
    #[serde(default)]
    pub timestamp_ms: u64,
    /// Largest encoded transaction, bytes. Default 128 KiB.
    #[serde(default = "default_max_tx_size")]
    pub max_tx_size: usize,
    /// Mnemonic of prefunded development accounts. Default: "test test … junk".
    #[serde(default = "default_mnemonic")]
    pub dev_mnemonic: String,
    /// How many accounts of the mnemonic to fund (m/44'/60'/0'/0/i). Default 10.
    #[serde(default = "default_dev_accounts")]
    pub dev_accounts: usize,
    /// Balance of each dev account, wei (decimal string). Default 10,000 ETH.
    #[serde(default = "default_dev_balance")]
    pub dev_balance: String,
    /// Further prefunded accounts.
    #[serde(default)]
    pub alloc: Vec<AllocEntry>,
    /// Accounts with 1 wei at deterministic addresses, to start from a large state
    /// (`bss bench --accounts N`). Default 0; at most 10,000,000.
    #[serde(default)]
    pub filler_accounts: u64,
    /// The BTC tunnel (`[genesis.tunnel]`): absent, the chain has no vault and no hBTC.
    #[serde(default)]
    pub tunnel: Option<super::config_tunnel::TunnelGenesis>,
    /// The operator set, the keystone keys and the Bitcoin-side rules (`[genesis.federation]`).
    #[serde(default)]
    pub federation: super::config_federation::FederationGenesis,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocEntry {
    pub address: Address,
    /// Wei, decimal string.
    pub balance: String,
}

fn default_gas_limit() -> u64 {
    30_000_000
}
fn default_base_fee() -> u64 {
    1_000_000_000
}
fn default_max_tx_size() -> usize {
    128 * 1024
}
fn default_mnemonic() -> String {
    DEV_MNEMONIC.into()
}
fn default_dev_accounts() -> usize {
    10
}
fn default_dev_balance() -> String {
    "10000000000000000000000".into()
}

fn parse_wei(s: &str) -> Result<U256, ConfigError> {
    U256::from_str_radix(s.trim(), 10).map_err(|e| ConfigError::Invalid(format!("balance {s:?}: {e}")))
}

impl GenesisConfig {
    pub fn to_genesis(&self) -> Result<Genesis, ConfigError> {
        if self.gas_limit < 21_000 {
            return Err(ConfigError::Invalid(format!("genesis.gas_limit {} is below 21000", self.gas_limit)));
        }
        if self.min_base_fee == 0 {
            return Err(ConfigError::Invalid("genesis.min_base_fee must be at least 1 wei".into()));
        }
        let mut alloc = Vec::new();
        let dev_balance = parse_wei(&self.dev_balance)?;
        let keys = derive_accounts(&self.dev_mnemonic, self.dev_accounts)
            .map_err(|e| ConfigError::Invalid(format!("genesis.dev_mnemonic: {e}")))?;
        alloc.extend(keys.iter().map(|k| (k.address, dev_balance)));
        for a in &self.alloc {
            alloc.push((a.address, parse_wei(&a.balance)?));
        }
        if self.filler_accounts > 10_000_000 {
            return Err(ConfigError::Invalid(format!(
                "genesis.filler_accounts {} is above 10,000,000",
                self.filler_accounts
            )));
        }
        alloc.extend((0..self.filler_accounts).map(|i| (crate::hvm::chain::filler_address(i), U256::from(1u8))));
        let rules = self.rules()?;
        let mut predeploys = Vec::new();
        if let Some(t) = &self.tunnel {
            predeploys.push(
                crate::hvm::hbtc::hbtc_predeploy(t.min_withdrawal_sats)
                    .map_err(|e| ConfigError::Invalid(format!("genesis.tunnel: {e}")))?,
            );
        }
        Ok(Genesis {
            spec: ChainSpec {
                chain_id: self.chain_id,
                gas_limit: self.gas_limit,
                min_base_fee: self.min_base_fee,
                fee_recipient: self.fee_recipient,
                max_tx_size: self.max_tx_size,
            },
            base_fee: self.base_fee.max(self.min_base_fee),
            timestamp_ms: self.timestamp_ms,
            alloc,
            predeploys,
            rules_hash: rules.hash(),
        })
    }
}

/// `[consensus]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusSection {
    /// `native` (default, our HotStuff) or `hotstuff-rs`.
    pub engine: String,
    /// Minimum pause between a certificate and the next proposal. Default 250ms.
    #[serde(with = "humantime_serde")]
    pub block_time: Duration,
    /// Most transactions per block. Default 20,000.
    pub max_block_txs: usize,
    /// First round timeout (sub-second allowed); grows ×1.5 per failed round. Default 1s.
    #[serde(with = "humantime_serde")]
    pub base_timeout: Duration,
    /// Cap of the round timeout. Default 10s.
    #[serde(with = "humantime_serde")]
    pub max_timeout: Duration,
    /// How far ahead of local time a proposal's timestamp may be. Default 2s.
    #[serde(with = "humantime_serde")]
    pub max_clock_drift: Duration,
    /// Blocks a valid tx may wait in this operator's mempool before it goes on the operator's
    /// inclusion list (README "Censorship resistance"). Default 8.
    pub inclusion_deadline: u64,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        Self {
            engine: "native".into(),
            block_time: Duration::from_millis(250),
            max_block_txs: 20_000,
            base_timeout: Duration::from_secs(1),
            max_timeout: Duration::from_secs(10),
            max_clock_drift: Duration::from_secs(2),
            inclusion_deadline: 8,
        }
    }
}

/// `[censorship]`: forced inclusion through Bitcoin. Its value is a rule of the chain and lives in
/// the genesis (`[genesis.federation] forced_confirmations`); a node config may repeat it, and
/// then it must agree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CensorshipSection {
    /// Confirmations (in an L2 block's Bitcoin view) after which a forced tx must be executed.
    /// Default 6.
    pub forced_confirmations: u64,
}

impl Default for CensorshipSection {
    fn default() -> Self {
        Self { forced_confirmations: 6 }
    }
}

/// `[operators]`: the federation, in operator-index order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorsSection {
    /// Hex ed25519 public keys. They live in the genesis (`[genesis.federation] operators`); a
    /// node config may repeat them, and then they must agree.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Each operator's network address (host:port), same order; required with more than one key.
    #[serde(default)]
    pub addrs: Vec<String>,
}

/// `[storage]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// fsync every committed block (survives power loss). Default true.
    pub fsync: bool,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self { fsync: true }
    }
}

/// `[btc]`: the Bitcoin node this operator watches. Absent: no Bitcoin view (blocks carry no
/// BTC headers and the hVM's Bitcoin precompiles return empty output).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BtcSection {
    /// bitcoind JSON-RPC URL (regtest, signet, testnet or mainnet). Default http://127.0.0.1:18443.
    pub rpc_url: String,
    /// RPC user and password; or a cookie file (relative to the config file); or neither.
    pub rpc_user: Option<String>,
    pub rpc_password: Option<String>,
    pub rpc_cookie_file: Option<PathBuf>,
    /// `regtest` (default), `signet`, `testnet`, `testnet4` or `bitcoin`.
    pub network: String,
    /// `network`, `confirmations_lag` and `start_height` are rules of the chain and live in the
    /// genesis (`[genesis.federation] btc_network`, `confirmations_lag`, `btc_start_height`); a
    /// node config may repeat them, and then they must agree.
    pub confirmations_lag: u64,
    pub start_height: u64,
    /// How often the watcher polls the Bitcoin node. Default 500ms.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long a replica waits for its watcher to reach a proposal's BTC tip before refusing
    /// it. Default 3s.
    #[serde(with = "humantime_serde")]
    pub catch_up_wait: Duration,
    /// This voter refuses a proposal that adds no Bitcoin headers while its own view is more
    /// than this many blocks past the parent's tip (a leader must move the view). Default 3.
    pub stale_view_slack: u64,
}

impl Default for BtcSection {
    fn default() -> Self {
        Self {
            rpc_url: "http://127.0.0.1:18443".into(),
            rpc_user: None,
            rpc_password: None,
            rpc_cookie_file: None,
            network: "regtest".into(),
            confirmations_lag: 1,
            start_height: 0,
            poll_interval: Duration::from_millis(500),
            catch_up_wait: Duration::from_secs(3),
            stale_view_slack: bss_btc::DEFAULT_STALE_SLACK,
        }
    }
}

/// A Bitcoin network name (`what`: its config name, for errors).
pub fn parse_network(what: &str, name: &str) -> Result<bitcoin::Network, ConfigError> {
    use bitcoin::Network::*;
    Ok(match name {
        "regtest" => Regtest,
        "signet" => Signet,
        "testnet" | "testnet3" => Testnet,
        "testnet4" => Testnet4,
        "bitcoin" | "mainnet" | "main" => Bitcoin,
        other => {
            return Err(ConfigError::Invalid(format!(
                "{what} {other:?}: expected regtest, signet, testnet, testnet4 or bitcoin"
            )))
        }
    })
}

impl BtcSection {
    pub fn network(&self) -> Result<bitcoin::Network, ConfigError> {
        parse_network("btc.network", &self.network)
    }

    pub fn credentials(&self) -> Result<crate::btc::Credentials, ConfigError> {
        use crate::btc::Credentials;
        match (&self.rpc_user, &self.rpc_password, &self.rpc_cookie_file) {
            (Some(u), Some(p), None) => Ok(Credentials::UserPass(u.clone(), p.clone())),
            (None, None, Some(f)) => Ok(Credentials::CookieFile(f.clone())),
            (None, None, None) => Ok(Credentials::None),
            _ => Err(ConfigError::Invalid("btc: set rpc_user with rpc_password, or rpc_cookie_file".into())),
        }
    }
}

/// `[pop]`: Proof-of-Proof. Needs `[btc]`. Without `btc_key`/`btc_key_file` this operator only
/// tracks anchoring and finality; with one, it also submits keystones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PopSection {
    /// `keystone_interval`, `superfinality_confirmations` and `keystone_keys` are rules of the
    /// chain and live in the genesis (`[genesis.federation]`); a node config may repeat them, and
    /// then they must agree.
    pub keystone_interval: u64,
    pub superfinality_confirmations: u64,
    pub keystone_keys: Vec<String>,
    /// This operator's Bitcoin secret key (hex, 32 bytes) for keystone txs (P2TR key path).
    pub btc_key: Option<String>,
    pub btc_key_file: Option<PathBuf>,
    /// Fee rate bounds, sat/vB, around `estimatesmartfee`. Defaults 1 and 50.
    pub fee_floor: f64,
    pub fee_cap: f64,
    /// Bitcoin blocks the first submitter of a keystone has before the next operator steps in
    /// (the one after waits twice as long, and so on). Default 2.
    pub stagger_blocks: u64,
    /// Bitcoin blocks an unconfirmed keystone tx waits before it is replaced with a 50% higher
    /// fee rate (RBF). Default 2.
    pub bump_after_blocks: u64,
}

impl Default for PopSection {
    fn default() -> Self {
        Self {
            keystone_interval: 25,
            superfinality_confirmations: 6,
            keystone_keys: vec![],
            btc_key: None,
            btc_key_file: None,
            fee_floor: 1.0,
            fee_cap: 50.0,
            stagger_blocks: 2,
            bump_after_blocks: 2,
        }
    }
}

/// A secp256k1 secret key given inline or in a file (`what`: the key's config name, for errors).
pub fn secp_secret(
    what: &str,
    inline: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<[u8; 32]>, ConfigError> {
    let text = match (inline, file) {
        (Some(k), None) => k.clone(),
        (None, Some(f)) => read_secret_file(f)?,
        (None, None) => return Ok(None),
        _ => return Err(ConfigError::Invalid(format!("set {what} or {what}_file, not both"))),
    };
    let bytes = hex::decode(text.trim()).map_err(|e| ConfigError::Invalid(format!("{what}: {e}")))?;
    let key: [u8; 32] =
        bytes.try_into().map_err(|_| ConfigError::Invalid(format!("{what} must be 32 bytes of hex")))?;
    bitcoin::secp256k1::SecretKey::from_slice(&key).map_err(|e| ConfigError::Invalid(format!("{what}: {e}")))?;
    Ok(Some(key))
}

impl PopSection {
    /// This operator's keystone key, if it submits.
    pub fn secret(&self) -> Result<Option<[u8; 32]>, ConfigError> {
        secp_secret("pop.btc_key", &self.btc_key, &self.btc_key_file)
    }

    /// The operators' keystone keys, parsed.
    pub fn keystone_keys(&self) -> Result<Vec<bitcoin::secp256k1::XOnlyPublicKey>, ConfigError> {
        self.keystone_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let bytes =
                    hex::decode(k.trim()).map_err(|e| ConfigError::Invalid(format!("pop.keystone_keys[{i}]: {e}")))?;
                bitcoin::secp256k1::XOnlyPublicKey::from_slice(&bytes).map_err(|e| {
                    ConfigError::Invalid(format!(
                        "pop.keystone_keys[{i}]: not an x-only public key (32 bytes hex): {e}"
                    ))
                })
            })
            .collect()
    }

    fn check(&self) -> Result<(), ConfigError> {
        self.keystone_keys()?;
        // Any key may pay for keystones (version 3: the certificate decides what counts); it
        // must only be a valid secp256k1 secret.
        if let Some(secret) = self.secret()? {
            bitcoin::secp256k1::SecretKey::from_slice(&secret)
                .map_err(|e| ConfigError::Invalid(format!("pop.btc_key: {e}")))?;
        }
        if self.keystone_interval == 0 || self.superfinality_confirmations == 0 {
            return Err(ConfigError::Invalid(
                "pop.keystone_interval and pop.superfinality_confirmations must be at least 1".into(),
            ));
        }
        if !(self.fee_floor > 0.0 && self.fee_floor <= self.fee_cap) {
            return Err(ConfigError::Invalid("pop: need 0 < fee_floor <= fee_cap".into()));
        }
        Ok(())
    }
}

/// The whole node config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Data directory (relative paths are relative to the config file).
    pub data_dir: PathBuf,
    /// Genesis file (relative to the config file), or an inline `[genesis]` table.
    #[serde(default)]
    pub genesis_file: Option<PathBuf>,
    #[serde(default)]
    pub genesis: Option<GenesisConfig>,
    /// Hex ed25519 secret key of this operator, or a file holding it (`operator_key_file`).
    #[serde(default)]
    pub operator_key: Option<String>,
    #[serde(default)]
    pub operator_key_file: Option<PathBuf>,
    #[serde(default)]
    pub operators: OperatorsSection,
    #[serde(default)]
    pub consensus: ConsensusSection,
    #[serde(default)]
    pub rpc: RpcConfig,
    #[serde(default)]
    pub network: crate::network::NetworkConfig,
    #[serde(default)]
    pub mempool: PoolConfig,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub btc: Option<BtcSection>,
    #[serde(default)]
    pub pop: Option<PopSection>,
    #[serde(default)]
    pub censorship: CensorshipSection,
    #[serde(default)]
    pub tunnel: super::config_tunnel::TunnelSection,
    /// Lets this node run the Byzantine test modes of `byzantine` / `bss node --byzantine`.
    /// Never set it on an operator that serves users.
    #[serde(default)]
    pub allow_byzantine: bool,
    /// Byzantine test modes (`censor:0xADDR`, `false-lists`); refused unless `allow_byzantine`.
    #[serde(default)]
    pub byzantine: Vec<String>,
}

impl NodeConfig {
    /// Loads a config file and resolves its relative paths against the file's directory.
    pub fn load(path: &Path) -> Result<(Self, GenesisConfig), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let mut cfg: NodeConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), reason: e.to_string() })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        cfg.data_dir = base.join(&cfg.data_dir);
        if let Some(f) = &cfg.operator_key_file {
            cfg.operator_key_file = Some(base.join(f));
        }
        let frame = cfg.network.max_frame_bytes;
        if !(64 * 1024..=64 * 1024 * 1024).contains(&frame) {
            return Err(ConfigError::Invalid(format!(
                "network.max_frame_bytes {frame}: must be between 65536 and 67108864 (64 MiB)"
            )));
        }
        if cfg.rpc.fault_injection && cfg.rpc.fault_injection_token.len() < 16 {
            return Err(ConfigError::Invalid(
                "rpc.fault_injection needs rpc.fault_injection_token (a secret of at least 16 characters that bss_injectFault must be given)".into(),
            ));
        }
        if cfg.consensus.inclusion_deadline == 0 {
            return Err(ConfigError::Invalid("consensus.inclusion_deadline must be at least 1 block".into()));
        }
        super::byzantine::Byzantine::parse(&cfg.byzantine, cfg.allow_byzantine)?;
        if let Some(btc) = cfg.btc.as_mut() {
            btc.rpc_cookie_file = btc.rpc_cookie_file.as_ref().map(|f| base.join(f));
            btc.network()?;
            btc.credentials()?;
        }
        cfg.tunnel.custody_key_file = cfg.tunnel.custody_key_file.as_ref().map(|f| base.join(f));
        cfg.tunnel.secret()?;
        if let Some(pop) = cfg.pop.as_mut() {
            if cfg.btc.is_none() {
                return Err(ConfigError::Invalid("[pop] needs a [btc] section (the Bitcoin node to anchor in)".into()));
            }
            pop.btc_key_file = pop.btc_key_file.as_ref().map(|f| base.join(f));
        }
        let genesis = match (&cfg.genesis, &cfg.genesis_file) {
            (Some(g), None) => g.clone(),
            (None, Some(f)) => {
                let gpath = base.join(f);
                let text = std::fs::read_to_string(&gpath)
                    .map_err(|source| ConfigError::Read { path: gpath.clone(), source })?;
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct File {
                    genesis: GenesisConfig,
                }
                toml::from_str::<File>(&text)
                    .map_err(|e| ConfigError::Parse { path: gpath, reason: e.to_string() })?
                    .genesis
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid("set either genesis_file or [genesis], not both".into()))
            }
            (None, None) => {
                return Err(ConfigError::Invalid("missing genesis: set genesis_file or a [genesis] table".into()))
            }
        };
        genesis.rules()?;
        let raw: toml::Table =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), reason: e.to_string() })?;
        super::config_federation::adopt(&mut cfg, &raw, &genesis)?;
        if let Some(pop) = &cfg.pop {
            pop.check()?;
        }
        Ok((cfg, genesis))
    }

    /// This operator's secret key (hex), from `operator_key` or `operator_key_file`.
    pub fn operator_secret(&self) -> Result<String, ConfigError> {
        match (&self.operator_key, &self.operator_key_file) {
            (Some(k), None) => Ok(k.clone()),
            (None, Some(f)) => read_secret_file(f),
            _ => Err(ConfigError::Invalid("set exactly one of operator_key or operator_key_file".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_section_defaults_and_dev_accounts() {
        let g: GenesisConfig = toml::from_str("chain_id = 7").expect("parse");
        assert_eq!(g.gas_limit, 30_000_000);
        let genesis = g.to_genesis().expect("genesis");
        assert_eq!(genesis.alloc.len(), 10);
        assert!(toml::from_str::<GenesisConfig>("chain_id = 7\nbogus = 1").is_err());
        let bad: GenesisConfig = toml::from_str("chain_id = 7\ndev_balance = \"lots\"").expect("parse");
        assert!(bad.to_genesis().is_err());
    }

    #[test]
    fn filler_accounts_grow_the_genesis_state() {
        let g: GenesisConfig = toml::from_str("chain_id = 7\nfiller_accounts = 1000").expect("parse");
        let genesis = g.to_genesis().expect("genesis");
        assert_eq!(genesis.alloc.len(), 10 + 1000);
        let (batch, _) = genesis.build();
        assert_eq!(batch.changes.accounts.len(), 1010, "every filler address is distinct");
        let plain: GenesisConfig = toml::from_str("chain_id = 7").expect("parse");
        assert_ne!(
            batch.block.header.state_root,
            plain.to_genesis().expect("genesis").build().0.block.header.state_root
        );
        let huge: GenesisConfig = toml::from_str("chain_id = 7\nfiller_accounts = 10000001").expect("parse");
        assert!(huge.to_genesis().is_err());
    }

    #[test]
    fn consensus_section_parses_durations() {
        let c: ConsensusSection = toml::from_str("block_time = \"500ms\"").expect("parse");
        assert_eq!(c.block_time, Duration::from_millis(500));
        assert_eq!(c.engine, "native");
        assert!(toml::from_str::<ConsensusSection>("block_time = 5").is_err());
    }

    #[test]
    fn rpc_and_mempool_sections() {
        let r: RpcConfig = toml::from_str("addr = \"127.0.0.1:9000\"").expect("parse");
        assert_eq!(r.addr.port(), 9000);
        assert!(toml::from_str::<RpcConfig>("addr = \"nowhere\"").is_err());
        let m: PoolConfig = toml::from_str("max_txs = 5").expect("parse");
        assert_eq!(m.max_txs, 5);
    }

    #[test]
    fn node_config_file_with_relative_paths() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("genesis.toml"), "[genesis]\nchain_id = 9\n").expect("write");
        std::fs::write(
            dir.path().join("node.toml"),
            "data_dir = \"data\"\ngenesis_file = \"genesis.toml\"\noperator_key = \"00\"\n[storage]\nfsync = false\n",
        )
        .expect("write");
        let (cfg, g) = NodeConfig::load(&dir.path().join("node.toml")).expect("load");
        assert_eq!(g.chain_id, 9);
        assert_eq!(cfg.data_dir, dir.path().join("data"));
        assert!(!cfg.storage.fsync);
        assert!(NodeConfig::load(&dir.path().join("missing.toml")).is_err());
    }
}

#[cfg(test)]
mod key_files {
    use super::*;

    /// A world- or group-readable key file is refused with the file named and the fix given;
    /// 0600 is accepted.
    #[cfg(unix)]
    #[test]
    fn readable_key_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let key = dir.path().join("operator.key");
        std::fs::write(&key, "aa".repeat(32)).expect("write");
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let err = read_secret_file(&key).expect_err("readable key accepted").to_string();
            assert!(err.contains("chmod 600") && err.contains("operator.key"), "{err}");
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_secret_file(&key).expect("0600 is fine"), "aa".repeat(32));
    }
}

#[cfg(test)]
mod shipped_configs {
    use super::NodeConfig;
    use std::path::Path;

    /// Every config under configs/ parses, and its genesis builds.
    #[test]
    fn configs_in_the_repository_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        // Git does not keep file modes beyond the executable bit: a checkout's dev keys are
        // 0644 until made private, as README's federation instructions say.
        #[cfg(unix)]
        for i in 0..4 {
            use std::os::unix::fs::PermissionsExt;
            for key in [format!("federation/operator{i}.key"), format!("compose/pop{i}.key")] {
                std::fs::set_permissions(root.join(key), std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
            }
        }
        let mut paths = vec![root.join("devnet.toml")];
        for i in 0..4 {
            paths.push(root.join(format!("federation/node{i}.toml")));
            paths.push(root.join(format!("compose/node{i}.toml")));
        }
        for p in paths {
            let (cfg, genesis) = NodeConfig::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            genesis.to_genesis().unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(cfg.operator_secret().is_ok(), "{}", p.display());
        }
    }
}
