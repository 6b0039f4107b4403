use crate::keys;
use crate::reader::StoreReader;
use crate::records::{CommitBatch, GenesisBatch};
use crate::{Result, StorageError};
use bss_consensus::{codec, SafetyData};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Each keyspace's memtable size before it is flushed to disk.
const MEMTABLE_BYTES: u64 = 8 * 1024 * 1024;

/// Handles to every keyspace. Cloning is cheap (reference-counted handles).
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Database,
    pub(crate) meta: Keyspace,
    pub(crate) headers: Keyspace,
    pub(crate) certificates: Keyspace,
    pub(crate) bodies: Keyspace,
    pub(crate) receipts: Keyspace,
    pub(crate) block_index: Keyspace,
    pub(crate) tx_index: Keyspace,
    pub(crate) accounts: Keyspace,
    pub(crate) slots: Keyspace,
    pub(crate) code: Keyspace,
    /// Blocks this replica persisted before voting for them, by number ‖ hash; pruned on commit.
    pub(crate) pending: Keyspace,
    /// The mempool journal in two generations: accepted transactions go into the active one,
    /// and a rotation rewrites the live pool into the other and makes it active (see
    /// [`Store::rotate_journal`]). Commits leave the journal alone. Entries are keyed by a
    /// sequence number (8 bytes, big-endian) and hold hash ‖ raw: appending at the end of a
    /// memtable costs a third of inserting at a random place (a hash key). Journals written
    /// before held hash → raw; those entries are still read back.
    pub(crate) journals: [Keyspace; 2],
    /// The next journal entry's sequence number (one more than the highest on disk at open).
    pub(crate) journal_seq: Arc<AtomicU64>,
    /// `Some(mode)`: fsync mode for block commits; safety data is always synced.
    pub(crate) commit_durability: Option<PersistMode>,
    /// Services' keyspaces, in `AuxSpace::ALL` order.
    pub(crate) aux: Vec<Keyspace>,
}

pub(crate) fn enc<T: serde::Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>> {
    codec::encode(v).map_err(|e| StorageError::Encode { what, reason: e.to_string() })
}

impl Store {
    /// Opens or creates the database at `path`. `fsync` makes every block commit durable against
    /// power loss (safety data is always synced).
    pub fn open(path: impl AsRef<Path>, fsync: bool) -> Result<Self> {
        let store = Self::open_keyspaces(path, fsync)?;
        let mut next = 0;
        for journal in &store.journals {
            // Backwards: the first sequence key met is the highest (same length, big-endian);
            // only entries of the older hash-keyed format can come before it.
            for key in journal.iter().rev().map(|g| g.key()) {
                if let Some(seq) = keys::journal_seq(&key?) {
                    next = next.max(seq.saturating_add(1));
                    break;
                }
            }
        }
        store.journal_seq.store(next, Ordering::Relaxed);
        Ok(store)
    }

