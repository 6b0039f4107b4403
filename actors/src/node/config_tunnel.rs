//! `[genesis.tunnel]` (shared by every operator: the vault and the deposit and withdrawal
//! rules) and `[tunnel]` (this operator's custody key).

use super::config::ConfigError;
use crate::btc::deposit::TunnelRules;
use crate::btc::vault::{CustodyKey, Vault};
use bitcoin::secp256k1::XOnlyPublicKey;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[genesis.tunnel]`: the BTC tunnel. Present: genesis predeploys hBTC and Bitcoin deposits to
/// the vault mint it. Every operator must have the same values (they are part of the genesis).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelGenesis {
    /// Every operator's custody public key (hex x-only, 32 bytes; `bss keygen --btc` prints
    /// one), in operator order. They are not the keystone keys.
    pub custody_keys: Vec<String>,
    /// Signatures a vault spend needs. Default: 2f+1 of the custody keys (f = (n−1)/3). Below
    /// 2f+1, f custody keys short of a supermajority could move the vault: refused unless
    /// `allow_weak_threshold`.
    #[serde(default)]
    pub threshold: Option<usize>,
    /// Accepts a `threshold` below 2f+1 (a test federation, or one that trusts its custody
    /// otherwise). Default false.
    #[serde(default)]
    pub allow_weak_threshold: bool,
    /// Bitcoin confirmations (in an L2 block's view) at which a deposit mints. Default 6.
    #[serde(default = "default_deposit_confirmations")]
    pub deposit_confirmations: u64,
    /// Smallest deposit that mints, sats. Default 10,000.
    #[serde(default = "default_min_deposit")]
    pub min_deposit_sats: u64,
    /// Smallest withdrawal hBTC accepts, sats. Default 20,000.
    #[serde(default = "default_min_withdrawal")]
    pub min_withdrawal_sats: u64,
    /// Taken from each withdrawal to pay its share of the payout's Bitcoin fee, sats.
    /// Default 2,000.
    #[serde(default = "default_withdrawal_fee")]
    pub withdrawal_fee_sats: u64,
    /// Kept from each deposit (it mints paid − this), to pay the Bitcoin fees of spending its
    /// coin later: the vault's surplus, from which consolidations and fee bumps above the
    /// withdrawal fees are paid. Default 0.
    #[serde(default)]
    pub deposit_fee_sats: u64,
    /// The highest fee rate a payout's fee versions bump to, sat/vB (paid from the withdrawal
    /// fees, then the vault's surplus). Default 100.
    #[serde(default = "default_fee_ceiling")]
    pub payout_fee_ceiling_sat_vb: u64,
}

fn default_deposit_confirmations() -> u64 {
    6
}
fn default_min_deposit() -> u64 {
    10_000
}
fn default_min_withdrawal() -> u64 {
    20_000
}
fn default_withdrawal_fee() -> u64 {
    2_000
}
fn default_fee_ceiling() -> u64 {
    100
}

/// 2f+1 of `n` (f = (n−1)/3).
fn supermajority(n: usize) -> usize {
    n - n.saturating_sub(1) / 3
}

/// Bitcoin's dust limit for the largest standard output (P2PKH): a payout output must be above.
const DUST_SATS: u64 = 546;

/// Parses an x-only public key written as hex.
pub fn parse_x_only(what: &str, hex_key: &str) -> Result<XOnlyPublicKey, ConfigError> {
    let bytes = hex::decode(hex_key.trim()).map_err(|e| ConfigError::Invalid(format!("{what}: {e}")))?;
    XOnlyPublicKey::from_slice(&bytes)
        .map_err(|e| ConfigError::Invalid(format!("{what}: not an x-only public key (32 bytes hex): {e}")))
}

impl TunnelGenesis {
    pub fn custody_keys(&self) -> Result<Vec<XOnlyPublicKey>, ConfigError> {
        self.custody_keys
            .iter()
            .enumerate()
            .map(|(i, k)| parse_x_only(&format!("genesis.tunnel.custody_keys[{i}]"), k))
            .collect()
    }

    /// 2f+1 of n unless set.
    pub fn threshold(&self) -> usize {
        self.threshold.unwrap_or(supermajority(self.custody_keys.len()))
    }

    pub fn vault(&self) -> Result<Vault, ConfigError> {
        Vault::new(self.custody_keys()?, self.threshold())
            .map_err(|e| ConfigError::Invalid(format!("genesis.tunnel: {e}")))
    }

    /// Checks the values; the vault must build.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.vault()?;
        let (n, t) = (self.custody_keys.len(), self.threshold());
        if t < supermajority(n) && !self.allow_weak_threshold {
            return Err(ConfigError::Invalid(format!(
                "genesis.tunnel.threshold {t} is below 2f+1 = {} of {n} custody keys: fewer keys than a \
                 supermajority could move the vault; set allow_weak_threshold = true to accept it",
                supermajority(n)
            )));
        }
        if !(1..=1000).contains(&self.deposit_confirmations) {
            return Err(ConfigError::Invalid("genesis.tunnel.deposit_confirmations must be between 1 and 1000".into()));
        }
        if self.min_deposit_sats <= DUST_SATS {
            return Err(ConfigError::Invalid(format!(
                "genesis.tunnel.min_deposit_sats must be above the dust limit ({DUST_SATS})"
            )));
        }
        if self.min_withdrawal_sats < self.withdrawal_fee_sats.saturating_add(DUST_SATS + 1) {
            return Err(ConfigError::Invalid(format!(
                "genesis.tunnel.min_withdrawal_sats must leave more than the dust limit ({DUST_SATS}) after withdrawal_fee_sats"
            )));
        }
        if self.deposit_fee_sats >= self.min_deposit_sats {
            return Err(ConfigError::Invalid(
                "genesis.tunnel.deposit_fee_sats must be below min_deposit_sats (a deposit would mint nothing)".into(),
            ));
        }
        if !(1..=10_000).contains(&self.payout_fee_ceiling_sat_vb) {
            return Err(ConfigError::Invalid(
                "genesis.tunnel.payout_fee_ceiling_sat_vb must be between 1 and 10000 sat/vB".into(),
            ));
        }
        Ok(())
    }

    pub fn rules(&self, chain_id: u64) -> Result<TunnelRules, ConfigError> {
        Ok(TunnelRules {
            vault: self.vault()?,
            chain_id,
            min_deposit_sats: self.min_deposit_sats,
            deposit_confirmations: self.deposit_confirmations,
            min_withdrawal_sats: self.min_withdrawal_sats,
            withdrawal_fee_sats: self.withdrawal_fee_sats,
            deposit_fee_sats: self.deposit_fee_sats,
            payout_fee_ceiling_sat_vb: self.payout_fee_ceiling_sat_vb,
        })
    }
}

/// `[tunnel]`: this operator's share of the vault. Without a custody key the node follows the
/// tunnel (mints, RPC) but signs no payout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TunnelSection {
    /// This operator's custody secret key (hex, 32 bytes), or a file holding it.
    pub custody_key: Option<String>,
    pub custody_key_file: Option<PathBuf>,
}

impl TunnelSection {
    pub fn secret(&self) -> Result<Option<[u8; 32]>, ConfigError> {
        super::config::secp_secret("tunnel.custody_key", &self.custody_key, &self.custody_key_file)
    }

    /// This operator's custody key, checked against the genesis: it must be the key listed at
    /// this operator's index.
    pub fn custody_key(&self, genesis: &TunnelGenesis, index: usize) -> Result<Option<CustodyKey>, ConfigError> {
        let Some(secret) = self.secret()? else { return Ok(None) };
        let key = CustodyKey::new(secret).map_err(|e| ConfigError::Invalid(format!("tunnel.custody_key: {e}")))?;
        let listed = genesis.custody_keys()?;
        if listed.get(index) != Some(&key.public()) {
            return Err(ConfigError::Invalid(format!(
                "tunnel.custody_key's public key {} is not genesis.tunnel.custody_keys[{index}]",
                key.public()
            )));
        }
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u8) -> Vec<String> {
        (1..=n).map(|i| CustodyKey::new([i; 32]).expect("key").public().to_string()).collect()
    }

    #[test]
    fn tunnel_genesis_defaults_and_checks() {
        let t: TunnelGenesis = toml::from_str(&format!("custody_keys = {:?}", keys(4))).expect("parse");
        assert_eq!((t.threshold(), t.deposit_confirmations, t.min_deposit_sats), (3, 6, 10_000));
        t.check().expect("valid");
        let seven: TunnelGenesis = toml::from_str(&format!("custody_keys = {:?}", keys(7))).expect("parse");
        assert_eq!(seven.threshold(), 5);
        let one: TunnelGenesis = toml::from_str(&format!("custody_keys = {:?}", keys(1))).expect("parse");
        assert_eq!(one.threshold(), 1);
        let mut bad = t.clone();
        bad.withdrawal_fee_sats = bad.min_withdrawal_sats;
        assert!(bad.check().is_err(), "a withdrawal would pay out nothing");
        let mut dup = t.clone();
        dup.custody_keys[1] = dup.custody_keys[0].clone();
        assert!(dup.check().is_err());
        let mut high = t.clone();
        high.threshold = Some(5);
        assert!(high.check().is_err());
        // Two of four is below 2f+1 = 3: refused, unless the genesis says it means it.
        let mut weak = t.clone();
        weak.threshold = Some(2);
        let err = weak.check().expect_err("2 of 4 accepted").to_string();
        assert!(err.contains("below 2f+1 = 3") && err.contains("allow_weak_threshold"), "{err}");
        weak.allow_weak_threshold = true;
        weak.check().expect("allowed by the flag");
        assert!(toml::from_str::<TunnelGenesis>("custody_keys = [\"zz\"]").expect("parse").check().is_err());
    }

    #[test]
    fn a_custody_key_must_be_the_one_genesis_lists_for_this_operator() {
        let t: TunnelGenesis = toml::from_str(&format!("custody_keys = {:?}", keys(4))).expect("parse");
        let mine = TunnelSection { custody_key: Some(hex::encode([2u8; 32])), custody_key_file: None };
        assert!(mine.custody_key(&t, 1).expect("listed at 1").is_some());
        assert!(mine.custody_key(&t, 0).is_err());
        assert!(TunnelSection::default().custody_key(&t, 0).expect("none").is_none());
    }
}
