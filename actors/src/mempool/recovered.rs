//! Senders this node recovered while validating proposals whose transactions its pool did not
//! hold yet. Gossip often brings the same transactions a moment later (on a loaded node the
//! admission queue runs behind the leader); their senders are taken from here instead of being
//! recovered a second time. Owned by the gossip admission task alone; bounded, oldest out first.

use alloy_primitives::{Address, B256};
use std::collections::{HashMap, VecDeque};

/// How many senders are kept: about 10 s of proposals at 6,000 tx/s that no pool held.
pub const RECOVERED_SENDERS: usize = 65_536;

pub struct RecoveredSenders {
    by_hash: HashMap<B256, Address>,
    /// Insertion order, for eviction. May name hashes already taken (they are skipped).
    order: VecDeque<B256>,
    cap: usize,
}

impl RecoveredSenders {
    pub fn new(cap: usize) -> Self {
        Self { by_hash: HashMap::new(), order: VecDeque::new(), cap: cap.max(1) }
    }

    /// Remembers `sender` as the signer of the transaction with `hash`, forgetting the oldest
    /// entry when full.
    pub fn insert(&mut self, hash: B256, sender: Address) {
        if self.by_hash.contains_key(&hash) {
            return;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.by_hash.remove(&old);
            }
        }
        self.order.push_back(hash);
        self.by_hash.insert(hash, sender);
    }

    /// The sender of `hash`, if held; each is handed out once (gossip brings a tx once).
    pub fn take(&mut self, hash: &B256) -> Option<Address> {
        self.by_hash.remove(hash)
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_handed_out_once_and_the_oldest_leave_first_whatever_was_taken() {
        let mut r = RecoveredSenders::new(3);
        let h = |i: u8| B256::repeat_byte(i);
        let a = |i: u8| Address::repeat_byte(i);
        r.insert(h(1), a(1));
        r.insert(h(2), a(2));
        assert_eq!(r.take(&h(1)), Some(a(1)));
        assert_eq!(r.take(&h(1)), None, "handed out once");
        // Taken entries still count against the bound until they age out, so the queue of
        // hashes never outgrows it however many are taken.
        for i in 3..100 {
            r.insert(h(i), a(i));
            let _ = r.take(&h(i));
            assert!(r.order.len() <= 3 && r.by_hash.len() <= 3);
        }
        r.insert(h(200), a(200));
        r.insert(h(201), a(201));
        r.insert(h(202), a(202));
        r.insert(h(203), a(203));
        assert_eq!(r.take(&h(200)), None, "the oldest left when the fourth came");
        assert_eq!(r.take(&h(203)), Some(a(203)));
        // Inserting a held hash again changes nothing.
        r.insert(h(202), a(9));
        assert_eq!(r.take(&h(202)), Some(a(202)));
    }
}
