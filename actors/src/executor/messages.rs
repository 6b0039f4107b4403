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
    /// This node's Bitcoin view: certified blocks wait for the tip they read.
    btc: Option<crate::btc::BtcView>,
}

/// How often a certified block still waiting for its Bitcoin tip is reported.
const BTC_WAIT_REPORT: std::time::Duration = std::time::Duration::from_secs(10);

impl ExecutorHandle {
    pub fn new(addr: Addr<ExecutorActor>, btc: Option<crate::btc::BtcView>) -> Self {
        Self { addr, btc }
    }

    /// Waits until this node's Bitcoin view holds `attrs`' tip on its best chain. A certified
    /// block must be executed against exactly the view its header names: executing it against a
    /// lagging view gives another state root (the hVM precompiles would read less), which a
    /// restarted node used to take for a fatal mismatch. It waits as long as it takes, saying so
    /// every 10 s.
    async fn wait_for_btc_tip(&self, number: u64, attrs: &bss_consensus::BtcAttributes) {
        let Some(view) = &self.btc else { return };
        let Some(tip) = crate::btc::attributes::tip_hash(attrs) else { return };
        let ready = |v: &crate::btc::BtcIndex| v.is_on_best_chain(attrs.tip_height, &tip);
        if ready(&view.current()) {
            return;
        }
        metrics::counter!("bss_executor_btc_view_waits_total").increment(1);
        let started = std::time::Instant::now();
        loop {
            // hotstuff-rs's committer calls in from a plain thread, without a tokio runtime.
            let v = if tokio::runtime::Handle::try_current().is_ok() {
                view.wait_for(BTC_WAIT_REPORT, ready).await
            } else {
                view.wait_for_blocking(BTC_WAIT_REPORT, ready)
            };
            if ready(&v) {
                tracing::info!(target: "executor", number, btc_tip = attrs.tip_height, waited_secs = started.elapsed().as_secs_f64(), "the Bitcoin view reached a certified block's tip");
                return;
            }
            tracing::warn!(target: "executor", number, btc_tip = attrs.tip_height, view_best = ?v.best_height(), "a certified block waits for this node's Bitcoin view to reach its tip");
        }
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
        self.wait_for_btc_tip(block.number(), &block.header.btc).await;
        self.addr.send(Validate { block, known: vec![], check_btc: false }).await.map_err(|_| ExecutorError::Gone)?
    }

    pub async fn committed(&self, hash: B256) -> Result<(), ExecutorError> {
        self.addr.send(Committed { hash }).await.map_err(|_| ExecutorError::Gone)
    }
}
