use super::actor::ConsensusActor;
use actix::prelude::*;
use bss_consensus::native::NativeMessage;
use bss_consensus::{Block, BlockHeader, Certificate, CommitProof};

/// A consensus message from an authenticated operator.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromNetwork {
    pub from: u16,
    pub message: NativeMessage,
}

/// The network connected to operator `peer` (it may be ahead: ask it for blocks).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerConnected {
    pub peer: u16,
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

/// Cloneable handle to the native engine's driver: what the network delivers to it.
#[derive(Clone)]
pub struct ConsensusHandle {
    addr: Addr<ConsensusActor>,
}

/// The driver's queue is full: the message is dropped (consensus tolerates lost messages).
#[derive(Debug)]
pub struct ConsensusBusy;

impl ConsensusHandle {
    pub fn new(addr: Addr<ConsensusActor>) -> Self {
        Self { addr }
    }

    pub fn deliver(&self, from: u16, message: NativeMessage) -> Result<(), ConsensusBusy> {
        self.addr.try_send(FromNetwork { from, message }).map_err(|_| ConsensusBusy)
    }

    pub fn peer_connected(&self, peer: u16) -> Result<(), ConsensusBusy> {
        self.addr.try_send(PeerConnected { peer }).map_err(|_| ConsensusBusy)
    }

    pub fn synced(&self, msg: SyncedBlocks) -> Result<(), ConsensusBusy> {
        self.addr.try_send(msg).map_err(|_| ConsensusBusy)
    }
}
