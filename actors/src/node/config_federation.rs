//! `[genesis.federation]`: the operator set, the keystone keys and every Bitcoin-side rule that
//! block validity depends on. They live in the genesis, which every operator shares and whose
//! hash covers them ([`bss_consensus::GenesisRules`]); a node config that repeats one of them
//! must agree with the genesis, or the node refuses to start.

use super::config::{ConfigError, GenesisConfig, NodeConfig};
use alloy_primitives::B256;
use bss_consensus::{GenesisRules, OperatorKey, TunnelGenesisRules};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// Most operators a federation may have.
pub const MAX_OPERATORS: usize = 10;

/// `[genesis.federation]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationGenesis {
    /// Every operator's ed25519 public key (hex; `bss keygen --show FILE`), in operator-index
    /// order. Empty: a federation of one, whoever runs it (development only). Default: empty.
    pub operators: Vec<String>,
    /// Every operator's keystone public key (hex x-only; `bss keygen --btc`). A keystone counts
    /// only when its Bitcoin tx spends a coin paying one of these keys. Default: empty.
    pub keystone_keys: Vec<String>,
    /// `regtest` (default), `signet`, `testnet`, `testnet4` or `bitcoin`.
    pub btc_network: String,
    /// First Bitcoin height the L2's view holds. Default 0.
    pub btc_start_height: u64,
    /// The view follows a Bitcoin tip at least this many blocks below a replica's best. Default 1.
    pub confirmations_lag: u64,
    /// Confirmations (in an L2 block's view) after which a forced tx must run. Default 6.
    pub forced_confirmations: u64,
    /// Every this many committed L2 blocks, the committed header becomes a keystone. Default 25.
    pub keystone_interval: u64,
    /// Bitcoin confirmations of a keystone that make what it covers superfinal. Default 6.
    pub superfinality_confirmations: u64,
}

impl Default for FederationGenesis {
    fn default() -> Self {
        Self {
            operators: vec![],
            keystone_keys: vec![],
            btc_network: "regtest".into(),
            btc_start_height: 0,
            confirmations_lag: 1,
            forced_confirmations: 6,
            keystone_interval: 25,
            superfinality_confirmations: 6,
        }
    }
}

/// Parses a list of 32-byte hex keys with `parse`, refusing duplicates.
fn keys<K>(what: &str, list: &[String], parse: impl Fn(&str) -> Result<K, String>) -> Result<Vec<B256>, ConfigError>
where
    K: AsRef<[u8]>,
{
    let mut out: Vec<B256> = Vec::with_capacity(list.len());
    for (i, k) in list.iter().enumerate() {
        let key = parse(k.trim()).map_err(|e| ConfigError::Invalid(format!("{what}[{i}]: {e}")))?;
        let key =
            B256::try_from(key.as_ref()).map_err(|_| ConfigError::Invalid(format!("{what}[{i}]: not 32 bytes")))?;
        if out.contains(&key) {
            return Err(ConfigError::Invalid(format!("{what}[{i}] repeats an earlier key")));
        }
        out.push(key);
    }
    Ok(out)
}

