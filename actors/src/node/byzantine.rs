//! Byzantine test modes (`bss node --byzantine MODE`, config `byzantine = [...]`), refused unless
//! the config says `allow_byzantine = true`. Each mode breaks one rule on purpose so tests and
//! `bss chaos` can check that honest operators hold the line:
//!
//! * `censor:0xADDR` — never proposes, gossips or lists a tx from ADDR (RPC still acknowledges
//!   them); otherwise follows the protocol. May be repeated.
//! * `false-lists` — claims omissions: its inclusion lists name made-up txs, and it refuses to
//!   vote for any block that does not carry them;
//! * `skip-mints` — its proposals leave out the hBTC mints due (replicas refuse them);
//! * `clock-skew:MS` — not misbehaviour but a broken clock: this operator's clock runs MS
//!   milliseconds ahead (or behind, negative) for its proposals' timestamps and its drift check;
//! * `withhold-votes`, `wrong-root`, `equivocate`, `replay`, `forge-qc` — wire misbehaviour of
//!   the native engine's driver (`crate::consensus::byzantine`).

use super::config::ConfigError;
use crate::hvm::accounts::DevKey;
use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct Byzantine {
    pub censored: Arc<HashSet<Address>>,
    pub false_lists: bool,
    pub skip_mints: bool,
    pub clock_skew_ms: i64,
    pub wire: crate::consensus::byzantine::WireModes,
}

impl Byzantine {
    pub fn parse(modes: &[String], allowed: bool) -> Result<Self, ConfigError> {
        if !modes.is_empty() && !allowed {
            return Err(ConfigError::Invalid(
                "byzantine modes need `allow_byzantine = true` in the config (test clusters only)".into(),
            ));
        }
        let mut censored = HashSet::new();
        let mut false_lists = false;
        let mut skip_mints = false;
        let mut clock_skew_ms = 0i64;
        let mut wire = crate::consensus::byzantine::WireModes::default();
        for m in modes {
            match m.split_once(':') {
                Some(("censor", addr)) => {
                    let a: Address = addr.trim().parse().map_err(|_| {
                        ConfigError::Invalid(format!("byzantine mode {m:?}: {addr:?} is not a 0x-prefixed address"))
                    })?;
                    censored.insert(a);
                }
                Some(("clock-skew", ms)) => {
                    clock_skew_ms = ms.trim().parse().ok().filter(|v: &i64| v.unsigned_abs() <= 3_600_000).ok_or_else(|| {
                        ConfigError::Invalid(format!("byzantine mode {m:?}: expected clock-skew:MS with |MS| ≤ 3600000"))
                    })?;
                }
                None if m == "false-lists" => false_lists = true,
                None if m == "skip-mints" => skip_mints = true,
                None if m == "withhold-votes" => wire.withhold_votes = true,
                None if m == "wrong-root" => wire.wrong_root = true,
                None if m == "equivocate" => wire.equivocate = true,
                None if m == "replay" => wire.replay = true,
                None if m == "forge-qc" => wire.forge_qc = true,
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "unknown byzantine mode {m:?}; known: censor:0xADDR, clock-skew:MS, false-lists, skip-mints, withhold-votes, \
                         wrong-root, equivocate, replay, forge-qc"
                    )))
                }
            }
        }
        Ok(Self { censored: Arc::new(censored), false_lists, skip_mints, clock_skew_ms, wire })
    }

    pub fn is_active(&self) -> bool {
        !self.censored.is_empty() || self.false_lists || self.skip_mints || self.clock_skew_ms != 0 || self.wire.any()
    }
}

/// The made-up txs a `false-lists` operator claims the child of block `number` omits: bytes that
/// are no transaction, and a transfer signed by an account that holds nothing.
pub fn false_claims(chain_id: u64, number: u64) -> Vec<Bytes> {
    let junk = Bytes::from([b"no such tx ".as_slice(), &number.to_be_bytes()].concat());
    let broke = DevKey::from_seed(0xb12a_0000 ^ number);
    let unfunded = broke.sign_raw(TxEip1559 {
        chain_id,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 1_000_000_000_000,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(Address::repeat_byte(0xba)),
        value: U256::from(1u64),
        ..Default::default()
    });
    vec![junk, unfunded]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_need_the_switch() {
        let modes = vec!["censor:0x00000000000000000000000000000000000000aa".to_string(), "false-lists".into()];
        assert!(Byzantine::parse(&modes, false).is_err());
        let b = Byzantine::parse(&modes, true).expect("valid");
        let aa: Address = "0x00000000000000000000000000000000000000aa".parse().expect("address");
        assert!(b.false_lists && b.censored.contains(&aa));
        assert!(Byzantine::parse(&["censor:nope".into()], true).is_err());
        assert!(Byzantine::parse(&["equivocate-lists".into()], true).is_err());
        let wire = Byzantine::parse(&["equivocate".into(), "forge-qc".into()], true).expect("wire modes");
        assert!(wire.wire.equivocate && wire.wire.forge_qc && !wire.wire.replay && wire.is_active());
        assert!(!Byzantine::parse(&[], false).expect("none").is_active());
    }
}
