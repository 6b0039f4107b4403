use super::actor::ExecutorActor;
use crate::hvm::execute::ProposalFields;
use crate::hvm::{ExecutedBlock, ExecutionError, SignedTx};
use actix::prelude::*;
use alloy_primitives::B256;
use bss_consensus::Block;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error(transparent)]
    Execution(#[from] ExecutionError),
    #[error("BTC attributes refused: {0}")]
    Btc(#[from] crate::btc::AttributeError),
    #[error("anchors refused: the block records {proposed} keystone sightings, this node's Bitcoin view has {expected} in those blocks")]
    Anchors { proposed: usize, expected: usize },
    #[error("block carries Bitcoin headers but this node has no Bitcoin view ([btc] is not configured)")]
    NoBtcView,
    #[error("unknown parent block {0}")]
    UnknownParent(B256),
    #[error("the executor is not running")]
    Gone,
}

#[derive(Message)]
#[rtype(result = "Result<Arc<ExecutedBlock>, ExecutorError>")]
pub struct Build {
    pub parent: B256,
    pub fields: ProposalFields,
    pub candidates: Vec<Arc<SignedTx>>,
}

#[derive(Message)]
#[rtype(result = "Result<Arc<ExecutedBlock>, ExecutorError>")]
pub struct Validate {
    pub block: Block,
    /// Already decoded transactions by hash (e.g. from the mempool), to skip sender recovery.
    pub known: Vec<Arc<SignedTx>>,
    /// Check the BTC attributes against this node's Bitcoin view (proposals). Blocks that
    /// already carry a commit certificate are not re-judged against a view that may lag.
    pub check_btc: bool,
}

/// `hash` was committed to storage: it becomes the executor's base state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Committed {
    pub hash: B256,
}

/// Cloneable, typed handle to the executor thread.
#[derive(Clone)]
pub struct ExecutorHandle {
    addr: Addr<ExecutorActor>,
}

impl ExecutorHandle {
    pub fn new(addr: Addr<ExecutorActor>) -> Self {
        Self { addr }
    }

    pub async fn build(
        &self,
        parent: B256,
        fields: ProposalFields,
        candidates: Vec<Arc<SignedTx>>,
    ) -> Result<Arc<ExecutedBlock>, ExecutorError> {
        self.addr.send(Build { parent, fields, candidates }).await.map_err(|_| ExecutorError::Gone)?
    }

    /// Re-executes a proposal, checking its BTC attributes too.
    pub async fn validate(&self, block: Block, known: Vec<Arc<SignedTx>>) -> Result<Arc<ExecutedBlock>, ExecutorError> {
        self.addr.send(Validate { block, known, check_btc: true }).await.map_err(|_| ExecutorError::Gone)?
    }

    /// Executes a block that already carries a commit certificate.
    pub async fn execute_certified(&self, block: Block) -> Result<Arc<ExecutedBlock>, ExecutorError> {
        self.addr.send(Validate { block, known: vec![], check_btc: false }).await.map_err(|_| ExecutorError::Gone)?
    }

    pub async fn committed(&self, hash: B256) -> Result<(), ExecutorError> {
        self.addr.send(Committed { hash }).await.map_err(|_| ExecutorError::Gone)
    }
}
