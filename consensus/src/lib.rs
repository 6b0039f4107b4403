//! Block and certificate types, the consensus [`Engine`] boundary, and the engines behind it.
//!
//! Engines are sans-IO state machines: they take [`Input`]s and return [`Effect`]s. They own no
//! socket, clock or thread, so the node drives them with actors and tests drive them in a
//! deterministic simulation.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod block;
pub mod certificate;
pub mod codec;
pub mod engine;
pub mod genesis_rules;
pub mod inclusion;
pub mod native;
pub mod telemetry;

/// Cases per proptest, for every crate's property tests: a short sample by default (CI),
/// `BSS_PROPTEST_CASES=100000` for a long run.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("BSS_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub use block::{Anchor, Block, BlockHeader, BtcAttributes, ForcedOutcome, Mint, CARRIED};
pub use certificate::{
    Certificate, CertificateError, HotstuffRsQc, OperatorKey, OperatorSet, OperatorSigner, SigBytes,
};
pub use engine::{CommitProof, Effect, Engine, EngineError, Input, SafetyData, TimerKind};
pub use genesis_rules::{GenesisRules, TunnelGenesisRules};
pub use inclusion::InclusionList;
