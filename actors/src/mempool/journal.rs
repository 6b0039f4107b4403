//! When the mempool journal starts a new generation.
//!
//! Every accepted transaction is journaled before it is acknowledged. Committed ones are not
//! deleted one by one (a tombstone per transaction on every operator); instead, once enough
//! transactions were accepted since the last rotation, the live pool is written into a fresh
//! generation and the one before the current is dropped whole (`StorageHandle::rotate_journal`).

use super::pool::Pool;
use alloy_primitives::{Bytes, B256};
use bss_storage::StorageHandle;

/// Accepted transactions between rotations, at least; and at least this many times the pool,
/// so that rewriting the pool costs at most a quarter of an insert per accepted transaction.
pub const GENERATION_MIN: usize = 16_384;
const POOL_MULTIPLE: usize = 4;

pub struct JournalGenerations {
    pub storage: StorageHandle,
    /// Accepted transactions between rotations, at least.
    min: usize,
    accepted: usize,
    rotating: bool,
    /// Until the journal read back at start-up is re-admitted, no generation is dropped: one
    /// may hold acknowledged transactions that are not back in the pool yet.
    readmitting: bool,
}

impl JournalGenerations {
    pub fn new(storage: StorageHandle, min: usize) -> Self {
        Self { storage, min, accepted: 0, rotating: false, readmitting: true }
    }

    /// The journal read back at start-up is in the pool again.
    pub fn readmitted(&mut self) {
        self.readmitting = false;
    }

    /// Counts `n` accepted transactions; returns the live pool to rotate into when a new
    /// generation is due and no rotation is under way.
    pub fn accepted(&mut self, n: usize, pool: &Pool) -> Option<Vec<(B256, Bytes)>> {
        self.accepted = self.accepted.saturating_add(n);
        let due = self.min.max(pool.len().saturating_mul(POOL_MULTIPLE));
        if self.rotating || self.readmitting || self.accepted < due {
            return None;
        }
        self.accepted = 0;
        self.rotating = true;
        Some(pool.txs().map(|t| (t.hash, t.raw.clone())).collect())
    }

    /// The rotation under way was written (or failed, leaving both generations as they were).
    pub fn rotated(&mut self) {
        self.rotating = false;
    }
}
