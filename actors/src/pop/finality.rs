//! What Bitcoin says about the L2 chain: the keystones the watcher has seen, which committed
//! blocks they cover, which blocks are superfinal, and the pins the fork guard enforces.
//!
//! Block B is superfinal once a keystone for a block ≥ B *of this node's committed chain* sits
//! under at least `superfinality_confirmations` Bitcoin confirmations. A superfinal keystone pins
//! its L2 number to its hash whatever this node has committed: a block that conflicts with a pin
//! is refused, however many operators signed it.

use super::keystone::Keystone;
use crate::btc::index::{BtcIndex, Sighting};
use alloy_primitives::B256;
use bitcoin::hashes::Hash;
use bss_consensus::{Anchor, BlockHeader};
use std::collections::BTreeMap;

/// A keystone seen in a block of the watcher's best chain.
#[derive(Clone, Debug)]
pub struct SeenKeystone {
    pub keystone: Keystone,
    pub sighting: Sighting,
    /// Best height − its height + 1.
    pub confirmations: u64,
}

/// Keystones of `chain_id` in the view, oldest (by Bitcoin height) first.
pub fn keystones(view: &BtcIndex, chain_id: u64) -> Vec<SeenKeystone> {
    let best = view.best_height().unwrap_or(0);
    view.sightings()
        .iter()
        .filter_map(|s| {
            let k = Keystone::decode(&s.payload).ok()?;
            (u64::from(k.chain_id) == chain_id).then(|| SeenKeystone {
                keystone: k,
                sighting: s.clone(),
                confirmations: best.saturating_sub(s.height) + 1,
            })
        })
        .collect()
}

/// The anchors a block records: keystones of this chain in the Bitcoin blocks its BTC headers
/// bring into the view (heights `tip − headers + 1 ..= tip`), in Bitcoin order.
pub fn anchors_for(view: &BtcIndex, btc: &bss_consensus::BtcAttributes, chain_id: u64) -> Vec<Anchor> {
    if btc.headers.is_empty() {
        return vec![];
    }
    let first = btc.tip_height + 1 - btc.headers.len() as u64;
    keystones(view, chain_id)
        .into_iter()
        .filter(|k| (first..=btc.tip_height).contains(&k.sighting.height))
        .map(|k| Anchor {
            l2_number: u64::from(k.keystone.l2_number),
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
    pub fn compute(view: &BtcIndex, chain_id: u64, threshold: u64, committed: impl Fn(u64) -> Option<B256>) -> Self {
        let mut out = FinalityView::default();
        for k in keystones(view, chain_id) {
            let n = u64::from(k.keystone.l2_number);
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
        let candidates = || self.matching.iter().filter(move |k| u64::from(k.keystone.l2_number) >= number);
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
