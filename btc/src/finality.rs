//! What Bitcoin says about the L2 chain: the keystones the watcher has seen, which committed
//! blocks they cover, which blocks are superfinal, and the pins the fork guard enforces.
//!
//! Block B is superfinal once a keystone for a block ≥ B *of this node's committed chain* sits
//! under at least `superfinality_confirmations` Bitcoin confirmations. A superfinal keystone pins
//! its L2 number to its hash whatever this node has committed: a block that conflicts with a pin
//! is refused, however many operators signed it.
//!
//! Anyone can post keystone-shaped bytes to Bitcoin, so a keystone *counts* only when its tx
//! spends a coin paying one of the configured operators' keystone keys ([`KeystoneRules`]), and
//! among counted keystones for one L2 number the first in Bitcoin's order wins. Everything
//! else is ignored (pins, superfinality, anchors, `bss_getFinality`, `bss verify`) and counted in
//! `bss_pop_keystones_ignored{reason}` (a gauge over the current view).

use super::keystone::Keystone;
use crate::index::{BtcIndex, Sighting};
use alloy_primitives::B256;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::ScriptBuf;
use bss_consensus::{Anchor, BlockHeader};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// A keystone seen in a block of the watcher's best chain.
#[derive(Clone, Debug)]
pub struct SeenKeystone {
    pub keystone: Keystone,
    pub sighting: Sighting,
    /// Best height − its height + 1.
    pub confirmations: u64,
}

/// Who may write keystones that count: the chain and the operators' keystone-key scripts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeystoneRules {
    pub chain_id: u64,
    /// The operators' keystone keys (x-only), in config order.
    pub keys: Arc<[XOnlyPublicKey]>,
    /// Their output scripts (see `pop::tx::keystone_script`).
    pub writers: Arc<[ScriptBuf]>,
}

/// Why a keystone-shaped payload in Bitcoin does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Not a version-2 keystone, or another chain's.
    Malformed,
    /// Its tx spends no coin of an operator's keystone key.
    NotAnOperator,
    /// An earlier counted keystone in Bitcoin already covers its L2 number.
    Duplicate,
}

impl Ignored {
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotAnOperator => "not_operator",
            Self::Duplicate => "duplicate",
        }
    }
}

impl KeystoneRules {
    pub fn new(chain_id: u64, keys: Vec<XOnlyPublicKey>) -> Self {
        let writers: Vec<ScriptBuf> = keys.iter().map(|k| crate::pop_tx::keystone_script(*k)).collect();
        Self { chain_id, keys: keys.into(), writers: writers.into() }
    }

    /// Whether `s` counts, given the L2 numbers already covered by earlier counted keystones.
    fn judge(&self, s: &Sighting, covered: &mut HashSet<u64>) -> Result<Keystone, Ignored> {
        let k = Keystone::decode(&s.payload).map_err(|_| Ignored::Malformed)?;
        if u64::from(k.chain_id) != self.chain_id {
            return Err(Ignored::Malformed);
        }
        if !s.spent_scripts.iter().any(|sc| self.writers.contains(sc)) {
            return Err(Ignored::NotAnOperator);
        }
        if !covered.insert(k.l2_number) {
            return Err(Ignored::Duplicate);
        }
        Ok(k)
    }
}

/// Counted keystones in the view, oldest (by Bitcoin height) first.
pub fn keystones(view: &BtcIndex, rules: &KeystoneRules) -> Vec<SeenKeystone> {
    let best = view.best_height().unwrap_or(0);
    let mut covered = HashSet::new();
    let mut ignored = [0u64; 3];
    let mut out = Vec::new();
    for s in view.sightings() {
        match rules.judge(s, &mut covered) {
            Ok(k) => out.push(SeenKeystone {
                keystone: k,
                sighting: s.clone(),
                confirmations: best.saturating_sub(s.height) + 1,
            }),
            Err(why) => ignored[why as usize] += 1,
        }
    }
    for why in [Ignored::Malformed, Ignored::NotAnOperator, Ignored::Duplicate] {
        metrics::gauge!("bss_pop_keystones_ignored", "reason" => why.label()).set(ignored[why as usize] as f64);
    }
    out
}

/// The anchors a block records: keystones of this chain in the Bitcoin blocks its BTC headers
/// bring into the view (heights `tip − headers + 1 ..= tip`), in Bitcoin order.
pub fn anchors_for(view: &BtcIndex, btc: &bss_consensus::BtcAttributes, rules: &KeystoneRules) -> Vec<Anchor> {
    if btc.headers.is_empty() {
        return vec![];
    }
    let first = btc.tip_height + 1 - btc.headers.len() as u64;
    keystones(view, rules)
        .into_iter()
        .filter(|k| (first..=btc.tip_height).contains(&k.sighting.height))
        .map(|k| Anchor {
            l2_number: k.keystone.l2_number,
            btc_txid: B256::from(k.sighting.txid.to_byte_array()),
            btc_height: k.sighting.height,
        })
        .collect()
}

/// Finality as this node sees it now.
#[derive(Clone, Debug, Default)]
pub struct FinalityView {
    /// Keystones that match this node's committed chain, oldest first.
    pub matching: Vec<SeenKeystone>,
    /// Keystones whose hash differs from this node's block at that number (or that cover
    /// blocks it has not committed yet).
    pub other: Vec<SeenKeystone>,
    /// Highest superfinal block of the committed chain.
    pub superfinal: Option<u64>,
    /// L2 number → hash, from every superfinal keystone (the first one in Bitcoin wins).
    pub pins: BTreeMap<u64, B256>,
}

impl FinalityView {
    /// `committed(n)` is this node's committed block hash at `n`, if any.
    pub fn compute(
        view: &BtcIndex,
        rules: &KeystoneRules,
        threshold: u64,
        committed: impl Fn(u64) -> Option<B256>,
    ) -> Self {
        let mut out = FinalityView::default();
        for k in keystones(view, rules) {
            let n = k.keystone.l2_number;
            if k.confirmations >= threshold {
                out.pins.entry(n).or_insert(k.keystone.l2_hash);
            }
            if committed(n) == Some(k.keystone.l2_hash) {
                if k.confirmations >= threshold {
                    out.superfinal = out.superfinal.max(Some(n));
                }
                out.matching.push(k);
            } else {
                out.other.push(k);
            }
        }
        out
    }

    /// The keystone that makes (or will make) block `number` final: among matching keystones for
    /// blocks ≥ `number`, the lowest one already at `threshold` confirmations, else the lowest one
    /// (the most confirmed of equals).
    pub fn covering(&self, number: u64, threshold: u64) -> Option<&SeenKeystone> {
        let candidates = || self.matching.iter().filter(move |k| k.keystone.l2_number >= number);
        let key = |k: &&SeenKeystone| (k.keystone.l2_number, std::cmp::Reverse(k.confirmations));
        candidates().filter(|k| k.confirmations >= threshold).min_by_key(key).or_else(|| candidates().min_by_key(key))
    }

    /// Why `header` must be refused, if a superfinal keystone pins its number to another hash.
    pub fn conflict(&self, header: &BlockHeader) -> Option<String> {
        let pinned = self.pins.get(&header.number)?;
        let hash = header.hash();
        (*pinned != hash).then(|| {
            format!(
                "block {} ({hash}) conflicts with a superfinal keystone in Bitcoin that fixes block {} to {pinned}",
                header.number, header.number
            )
        })
    }
}
