//! hotstuff-rs's `KVStore` over fjall: one keyspace, atomic batches (fsync'd: the library writes
//! its vote and lock state through here before it sends votes), snapshot reads.
//!
//! Workaround for hotstuff-rs 0.4: its provided `KVGet::block_data` calls `Iterator::find` to
//! look for a missing datum, which consumes the iterator, and then collects what is left, so it
//! returns an *empty* payload for every block. Block sync serves blocks through it, so synced
//! blocks would arrive without their data. Both our store and our snapshots override it.

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use hotstuff_rs::block_tree::pluggables::{KVGet, KVGetError, KVStore, WriteBatch};
use hotstuff_rs::types::data_types::{CryptoHash, Data};
use std::path::Path;

/// Reads that fail mean the disk is failing: stop loudly rather than let consensus guess.
fn fatal(what: &str, e: impl std::fmt::Display) -> ! {
    bss_storage::fatal::stop("hotstuff-rs", format!("{what}: {e}"))
}

#[derive(Clone)]
pub struct FjallKv {
    db: Database,
    ks: Keyspace,
}

impl FjallKv {
    pub fn open(dir: &Path) -> Result<Self, fjall::Error> {
        let db = Database::builder(dir.join("hotstuff-rs")).open()?;
        let ks = db.keyspace("block_tree", KeyspaceCreateOptions::default)?;
        Ok(Self { db, ks })
    }

    /// Whether the library's block tree was ever initialised here.
    pub fn is_empty(&self) -> bool {
        self.ks.is_empty().unwrap_or_else(|e| fatal("reading the block tree", e))
    }
}

/// Writes collected by the library, applied as one fjall batch.
#[derive(Default)]
pub struct Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl WriteBatch for Batch {
    fn new() -> Self {
        Self::default()
    }
    fn set(&mut self, key: &[u8], value: &[u8]) {
        self.0.push((key.to_vec(), Some(value.to_vec())));
    }
    fn delete(&mut self, key: &[u8]) {
        self.0.push((key.to_vec(), None));
    }
}

/// Reassembles a block's data from its datums (what the provided method means to do).
fn block_data_of(kv: &impl KVGet, block: &CryptoHash) -> Result<Option<Data>, KVGetError> {
    let Some(len) = kv.block_data_len(block)? else { return Ok(None) };
    let mut data = Vec::with_capacity(len.int() as usize);
    for i in 0..len.int() {
        match kv.block_datum(block, i) {
            Some(d) => data.push(d),
            None => {
                return Err(KVGetError::ValueExpectedButNotFound {
                    key: hotstuff_rs::block_tree::pluggables::Key::BlockData { block: *block },
                })
            }
        }
    }
    Ok(Some(Data::new(data)))
}

impl KVGet for FjallKv {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.db.snapshot().get(&self.ks, key).unwrap_or_else(|e| fatal("reading the block tree", e)).map(|v| v.to_vec())
    }

    fn block_data(&self, block: &CryptoHash) -> Result<Option<Data>, KVGetError> {
        block_data_of(self, block)
    }
}

pub struct Snapshot {
    snap: fjall::Snapshot,
    ks: Keyspace,
}

impl KVGet for Snapshot {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.snap.get(&self.ks, key).unwrap_or_else(|e| fatal("reading a block tree snapshot", e)).map(|v| v.to_vec())
    }

    fn block_data(&self, block: &CryptoHash) -> Result<Option<Data>, KVGetError> {
        block_data_of(self, block)
    }
}

impl KVStore for FjallKv {
    type WriteBatch = Batch;
    type Snapshot<'a> = Snapshot;

    fn write(&mut self, wb: Batch) {
        let mut b = self.db.batch().durability(Some(PersistMode::SyncAll));
        for (k, v) in wb.0 {
            match v {
                Some(v) => b.insert(&self.ks, k, v),
                None => b.remove(&self.ks, k),
            }
        }
        if let Err(e) = b.commit() {
            fatal("writing the block tree", e);
        }
    }

    fn clear(&mut self) {
        let mut b = self.db.batch().durability(Some(PersistMode::SyncAll));
        for guard in self.db.snapshot().iter(&self.ks) {
            match guard.into_inner() {
                Ok((k, _)) => b.remove(&self.ks, k),
                Err(e) => fatal("clearing the block tree", e),
            }
        }
        if let Err(e) = b.commit() {
            fatal("clearing the block tree", e);
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot { snap: self.db.snapshot(), ks: self.ks.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotstuff_rs::block_tree::variables::{BLOCKS, BLOCK_DATA, BLOCK_DATA_LEN};
    use hotstuff_rs::types::data_types::Datum;

    /// Only `get`: the library's provided `block_data` applies.
    struct Plain<'a>(&'a FjallKv);

    impl KVGet for Plain<'_> {
        fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.0.get(key)
        }
    }

    #[test]
    fn block_data_comes_back_whole_where_the_provided_method_returns_it_empty() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut kv = FjallKv::open(dir.path()).expect("open");
        let block = CryptoHash::new([7; 32]);
        // The library's layout: BLOCKS ‖ hash ‖ BLOCK_DATA_LEN → u32 LE, BLOCKS ‖ hash ‖ BLOCK_DATA ‖ i.
        let base = [&BLOCKS[..], &block.bytes()].concat();
        let mut wb = Batch::new();
        wb.set(&[&base[..], &BLOCK_DATA_LEN].concat(), &2u32.to_le_bytes());
        wb.set(&[&base[..], &BLOCK_DATA, &0u32.to_le_bytes()].concat(), b"an L2 block");
        wb.set(&[&base[..], &BLOCK_DATA, &1u32.to_le_bytes()].concat(), &[1, 2, 3]);
        kv.write(wb);
        // The defect, seen for ourselves: two datums stored, none returned.
        let broken = Plain(&kv).block_data(&block).expect("read").expect("present");
        assert_eq!(broken.vec().len(), 0, "hotstuff-rs 0.4's block_data returns an empty payload");
        let read = kv.block_data(&block).expect("read").expect("present");
        assert_eq!(read.vec().len(), 2);
        assert!(read.vec()[0] == Datum::new(b"an L2 block".to_vec()));
        assert_eq!(kv.snapshot().block_data(&block).expect("read").expect("present").vec().len(), 2);
        assert!(!kv.is_empty());
        kv.clear();
        assert!(kv.is_empty());
    }
}
