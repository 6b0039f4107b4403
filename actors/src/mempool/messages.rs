use super::actor::MempoolActor;
use super::pool::SenderState;
use crate::hvm::{SignedTx, TxError};
use actix::prelude::*;
use alloy_primitives::{Address, B256};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Message)]
#[rtype(result = "Result<B256, TxError>")]
pub struct AddTx {
    pub tx: Arc<SignedTx>,
    pub state: SenderState,
}

/// Several transactions at once (gossip batches): one message instead of one per tx.
#[derive(Message)]
#[rtype(result = "Vec<Result<B256, TxError>>")]
pub struct AddMany(pub Vec<(Arc<SignedTx>, SenderState)>);

#[derive(Message)]
#[rtype(result = "Vec<Arc<SignedTx>>")]
pub struct Select {
    pub base_fee: u64,
    pub max_gas: u64,
    pub max_count: usize,
    /// Senders' next nonces after the uncommitted blocks the new block is built on.
    pub after: HashMap<Address, u64>,
}

/// A block committed: its height and the senders' next nonces after it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Committed {
    pub height: u64,
    pub advanced: Vec<(Address, u64)>,
}

/// Executable txs held long enough that the block at `upcoming` must carry them (this
/// operator's inclusion list), oldest first, at most `max`.
#[derive(Message)]
#[rtype(result = "Vec<Arc<SignedTx>>")]
pub struct Due {
    pub upcoming: u64,
    pub deadline: u64,
    pub max: usize,
}

/// Transactions the block builder found invalid on current state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drop {
    pub hashes: Vec<B256>,
}

#[derive(Message)]
#[rtype(result = "Option<Arc<SignedTx>>")]
pub struct GetTx(pub B256);

/// The pooled transactions among `hashes` (already decoded, senders recovered).
#[derive(Message)]
#[rtype(result = "Vec<Arc<SignedTx>>")]
pub struct GetMany(pub Vec<B256>);

#[derive(Message)]
#[rtype(result = "Option<u64>")]
pub struct PendingNonce(pub Address);

/// The journal read back at start-up is re-admitted: journal generations may rotate from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JournalReadmitted;

/// (executable, queued) counts.
#[derive(Message)]
#[rtype(result = "(usize, usize)")]
pub struct Status;

/// Cloneable, typed handle to the mempool.
#[derive(Clone)]
pub struct MempoolHandle {
    addr: Addr<MempoolActor>,
}

#[derive(Debug, thiserror::Error)]
#[error("the mempool is not running")]
pub struct MempoolGone;

impl MempoolHandle {
    pub fn new(addr: Addr<MempoolActor>) -> Self {
        Self { addr }
    }

    pub async fn add(&self, tx: Arc<SignedTx>, state: SenderState) -> Result<Result<B256, TxError>, MempoolGone> {
        self.addr.send(AddTx { tx, state }).await.map_err(|_| MempoolGone)
    }

    pub async fn add_many(
        &self,
        txs: Vec<(Arc<SignedTx>, SenderState)>,
    ) -> Result<Vec<Result<B256, TxError>>, MempoolGone> {
        self.addr.send(AddMany(txs)).await.map_err(|_| MempoolGone)
    }

    pub async fn select(
        &self,
        base_fee: u64,
        max_gas: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<SignedTx>>, MempoolGone> {
        self.select_after(base_fee, max_gas, max_count, HashMap::new()).await
    }

    /// Candidates for a block built on uncommitted blocks (see `Pool::select_after`).
    pub async fn select_after(
        &self,
        base_fee: u64,
        max_gas: u64,
        max_count: usize,
        after: HashMap<Address, u64>,
    ) -> Result<Vec<Arc<SignedTx>>, MempoolGone> {
        self.addr.send(Select { base_fee, max_gas, max_count, after }).await.map_err(|_| MempoolGone)
    }

    pub fn committed(&self, height: u64, advanced: Vec<(Address, u64)>) {
        self.addr.do_send(Committed { height, advanced });
    }

    /// This operator's inclusion list for the block at `upcoming`.
    pub async fn due(&self, upcoming: u64, deadline: u64, max: usize) -> Result<Vec<Arc<SignedTx>>, MempoolGone> {
        self.addr.send(Due { upcoming, deadline, max }).await.map_err(|_| MempoolGone)
    }

    /// The journal read back at start-up is re-admitted (or was empty): until then no journal
    /// generation is dropped, since one may hold transactions not yet back in the pool.
    pub fn journal_readmitted(&self) {
        self.addr.do_send(JournalReadmitted);
    }

    pub fn drop_invalid(&self, hashes: Vec<B256>) {
        if !hashes.is_empty() {
            self.addr.do_send(Drop { hashes });
        }
    }

    pub async fn get(&self, hash: B256) -> Result<Option<Arc<SignedTx>>, MempoolGone> {
        self.addr.send(GetTx(hash)).await.map_err(|_| MempoolGone)
    }

    /// Decoded pool copies of the given transactions (those the pool has).
    pub async fn get_many(&self, hashes: Vec<B256>) -> Result<Vec<Arc<SignedTx>>, MempoolGone> {
        self.addr.send(GetMany(hashes)).await.map_err(|_| MempoolGone)
    }

    pub async fn pending_nonce(&self, address: Address) -> Result<Option<u64>, MempoolGone> {
        self.addr.send(PendingNonce(address)).await.map_err(|_| MempoolGone)
    }

    pub async fn status(&self) -> Result<(usize, usize), MempoolGone> {
        self.addr.send(Status).await.map_err(|_| MempoolGone)
    }
}

/// Makes the mempool panic (only reachable with `rpc.fault_injection`): the node must stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

impl MempoolHandle {
    pub fn inject_panic(&self) {
        self.addr.do_send(InjectPanic);
    }
}
