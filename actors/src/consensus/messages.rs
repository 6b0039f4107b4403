use actix::Message;
use alloy_primitives::B256;
use bss_consensus::native::NativeMessage;
use bss_consensus::{Block, BlockHeader, Certificate, CommitProof};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Announced to subscribers after a block is durably committed.
#[derive(Clone, Debug)]
pub struct CommittedBlock {
    pub header: BlockHeader,
    pub hash: B256,
    pub tx_hashes: Arc<Vec<B256>>,
}

/// Cloneable handle for things outside consensus that follow commits.
#[derive(Clone)]
pub struct ConsensusHandle {
    pub(crate) commits: broadcast::Sender<CommittedBlock>,
}

impl ConsensusHandle {
    pub fn new(capacity: usize) -> Self {
        Self { commits: broadcast::channel(capacity).0 }
    }

    /// A stream of committed blocks from now on. Slow readers skip (lagged), never block consensus.
    pub fn subscribe(&self) -> broadcast::Receiver<CommittedBlock> {
        self.commits.subscribe()
    }
}

/// A consensus message from an authenticated operator.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromNetwork {
    pub from: u16,
    pub message: NativeMessage,
}

/// Committed blocks a peer sent in answer to a sync request (verified by the engine).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SyncedBlocks {
    pub from: u16,
    pub blocks: Vec<(Block, Certificate)>,
    pub headers: Vec<BlockHeader>,
    pub proof: Option<CommitProof>,
    pub more: bool,
}
