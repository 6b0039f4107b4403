//! Leader election: round-robin over the operators, skipping those that recently failed to lead
//! (reputation).
//!
//! Replicas must agree on the leader of a round even when their commit heights differ a little,
//! so the set of skipped operators changes only at epoch boundaries and is computed from commits
//! of rounds well before the boundary (`LAG` rounds), which every live replica has seen by then.

use std::collections::{BTreeSet, VecDeque};

/// Rounds before an epoch boundary whose outcome is not yet used for that epoch.
const LAG: u64 = 4;
/// How many epochs back a failure keeps an operator out (unless it leads successfully since).
const LOOKBACK_EPOCHS: u64 = 32;

#[derive(Clone, Debug, Default)]
pub struct Reputation {
    n: usize,
    max_excluded: usize,
    /// Epoch length in rounds, and how many committed blocks the history looks at.
    window: u64,
    committed: VecDeque<(u64, u16)>,
}

impl Reputation {
    /// `window` is the epoch length in rounds (at least 2 × LAG).
    pub fn new(n: usize, max_excluded: usize, window: usize) -> Self {
        let window = (window as u64).max(2 * LAG);
        Self { n, max_excluded, window, committed: VecDeque::new() }
    }

    /// Round-robin leader of `round`, before reputation.
    pub fn base_leader(&self, round: u64) -> u16 {
        (round % self.n as u64) as u16
    }

    pub fn on_commit(&mut self, round: u64, proposer: u16) {
        if self.committed.back().is_some_and(|(r, _)| *r >= round) {
            return;
        }
        self.committed.push_back((round, proposer));
        while self.committed.len() as u64 > LOOKBACK_EPOCHS * self.window {
            self.committed.pop_front();
        }
    }

    /// Operators skipped in `round`'s epoch: leaders of rounds that produced no committed block
    /// in the window before the epoch (most recent failures first), at most `max_excluded`, and
    /// never one that led a committed block after its failure.
    pub fn excluded(&self, round: u64) -> BTreeSet<u16> {
        let mut out = BTreeSet::new();
        let epoch_start = round / self.window * self.window;
        let Some(cutoff) = epoch_start.checked_sub(LAG) else {
            return out;
        };
        let history: Vec<(u64, u16)> = self
            .committed
            .iter()
            .copied()
            .filter(|(r, _)| *r < cutoff && *r + LOOKBACK_EPOCHS * self.window >= cutoff)
            .collect();
        let mut succeeded = BTreeSet::new();
        for w in history.windows(2).rev() {
            let (r0, _) = w[0];
            let (r1, p1) = w[1];
            succeeded.insert(p1);
            for r in (r0 + 1..r1).rev() {
                let failed = self.base_leader(r);
                if !succeeded.contains(&failed) && out.len() < self.max_excluded {
                    out.insert(failed);
                }
            }
        }
        out
    }

    /// The leader of `round`: round-robin over the operators not excluded in its epoch.
    pub fn leader(&self, round: u64) -> u16 {
        let excluded = self.excluded(round);
        let candidates: Vec<u16> = (0..self.n as u16).filter(|i| !excluded.contains(i)).collect();
        if candidates.is_empty() {
            return self.base_leader(round);
        }
        candidates[(round % candidates.len() as u64) as usize]
    }
}

/// Committed blocks of history the reputation needs after a restart.
pub fn history_len(window: usize) -> usize {
    (LOOKBACK_EPOCHS * (window as u64).max(2 * LAG)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_leader_is_skipped_in_the_next_epochs() {
        let mut r = Reputation::new(4, 1, 16);
        // Operator 1 leads rounds 1, 5, 9, …; from round 5 on its rounds fail.
        for round in (1..=40).filter(|r| *r < 5 || r % 4 != 1) {
            r.on_commit(round, (round % 4) as u16);
        }
        // Epoch [16, 32) looks at rounds before 12: operator 1 failed and is skipped.
        assert_eq!(r.excluded(20), BTreeSet::from([1]));
        assert!((16..32).all(|round| r.leader(round) != 1));
        // Once it leads a committed block again it is no longer skipped.
        r.on_commit(41, 1);
        r.on_commit(42, 2);
        assert!(r.excluded(64).is_empty() || !r.excluded(64).contains(&1));
        // Epoch [0, 16) has no history yet: plain round-robin.
        assert_eq!(r.leader(5), 1);
    }

    #[test]
    fn replicas_a_few_commits_apart_agree() {
        let mut a = Reputation::new(4, 1, 16);
        let mut b = Reputation::new(4, 1, 16);
        for round in (1..=60).filter(|r| *r % 7 != 0) {
            a.on_commit(round, (round % 4) as u16);
            if round <= 55 {
                b.on_commit(round, (round % 4) as u16);
            }
        }
        for round in 48..64 {
            assert_eq!(a.leader(round), b.leader(round), "round {round}");
        }
    }
}
