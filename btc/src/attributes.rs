//! The BTC attributes of an L2 block (DESIGN.md §3): the Bitcoin tip it builds on and up to six
//! raw headers extending its parent's tip (or, after a Bitcoin reorg, from the fork point). The
//! leader chooses them from its watcher's view; replicas check linkage, proof of work, and that
//! the tip is on their own watcher's best chain at least `confirmations_lag` blocks deep.
//!
//! The view only moves forward: headers that do not extend the parent's tip are valid only when
//! that tip has left the replica's best chain, and then only from the fork point. And a leader
//! must move it: a proposal that adds no headers while the replica's own view is more than
//! `stale_slack` blocks past the parent's tip is refused (README "Threat model").

use super::index::BtcIndex;
use alloy_primitives::{Bytes, B256};
use bitcoin::block::Header;
use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Network, Target};
use bss_consensus::BtcAttributes;

/// Most headers one L2 block may carry.
pub const MAX_HEADERS: usize = 6;

#[derive(Clone, Copy, Debug)]
pub struct BtcRules {
    pub network: Network,
    pub confirmations_lag: u64,
    pub start_height: u64,
    /// Confirmations (in an L2 block's Bitcoin view) after which a forced tx is due
    /// (`censorship.forced_confirmations`).
    pub forced_confirmations: u64,
    /// A voter's own policy, not a rule of the chain: how many Bitcoin blocks its view may be
    /// past the parent's tip before it refuses a proposal that adds no headers
    /// (`btc.stale_view_slack`, default [`DEFAULT_STALE_SLACK`]).
    pub stale_slack: u64,
}

/// Default of `stale_slack`: three Bitcoin blocks. Watchers poll on their own clocks and the
/// leader's may be a block or two behind a voter's; three blocks (half an hour on mainnet) is
/// well above that skew and well below the six-block deposit and forced-tx depths a frozen view
/// would hold back.
pub const DEFAULT_STALE_SLACK: u64 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    #[error("{0} BTC headers, at most {MAX_HEADERS}")]
    TooMany(usize),
    #[error("BTC header {0} is not an 80-byte Bitcoin header")]
    Malformed(usize),
    #[error("BTC header {index} does not link to the previous one (prev {prev}, expected {expected})")]
    BrokenLink { index: usize, prev: BlockHash, expected: BlockHash },
    #[error("BTC header {0} fails proof of work")]
    BadPow(usize),
    #[error("BTC header {index} ({hash}) at height {height} is not on this node's best Bitcoin chain")]
    NotOnBestChain { index: usize, hash: BlockHash, height: u64 },
    #[error("BTC headers start at {height}, but the first must extend the parent's tip or the chain at {start}")]
    BadStart { height: u64, start: u64 },
    #[error("BTC tip {tip_height} is fewer than {lag} confirmations deep (this node's best: {best:?})")]
    TooShallow { tip_height: u64, lag: u64, best: Option<u64> },
    #[error("BTC headers restart at {first}, below the parent's tip {parent_tip}, which is still on this node's best chain (the view only moves forward)")]
    Rewind { first: u64, parent_tip: u64 },
    #[error("BTC headers restart at {first} after a Bitcoin reorg, but the parent's tip forked off at {fork:?}: they must start right after the fork point")]
    NotFromForkPoint { first: u64, fork: Option<u64> },
    #[error("the block adds no BTC headers while this node's view reaches {target}, more than {slack} past the parent's tip {parent_tip}")]
    Stale { parent_tip: u64, target: u64, slack: u64 },
    #[error("BTC tip field ({height}, {hash}) does not match the last header")]
    TipMismatch { height: u64, hash: B256 },
}

fn to_b256(h: BlockHash) -> B256 {
    B256::from(h.to_byte_array())
}

fn raw(h: &Header) -> Bytes {
    Bytes::from(encode::serialize(h))
}

/// The block's tip as a Bitcoin hash (`None` for "no Bitcoin view yet").
pub fn tip_hash(a: &BtcAttributes) -> Option<BlockHash> {
    (a.tip_hash != B256::ZERO).then(|| BlockHash::from_byte_array(a.tip_hash.0))
}

