use crate::hvm::execute::ProposalFields;
use crate::hvm::{ExecutedBlock, ExecutionError, SignedTx};
use alloy_primitives::B256;
use bss_consensus::Block;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error(transparent)]
    Execution(#[from] ExecutionError),
    #[error("BTC attributes refused: {0}")]
    Btc(#[from] crate::btc::AttributeError),
    #[error("anchors refused: the block records {proposed} keystone sightings, this node's Bitcoin view has {expected} in those blocks; first difference: {difference}")]
    Anchors { proposed: usize, expected: usize, difference: String },
    #[error("block carries Bitcoin headers but this node has no Bitcoin view ([btc] is not configured)")]
    NoBtcView,
    #[error("this node's Bitcoin view does not hold the block's BTC tip at height {height} on its best chain")]
    BtcTipUnknown { height: u64 },
    #[error("unknown parent block {0}")]
    UnknownParent(B256),
    #[error("storage: {0}")]
    Storage(#[from] bss_storage::StorageError),
    #[error("the executor crashed on this request and was restarted")]
    Crashed,
    #[error("the executor is not running")]
    Gone,
}

pub(super) type Reply = oneshot::Sender<Result<Arc<ExecutedBlock>, ExecutorError>>;

/// What the executor thread is asked to do. `layers` are executed, uncommitted blocks from the
/// committed head towards the parent, oldest first (blocks committed since are skipped).
pub(super) enum Request {
    Build {
        parent: B256,
        layers: Vec<Arc<ExecutedBlock>>,
        fields: ProposalFields,
        candidates: Vec<Arc<SignedTx>>,
        reply: Reply,
    },
    Validate {
        layers: Vec<Arc<ExecutedBlock>>,
        block: Block,
        known: Vec<Arc<SignedTx>>,
        check_btc: bool,
        reply: Reply,
    },
    /// Panics inside the executor (only reachable with `rpc.fault_injection`): tests the restart.
    InjectPanic,
}

/// Cloneable, typed handle to the executor thread.
#[derive(Clone)]
pub struct ExecutorHandle {
    pub(super) tx: mpsc::Sender<Request>,
}

impl ExecutorHandle {
    async fn ask(&self, make: impl FnOnce(Reply) -> Request) -> Result<Arc<ExecutedBlock>, ExecutorError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| ExecutorError::Gone)?;
        answer.await.map_err(|_| ExecutorError::Crashed)?
    }

    /// Builds a block on `parent` from the mempool's candidates.
    pub async fn build(
        &self,
        parent: B256,
        layers: Vec<Arc<ExecutedBlock>>,
        fields: ProposalFields,
        candidates: Vec<Arc<SignedTx>>,
    ) -> Result<Arc<ExecutedBlock>, ExecutorError> {
        self.ask(|reply| Request::Build { parent, layers, fields, candidates, reply }).await
    }

    /// Re-executes a proposal, checking its BTC attributes against this node's view too.
    pub async fn validate(
        &self,
        layers: Vec<Arc<ExecutedBlock>>,
        block: Block,
        known: Vec<Arc<SignedTx>>,
    ) -> Result<Arc<ExecutedBlock>, ExecutorError> {
        self.ask(|reply| Request::Validate { layers, block, known, check_btc: true, reply }).await
    }

    /// Executes a block that already carries a commit certificate (its BTC attributes are not
    /// judged against a view that may lag; the caller waits for the view to hold its tip).
    pub async fn execute_certified(
        &self,
        layers: Vec<Arc<ExecutedBlock>>,
        block: Block,
        known: Vec<Arc<SignedTx>>,
    ) -> Result<Arc<ExecutedBlock>, ExecutorError> {
        self.ask(|reply| Request::Validate { layers, block, known, check_btc: false, reply }).await
    }

    /// Makes the executor thread panic (fault injection).
    pub fn inject_panic(&self) {
        let _ = self.tx.try_send(Request::InjectPanic);
    }
}
