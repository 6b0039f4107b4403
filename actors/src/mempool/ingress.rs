//! Admission of a raw transaction, shared by JSON-RPC and gossip: decode, recover the sender
//! (libsecp256k1, on a blocking thread), stateless checks, then the mempool's own rules.

use super::grouping::{AdmissionGroups, GroupError};
use super::messages::MempoolHandle;
use super::pool::SenderState;
use crate::hvm::{ChainSpec, SignedTx, TxError};
use alloy_primitives::{Address, Bytes, B256};
use bss_storage::StoreReader;
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("{0}")]
    Rejected(#[from] TxError),
    #[error("storage: {0}")]
    Storage(#[from] bss_storage::StorageError),
    #[error("the mempool is not running")]
    Unavailable,
    /// The group's journal write or store read failed.
    #[error(transparent)]
    Group(GroupError),
    /// A Byzantine test mode (`censor:ADDR`) drops this sender's txs while acknowledging them.
    #[error("censored")]
    Censored(B256),
}

#[derive(Clone)]
pub struct TxIngress {
    pub spec: ChainSpec,
    pub reader: StoreReader,
    pub mempool: MempoolHandle,
    /// Where accepted transactions are journaled before they are acknowledged.
    pub journal: Option<bss_storage::StorageHandle>,
    /// Senders this operator censors (Byzantine test mode only; empty otherwise).
    pub censored: Arc<HashSet<Address>>,
    /// Where single admissions meet to reach the mempool and the journal together.
    pub groups: AdmissionGroups,
}

impl From<GroupError> for AdmitError {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::Rejected(e) => Self::Rejected(e),
            GroupError::Unavailable => Self::Unavailable,
            other => Self::Group(other),
        }
    }
}

impl TxIngress {
    /// Everything that needs no mempool: decoding, signature, chain id, fees, gas, size.
    pub fn check(&self, raw: &[u8]) -> Result<SignedTx, TxError> {
        let tx = SignedTx::decode(raw)?;
        tx.check_stateless(self.spec.chain_id, self.spec.gas_limit, self.spec.max_tx_size)?;
        if tx.max_fee_per_gas() < u128::from(self.spec.min_base_fee) {
            return Err(TxError::FeeCapTooLow { fee_cap: tx.max_fee_per_gas(), base_fee: self.spec.min_base_fee });
        }
        Ok(tx)
    }

    /// Checks a transaction and offers it to the mempool. Decoding and sender recovery (~30 µs)
    /// run on the caller's thread: callers are RPC workers, not the consensus arbiter. Admissions
    /// that arrive together share one mempool message and one journal write (`grouping`).
    pub async fn admit(&self, raw: Bytes) -> Result<(B256, Arc<SignedTx>), AdmitError> {
        let tx = Arc::new(self.check(&raw)?);
        if self.censored.contains(&tx.sender) {
            return Err(AdmitError::Censored(tx.hash));
        }
        let hash = self.groups.admit(tx.clone()).await?;
        Ok((hash, tx))
    }

    /// Admits a batch (gossip): decoding on one blocking task, one mempool message, one journal
    /// write. Returns how many were accepted.
    pub async fn admit_many(&self, raws: Vec<Bytes>) -> Result<usize, AdmitError> {
        let this = self.clone();
        let checked = tokio::task::spawn_blocking(move || {
            raws.iter()
                .filter_map(|raw| this.check(raw).ok())
                .filter(|tx| !this.censored.contains(&tx.sender))
                .map(|tx| {
                    let state = sender_state(&this.reader, &tx.sender)?;
                    Ok((Arc::new(tx), state))
                })
                .collect::<Result<Vec<_>, bss_storage::StorageError>>()
        })
        .await
        .map_err(|_| AdmitError::Unavailable)??;
        let raws: Vec<(B256, Bytes)> = checked.iter().map(|(t, _)| (t.hash, t.raw.clone())).collect();
        let results = self.mempool.add_many(checked).await.map_err(|_| AdmitError::Unavailable)?;
        let accepted: Vec<(B256, Bytes)> =
            raws.into_iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(x, _)| x).collect();
        let n = accepted.len();
        if let Some(j) = &self.journal {
            j.journal_txs(accepted).await?;
        }
        Ok(n)
    }
}

/// A sender's committed nonce and balance, as the store holds them (zero for a new account).
pub fn sender_state(reader: &StoreReader, sender: &Address) -> Result<SenderState, bss_storage::StorageError> {
    let account = reader.account(sender)?.unwrap_or_default();
    Ok(SenderState { nonce: account.nonce, balance: account.balance })
}
