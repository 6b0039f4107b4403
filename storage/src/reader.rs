use crate::keys;
use crate::records::{AccountRecord, BlockBody, ReceiptRecord};
use crate::store::Store;
use crate::{Result, StorageError};
use alloy_primitives::{Address, Bytes, B256, U256};
use bss_consensus::{codec, Block, BlockHeader, Certificate, CommitProof, SafetyData};
use fjall::Readable;

/// A cloneable read view of the store, usable from any thread.
///
/// Every read goes through a snapshot at the published sequence number: a plain keyspace read
/// can observe a block's batch half-applied (its tx index before its body, say), a snapshot read
/// only sees whole batches. A later read never sees less than an earlier one.
#[derive(Clone)]
pub struct StoreReader {
    pub(crate) store: Store,
}

fn dec<T: serde::de::DeserializeOwned>(keyspace: &'static str, v: &[u8]) -> Result<T> {
    codec::decode(v).map_err(|e| StorageError::Corrupt { keyspace, reason: e.to_string() })
}

fn corrupt(keyspace: &'static str) -> StorageError {
    StorageError::Corrupt { keyspace, reason: "malformed value".into() }
}

impl StoreReader {
    /// A point-in-time view of the services' keyspaces (Bitcoin index, PoP records).
    pub fn aux_snapshot(&self) -> crate::AuxSnapshot {
        crate::AuxSnapshot { store: self.store.clone(), snap: self.store.db.snapshot() }
    }

    fn get(&self, keyspace: &fjall::Keyspace, key: impl AsRef<[u8]>) -> Result<Option<fjall::Slice>> {
        Ok(self.store.db.snapshot().get(keyspace, key)?)
    }

    pub fn head_number(&self) -> Result<Option<u64>> {
        match self.get(&self.store.meta, keys::META_HEAD)? {
            Some(v) => Ok(Some(keys::parse_u64(&v).ok_or_else(|| corrupt("meta"))?)),
            None => Ok(None),
        }
    }

    pub fn chain_id(&self) -> Result<Option<u64>> {
        match self.get(&self.store.meta, keys::META_CHAIN_ID)? {
            Some(v) => Ok(Some(keys::parse_u64(&v).ok_or_else(|| corrupt("meta"))?)),
            None => Ok(None),
        }
    }

    pub fn genesis_hash(&self) -> Result<Option<B256>> {
        match self.get(&self.store.meta, keys::META_GENESIS)? {
            Some(v) => Ok(Some(keys::parse_b256(&v).ok_or_else(|| corrupt("meta"))?)),
            None => Ok(None),
        }
    }