    fn open_keyspaces(path: impl AsRef<Path>, fsync: bool) -> Result<Self> {
        let db = Database::builder(path.as_ref()).open()?;
        // Small memtables: every block inserts thousands of random keys (accounts, tx hashes),
        // and a skiplist of 64 MiB (fjall's default) spends most of an insert on cache misses.
        let ks = |name: &str| db.keyspace(name, || KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES));
        Ok(Self {
            meta: ks("meta")?,
            headers: ks("headers")?,
            certificates: ks("certificates")?,
            bodies: ks("bodies")?,
            receipts: ks("receipts")?,
            block_index: ks("block_index")?,
            tx_index: ks("tx_index")?,
            accounts: ks("accounts")?,
            slots: ks("slots")?,
            code: ks("code")?,
            pending: ks("pending")?,
            journal_seq: Arc::new(AtomicU64::new(0)),
            journals: [ks("mempool")?, ks("mempool_b")?],
            commit_durability: Some(if fsync { PersistMode::SyncAll } else { PersistMode::Buffer }),
            aux: crate::aux::AuxSpace::ALL.iter().map(|s| ks(s.name())).collect::<std::result::Result<_, _>>()?,
            db,
        })
    }

    pub(crate) fn aux(&self, space: crate::aux::AuxSpace) -> &Keyspace {
        // `aux` is built from `AuxSpace::ALL`, so every space has its slot.
        &self.aux[crate::aux::AuxSpace::ALL.iter().position(|s| *s == space).unwrap_or(0)]
    }

    pub fn reader(&self) -> StoreReader {
        StoreReader { store: self.clone() }
    }

    /// Writes genesis into an empty store (true), or checks that a non-empty one has the same
    /// chain (false).
    pub fn init_genesis(&self, chain_id: u64, genesis: &GenesisBatch) -> Result<bool> {
        let reader = self.reader();
        let hash = genesis.block.hash();
        if let Some(found) = reader.chain_id()? {
            if found != chain_id {
                return Err(StorageError::WrongChain { expected: chain_id, found });
            }
            let stored = reader.genesis_hash()?.unwrap_or_default();
            if stored != hash {
                return Err(StorageError::WrongGenesis { expected: hash.to_string(), found: stored.to_string() });
            }
            return Ok(false);
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        self.write_block(&mut batch, &genesis.block, None, None, None)?;
        self.write_state(&mut batch, &genesis.changes)?;
        batch.insert(&self.meta, keys::META_HEAD, keys::number(genesis.block.number()).to_vec());
        batch.insert(&self.meta, keys::META_CHAIN_ID, chain_id.to_be_bytes().to_vec());
        batch.insert(&self.meta, keys::META_GENESIS, hash.to_vec());
        batch.commit()?;
        Ok(true)
    }

    /// Writes the accounts keyspace's memtable to disk and waits until it is flushed (after one
    /// huge batch, such as a million-account genesis, which would otherwise stay in memory).
    pub fn flush_accounts(&self) -> Result<()> {
        self.accounts.rotate_memtable_and_wait()?;
        Ok(())
    }

    /// Writes consecutive committed blocks, the first on the current head, in one atomic batch
    /// (one fsync however many). Their state changes are merged, later blocks winning, so every
    /// key is written once.
    pub(crate) fn commit(&self, blocks: &[CommitBatch]) -> Result<()> {
        let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else { return Ok(()) };
        let head = self.reader().head_number()?;
        for (i, c) in (0u64..).zip(blocks) {
            if Some(c.block.number()) != head.map(|h| h + 1 + i) {
                return Err(StorageError::OutOfOrder { head: head.map_or(0, |h| h + i), got: c.block.number() });
            }
        }
        let mut batch = self.db.batch().durability(self.commit_durability);
        for c in blocks {
            self.write_block(&mut batch, &c.block, Some(&c.certificate), Some(&c.body), Some(&c.receipts))?;
        }
        let merged;
        let changes = if blocks.len() == 1 {
            &first.changes
        } else {
            merged = crate::records::StateChanges::merge(blocks.iter().map(|c| &c.changes));
            &merged
        };
        self.write_state(&mut batch, changes)?;
        batch.insert(&self.meta, keys::META_HEAD, keys::number(last.block.number()).to_vec());
        if let Some(proof) = blocks.iter().rev().find_map(|c| c.proof.as_ref()) {
            batch.insert(&self.meta, keys::META_COMMIT_PROOF, enc("commit proof", proof)?);
        }
        // Pending blocks at or below the committed height are settled.
        let upto = keys::number(last.block.number() + 1);
        for guard in self.pending.range(..upto.to_vec()) {
            let key = guard.key()?;
            batch.remove(&self.pending, key);
        }
        batch.commit()?;
        Ok(())
    }

    fn write_block(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        block: &bss_consensus::Block,
        certificate: Option<&bss_consensus::Certificate>,
        body: Option<&crate::BlockBody>,
        receipts: Option<&Vec<crate::ReceiptRecord>>,
    ) -> Result<()> {
        let n = keys::number(block.number());
        let hash = block.hash();
        batch.insert(&self.headers, n, enc("header", &block.header)?);
        batch.insert(&self.block_index, hash.to_vec(), n.to_vec());
        if let Some(cert) = certificate {
            batch.insert(&self.certificates, n, enc("certificate", cert)?);
        }
        if let Some(body) = body {
            for (i, h) in body.tx_hashes.iter().enumerate() {
                let idx = u32::try_from(i).unwrap_or(u32::MAX);
                batch.insert(&self.tx_index, h.to_vec(), keys::tx_location(block.number(), idx).to_vec());
            }
            batch.insert(&self.bodies, n, enc("body", body)?);
        }
        if let Some(receipts) = receipts {
            batch.insert(&self.receipts, n, enc("receipts", receipts)?);
        }
        Ok(())
    }

    /// The state after a block (or a run of blocks): accounts, slots, code, accumulator.
    fn write_state(&self, batch: &mut fjall::OwnedWriteBatch, changes: &crate::StateChanges) -> Result<()> {
        for (addr, acct) in &changes.accounts {
            match acct {
                Some(a) => batch.insert(&self.accounts, addr.to_vec(), enc("account", a)?),
                None => batch.remove(&self.accounts, addr.to_vec()),
            }
        }
        for (addr, slot, value) in &changes.storage {
            let k = keys::slot(addr, slot).to_vec();
            if value.is_zero() {
                batch.remove(&self.slots, k);
            } else {
                batch.insert(&self.slots, k, value.to_be_bytes::<32>().to_vec());
            }
        }
        for (h, code) in &changes.codes {
            batch.insert(&self.code, h.to_vec(), code.to_vec());
        }
        batch.insert(&self.meta, keys::META_STATE_ACC, changes.state_accumulator.clone());
        Ok(())
    }

    pub(crate) fn put_pending(&self, block: &bss_consensus::Block) -> Result<()> {
        let mut key = keys::number(block.number()).to_vec();
        key.extend_from_slice(block.hash().as_slice());
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&self.pending, key, enc("pending block", block)?);
        batch.commit()?;
        Ok(())
    }

    /// Journals accepted transactions into the `active` generation and forgets the entries
    /// `remove` (as [`crate::StoreReader::journaled_txs`] named them) from both.
    pub(crate) fn journal(
        &self,
        active: usize,
        add: &[(alloy_primitives::B256, alloy_primitives::Bytes)],
        remove: &[crate::JournalKey],
    ) -> Result<()> {
        let mut batch = self.db.batch();
        self.put_journaled(&mut batch, active, add);
        for key in remove {
            for journal in &self.journals {
                batch.remove(journal, key.0.clone());
            }
        }
        batch.commit()?;
        Ok(())
    }

    /// Starts a new journal generation holding `live` (the pool as it is now) and returns its
    /// index, the new active one. The generation replaced is the one before `active`: `active`
    /// itself is kept whole until the next rotation, so a transaction journaled into it just
    /// before this rotation, and not yet in `live`, is still on disk. Committed transactions
    /// leave the journal this way, a generation at a time, instead of one tombstone each.
    pub(crate) fn rotate_journal(
        &self,
        active: usize,
        live: &[(alloy_primitives::B256, alloy_primitives::Bytes)],
    ) -> Result<usize> {
        let next = (active + 1) % 2;
        self.journals[next].clear()?;
        let mut batch = self.db.batch();
        self.put_journaled(&mut batch, next, live);
        batch.commit()?;
        Ok(next)
    }

    fn put_journaled(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        generation: usize,
        txs: &[(alloy_primitives::B256, alloy_primitives::Bytes)],
    ) {
        let first = self.journal_seq.fetch_add(txs.len() as u64, Ordering::Relaxed);
        for (seq, (h, raw)) in (first..).zip(txs) {
            let mut value = Vec::with_capacity(32 + raw.len());
            value.extend_from_slice(h.as_slice());
            value.extend_from_slice(raw);
            batch.insert(&self.journals[generation % 2], seq.to_be_bytes().to_vec(), value);
        }
    }

    pub(crate) fn put_safety(&self, safety: &SafetyData) -> Result<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&self.meta, keys::META_SAFETY, enc("safety", safety)?);
        batch.commit()?;
        Ok(())
    }
}
