//! The expansions of the leaves recent blocks added to the state commitment, kept so that the
//! next blocks can remove those leaves without expanding them again.
//!
//! A block that changes an account removes the account's old leaf from the LtHash and adds the
//! new one, and each is an expansion: 2,048 bytes of blake3 output, 32 compressions. Where
//! blake3 has no many-block XOF (every x86 machine without AVX-512) it computes them one at a
//! time, ~2.7 µs a leaf: the commitment of a block of 1,000 transfers then costs more than
//! executing it, on every operator. The old leaf of a busy account (a sender, a token's balance
//! slot) is usually the one the block before added, so the executor keeps what the last two
//! blocks added and subtracts those. An expansion depends only on its leaf, so a remembered one
//! is right whichever block, or fork, added it.

use crate::lthash::{sum_in_halves, Lanes, Leaf, LtHash, LANES};
use alloy_primitives::map::HashMap;
use std::cell::RefCell;

/// Most expansions one generation keeps (2 KiB each). A block of ~3,000 transfers adds ~3,600.
pub const GENERATION_CAP: usize = 4_096;

/// What one application of leaves found: remembered, or expanded here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheUse {
    pub remembered: u64,
    pub expanded: u64,
}

/// The expansions the last two blocks applied added. One executor owns it (it is not shared
/// between threads). Its buffers are kept from block to block and expansions are written
/// straight into them, so a block neither allocates nor copies them.
#[derive(Default)]
pub struct LeafCache {
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    /// What the last block added, and the block before.
    newest: Generation,
    older: Generation,
    /// Where the block being applied expands what it adds (the next newest).
    next: Generation,
    /// Where the block being applied expands what it removes and nobody remembered.
    work: Vec<Lanes>,
    used: CacheUse,
}

/// Expansions in reused slots: `lanes[..used]` are this generation's, the rest are left over
/// from an earlier one and written over before they are used again.
#[derive(Default)]
struct Generation {
    index: HashMap<Leaf, usize>,
    lanes: Vec<Lanes>,
    used: usize,
}

impl Generation {
    fn get(&self, leaf: &Leaf) -> Option<&Lanes> {
        self.index.get(leaf).and_then(|&i| self.lanes[..self.used].get(i))
    }

    /// Room for `n` more expansions (as many as the cap leaves), from the slots past `used`.
    fn room(&mut self, n: usize) -> usize {
        let n = n.min(GENERATION_CAP.saturating_sub(self.used));
        if self.lanes.len() < self.used + n {
            self.lanes.resize(self.used + n, [0; LANES]);
        }
        n
    }

    /// Keeps a copy of a remembered expansion an added leaf had (one added, removed and added
    /// again within three blocks).
    fn keep_copy(&mut self, leaf: &Leaf, lanes: &Lanes) {
        if self.room(1) == 1 && !self.index.contains_key(leaf) {
            self.lanes[self.used] = *lanes;
            self.index.insert(leaf.clone(), self.used);
            self.used += 1;
        }
    }

    fn clear(&mut self) {
        self.index.clear();
        self.used = 0;
    }
}

impl Inner {
    /// The block just applied: what it added becomes the newest generation.
    fn rotate(&mut self) {
        std::mem::swap(&mut self.older, &mut self.newest);
        std::mem::swap(&mut self.newest, &mut self.next);
        self.next.clear();
    }
}

impl LeafCache {
    /// How many leaves were remembered and how many expanded since the last call.
    pub fn take_use(&self) -> CacheUse {
        self.inner.try_borrow_mut().map(|mut g| std::mem::take(&mut g.used)).unwrap_or_default()
    }

