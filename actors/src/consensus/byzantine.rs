//! Byzantine test modes of the native engine's driver (`bss node --byzantine MODE`, only with
//! `allow_byzantine = true`; see `crate::node::byzantine`). The engine itself stays honest; the
//! driver breaks the protocol on the wire, the way a malicious operator would:
//!
//! * `withhold-votes` — never sends a vote;
//! * `wrong-root` — proposes blocks whose state root is not the executed one;
//! * `equivocate` — as leader, sends one proposal to even operators and a conflicting one,
//!   also signed, to odd ones;
//! * `replay` — re-sends messages it sent long ago with every broadcast;
//! * `forge-qc` — with every proposal, also sends a conflicting one whose QC carries too few
//!   and forged signatures.

use crate::network::NetworkHandle;
use alloy_primitives::keccak256;
use bss_consensus::certificate::SigBytes;
use bss_consensus::native::messages::{proposal_message, Proposal};
use bss_consensus::native::NativeMessage;
use bss_consensus::{Block, OperatorSigner};
use std::collections::VecDeque;

/// Messages kept for `replay`.
const REPLAY_DEPTH: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WireModes {
    pub withhold_votes: bool,
    pub wrong_root: bool,
    pub equivocate: bool,
    pub replay: bool,
    pub forge_qc: bool,
}

impl WireModes {
    pub fn any(&self) -> bool {
        self.withhold_votes || self.wrong_root || self.equivocate || self.replay || self.forge_qc
    }
}

/// What the driver needs to misbehave: the modes, this operator's key (to sign what it forges)
/// and the federation's size.
pub struct Misbehaviour {
    pub modes: WireModes,
    pub signer: OperatorSigner,
    pub chain_id: u64,
    pub me: u16,
    pub operators: u16,
    sent: VecDeque<NativeMessage>,
}

impl Misbehaviour {
    pub fn new(modes: WireModes, signer: OperatorSigner, chain_id: u64, me: u16, operators: u16) -> Self {
        Self { modes, signer, chain_id, me, operators, sent: VecDeque::new() }
    }

    /// `wrong-root`: the block this operator is about to sign as leader, spoiled.
    pub fn spoil(&self, mut block: Block) -> Block {
        if self.modes.wrong_root {
            block.header.state_root = keccak256(block.header.state_root);
        }
        block
    }

    fn resign(&self, mut p: Proposal) -> Proposal {
        p.signature =
            SigBytes(self.signer.sign(&proposal_message(self.chain_id, p.block.header.round, &p.block.hash())));
        p
    }

    /// Carries out a broadcast the honest engine asked for, the Byzantine way.
    pub fn broadcast(&mut self, net: &NetworkHandle, m: NativeMessage) {
        if self.modes.withhold_votes && matches!(m, NativeMessage::Vote(_)) {
            return;
        }
        if self.modes.replay {
            // Something it said long ago, again.
            if let Some(old) = self.sent.front().cloned() {
                net.broadcast_consensus(old);
            }
            self.sent.push_back(m.clone());
            if self.sent.len() > REPLAY_DEPTH {
                self.sent.pop_front();
            }
        }
        if let NativeMessage::Proposal(p) = &m {
            if self.modes.forge_qc {
                net.broadcast_consensus(NativeMessage::Proposal(Box::new(self.forged_qc(p))));
            }
            if self.modes.equivocate {
                let mut twin = (**p).clone();
                twin.block.header.timestamp_ms += 1;
                let twin = NativeMessage::Proposal(Box::new(self.resign(twin)));
                for to in (0..self.operators).filter(|o| *o != self.me) {
                    net.send_consensus(to, if to % 2 == 0 { m.clone() } else { twin.clone() });
                }
                return;
            }
        }
        net.broadcast_consensus(m);
    }

    /// A second proposal for `p`'s round (a sibling block), "certified" by a QC that carries
    /// one forged signature where a quorum should be.
    fn forged_qc(&self, p: &Proposal) -> Proposal {
        let mut sibling = p.block.clone();
        sibling.header.timestamp_ms += 2;
        let mut justify = p.justify.clone();
        justify.signatures = vec![(self.me, SigBytes([7u8; 64]))];
        self.resign(Proposal { block: sibling, justify, tc: None, signature: SigBytes([0; 64]) })
    }
}
