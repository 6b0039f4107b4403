use super::actor::ChainActor;
use crate::executor::ExecutorError;
use actix::prelude::*;
use alloy_primitives::B256;
use bss_consensus::{Block, BlockHeader, Certificate, CommitProof};
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    #[error("timestamp is {ahead_ms} ms ahead of this node's clock")]
    ClockAhead { ahead_ms: u64 },
    #[error("block {number} is at or below the committed head {head} and is not the committed block there")]
    BelowHead { number: u64, head: u64 },
    #[error("the fork guard halted this chain: {0}")]
    Halted(String),
    #[error("the chain service is not running")]
    Gone,
}

/// Announced to subscribers after a block is durably committed.
#[derive(Clone, Debug)]
pub struct CommittedBlock {
    pub header: BlockHeader,
    pub hash: B256,
    pub tx_hashes: Arc<Vec<B256>>,
}

/// Build a block on `parent` for `round`. `ancestors` are uncommitted blocks leading to `parent`
/// that the chain service may not know yet (hotstuff-rs passes its block tree's; native: none).
#[derive(Message)]
#[rtype(result = "Result<Block, ChainError>")]
pub struct Propose {
    pub round: u64,
    pub parent: BlockHeader,
    pub ancestors: Vec<Block>,
    /// Inclusion lists to embed and answer (native engine).
    pub lists: Vec<bss_consensus::InclusionList>,
}

/// Re-execute and check `block`. `proposal`: a block up for a vote (clock, Bitcoin attributes
/// and anchors are judged against this node's view); otherwise a block that already carries a
/// certificate (block sync), which is executed as it is.
#[derive(Message)]
#[rtype(result = "Result<(), ChainError>")]
pub struct Validate {
    pub block: Block,
    pub ancestors: Vec<Block>,
    pub proposal: bool,
}

/// A block that is final, with its certificate (and, on the last of a run, the proof of its
/// commit that syncing peers are shown).
#[derive(Clone, Debug)]
pub struct Certified {
    pub block: Block,
    pub certificate: Certificate,
    pub proof: Option<CommitProof>,
}

/// `blocks` (consecutive, oldest first) are final: execute those not executed yet, write them in
/// one atomic batch, announce each. Commits run one at a time, in the order they were sent; a
/// block at or below the head is already committed and skipped.
#[derive(Message)]
#[rtype(result = "Result<(), ChainError>")]
pub struct Commit {
    pub blocks: Vec<Certified>,
}

/// Cloneable, typed handle to the chain service.
#[derive(Clone)]
pub struct ChainHandle {
    pub(super) addr: Addr<ChainActor>,
    pub(super) commits: broadcast::Sender<CommittedBlock>,
}

impl ChainHandle {
    pub async fn propose(
        &self,
        round: u64,
        parent: BlockHeader,
        ancestors: Vec<Block>,
        lists: Vec<bss_consensus::InclusionList>,
    ) -> Result<Block, ChainError> {
        self.addr.send(Propose { round, parent, ancestors, lists }).await.map_err(|_| ChainError::Gone)?
    }

    pub async fn validate(&self, block: Block, ancestors: Vec<Block>, proposal: bool) -> Result<(), ChainError> {
        self.addr.send(Validate { block, ancestors, proposal }).await.map_err(|_| ChainError::Gone)?
    }

    pub async fn commit(
        &self,
        block: Block,
        certificate: Certificate,
        proof: Option<CommitProof>,
    ) -> Result<(), ChainError> {
        self.commit_many(vec![Certified { block, certificate, proof }]).await
    }

    /// Commits consecutive final blocks in one storage write (block sync: one fsync a run).
    pub async fn commit_many(&self, blocks: Vec<Certified>) -> Result<(), ChainError> {
        self.addr.send(Commit { blocks }).await.map_err(|_| ChainError::Gone)?
    }

    /// Queues a commit without waiting for it (commits keep their order).
    pub fn commit_later(&self, block: Block, certificate: Certificate) {
        self.addr.do_send(Commit { blocks: vec![Certified { block, certificate, proof: None }] });
    }

    /// A stream of committed blocks from now on. Slow readers skip (lagged), never block commits.
    pub fn subscribe(&self) -> broadcast::Receiver<CommittedBlock> {
        self.commits.subscribe()
    }
}