    /// How many expansions it remembers now.
    pub fn len(&self) -> usize {
        self.inner.try_borrow().map(|g| g.newest.used + g.older.used).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Expansion slots it holds on to, used or not.
    #[cfg(test)]
    fn retained_slots(&self) -> usize {
        let g = self.inner.borrow();
        g.newest.lanes.len() + g.older.lanes.len() + g.next.lanes.len() + g.work.len()
    }
}

/// One leaf to expand, and the slot its expansion goes to.
type Job<'a> = (bool, &'a Leaf, &'a mut Lanes);

impl LtHash {
    /// [`LtHash::apply`] with remembered expansions: a leaf `cache` holds is added or subtracted
    /// as it is; the rest are expanded (on two threads when there are many), and the expansions
    /// of the added leaves become the cache's newest generation.
    pub fn apply_cached(&mut self, leaves: &[(bool, Leaf)], cache: &LeafCache) {
        // Only a call from within this one could find it borrowed; without it, expand them all.
        let Ok(mut guard) = cache.inner.try_borrow_mut() else {
            return self.apply(leaves);
        };
        let inner = &mut *guard;
        let (mut adds, mut removes): (Vec<&Leaf>, Vec<&Leaf>) = (Vec::new(), Vec::new());
        for (add, leaf) in leaves {
            // (Field by field, so `next` can be written while the other two are read.)
            match inner.newest.get(leaf).or_else(|| inner.older.get(leaf)) {
                Some(lanes) if *add => {
                    self.add(lanes);
                    inner.next.keep_copy(leaf, lanes);
                }
                Some(lanes) => self.sub(lanes),
                None if *add => adds.push(leaf),
                None => removes.push(leaf),
            }
        }
        let missed = adds.len() + removes.len();
        inner.used.remembered += (leaves.len() - missed) as u64;
        inner.used.expanded += missed as u64;
        // Added leaves expand into the next generation's slots while they last, the rest (and
        // the removed ones) into the work slots.
        let first = inner.next.used;
        let kept = inner.next.room(adds.len());
        let unkept = missed - kept;
        if inner.work.len() < unkept {
            inner.work.resize(unkept, [0; LANES]);
        }
        let signs = adds.iter().map(|l| (true, *l)).chain(removes.iter().map(|l| (false, *l)));
        let slots = inner.next.lanes[first..first + kept].iter_mut().chain(inner.work[..unkept].iter_mut());
        let mut jobs: Vec<Job> = signs.zip(slots).map(|((add, leaf), slot)| (add, leaf, slot)).collect();
        self.merge(&expand_jobs(&mut jobs));
        // A block of far more changes than usual leaves no lasting buffer behind.
        if inner.work.len() > GENERATION_CAP {
            inner.work.truncate(GENERATION_CAP);
            inner.work.shrink_to_fit();
        }
        for (i, leaf) in adds.iter().take(kept).enumerate() {
            inner.next.index.insert((*leaf).clone(), first + i);
        }
        inner.next.used = first + kept;
        inner.rotate();
    }
}

/// Expands every job's leaf into its slot and returns their sum (added minus removed), on two
/// threads when there are enough.
fn expand_jobs(jobs: &mut [Job]) -> LtHash {
    sum_in_halves(jobs, |part| {
        let mut sum = LtHash::default();
        for (add, leaf, slot) in part.iter_mut() {
            leaf.expand_to(slot);
            sum.change(*add, slot);
        }
        sum
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lthash::account_value;
    use alloy_primitives::{Address, B256, U256};

    fn account(i: u64, nonce: u64) -> Leaf {
        Leaf::Account(Address::with_last_byte(i as u8), account_value(nonce, &U256::from(1_000 - nonce), &B256::ZERO))
    }

    /// Block `n` moves every one of `count` accounts from nonce n to n + 1, and one slot.
    fn block(n: u64, count: u64) -> Vec<(bool, Leaf)> {
        let mut leaves = Vec::new();
        for i in 0..count {
            if n > 0 {
                leaves.push((false, account(i, n)));
            }
            leaves.push((true, account(i, n + 1)));
        }
        let slot = |v: u64| Leaf::Slot(Address::repeat_byte(9), U256::from(1), U256::from(v));
        if n > 0 {
            leaves.push((false, slot(n)));
        }
        leaves.push((true, slot(n + 1)));
        leaves
    }

    #[test]
    fn remembered_expansions_give_the_same_commitment_and_spare_the_removals() {
        for count in [10u64, 200] {
            let cache = LeafCache::default();
            let (mut plain, mut cached) = (LtHash::default(), LtHash::default());
            for n in 0..4 {
                let leaves = block(n, count);
                plain.apply(&leaves);
                cached.apply_cached(&leaves, &cache);
                assert_eq!(plain, cached, "block {n} of {count} accounts");
                let used = cache.take_use();
                // Block 0 only adds; every later block removes what the one before added.
                let removals = if n == 0 { 0 } else { count + 1 };
                assert_eq!(used, CacheUse { remembered: removals, expanded: leaves.len() as u64 - removals });
            }
            assert_eq!(cache.len(), 2 * (count as usize + 1), "two generations");
        }
    }

    #[test]
    fn a_leaf_two_blocks_back_is_remembered_three_back_is_expanded() {
        let cache = LeafCache::default();
        let mut acc = LtHash::default();
        let old = account(1, 1);
        acc.apply_cached(&[(true, old.clone())], &cache);
        acc.apply_cached(&[(true, account(2, 1))], &cache);
        let mut expected = acc.clone();
        expected.apply(&[(false, old.clone())]);
        let mut two_back = acc.clone();
        two_back.apply_cached(&[(false, old.clone())], &cache);
        assert_eq!(two_back, expected);
        assert_eq!(cache.take_use(), CacheUse { remembered: 1, expanded: 2 });
        // The removal above was a third block: `old` has aged out now.
        acc.apply_cached(&[(false, old)], &cache);
        assert_eq!(acc, expected);
        assert_eq!(cache.take_use(), CacheUse { remembered: 0, expanded: 1 });
    }

    #[test]
    fn a_generation_keeps_at_most_its_cap() {
        let cache = LeafCache::default();
        let leaves: Vec<(bool, Leaf)> = (0..GENERATION_CAP as u64 + 50)
            .map(|i| (true, Leaf::Slot(Address::ZERO, U256::from(i), U256::from(1))))
            .collect();
        let mut acc = LtHash::default();
        acc.apply_cached(&leaves, &cache);
        assert_eq!(cache.len(), GENERATION_CAP);
        let mut plain = LtHash::default();
        plain.apply(&leaves);
        assert_eq!(acc, plain);
    }

    #[test]
    fn a_block_of_many_changes_leaves_at_most_four_generations_of_slots_behind() {
        let cache = LeafCache::default();
        let slot = |i: u64, v: u64| Leaf::Slot(Address::ZERO, U256::from(i), U256::from(v));
        let n = 3 * GENERATION_CAP as u64;
        let leaves: Vec<(bool, Leaf)> = (0..n).flat_map(|i| [(false, slot(i, 1)), (true, slot(i, 2))]).collect();
        let mut acc = LtHash::default();
        acc.apply_cached(&leaves, &cache);
        let mut plain = LtHash::default();
        plain.apply(&leaves);
        assert_eq!(acc, plain);
        assert_eq!(cache.take_use(), CacheUse { remembered: 0, expanded: 2 * n });
        assert!(cache.retained_slots() <= 4 * GENERATION_CAP, "{} slots kept", cache.retained_slots());
    }
}
