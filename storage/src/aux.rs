//! Keyspaces that services beside the chain keep in the node's database: the Bitcoin index the
//! watcher builds and the PoP submitter's pending keystone txs. Their owners lay out keys and
//! values; writes go through the storage service like every other write ([`AuxBatch`]), and
//! reads through snapshots ([`AuxSnapshot`]), so a reader never sees half a batch.

use crate::store::Store;
use crate::Result;
use fjall::{PersistMode, Readable};

/// One keyspace of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuxSpace {
    /// Bitcoin best chain by height: hash, header, txids.
    BtcBlocks,
    /// Bitcoin transactions by txid.
    BtcTxs,
    /// Bitcoin outputs by outpoint.
    BtcCoins,
    /// Outputs by script: script hash ‖ outpoint.
    BtcScripts,
    /// Index metadata and per-script output counts.
    BtcMeta,
    /// Keystone sightings by height ‖ txid.
    BtcSightings,
    /// Bitcoin inbox messages (forced L2 txs) by height ‖ txid.
    BtcInbox,
    /// The PoP submitter's keystone txs not yet superfinal, by L2 number.
    PopPending,
    /// Bitcoin blocks a reorg took off the best chain (or fetched by hash for a certified L2
    /// block), by block hash: height ‖ consensus-encoded block. Kept so that a certified L2
    /// block whose Bitcoin tip was orphaned still re-executes.
    BtcStale,
    /// Keystone certificates this node assembled from the operators' attestations, by L2
    /// number: the canonical encoding (`bss_btc::keystone`).
    KeystoneCerts,
    /// The tunnel service's ledger checkpoint: L2 number ‖ encoded ledger (one key).
    TunnelLedger,
}

impl AuxSpace {
    pub const ALL: [AuxSpace; 11] = [
        AuxSpace::BtcBlocks,
        AuxSpace::BtcTxs,
        AuxSpace::BtcCoins,
        AuxSpace::BtcScripts,
        AuxSpace::BtcMeta,
        AuxSpace::BtcSightings,
        AuxSpace::BtcInbox,
        AuxSpace::PopPending,
        AuxSpace::BtcStale,
        AuxSpace::KeystoneCerts,
        AuxSpace::TunnelLedger,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            AuxSpace::BtcBlocks => "btc_blocks",
            AuxSpace::BtcTxs => "btc_txs",
            AuxSpace::BtcCoins => "btc_coins",
            AuxSpace::BtcScripts => "btc_scripts",
            AuxSpace::BtcMeta => "btc_meta",
            AuxSpace::BtcSightings => "btc_sightings",
            AuxSpace::BtcInbox => "btc_inbox",
            AuxSpace::PopPending => "pop_pending",
            AuxSpace::BtcStale => "btc_stale",
            AuxSpace::KeystoneCerts => "keystone_certs",
            AuxSpace::TunnelLedger => "tunnel_ledger",
        }
    }
}

/// Puts and deletes applied atomically, in order.
#[derive(Debug, Default)]
pub struct AuxBatch {
    pub(crate) ops: Vec<(AuxSpace, Vec<u8>, Option<Vec<u8>>)>,
    /// fsync before the write is acknowledged (PoP: a tx must be on disk before it is broadcast).
    pub durable: bool,
}

impl AuxBatch {
    pub fn new(durable: bool) -> Self {
        Self { ops: Vec::new(), durable }
    }

    pub fn put(&mut self, space: AuxSpace, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((space, key.into(), Some(value.into())));
    }

    pub fn delete(&mut self, space: AuxSpace, key: impl Into<Vec<u8>>) {
        self.ops.push((space, key.into(), None));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

impl Store {
    /// Applies an aux batch (the storage service calls this; tests and tools may too).
    pub fn write_aux(&self, batch: &AuxBatch) -> Result<()> {
        let mode = if batch.durable { PersistMode::SyncAll } else { PersistMode::Buffer };
        let mut b = self.db.batch().durability(Some(mode));
        for (space, key, value) in &batch.ops {
            let ks = self.aux(*space);
            match value {
                Some(v) => b.insert(ks, key.as_slice(), v.as_slice()),
                None => b.remove(ks, key.as_slice()),
            }
        }
        b.commit()?;
        Ok(())
    }
}

/// A consistent point-in-time view of the aux keyspaces. Cheap to take and to clone.
#[derive(Clone)]
pub struct AuxSnapshot {
    pub(crate) store: Store,
    pub(crate) snap: fjall::Snapshot,
}

impl AuxSnapshot {
    pub fn get(&self, space: AuxSpace, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.snap.get(self.store.aux(space), key)?.map(|v| v.to_vec()))
    }

    /// Every entry whose key starts with `prefix`, in key order, at most `limit`.
    pub fn prefix(&self, space: AuxSpace, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for guard in self.snap.prefix(self.store.aux(space), prefix).take(limit) {
            let (k, v) = guard.into_inner()?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

/// Where a service's batches go: the storage service in a running node, or straight into a
/// store for tests and tools that run none.
#[derive(Clone)]
pub enum AuxWriter {
    Service(crate::StorageHandle),
    Direct(Store),
}

impl AuxWriter {
    /// Writes `batch` and waits for it (call from a service thread, not from async code).
    pub fn write_blocking(&self, batch: AuxBatch) -> Result<()> {
        match self {
            AuxWriter::Service(h) => h.write_aux_blocking(batch),
            AuxWriter::Direct(store) => store.write_aux(&batch),
        }
    }
}
