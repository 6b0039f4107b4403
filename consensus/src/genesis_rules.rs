//! The rules of a chain that its genesis pins: every value block validity depends on that the
//! genesis state does not already hold, and every key of the federation. The genesis block's
//! `parent_hash` is [`GenesisRules::hash`], so the genesis hash covers them: one 32-byte value
//! (`bss verify --genesis`) pins the operator set, the keystone and custody keys and the rules.

use alloy_primitives::{keccak256, Address, B256};
use serde::{Deserialize, Serialize};

/// Domain of [`GenesisRules::hash`] (versioned: a later layout gets a new tag).
const DOMAIN: &[u8] = b"bss/genesis-rules/v1";

/// The tunnel's rules (`[genesis.tunnel]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelGenesisRules {
    /// Custody x-only public keys, in operator order.
    pub custody_keys: Vec<B256>,
    pub threshold: u64,
    pub deposit_confirmations: u64,
    pub min_deposit_sats: u64,
    pub min_withdrawal_sats: u64,
    pub withdrawal_fee_sats: u64,
    /// Kept from each deposit for the Bitcoin fees of spending its coin, sats.
    #[serde(default)]
    pub deposit_fee_sats: u64,
    /// The highest fee rate a payout bumps to, sat/vB.
    #[serde(default)]
    pub payout_fee_ceiling_sat_vb: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenesisRules {
    pub chain_id: u64,
    pub gas_limit: u64,
    pub min_base_fee: u64,
    pub fee_recipient: Address,
    pub max_tx_size: u64,
    /// Operators' ed25519 public keys, in operator-index order. Empty: a federation of one,
    /// whoever runs it (development only; `bss verify --genesis` refuses such a chain).
    pub operators: Vec<B256>,
    /// Operators' keystone x-only public keys (which Bitcoin txs count as keystones).
    pub keystone_keys: Vec<B256>,
    /// `regtest`, `signet`, `testnet`, `testnet4` or `bitcoin`.
    pub btc_network: String,
    pub btc_start_height: u64,
    pub confirmations_lag: u64,
    pub forced_confirmations: u64,
    pub keystone_interval: u64,
    pub superfinality_confirmations: u64,
    pub tunnel: Option<TunnelGenesisRules>,
}

impl GenesisRules {
    /// keccak256 of the domain tag and the canonical encoding: the genesis block's parent hash.
    pub fn hash(&self) -> B256 {
        let mut bytes = DOMAIN.to_vec();
        // A plain struct of integers, strings and byte arrays always encodes.
        bytes.extend(crate::codec::encode(self).unwrap_or_default());
        keccak256(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> GenesisRules {
        GenesisRules {
            chain_id: 7,
            gas_limit: 30_000_000,
            min_base_fee: 1,
            fee_recipient: Address::ZERO,
            max_tx_size: 131_072,
            operators: vec![B256::repeat_byte(1), B256::repeat_byte(2)],
            keystone_keys: vec![],
            btc_network: "regtest".into(),
            btc_start_height: 0,
            confirmations_lag: 1,
            forced_confirmations: 6,
            keystone_interval: 25,
            superfinality_confirmations: 6,
            tunnel: None,
        }
    }

    /// Every field moves the hash, the operators' order too; JSON round-trips it unchanged.
    #[test]
    fn the_hash_covers_every_rule_and_key() {
        let base = rules();
        let h = base.hash();
        let changed: Vec<GenesisRules> = vec![
            GenesisRules { confirmations_lag: 2, ..base.clone() },
            GenesisRules { operators: vec![B256::repeat_byte(2), B256::repeat_byte(1)], ..base.clone() },
            GenesisRules { keystone_keys: vec![B256::repeat_byte(3)], ..base.clone() },
            GenesisRules { btc_network: "signet".into(), ..base.clone() },
            GenesisRules { superfinality_confirmations: 5, ..base.clone() },
            GenesisRules {
                tunnel: Some(TunnelGenesisRules {
                    custody_keys: vec![B256::repeat_byte(9)],
                    threshold: 1,
                    deposit_confirmations: 6,
                    min_deposit_sats: 10_000,
                    min_withdrawal_sats: 20_000,
                    withdrawal_fee_sats: 2_000,
                    deposit_fee_sats: 0,
                    payout_fee_ceiling_sat_vb: 100,
                }),
                ..base.clone()
            },
        ];
        for c in changed {
            assert_ne!(c.hash(), h, "{c:?}");
        }
        let json = serde_json::to_string(&base).expect("json");
        let back: GenesisRules = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.hash(), h);
    }
}