impl GenesisConfig {
    /// The chain's rules and keys as the genesis hash pins them, checked.
    pub fn rules(&self) -> Result<GenesisRules, ConfigError> {
        let f = &self.federation;
        let operators = keys("genesis.federation.operators", &f.operators, |k| {
            OperatorKey::from_hex(k).map(|key| key.0).map_err(|e| e.to_string())
        })?;
        if operators.len() > MAX_OPERATORS {
            return Err(ConfigError::Invalid(format!(
                "genesis.federation.operators lists {} keys; at most {MAX_OPERATORS} are supported",
                operators.len()
            )));
        }
        let keystone_keys = keys("genesis.federation.keystone_keys", &f.keystone_keys, |k| {
            super::config_tunnel::parse_x_only("key", k).map(|x| x.serialize()).map_err(|e| e.to_string())
        })?;
        super::config::parse_network("genesis.federation.btc_network", &f.btc_network)?;
        if !(1..=1000).contains(&f.forced_confirmations) {
            return Err(ConfigError::Invalid(
                "genesis.federation.forced_confirmations must be between 1 and 1000".into(),
            ));
        }
        if f.keystone_interval == 0 || f.superfinality_confirmations == 0 {
            return Err(ConfigError::Invalid(
                "genesis.federation.keystone_interval and superfinality_confirmations must be at least 1".into(),
            ));
        }
        let tunnel = match &self.tunnel {
            Some(t) => {
                t.check()?;
                let custody = t.custody_keys()?;
                if !operators.is_empty() && custody.len() != operators.len() {
                    return Err(ConfigError::Invalid(format!(
                        "genesis.tunnel.custody_keys lists {} keys for {} operators",
                        custody.len(),
                        operators.len()
                    )));
                }
                Some(TunnelGenesisRules {
                    custody_keys: custody.iter().map(|k| B256::from(k.serialize())).collect(),
                    threshold: t.threshold() as u64,
                    deposit_confirmations: t.deposit_confirmations,
                    min_deposit_sats: t.min_deposit_sats,
                    min_withdrawal_sats: t.min_withdrawal_sats,
                    withdrawal_fee_sats: t.withdrawal_fee_sats,
                    deposit_fee_sats: t.deposit_fee_sats,
                    payout_fee_ceiling_sat_vb: t.payout_fee_ceiling_sat_vb,
                })
            }
            None => None,
        };
        Ok(GenesisRules {
            chain_id: self.chain_id,
            gas_limit: self.gas_limit,
            min_base_fee: self.min_base_fee,
            fee_recipient: self.fee_recipient,
            max_tx_size: self.max_tx_size as u64,
            operators,
            keystone_keys,
            btc_network: f.btc_network.clone(),
            btc_start_height: f.btc_start_height,
            confirmations_lag: f.confirmations_lag,
            forced_confirmations: f.forced_confirmations,
            keystone_interval: f.keystone_interval,
            superfinality_confirmations: f.superfinality_confirmations,
            tunnel,
        })
    }
}

/// Whether the raw node config sets `section.key`.
fn sets(raw: &toml::Table, section: &str, key: &str) -> bool {
    raw.get(section).and_then(|s| s.as_table()).is_some_and(|s| s.contains_key(key))
}

/// A node config that repeats `section.key` must say what the genesis says.
fn agree<T: PartialEq + Debug>(
    raw: &toml::Table,
    (section, key): (&str, &str),
    node: &T,
    genesis: &T,
    genesis_key: &str,
) -> Result<(), ConfigError> {
    if sets(raw, section, key) && node != genesis {
        return Err(ConfigError::Invalid(format!(
            "{section}.{key} = {node:?} disagrees with the genesis's [genesis.federation] {genesis_key} = {genesis:?}: \
             block validity follows the genesis, which every operator shares; remove {section}.{key} from this node's \
             config (or fix it)"
        )));
    }
    Ok(())
}

fn normalized(list: &[String]) -> Vec<String> {
    list.iter().map(|k| k.trim().to_ascii_lowercase()).collect()
}

