//! Admission of a raw transaction, shared by JSON-RPC and gossip: decode, recover the sender
//! (libsecp256k1, on a blocking thread), stateless checks, then the mempool's own rules.

use super::messages::MempoolHandle;
use super::pool::SenderState;
use crate::hvm::{ChainSpec, SignedTx, TxError};
use alloy_primitives::{Bytes, B256};
use bss_storage::StoreReader;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("{0}")]
    Rejected(#[from] TxError),
    #[error("storage: {0}")]
    Storage(#[from] bss_storage::StorageError),
    #[error("the mempool is not running")]
    Unavailable,
}

#[derive(Clone)]
pub struct TxIngress {
    pub spec: ChainSpec,
    pub reader: StoreReader,
    pub mempool: MempoolHandle,
    /// Where accepted transactions are journaled before they are acknowledged.
    pub journal: Option<bss_storage::StorageHandle>,
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

    /// Checks a transaction (on a blocking thread) and offers it to the mempool.
    pub async fn admit(&self, raw: Bytes) -> Result<(B256, Arc<SignedTx>), AdmitError> {
        let this = self.clone();
        let checked = tokio::task::spawn_blocking(move || this.check(&raw)).await;
        let tx = Arc::new(checked.map_err(|_| AdmitError::Unavailable)??);
        let account = self.reader.account(&tx.sender)?.unwrap_or_default();
        let state = SenderState { nonce: account.nonce, balance: account.balance };
        let hash = self.mempool.add(tx.clone(), state).await.map_err(|_| AdmitError::Unavailable)??;
        if let Some(j) = &self.journal {
            j.journal_tx(hash, tx.raw.clone()).await?;
        }
        Ok((hash, tx))
    }
}
