//! What Bitcoin says about the L2 chain: the keystones the watcher has seen, which committed
//! blocks they cover, which blocks are superfinal, and the pins the fork guard enforces.
//!
//! Block B is superfinal once a keystone for a block ≥ B *of this node's committed chain* sits
//! under at least `superfinality_confirmations` Bitcoin confirmations. A superfinal keystone pins
//! its L2 number to its hash whatever this node has committed: a block that conflicts with a pin
//! is refused, however many operators signed it.
//!
//! Anyone can post keystone-shaped bytes to Bitcoin, so a keystone *counts* exactly when it is a
//! version-3 keystone of this chain whose certificate verifies against the operator set of its
//! epoch ([`KeystoneRules`]); who paid for the tx does not matter. Among counted keystones for one
//! L2 number the first in Bitcoin's order wins. A later counted keystone for the same number and
//! another hash is [`Evidence`] that a quorum of operators signed a fork: the fork guard stops the
//! node on it. Everything else is ignored (pins, superfinality, anchors, `bss_getFinality`, `bss
//! verify`) and counted in `bss_pop_keystones_ignored{reason}` (a gauge over the current view).
//!
//! Version-2 keystones (counted, until version 3, when an operator's keystone key paid for them)
//! are ignored with the reason `v2`: that rule let one stolen key pin any number, and counting
//! them up to some height would keep the pins such a key may already have written.

use super::keystone::{self, CertifiedKeystone, Keystone};
use crate::index::{BtcIndex, Sighting};
use alloy_primitives::B256;
use bitcoin::hashes::Hash;
use bss_consensus::{Anchor, BlockHeader, OperatorSet};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A keystone seen in a block of the watcher's best chain.
#[derive(Clone, Debug)]
pub struct SeenKeystone {
    pub keystone: Keystone,
    /// The operators whose signatures its certificate carries.
    pub signers: Vec<u16>,
    pub sighting: Sighting,
    /// Best height − its height + 1.
    pub confirmations: u64,
}

/// Two counted keystones for one L2 number with different hashes: a quorum signed a fork.
#[derive(Clone, Debug)]
pub struct Evidence {
    /// The first in Bitcoin's order (the one that counts).
    pub first: SeenKeystone,
    pub conflicting: SeenKeystone,
}

impl Evidence {
    pub fn describe(&self) -> String {
        format!(
            "two keystone certificates for L2 block {}: {} (btc tx {}, signers {:?}) and {} (btc tx {}, signers {:?}); a quorum of operators signed a fork",
            self.first.keystone.l2_number,
            self.first.keystone.l2_hash,
            self.first.sighting.txid,
            self.first.signers,
            self.conflicting.keystone.l2_hash,
            self.conflicting.sighting.txid,
            self.conflicting.signers
        )
    }
}

/// Which keystones count: this chain's, certified by its operator set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeystoneRules {
    pub chain_id: u64,
    /// The operator set of epoch 0 (the only epoch until reconfiguration lands).
    pub operators: Arc<OperatorSet>,
}

impl Default for KeystoneRules {
    fn default() -> Self {
        Self { chain_id: 0, operators: Arc::new(OperatorSet::new(vec![])) }
    }
}

/// Why a keystone-shaped payload in Bitcoin does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Not a decodable version-3 keystone, or another chain's.
    Malformed,
    /// A version-2 keystone (see the module docs).
    Version2,
    /// An epoch this node has no operator set for.
    UnknownEpoch,
    /// Its certificate does not verify against the operator set (short, forged, foreign).
    BadCertificate,
    /// An earlier counted keystone in Bitcoin already covers its L2 number with the same hash.
    Duplicate,
    /// Counted, but an earlier one covers its number with another hash (see [`Evidence`]).
    Conflicting,
}

const REASONS: [Ignored; 6] = [
    Ignored::Malformed,
    Ignored::Version2,
    Ignored::UnknownEpoch,
    Ignored::BadCertificate,
    Ignored::Duplicate,
    Ignored::Conflicting,
];

impl Ignored {
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Version2 => "v2",
            Self::UnknownEpoch => "unknown_epoch",
            Self::BadCertificate => "bad_certificate",
            Self::Duplicate => "duplicate",
            Self::Conflicting => "conflicting",
        }
    }
}

