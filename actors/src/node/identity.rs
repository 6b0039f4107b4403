//! Who this operator is and who the others are, from `operator_key` and `[operators]`.

use super::{ConfigError, NodeConfig, NodeError};
use bss_consensus::{OperatorKey, OperatorSet, OperatorSigner};

pub struct Identity {
    pub signer: OperatorSigner,
    pub operators: OperatorSet,
    /// `host:port` of every operator, by index (empty for a federation of one).
    pub addrs: Vec<String>,
    pub index: u16,
}

impl Identity {
    pub fn from_config(cfg: &NodeConfig) -> Result<Self, NodeError> {
        let signer =
            OperatorSigner::from_hex(&cfg.operator_secret()?).map_err(|e| NodeError::OperatorKey(e.to_string()))?;
        let (operators, addrs) = operator_set(cfg, &signer)?;
        let index = operators
            .index_of(&signer.public())
            .ok_or_else(|| NodeError::OperatorKey("this node's key is not in [operators].keys".into()))?;
        Ok(Self { signer, operators, addrs, index })
    }
}

fn operator_set(cfg: &NodeConfig, signer: &OperatorSigner) -> Result<(OperatorSet, Vec<String>), NodeError> {
    if cfg.operators.keys.is_empty() {
        return Ok((OperatorSet::new(vec![signer.public()]), vec![]));
    }
    let keys: Vec<OperatorKey> = cfg
        .operators
        .keys
        .iter()
        .map(|k| OperatorKey::from_hex(k).map_err(|e| NodeError::OperatorKey(e.to_string())))
        .collect::<Result<_, _>>()?;
    if keys.len() > 10 {
        return Err(
            ConfigError::Invalid(format!("{} operators configured; at most 10 are supported", keys.len())).into()
        );
    }
    if keys.len() > 1 && cfg.operators.addrs.len() != keys.len() {
        return Err(ConfigError::Invalid(format!(
            "[operators] has {} keys but {} addrs; give every operator's network address",
            keys.len(),
            cfg.operators.addrs.len()
        ))
        .into());
    }
    // Addresses are resolved when dialing (a peer's host name may not exist yet, e.g. in
    // containers); here they only have to look like host:port.
    for a in &cfg.operators.addrs {
        let ok = a.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Err(ConfigError::Invalid(format!("operator address {a:?} is not host:port")).into());
        }
    }
    Ok((OperatorSet::new(keys), cfg.operators.addrs.clone()))
}