/// Leader: the attributes for a child of a block with `parent`, from this node's view.
pub fn next_attributes(parent: &BtcAttributes, view: &BtcIndex, rules: &BtcRules) -> BtcAttributes {
    let unchanged = BtcAttributes { headers: vec![], ..parent.clone() };
    let Some(best) = view.best_height() else { return unchanged };
    let Some(target) = best.checked_sub(rules.confirmations_lag).filter(|t| *t >= rules.start_height) else {
        return unchanged;
    };
    // The height to start from: after the parent's tip if it is on our chain, after the fork
    // point if Bitcoin reorganised under it, at start_height for the first view.
    let first = match tip_hash(parent) {
        None => rules.start_height,
        Some(tip) if view.is_on_best_chain(parent.tip_height, &tip) => parent.tip_height + 1,
        Some(tip) => match fork_height(view, tip) {
            Some(fork) => fork + 1,
            None => return unchanged,
        },
    };
    if first > target {
        return unchanged;
    }
    let last = target.min(first + MAX_HEADERS as u64 - 1);
    let headers: Vec<Bytes> = (first..=last).filter_map(|h| view.header_at(h)).map(raw).collect();
    match view.hash_at(last) {
        Some(hash) if headers.len() as u64 == last - first + 1 => {
            BtcAttributes { tip_height: last, tip_hash: to_b256(hash), headers }
        }
        _ => unchanged,
    }
}

/// Walks back from a header the view has seen (but no longer on its best chain) to the best chain.
fn fork_height(view: &BtcIndex, mut hash: BlockHash) -> Option<u64> {
    loop {
        let (height, header) = view.seen(&hash)?;
        if view.is_on_best_chain(*height, &hash) {
            return Some(*height);
        }
        hash = header.prev_blockhash;
    }
}

