//! When the mempool journal starts a new generation.
//!
//! Every accepted transaction is journaled before it is acknowledged. Committed ones are not
//! deleted one by one (a tombstone per transaction on every operator); instead, once enough
//! transactions were accepted since the last rotation, the live pool is written into a fresh
//! generation and the one before the current is dropped whole (`StorageHandle::rotate_journal`).
//! A generation holds at most what was accepted between two rotations, so the journal's size
//! (and what a restart reads back) is bounded by these thresholds and the pool's own bounds.

/// Accepted transactions between rotations, at least.
pub const GENERATION_MIN: usize = 16_384;
/// Accepted bytes between rotations, at least.
pub const GENERATION_MIN_BYTES: usize = 64 * 1024 * 1024;
/// A rotation rewrites the pool, so it waits for this many times the pool's transactions (or
/// twice its bytes): rewriting costs at most a quarter of an insert per accepted transaction,
/// or half a byte per accepted byte.
const POOL_MULTIPLE: usize = 4;
const POOL_BYTES_MULTIPLE: usize = 2;

pub struct JournalGenerations {
    min: usize,
    min_bytes: usize,
    accepted: usize,
    accepted_bytes: usize,
    rotating: bool,
    /// Until the journal read back at start-up is re-admitted, no generation is dropped: one
    /// may hold acknowledged transactions that are not back in the pool yet.
    readmitting: bool,
}

impl JournalGenerations {
    pub fn new(min: usize, min_bytes: usize) -> Self {
        Self { min, min_bytes, accepted: 0, accepted_bytes: 0, rotating: false, readmitting: true }
    }

    /// Counts `n` accepted transactions of `bytes` in all, with the pool now holding `pool_len`
    /// transactions of `pool_bytes`; true when a new generation is due now (the caller then
    /// snapshots the pool and reports back with [`Self::rotated`]).
    pub fn accepted(&mut self, n: usize, bytes: usize, pool_len: usize, pool_bytes: usize) -> bool {
        self.accepted = self.accepted.saturating_add(n);
        self.accepted_bytes = self.accepted_bytes.saturating_add(bytes);
        let by_count = self.accepted >= self.min.max(pool_len.saturating_mul(POOL_MULTIPLE));
        let by_bytes = self.accepted_bytes >= self.min_bytes.max(pool_bytes.saturating_mul(POOL_BYTES_MULTIPLE));
        if self.rotating || self.readmitting || !(by_count || by_bytes) {
            return false;
        }
        self.accepted = 0;
        self.accepted_bytes = 0;
        self.rotating = true;
        true
    }

    /// The rotation under way was written (or failed, leaving both generations as they were).
    pub fn rotated(&mut self) {
        self.rotating = false;
    }

    /// The journal read back at start-up is in the pool again.
    pub fn readmitted(&mut self) {
        self.readmitting = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_is_due_by_count_or_by_bytes_one_at_a_time_and_never_during_readmission() {
        let mut g = JournalGenerations::new(10, 1_000);
        // Re-admission under way: nothing is due however much arrives.
        assert!(!g.accepted(50, 50_000, 0, 0));
        g.readmitted();
        assert!(g.accepted(1, 10, 0, 0), "60 accepted past a minimum of 10");
        // One rotation at a time.
        assert!(!g.accepted(100, 100_000, 0, 0));
        g.rotated();
        assert!(g.accepted(0, 0, 0, 0), "what arrived during the rotation counts towards the next");
        g.rotated();
        // By count: at least four times the pool.
        assert!(!g.accepted(39, 0, 10, 0));
        assert!(g.accepted(1, 0, 10, 0));
        g.rotated();
        // By bytes: a few large transactions, at least twice the pool's bytes.
        assert!(!g.accepted(2, 1_999, 1, 1_000));
        assert!(g.accepted(1, 1, 1, 1_000));
    }
}