/// Takes the genesis's rules into the node config, refusing a config that repeats one with
/// another value (`raw`: the node config file as parsed TOML, to tell a set value from a default).
pub fn adopt(cfg: &mut NodeConfig, raw: &toml::Table, genesis: &GenesisConfig) -> Result<(), ConfigError> {
    let f = &genesis.federation;
    let ops = normalized(&f.operators);
    agree(raw, ("operators", "keys"), &normalized(&cfg.operators.keys), &ops, "operators")?;
    cfg.operators.keys = f.operators.clone();
    agree(
        raw,
        ("censorship", "forced_confirmations"),
        &cfg.censorship.forced_confirmations,
        &f.forced_confirmations,
        "forced_confirmations",
    )?;
    cfg.censorship.forced_confirmations = f.forced_confirmations;
    if let Some(b) = cfg.btc.as_mut() {
        agree(raw, ("btc", "confirmations_lag"), &b.confirmations_lag, &f.confirmations_lag, "confirmations_lag")?;
        agree(raw, ("btc", "start_height"), &b.start_height, &f.btc_start_height, "btc_start_height")?;
        let (node_net, genesis_net) = (b.network()?, super::config::parse_network("btc_network", &f.btc_network)?);
        agree(raw, ("btc", "network"), &node_net, &genesis_net, "btc_network")?;
        b.confirmations_lag = f.confirmations_lag;
        b.start_height = f.btc_start_height;
        b.network = f.btc_network.clone();
    }
    if let Some(p) = cfg.pop.as_mut() {
        let ks = normalized(&f.keystone_keys);
        agree(raw, ("pop", "keystone_keys"), &normalized(&p.keystone_keys), &ks, "keystone_keys")?;
        agree(raw, ("pop", "keystone_interval"), &p.keystone_interval, &f.keystone_interval, "keystone_interval")?;
        agree(
            raw,
            ("pop", "superfinality_confirmations"),
            &p.superfinality_confirmations,
            &f.superfinality_confirmations,
            "superfinality_confirmations",
        )?;
        p.keystone_keys = f.keystone_keys.clone();
        p.keystone_interval = f.keystone_interval;
        p.superfinality_confirmations = f.superfinality_confirmations;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [&str; 2] = [
        "e5c5aaea73a4c864ecc9c2dd90c2cd0a9858107dcf0d79cb5c19e702d53afe87",
        "ad3a1b15dd9baf439ba2ea0d3533c426a6469359a766420273c6208128efc9b0",
    ];

    fn load(dir: &std::path::Path, genesis: &str, node: &str) -> Result<(NodeConfig, GenesisConfig), ConfigError> {
        std::fs::write(dir.join("genesis.toml"), format!("[genesis]\nchain_id = 9\n{genesis}")).expect("write");
        std::fs::write(
            dir.join("node.toml"),
            format!("data_dir = \"data\"\ngenesis_file = \"genesis.toml\"\noperator_key = \"00\"\n{node}"),
        )
        .expect("write");
        NodeConfig::load(&dir.join("node.toml"))
    }

    /// The node takes the genesis's rules; repeating one with the same value is fine, with
    /// another value the node refuses and names both.
    #[test]
    fn a_node_config_that_disagrees_with_the_genesis_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let genesis = format!(
            "[genesis.federation]\noperators = [\"{}\", \"{}\"]\nconfirmations_lag = 3\nforced_confirmations = 9\n",
            KEYS[0], KEYS[1]
        );
        let (cfg, g) = load(dir.path(), &genesis, "[btc]\n").expect("load");
        assert_eq!(cfg.operators.keys.len(), 2);
        assert_eq!(cfg.btc.as_ref().map(|b| b.confirmations_lag), Some(3));
        assert_eq!(cfg.censorship.forced_confirmations, 9);
        let same = format!("[operators]\nkeys = [\"{}\", \"{}\"]\n[btc]\nconfirmations_lag = 3\n", KEYS[0], KEYS[1]);
        load(dir.path(), &genesis, &same).expect("repeating the genesis's values is fine");
        for (node, named) in [
            (format!("[operators]\nkeys = [\"{}\", \"{}\"]\n", KEYS[1], KEYS[0]), "operators.keys"),
            ("[btc]\nconfirmations_lag = 1\n".to_string(), "btc.confirmations_lag"),
            ("[btc]\nnetwork = \"signet\"\n".to_string(), "btc.network"),
            ("[censorship]\nforced_confirmations = 6\n".to_string(), "censorship.forced_confirmations"),
        ] {
            let err = load(dir.path(), &genesis, &node).expect_err(&node).to_string();
            assert!(err.contains(named) && err.contains("disagrees with the genesis"), "{node}: {err}");
        }
        // The rules hash moves with any rule: two operators with different genesis files never
        // share a genesis block.
        let other = genesis.replace("confirmations_lag = 3", "confirmations_lag = 4");
        let (_, g2) = load(dir.path(), &other, "").expect("load");
        let hash = |g: &GenesisConfig| g.to_genesis().expect("genesis").build().0.block.hash();
        assert_ne!(hash(&g), hash(&g2));
        assert_eq!(
            g.to_genesis().expect("genesis").build().0.block.header.parent_hash,
            g.rules().expect("rules").hash()
        );
    }

    #[test]
    fn bad_federation_values_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        for (genesis, says) in [
            (format!("[genesis.federation]\noperators = [\"{}\", \"{}\"]\n", KEYS[0], KEYS[0]), "repeats"),
            ("[genesis.federation]\noperators = [\"abcd\"]\n".to_string(), "operators[0]"),
            ("[genesis.federation]\nkeystone_keys = [\"zz\"]\n".to_string(), "keystone_keys[0]"),
            ("[genesis.federation]\nbtc_network = \"moon\"\n".to_string(), "btc_network"),
            ("[genesis.federation]\nforced_confirmations = 0\n".to_string(), "forced_confirmations"),
            ("[genesis.federation]\nkeystone_interval = 0\n".to_string(), "keystone_interval"),
        ] {
            let err = load(dir.path(), &genesis, "").expect_err(&genesis).to_string();
            assert!(err.contains(says), "{genesis}: {err}");
        }
    }
}
