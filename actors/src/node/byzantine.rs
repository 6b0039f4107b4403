//! Byzantine test modes (`bss node --byzantine MODE`, config `byzantine = [...]`), refused unless
//! the config says `allow_byzantine = true`. Each mode breaks one rule on purpose so tests and
//! `bss chaos` can check that honest operators hold the line:
//!
//! * `censor:0xADDR` — never proposes, gossips or lists a tx from ADDR (RPC still acknowledges
//!   them); otherwise follows the protocol. May be repeated.
//! * `false-lists` — claims omissions: its inclusion lists name made-up txs, and it refuses to
//!   vote for any block that does not carry them;
//! * `list-txs:FILE` — its inclusion lists name the raw txs in FILE (one hex tx per line, read
//!   again at each vote), whatever its mempool holds; it votes normally. This is the poisoned
//!   list a Byzantine operator would send (README "Threat model");
//! * `btc-rewind:N` — every block it leads restarts the Bitcoin headers N heights below its
//!   parent's tip (moving the agreed view backwards; honest voters refuse it);
//! * `skip-mints` — its proposals leave out the hBTC mints due (replicas refuse them);
//! * `flood-tunnel-sigs` — instead of its payout signatures, it floods the others with signature
//!   messages for a batch that does not exist (each operator's inbox has its own queue);
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
    /// `list-txs:FILE`: the file whose txs this operator's lists name.
    pub list_file: Option<std::path::PathBuf>,
    pub skip_mints: bool,
    pub flood_tunnel_sigs: bool,
    /// `btc-rewind:N`: how far below its parent's Bitcoin tip each block it leads restarts.
    pub btc_rewind: Option<u64>,
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
        let mut list_file = None;
        let mut skip_mints = false;
        let mut flood_tunnel_sigs = false;
        let mut btc_rewind = None;
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
                Some(("list-txs", file)) if !file.trim().is_empty() => {
                    list_file = Some(std::path::PathBuf::from(file.trim()));
                }
                Some(("btc-rewind", n)) => {
                    btc_rewind = Some(n.trim().parse().ok().filter(|n: &u64| (1..=1_000).contains(n)).ok_or_else(|| {
                        ConfigError::Invalid(format!("byzantine mode {m:?}: expected btc-rewind:N with 1 ≤ N ≤ 1000"))
                    })?);
                }
                Some(("clock-skew", ms)) => {
                    clock_skew_ms = ms.trim().parse().ok().filter(|v: &i64| v.unsigned_abs() <= 3_600_000).ok_or_else(|| {
                        ConfigError::Invalid(format!("byzantine mode {m:?}: expected clock-skew:MS with |MS| ≤ 3600000"))
                    })?;
                }
                None if m == "false-lists" => false_lists = true,
                None if m == "skip-mints" => skip_mints = true,
                None if m == "flood-tunnel-sigs" => flood_tunnel_sigs = true,
                None if m == "withhold-votes" => wire.withhold_votes = true,
                None if m == "wrong-root" => wire.wrong_root = true,
                None if m == "equivocate" => wire.equivocate = true,
                None if m == "replay" => wire.replay = true,
                None if m == "forge-qc" => wire.forge_qc = true,
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "unknown byzantine mode {m:?}; known: censor:0xADDR, clock-skew:MS, false-lists, list-txs:FILE, btc-rewind:N, skip-mints, flood-tunnel-sigs, withhold-votes, \
                         wrong-root, equivocate, replay, forge-qc"
                    )))
                }
            }
        }
        Ok(Self {
            censored: Arc::new(censored),
            false_lists,
            list_file,
            skip_mints,
            flood_tunnel_sigs,
            btc_rewind,
            clock_skew_ms,
            wire,
        })
    }

    pub fn is_active(&self) -> bool {
        !self.censored.is_empty()
            || self.false_lists
            || self.list_file.is_some()
            || self.skip_mints
            || self.flood_tunnel_sigs
            || self.btc_rewind.is_some()
            || self.clock_skew_ms != 0
            || self.wire.any()
    }
}

/// `btc-rewind:N`: the BTC attributes of a child of `parent` that restart `n` heights below the
/// parent's tip, on this node's best chain (up to six headers, no deeper than the lag allows).
/// Before there is a view, or when there is nothing to rewind to, the honest attributes.
pub fn rewound_attributes(
    parent: &bss_consensus::BtcAttributes,
    view: &bss_btc::index::BtcIndex,
    rules: &bss_btc::BtcRules,
    n: u64,
) -> bss_consensus::BtcAttributes {
    let honest = || bss_btc::next_attributes(parent, view, rules);
    if parent.tip_hash == alloy_primitives::B256::ZERO {
        return honest();
    }
    let first = parent.tip_height.saturating_sub(n).saturating_add(1).max(rules.start_height + 1);
    let Some(target) = view.best_height().and_then(|b| b.checked_sub(rules.confirmations_lag)) else { return honest() };
    let last = target.min(first + bss_btc::attributes::MAX_HEADERS as u64 - 1);
    let headers: Vec<Bytes> = (first..=last)
        .filter_map(|h| view.header_at(h))
        .map(|h| Bytes::from(bitcoin::consensus::encode::serialize(h)))
        .collect();
    match view.hash_at(last) {
        Some(hash) if first <= last && headers.len() as u64 == last - first + 1 => bss_consensus::BtcAttributes {
            tip_height: last,
            tip_hash: alloy_primitives::B256::from(bitcoin::hashes::Hash::to_byte_array(hash)),
            headers,
        },
        _ => honest(),
    }
}

/// `list-txs:FILE`: the raw txs FILE names, one hex string (0x optional) per line; blank lines
/// and `#` comments are skipped, and so is a line that is not hex (logged). A file that cannot
/// be read gives an empty list.
pub fn listed_in(file: &std::path::Path) -> Vec<Bytes> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(target: "byzantine", file = %file.display(), error = %e, "list-txs: cannot read the file");
            return vec![];
        }
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| match hex::decode(l.trim_start_matches("0x")) {
            Ok(raw) => Some(Bytes::from(raw)),
            Err(e) => {
                tracing::warn!(target: "byzantine", line = l, error = %e, "list-txs: not a hex tx");
                None
            }
        })
        .collect()
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
        let listing = Byzantine::parse(&["list-txs:/tmp/poison.txt".into()], true).expect("list-txs");
        assert_eq!(listing.list_file.as_deref(), Some(std::path::Path::new("/tmp/poison.txt")));
        assert!(Byzantine::parse(&["list-txs:".into()], true).is_err());
        assert_eq!(Byzantine::parse(&["btc-rewind:5".into()], true).expect("rewind").btc_rewind, Some(5));
        assert!(Byzantine::parse(&["btc-rewind:0".into()], true).is_err());
    }

    #[test]
    fn list_files_are_read_line_by_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("list.txt");
        std::fs::write(&file, "# poison\n0x01ff\n\n02\nnot hex\n").expect("write");
        assert_eq!(listed_in(&file), vec![Bytes::from(vec![1, 0xff]), Bytes::from(vec![2])]);
        assert!(listed_in(&dir.path().join("missing")).is_empty());
    }
}