impl KeystoneRules {
    pub fn new(chain_id: u64, operators: OperatorSet) -> Self {
        Self { chain_id, operators: Arc::new(operators) }
    }

    /// The operator set of `epoch`, if this node knows it.
    pub fn operators_of(&self, epoch: u32) -> Option<&OperatorSet> {
        (epoch == 0).then_some(&*self.operators)
    }

    /// The payload as a keystone of this chain, and whether its certificate verifies (the
    /// signature checks: the index runs this once per sighting, see [`Sighting::certified`]).
    pub fn check(&self, payload: &[u8]) -> Result<CertifiedKeystone, Ignored> {
        let c = self.parse(payload)?;
        let set = self.operators_of(c.keystone.epoch).ok_or(Ignored::UnknownEpoch)?;
        c.verify(set).map_err(|_| Ignored::BadCertificate)?;
        Ok(c)
    }

    fn parse(&self, payload: &[u8]) -> Result<CertifiedKeystone, Ignored> {
        if keystone::version_of(payload) == Some(keystone::VERSION_2) {
            return Err(Ignored::Version2);
        }
        let c = CertifiedKeystone::decode(payload).map_err(|_| Ignored::Malformed)?;
        if u64::from(c.keystone.chain_id) != self.chain_id {
            return Err(Ignored::Malformed);
        }
        Ok(c)
    }

    /// Whether `s` counts on its own (its certificate, checked when it was indexed if it was).
    fn judge(&self, s: &Sighting) -> Result<CertifiedKeystone, Ignored> {
        match s.certified {
            Some(true) => self.parse(&s.payload),
            Some(false) => Err(self.parse(&s.payload).err().unwrap_or(Ignored::BadCertificate)),
            None => self.check(&s.payload),
        }
    }
}

/// Counted keystones and evidence of forks in a view.
#[derive(Clone, Debug, Default)]
pub struct Judged {
    /// The first counted keystone of each L2 number, oldest (by Bitcoin order) first.
    pub counted: Vec<SeenKeystone>,
    pub evidence: Vec<Evidence>,
}

/// Judges every sighting of the view.
pub fn judge_all(view: &BtcIndex, rules: &KeystoneRules) -> Judged {
    let best = view.best_height().unwrap_or(0);
    let mut first: HashMap<u64, usize> = HashMap::new();
    let mut ignored = [0u64; REASONS.len()];
    let mut out = Judged::default();
    for s in view.sightings() {
        let c = match rules.judge(s) {
            Ok(c) => c,
            Err(why) => {
                ignored[why as usize] += 1;
                continue;
            }
        };
        let seen = SeenKeystone {
            keystone: c.keystone,
            signers: c.signers,
            sighting: s.clone(),
            confirmations: best.saturating_sub(s.height) + 1,
        };
        match first.get(&seen.keystone.l2_number) {
            Some(i) if out.counted[*i].keystone.l2_hash == seen.keystone.l2_hash => {
                ignored[Ignored::Duplicate as usize] += 1
            }
            Some(i) => {
                ignored[Ignored::Conflicting as usize] += 1;
                out.evidence.push(Evidence { first: out.counted[*i].clone(), conflicting: seen });
            }
            None => {
                first.insert(seen.keystone.l2_number, out.counted.len());
                out.counted.push(seen);
            }
        }
    }
    for why in REASONS {
        metrics::gauge!("bss_pop_keystones_ignored", "reason" => why.label()).set(ignored[why as usize] as f64);
    }
    metrics::gauge!("bss_pop_conflicting_certificates").set(out.evidence.len() as f64);
    out
}

/// Counted keystones in the view, oldest (by Bitcoin height) first.
pub fn keystones(view: &BtcIndex, rules: &KeystoneRules) -> Vec<SeenKeystone> {
    judge_all(view, rules).counted
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
    /// Conflicting certificates: a compromised quorum (the fork guard stops on any).
    pub evidence: Vec<Evidence>,
}

impl FinalityView {
    /// `committed(n)` is this node's committed block hash at `n`, if any.
    pub fn compute(
        view: &BtcIndex,
        rules: &KeystoneRules,
        threshold: u64,
        committed: impl Fn(u64) -> Option<B256>,
    ) -> Self {
        let judged = judge_all(view, rules);
        let mut out = FinalityView { evidence: judged.evidence, ..Default::default() };
        for k in judged.counted {
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

#[cfg(test)]
mod tests;
