//! The submitter's keystone txs not yet superfinal, kept in the node's database
//! (`AuxSpace::PopPending`, written durably through the storage service before a tx is
//! broadcast, so a restart never spends the same coin twice).

use bitcoin::consensus::encode;
use bitcoin::{OutPoint, Transaction, Txid};
use bss_storage::{AuxBatch, AuxSpace, AuxWriter, StorageError, StoreReader};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A keystone tx of ours, as persisted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingTx {
    pub l2_number: u64,
    pub tx: Transaction,
    pub txid: Txid,
    pub input: OutPoint,
    /// The input's value, sats.
    pub value: u64,
    /// This version's fee, sats, and rate, sat/vB.
    pub fee: u64,
    pub fee_rate: f64,
    /// Best Bitcoin height when this version was broadcast.
    pub broadcast_at: u64,
    /// The certified keystone, canonical encoding (every version carries the same one, on the
    /// same input; 52 bytes: a version-2 tx from before the upgrade, only rebroadcast).
    pub payload: Vec<u8>,
}

impl PendingTx {
    /// A version of this keystone's tx (the first, or an RBF replacement).
    pub fn version(
        l2_number: u64,
        input: OutPoint,
        value: u64,
        payload: &[u8],
        tx: Transaction,
        fee_rate: f64,
        best: u64,
    ) -> Self {
        let paid_out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        Self {
            l2_number,
            txid: tx.compute_txid(),
            tx,
            input,
            value,
            fee: value.saturating_sub(paid_out),
            fee_rate,
            broadcast_at: best,
            payload: payload.to_vec(),
        }
    }

    /// The tx as bitcoind's `sendrawtransaction` takes it.
    pub fn raw_hex(&self) -> String {
        hex::encode(encode::serialize(&self.tx))
    }
}

/// Reads and writes the pending txs.
#[derive(Clone)]
pub struct PopStore {
    pub writer: AuxWriter,
    pub reader: StoreReader,
}

impl PopStore {
    pub fn load(&self) -> Result<BTreeMap<u64, PendingTx>, StorageError> {
        let mut out = BTreeMap::new();
        for (_, v) in self.reader.aux_snapshot().prefix(AuxSpace::PopPending, &[], usize::MAX)? {
            let p: PendingTx = bss_consensus::codec::decode(&v)
                .map_err(|e| StorageError::Corrupt { keyspace: "pop_pending", reason: e.to_string() })?;
            out.insert(p.l2_number, p);
        }
        Ok(out)
    }

    /// Durable (fsync) before it returns: the tx may be broadcast after this.
    pub fn put(&self, p: &PendingTx) -> Result<(), StorageError> {
        let value = bss_consensus::codec::encode(p)
            .map_err(|e| StorageError::Encode { what: "pending keystone tx", reason: e.to_string() })?;
        let mut b = AuxBatch::new(true);
        b.put(AuxSpace::PopPending, p.l2_number.to_be_bytes(), value);
        self.writer.write_blocking(b)
    }

    pub fn remove(&self, n: u64) -> Result<(), StorageError> {
        let mut b = AuxBatch::new(true);
        b.delete(AuxSpace::PopPending, n.to_be_bytes());
        self.writer.write_blocking(b)
    }
}
