//! `bss verify … --genesis HASH`: one 32-byte value pins the operator set, the keystone and
//! custody keys and the chain's rules. The node serves its rules (`bss_genesis`) and block 0;
//! neither is trusted: block 0 must hash to the pinned value, and its parent hash must be the
//! hash of the rules served, so a node that lies about either fails here.

use crate::verify::L2;
use alloy_primitives::B256;
use bss_consensus::GenesisRules;
use eyre::{bail, eyre, Result};
use serde_json::json;
use std::str::FromStr;

/// The rules block 0 commits to, when block 0 is the pinned genesis; and the link's detail.
pub(crate) fn pinned_rules(l2: &mut L2, pin: &str) -> Result<(GenesisRules, String)> {
    let pin = B256::from_str(pin.trim()).map_err(|e| eyre!("--genesis {pin:?} is not a 32-byte hex hash: {e}"))?;
    let served = l2.call("bss_genesis", json!([]))?;
    let rules: GenesisRules = serde_json::from_value(served["rules"].clone())
        .map_err(|e| eyre!("bss_genesis returned rules this verifier cannot read: {e}"))?;
    let header = l2.block(0)?.header;
    let hash = header.hash();
    if hash != pin {
        bail!("block 0 hashes to {hash}, not to the pinned genesis {pin}: this node serves another chain");
    }
    if header.parent_hash != rules.hash() {
        bail!(
            "the rules the node serves hash to {}, but the genesis commits to {}: the node misreports its rules",
            rules.hash(),
            header.parent_hash
        );
    }
    if rules.operators.is_empty() {
        bail!(
            "the genesis pins no operator keys (a development federation of one): nothing to check signatures against"
        );
    }
    let custody = match &rules.tunnel {
        Some(t) => format!(", custody {} of {}", t.threshold, t.custody_keys.len()),
        None => String::new(),
    };
    let detail = format!(
        "{pin} pins {} operators, {} keystone keys{custody}, Bitcoin {} lag {} (chain {})",
        rules.operators.len(),
        rules.keystone_keys.len(),
        rules.btc_network,
        rules.confirmations_lag,
        rules.chain_id
    );
    Ok((rules, detail))
}

/// Hex keys as the other links take them.
pub(crate) fn hex_keys(keys: &[B256]) -> Vec<String> {
    keys.iter().map(|k| hex::encode(k.as_slice())).collect()
}
