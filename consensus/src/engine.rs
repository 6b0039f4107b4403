//! The consensus boundary every engine implements.
//!
//! An engine is a sans-IO state machine: the node feeds it [`Input`]s and carries out the
//! [`Effect`]s it returns, in order. Effects that the node must finish before later ones take
//! effect (above all [`Effect::PersistSafety`], which must be durable before any signature that
//! follows it leaves the node) are listed first.

use crate::{Block, BlockHeader, Certificate, InclusionList};
use alloy_primitives::{Bytes, B256};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Timers an engine may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    /// Time to propose the next block (block time pacing).
    Propose,
    /// The current round timed out.
    RoundTimeout { round: u64 },
}

/// Safety data that must be persisted before a vote, timeout or proposal signature leaves the node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyData {
    /// Highest round in which this operator signed anything (vote, proposal or timeout).
    pub last_signed_round: u64,
    /// The highest quorum certificate this operator knows (its 2-chain lock). A restarted replica
    /// must report it in timeouts, or a committed block could be abandoned.
    pub highest_qc: Option<Certificate>,
}

/// Proof that a block is committed under the 2-chain rule: its child, one round later, certified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitProof {
    pub child: BlockHeader,
    pub child_qc: Certificate,
}

/// What the node tells an engine.
#[derive(Clone, Debug)]
pub enum Input<M> {
    /// The node has (re)started; the engine resumes from its constructor state.
    Start,
    TimerFired(TimerKind),
    /// The executor built the block the engine asked for with [`Effect::RequestProposal`].
    ProposalReady {
        round: u64,
        block: Block,
        /// Transactions this operator holds due for the child of `block` (its inclusion list).
        due: Vec<Bytes>,
    },
    /// The executor re-executed a proposal the engine asked about with
    /// [`Effect::RequestValidation`].
    ValidationDone {
        block_hash: B256,
        result: Result<(), String>,
        /// Transactions this operator holds due for the child of the block (its inclusion list).
        due: Vec<Bytes>,
    },
    /// A message from another operator, already authenticated by the transport.
    Message {
        from: u16,
        message: M,
    },
    /// The transport (re)connected to operator `peer`. It may be ahead of this node (this node
    /// restarted or was cut off), so the engine may ask it for committed blocks right away
    /// instead of waiting for its next proposal.
    PeerConnected {
        peer: u16,
    },
    /// Committed blocks a peer sent for block sync, with the proof that the last one is
    /// committed. The engine verifies every certificate before anything is applied.
    Synced {
        from: u16,
        blocks: Vec<(Block, Certificate)>,
        /// Headers from after the last block up to the peer's head (when the answer was cut
        /// short), linking the blocks to the head that `proof` proves committed.
        headers: Vec<BlockHeader>,
        proof: Option<CommitProof>,
        /// The peer has committed blocks past this answer: ask again.
        more: bool,
    },
}

/// What an engine asks the node to do.
#[derive(Clone, Debug)]
pub enum Effect<M> {
    /// Build a block on `parent` for `round`; answer with [`Input::ProposalReady`].
    RequestProposal {
        round: u64,
        parent: BlockHeader,
        /// Signed inclusion lists for the child of `parent` to embed and answer.
        lists: Vec<InclusionList>,
    },
    /// Re-execute and check `block`; answer with [`Input::ValidationDone`].
    RequestValidation {
        block: Block,
    },
    /// Make the safety data durable before doing anything after this effect.
    PersistSafety(SafetyData),
    Broadcast(M),
    Send {
        to: u16,
        message: M,
    },
    /// Make a block this replica is about to vote for durable (so a restart can rebuild on it).
    PersistBlock(Block),
    /// `block` is final at its height; apply it to storage. `proof` is set on the last block of
    /// a commit, so this node can prove its head to syncing peers.
    Commit {
        block: Block,
        certificate: Certificate,
        proof: Option<CommitProof>,
    },
    /// Ask `peer` for committed blocks from `from_number` on (served by the node from storage).
    RequestSync {
        peer: u16,
        from_number: u64,
    },
    ScheduleTimer {
        kind: TimerKind,
        after: Duration,
    },
}

/// A consensus engine. `Message` is the engine's own wire message type.
pub trait Engine: Send + 'static {
    type Message: Clone + std::fmt::Debug + Send + Unpin + 'static;

    /// Feeds one input; returns the effects to carry out, in order.
    fn handle(&mut self, input: Input<Self::Message>) -> Vec<Effect<Self::Message>>;

    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("proposal for round {round} does not extend the committed head {head} (parent {parent})")]
    NotExtendingHead { round: u64, head: B256, parent: B256 },
}
