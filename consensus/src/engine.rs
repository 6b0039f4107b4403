//! The consensus boundary every engine implements.
//!
//! An engine is a sans-IO state machine: the node feeds it [`Input`]s and carries out the
//! [`Effect`]s it returns, in order. Effects that the node must finish before later ones take
//! effect (above all [`Effect::PersistSafety`], which must be durable before any signature that
//! follows it leaves the node) are listed first.

use crate::{Block, BlockHeader, Certificate};
use alloy_primitives::B256;
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
    /// Round of the highest quorum certificate known to this operator.
    pub highest_qc_round: u64,
    /// Round of the block this operator is locked on (2-chain lock).
    pub locked_round: u64,
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
    },
    /// The executor re-executed a proposal the engine asked about with
    /// [`Effect::RequestValidation`].
    ValidationDone {
        block_hash: B256,
        result: Result<(), String>,
    },
    /// A message from another operator, already authenticated by the transport.
    Message {
        from: u16,
        message: M,
    },
}

/// What an engine asks the node to do.
#[derive(Clone, Debug)]
pub enum Effect<M> {
    /// Build a block on `parent` for `round`; answer with [`Input::ProposalReady`].
    RequestProposal {
        round: u64,
        parent: BlockHeader,
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
    /// `block` is final at its height; apply it to storage.
    Commit {
        block: Block,
        certificate: Certificate,
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
    #[error(
        "proposal for round {round} does not extend the committed head {head} (parent {parent})"
    )]
    NotExtendingHead {
        round: u64,
        head: B256,
        parent: B256,
    },
}