/// Replica: checks a proposal's attributes against its parent's and this node's view.
pub fn check_attributes(
    parent: &BtcAttributes,
    proposed: &BtcAttributes,
    view: &BtcIndex,
    rules: &BtcRules,
) -> Result<(), AttributeError> {
    if proposed.headers.is_empty() {
        if proposed.tip_height != parent.tip_height || proposed.tip_hash != parent.tip_hash {
            return Err(AttributeError::TipMismatch { height: proposed.tip_height, hash: proposed.tip_hash });
        }
        return match stale_by(parent, view, rules) {
            Some(target) => {
                Err(AttributeError::Stale { parent_tip: parent.tip_height, target, slack: rules.stale_slack })
            }
            None => Ok(()),
        };
    }
    if proposed.headers.len() > MAX_HEADERS {
        return Err(AttributeError::TooMany(proposed.headers.len()));
    }
    let headers = proposed
        .headers
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if b.len() == 80 {
                encode::deserialize::<Header>(b).map_err(|_| AttributeError::Malformed(i))
            } else {
                Err(AttributeError::Malformed(i))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let limit = bitcoin::params::Params::new(rules.network).max_attainable_target;
    for (i, h) in headers.iter().enumerate() {
        if i > 0 && h.prev_blockhash != headers[i - 1].block_hash() {
            return Err(AttributeError::BrokenLink {
                index: i,
                prev: h.prev_blockhash,
                expected: headers[i - 1].block_hash(),
            });
        }
        let target = h.target();
        if target > limit || target == Target::ZERO || h.validate_pow(target).is_err() {
            return Err(AttributeError::BadPow(i));
        }
    }
    let n = headers.len() as u64;
    let last = headers[headers.len() - 1].block_hash();
    if proposed.tip_hash != to_b256(last) || proposed.tip_height < n - 1 {
        return Err(AttributeError::TipMismatch { height: proposed.tip_height, hash: proposed.tip_hash });
    }
    let first_height = proposed.tip_height + 1 - n;
    let extends_parent =
        tip_hash(parent).is_some_and(|t| headers[0].prev_blockhash == t && first_height == parent.tip_height + 1);
    match tip_hash(parent) {
        None if first_height != rules.start_height => {
            return Err(AttributeError::BadStart { height: first_height, start: rules.start_height })
        }
        None => {}
        Some(_) if extends_parent => {}
        Some(tip) if view.is_on_best_chain(parent.tip_height, &tip) => {
            return Err(AttributeError::Rewind { first: first_height, parent_tip: parent.tip_height })
        }
        Some(tip) => {
            // Bitcoin reorganised under the parent's tip: restart right after the fork point
            // (the checks below put the new headers on this node's best chain).
            let fork = fork_height(view, tip);
            if fork.is_none_or(|f| first_height != f + 1) {
                return Err(AttributeError::NotFromForkPoint { first: first_height, fork });
            }
        }
    }
    for (i, h) in headers.iter().enumerate() {
        let height = first_height + i as u64;
        if !view.is_on_best_chain(height, &h.block_hash()) {
            return Err(AttributeError::NotOnBestChain { index: i, hash: h.block_hash(), height });
        }
    }
    if view.best_height().is_none_or(|best| proposed.tip_height + rules.confirmations_lag > best) {
        return Err(AttributeError::TooShallow {
            tip_height: proposed.tip_height,
            lag: rules.confirmations_lag,
            best: view.best_height(),
        });
    }
    Ok(())
}

/// `Some(target)` when this node's view reaches `target` (its best minus the lag), more than
/// `stale_slack` Bitcoin blocks past `parent`'s tip: a child that adds no headers is stale.
pub fn stale_by(parent: &BtcAttributes, view: &BtcIndex, rules: &BtcRules) -> Option<u64> {
    let target = view.best_height()?.checked_sub(rules.confirmations_lag)?;
    let ahead = match tip_hash(parent) {
        None => target.checked_sub(rules.start_height)?.checked_add(1)?,
        Some(_) => target.checked_sub(parent.tip_height)?,
    };
    (ahead > rules.stale_slack).then_some(target)
}

/// Whether the view has what `check_attributes` needs to judge `proposed` (used to wait a
/// bounded time for a lagging watcher before refusing).
pub fn view_ready(proposed: &BtcAttributes, view: &BtcIndex, rules: &BtcRules) -> bool {
    match tip_hash(proposed) {
        None => true,
        Some(tip) => {
            view.is_on_best_chain(proposed.tip_height, &tip)
                && view.best_height().is_some_and(|b| b >= proposed.tip_height + rules.confirmations_lag)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{mine_chain, TestIndex};

    fn rules(lag: u64) -> BtcRules {
        BtcRules {
            network: Network::Regtest,
            confirmations_lag: lag,
            start_height: 0,
            forced_confirmations: 6,
            stale_slack: DEFAULT_STALE_SLACK,
        }
    }

    fn view_of(blocks: &[bitcoin::Block]) -> BtcIndex {
        TestIndex::of(blocks).view()
    }

    #[test]
    fn leader_attributes_pass_replica_checks_and_follow_the_lag() {
        let blocks = mine_chain(None, 10, 1);
        let view = view_of(&blocks);
        let genesis = BtcAttributes::default();
        let first = next_attributes(&genesis, &view, &rules(2));
        // Best is 9, lag 2: the view may reach 7; six headers at most, from 0.
        assert_eq!((first.tip_height, first.headers.len()), (5, 6));
        check_attributes(&genesis, &first, &view, &rules(2)).expect("valid");
        let second = next_attributes(&first, &view, &rules(2));
        assert_eq!((second.tip_height, second.headers.len()), (7, 2));
        check_attributes(&first, &second, &view, &rules(2)).expect("valid");
        let third = next_attributes(&second, &view, &rules(2));
        assert!(third.headers.is_empty() && third.tip_hash == second.tip_hash);
        check_attributes(&second, &third, &view, &rules(2)).expect("unchanged is valid");
        // Unchanged while the view is within the slack of the parent's tip: valid. Past it: stale.
        let unchanged = BtcAttributes { headers: vec![], ..first.clone() };
        check_attributes(&first, &unchanged, &view, &rules(2)).expect("two blocks behind, slack 3");
        let empty = BtcAttributes::default();
        assert_eq!(
            check_attributes(&empty, &empty, &view, &rules(2)),
            Err(AttributeError::Stale { parent_tip: 0, target: 7, slack: 3 })
        );
        // A replica whose view is shallower refuses until its watcher catches up.
        assert!(matches!(check_attributes(&first, &second, &view, &rules(3)), Err(AttributeError::TooShallow { .. })));
    }

    #[test]
    fn replicas_refuse_broken_links_bad_pow_and_foreign_headers() {
        let blocks = mine_chain(None, 8, 1);
        let view = view_of(&blocks);
        let genesis = BtcAttributes::default();
        let good = next_attributes(&genesis, &view, &rules(0));
        // Broken link: swap two headers.
        let mut swapped = good.clone();
        swapped.headers.swap(1, 2);
        assert!(matches!(
            check_attributes(&genesis, &swapped, &view, &rules(0)),
            Err(AttributeError::BrokenLink { index: 1, .. })
        ));
        // Bad PoW: a nonce that misses the target (the header hash changes, so relink the tip).
        let mut bad = good.clone();
        let mut h: Header = encode::deserialize(&bad.headers[5]).expect("header");
        while h.validate_pow(h.target()).is_ok() {
            h.nonce = h.nonce.wrapping_add(1);
        }
        bad.headers[5] = raw(&h);
        bad.tip_hash = to_b256(h.block_hash());
        assert_eq!(check_attributes(&genesis, &bad, &view, &rules(0)), Err(AttributeError::BadPow(5)));
        // Headers with valid PoW from a chain this node's watcher does not follow.
        let other = mine_chain(None, 8, 2);
        let foreign = next_attributes(&genesis, &view_of(&other), &rules(0));
        assert!(matches!(
            check_attributes(&genesis, &foreign, &view, &rules(0)),
            Err(AttributeError::NotOnBestChain { index: 1, .. })
        ));
        assert!(matches!(
            check_attributes(
                &genesis,
                &BtcAttributes { headers: vec![Bytes::from(vec![0u8; 79])], ..good.clone() },
                &view,
                &rules(0)
            ),
            Err(AttributeError::Malformed(0))
        ));
    }

    /// Issue 31, item 2: tip 3 after tip 7 while 7 is still on the best chain is refused.
    #[test]
    fn the_view_never_moves_backwards_while_the_parents_tip_is_on_the_best_chain() {
        let blocks = mine_chain(None, 12, 1);
        let view = view_of(&blocks);
        let upto = |last: u64| BtcAttributes {
            tip_height: last,
            tip_hash: to_b256(blocks[last as usize].block_hash()),
            headers: (last.saturating_sub(MAX_HEADERS as u64 - 1)..=last)
                .map(|h| raw(&blocks[h as usize].header))
                .collect(),
        };
        let seven = upto(7);
        let rewound = BtcAttributes {
            tip_height: 3,
            tip_hash: to_b256(blocks[3].block_hash()),
            headers: vec![raw(&blocks[2].header), raw(&blocks[3].header)],
        };
        assert_eq!(
            check_attributes(&seven, &rewound, &view, &rules(0)),
            Err(AttributeError::Rewind { first: 2, parent_tip: 7 })
        );
        // Re-sending the parent's own last headers is a rewind too.
        let again = BtcAttributes { tip_height: 7, tip_hash: seven.tip_hash, headers: vec![raw(&blocks[7].header)] };
        assert_eq!(
            check_attributes(&seven, &again, &view, &rules(0)),
            Err(AttributeError::Rewind { first: 7, parent_tip: 7 })
        );
        check_attributes(&seven, &next_attributes(&seven, &view, &rules(0)), &view, &rules(0)).expect("forward");
    }

    #[test]
    fn after_a_reorg_the_headers_restart_exactly_at_the_fork_point() {
        let blocks = mine_chain(None, 6, 1);
        let mut index = TestIndex::of(&blocks);
        let before = next_attributes(&BtcAttributes::default(), &index.view(), &rules(0));
        index.disconnect_tip();
        index.disconnect_tip();
        let branch = mine_chain(Some(&blocks[3]), 4, 7);
        for b in &branch {
            index.connect(b);
        }
        let view = index.view();
        // From height 3 (below the fork point 3 + 1): a rewind dressed as a reorg.
        let early = BtcAttributes {
            tip_height: 5,
            tip_hash: to_b256(branch[1].block_hash()),
            headers: vec![raw(&blocks[3].header), raw(&branch[0].header), raw(&branch[1].header)],
        };
        assert_eq!(
            check_attributes(&before, &early, &view, &rules(0)),
            Err(AttributeError::NotFromForkPoint { first: 3, fork: Some(3) })
        );
    }

    #[test]
    fn a_bitcoin_reorg_restarts_from_the_fork_point() {
        let blocks = mine_chain(None, 6, 1);
        let mut index = TestIndex::of(&blocks);
        let genesis = BtcAttributes::default();
        let before = next_attributes(&genesis, &index.view(), &rules(0));
        assert_eq!(before.tip_height, 5);
        // Bitcoin drops blocks 4 and 5 and grows a longer branch from 3.
        index.disconnect_tip();
        index.disconnect_tip();
        for b in mine_chain(Some(&blocks[3]), 4, 7) {
            index.connect(&b);
        }
        let view = index.view();
        let after = next_attributes(&before, &view, &rules(0));
        assert_eq!((after.tip_height, after.headers.len()), (7, 4));
        check_attributes(&before, &after, &view, &rules(0)).expect("reorg from the fork point");
    }
}