    pub fn state_accumulator(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.get(&self.store.meta, keys::META_STATE_ACC)?.map(|v| v.to_vec()))
    }

    pub fn safety(&self) -> Result<Option<SafetyData>> {
        self.get(&self.store.meta, keys::META_SAFETY)?.map(|v| dec("meta", &v)).transpose()
    }

    pub fn header(&self, number: u64) -> Result<Option<BlockHeader>> {
        self.get(&self.store.headers, keys::number(number))?.map(|v| dec("headers", &v)).transpose()
    }

    pub fn certificate(&self, number: u64) -> Result<Option<Certificate>> {
        self.get(&self.store.certificates, keys::number(number))?.map(|v| dec("certificates", &v)).transpose()
    }

    pub fn number_by_hash(&self, hash: &B256) -> Result<Option<u64>> {
        match self.get(&self.store.block_index, hash.as_slice())? {
            Some(v) => Ok(Some(keys::parse_u64(&v).ok_or_else(|| corrupt("block_index"))?)),
            None => Ok(None),
        }
    }

    pub fn body(&self, number: u64) -> Result<Option<BlockBody>> {
        self.get(&self.store.bodies, keys::number(number))?.map(|v| dec("bodies", &v)).transpose()
    }

    pub fn receipts(&self, number: u64) -> Result<Option<Vec<ReceiptRecord>>> {
        self.get(&self.store.receipts, keys::number(number))?.map(|v| dec("receipts", &v)).transpose()
    }

    /// Where a transaction was committed: (block number, index in block).
    pub fn tx_location(&self, hash: &B256) -> Result<Option<(u64, u32)>> {
        match self.get(&self.store.tx_index, hash.as_slice())? {
            Some(v) => Ok(Some(keys::parse_tx_location(&v).ok_or_else(|| corrupt("tx_index"))?)),
            None => Ok(None),
        }
    }

    pub fn account(&self, address: &Address) -> Result<Option<AccountRecord>> {
        self.get(&self.store.accounts, address.as_slice())?.map(|v| dec("accounts", &v)).transpose()
    }

    pub fn storage(&self, address: &Address, slot: &U256) -> Result<U256> {
        match self.get(&self.store.slots, keys::slot(address, slot))? {
            Some(v) if v.len() == 32 => Ok(U256::from_be_slice(&v)),
            Some(_) => Err(corrupt("slots")),
            None => Ok(U256::ZERO),
        }
    }

    /// Every non-zero storage slot of an account (used when an account is destroyed).
    pub fn storage_slots(&self, address: &Address) -> Result<Vec<(U256, U256)>> {
        let mut out = Vec::new();
        for guard in self.store.db.snapshot().prefix(&self.store.slots, address.as_slice()) {
            let (k, v) = guard.into_inner()?;
            if k.len() != 52 || v.len() != 32 {
                return Err(corrupt("slots"));
            }
            out.push((U256::from_be_slice(&k[20..]), U256::from_be_slice(&v)));
        }
        Ok(out)
    }

    pub fn code(&self, hash: &B256) -> Result<Option<Bytes>> {
        Ok(self.get(&self.store.code, hash.as_slice())?.map(|v| Bytes::copy_from_slice(&v)))
    }

    /// Every account, in address order (full-state checks and tools; not for hot paths).
    pub fn all_accounts(&self) -> Result<Vec<(Address, AccountRecord)>> {
        let mut out = Vec::new();
        for guard in self.store.db.snapshot().iter(&self.store.accounts) {
            let (k, v) = guard.into_inner()?;
            if k.len() != 20 {
                return Err(corrupt("accounts"));
            }
            out.push((Address::from_slice(&k), dec("accounts", &v)?));
        }
        Ok(out)
    }

    /// Every non-zero storage slot, in (address, slot) order.
    pub fn all_slots(&self) -> Result<Vec<(Address, U256, U256)>> {
        let mut out = Vec::new();
        for guard in self.store.db.snapshot().iter(&self.store.slots) {
            let (k, v) = guard.into_inner()?;
            if k.len() != 52 || v.len() != 32 {
                return Err(corrupt("slots"));
            }
            out.push((Address::from_slice(&k[..20]), U256::from_be_slice(&k[20..]), U256::from_be_slice(&v)));
        }
        Ok(out)
    }

    /// Blocks persisted before voting and not yet committed, lowest first.
    pub fn pending_blocks(&self) -> Result<Vec<Block>> {
        let mut out = Vec::new();
        for guard in self.store.db.snapshot().iter(&self.store.pending) {
            let (_, v) = guard.into_inner()?;
            out.push(dec("pending", &v)?);
        }
        Ok(out)
    }

    /// The proof that the head is committed (absent on a chain at genesis).
    pub fn commit_proof(&self) -> Result<Option<CommitProof>> {
        self.get(&self.store.meta, keys::META_COMMIT_PROOF)?.map(|v| dec("meta", &v)).transpose()
    }

    /// A committed block with its certificate, rebuilt from header and body.
    pub fn committed_block(&self, number: u64) -> Result<Option<(Block, Certificate)>> {
        let (Some(header), Some(cert)) = (self.header(number)?, self.certificate(number)?) else {
            return Ok(None);
        };
        let transactions = self.body(number)?.map(|b| b.transactions).unwrap_or_default();
        Ok(Some((Block { header, transactions }, cert)))
    }

    /// (round, proposer) of up to `count` committed blocks ending at the head, oldest first.
    pub fn recent_proposers(&self, count: usize) -> Result<Vec<(u64, u16)>> {
        let Some(head) = self.head_number()? else { return Ok(vec![]) };
        let from = head.saturating_sub(count as u64 - 1).max(1);
        let mut out = Vec::new();
        for n in from..=head {
            if let Some(h) = self.header(n)? {
                out.push((h.round, h.proposer));
            }
        }
        Ok(out)
    }

    /// Journaled mempool transactions, to re-admit after a restart: both generations, each
    /// transaction once, without those already committed.
    pub fn journaled_txs(&self) -> Result<Vec<JournaledTx>> {
        let snapshot = self.store.db.snapshot();
        // Where each hash read so far went in `out` (None: committed, left out).
        let mut seen: std::collections::HashMap<B256, Option<usize>> = std::collections::HashMap::new();
        let mut out: Vec<JournaledTx> = Vec::new();
        for journal in &self.store.journals {
            for guard in snapshot.iter(journal) {
                let (k, v) = guard.into_inner()?;
                let (hash, raw) = match keys::journal_seq(&k) {
                    // hash ‖ raw under a sequence number
                    Some(_) => (v.get(..32).and_then(keys::parse_b256), v.get(32..)),
                    // the older format: hash → raw
                    None => (keys::parse_b256(&k), Some(&v[..])),
                };
                let (Some(hash), Some(raw)) = (hash, raw) else { return Err(corrupt("mempool journal")) };
                let key = JournalKey(k.to_vec());
                if let Some(at) = seen.get(&hash) {
                    // Also in the other generation (a rotation rewrote it): one more key.
                    if let Some(tx) = at.and_then(|i| out.get_mut(i)) {
                        tx.keys.push(key);
                    }
                    continue;
                }
                if snapshot.contains_key(&self.store.tx_index, hash)? {
                    seen.insert(hash, None);
                    continue;
                }
                seen.insert(hash, Some(out.len()));
                out.push(JournaledTx { keys: vec![key], hash, raw: Bytes::copy_from_slice(raw) });
            }
        }
        Ok(out)
    }
}

/// Where a journaled transaction is on disk (to forget it with `StorageHandle::unjournal`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalKey(pub(crate) Vec<u8>);

/// A transaction read back from the mempool journal.
#[derive(Clone, Debug)]
pub struct JournaledTx {
    /// Every entry holding it: a rotation may have rewritten it into the other generation.
    pub keys: Vec<JournalKey>,
    pub hash: B256,
    pub raw: Bytes,
}
