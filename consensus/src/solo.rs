//! The single-operator engine: a federation of one.
//!
//! With one operator, a quorum is that operator's own signature, so every proposal it builds is
//! committed at once. It still goes through the full boundary (request proposal → persist safety
//! data → sign → commit), so the node needs nothing special for it.

use crate::certificate::{vote_message, SigBytes};
use crate::engine::{Effect, Engine, Input, SafetyData, TimerKind};
use crate::{BlockHeader, Certificate, OperatorSigner};
use std::convert::Infallible;
use std::time::Duration;
use tracing::{debug, warn};

pub struct SoloEngine {
    signer: OperatorSigner,
    head: BlockHeader,
    safety: SafetyData,
    block_time: Duration,
    /// Round of the proposal currently being built, if any.
    in_flight: Option<u64>,
}

impl SoloEngine {
    /// `head` is the last committed header; `safety` what was persisted before the restart.
    pub fn new(
        signer: OperatorSigner,
        head: BlockHeader,
        safety: SafetyData,
        block_time: Duration,
    ) -> Self {
        Self {
            signer,
            head,
            safety,
            block_time,
            in_flight: None,
        }
    }

    fn next_round(&self) -> u64 {
        self.safety.last_signed_round.max(self.head.round) + 1
    }

    fn request(&mut self) -> Vec<Effect<Infallible>> {
        if self.in_flight.is_some() {
            return vec![];
        }
        let round = self.next_round();
        self.in_flight = Some(round);
        vec![Effect::RequestProposal {
            round,
            parent: self.head.clone(),
        }]
    }
}

impl Engine for SoloEngine {
    type Message = Infallible;

    fn name(&self) -> &'static str {
        "solo"
    }

    fn handle(&mut self, input: Input<Infallible>) -> Vec<Effect<Infallible>> {
        match input {
            Input::Start | Input::TimerFired(TimerKind::Propose) => self.request(),
            Input::TimerFired(TimerKind::RoundTimeout { .. }) => vec![],
            Input::ProposalReady { round, block } => {
                if self.in_flight != Some(round) {
                    debug!(target: "consensus::solo", round, "stale proposal ignored");
                    return vec![];
                }
                self.in_flight = None;
                let hash = block.hash();
                if block.header.parent_hash != self.head.hash()
                    || block.header.number != self.head.number + 1
                {
                    warn!(target: "consensus::solo", round, number = block.header.number, "proposal does not extend head; retrying");
                    return vec![Effect::ScheduleTimer {
                        kind: TimerKind::Propose,
                        after: self.block_time,
                    }];
                }
                self.safety.last_signed_round = round;
                self.safety.highest_qc_round = round;
                self.safety.locked_round = round;
                let msg = vote_message(block.header.chain_id, round, &hash);
                let certificate = Certificate {
                    chain_id: block.header.chain_id,
                    round,
                    block_hash: hash,
                    signatures: vec![(0, SigBytes(self.signer.sign(&msg)))],
                };
                self.head = block.header.clone();
                vec![
                    Effect::PersistSafety(self.safety.clone()),
                    Effect::Commit { block, certificate },
                    Effect::ScheduleTimer {
                        kind: TimerKind::Propose,
                        after: self.block_time,
                    },
                ]
            }
            Input::ValidationDone { .. } => vec![],
            Input::Message { message, .. } => match message {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Block, BtcAttributes, OperatorSet};
    use alloy_primitives::B256;

    fn genesis() -> BlockHeader {
        BlockHeader {
            chain_id: 1,
            number: 0,
            parent_hash: B256::ZERO,
            round: 0,
            proposer: 0,
            timestamp_ms: 0,
            transactions_root: B256::ZERO,
            receipts_root: B256::ZERO,
            state_root: B256::ZERO,
            gas_used: 0,
            gas_limit: 1,
            base_fee: 1,
            btc: BtcAttributes::default(),
            anchors: vec![],
        }
    }

    fn child(parent: &BlockHeader, round: u64) -> Block {
        let mut header = parent.clone();
        header.number += 1;
        header.parent_hash = parent.hash();
        header.round = round;
        Block {
            header,
            transactions: vec![],
        }
    }

    #[test]
    fn persists_before_commit_and_certificate_verifies() {
        let signer = OperatorSigner::generate();
        let set = OperatorSet::new(vec![signer.public()]);
        let mut e = SoloEngine::new(
            signer,
            genesis(),
            SafetyData::default(),
            Duration::from_millis(5),
        );
        let fx = e.handle(Input::Start);
        let Effect::RequestProposal { round, parent } = &fx[0] else {
            panic!("{fx:?}")
        };
        assert_eq!(*round, 1);
        let block = child(parent, *round);
        let fx = e.handle(Input::ProposalReady {
            round: 1,
            block: block.clone(),
        });
        assert!(matches!(
            fx[0],
            Effect::PersistSafety(SafetyData {
                last_signed_round: 1,
                ..
            })
        ));
        let Effect::Commit { certificate, .. } = &fx[1] else {
            panic!("{fx:?}")
        };
        certificate
            .verify(&set, &block.hash())
            .expect("valid certificate");
        // A duplicate or stale answer is ignored.
        assert!(e
            .handle(Input::ProposalReady { round: 1, block })
            .is_empty());
    }

    #[test]
    fn restart_never_reuses_a_signed_round() {
        let signer = OperatorSigner::generate();
        let safety = SafetyData {
            last_signed_round: 9,
            highest_qc_round: 9,
            locked_round: 9,
        };
        let mut e = SoloEngine::new(signer, genesis(), safety, Duration::from_millis(5));
        let fx = e.handle(Input::Start);
        assert!(matches!(fx[0], Effect::RequestProposal { round: 10, .. }));
    }
}
