//! Wire messages of the native engine and what each signature covers.

use crate::certificate::{vote_message, SigBytes};
use crate::{Block, Certificate, CertificateError, InclusionList, OperatorSet};
use alloy_primitives::B256;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What a leader signs for a proposal.
pub fn proposal_message(chain_id: u64, round: u64, block_hash: &B256) -> Vec<u8> {
    let mut m = b"bss/proposal".to_vec();
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(&round.to_be_bytes());
    m.extend_from_slice(block_hash.as_slice());
    m
}

/// What a replica signs when its round times out: the round and its highest QC's round.
pub fn timeout_message(chain_id: u64, round: u64, high_qc_round: u64) -> Vec<u8> {
    let mut m = b"bss/timeout".to_vec();
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(&round.to_be_bytes());
    m.extend_from_slice(&high_qc_round.to_be_bytes());
    m
}

/// A leader's proposal: the block, the QC of its parent, and a TC when the previous round failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub block: Block,
    pub justify: Certificate,
    pub tc: Option<TimeoutCert>,
    pub signature: SigBytes,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub round: u64,
    pub block_hash: B256,
    pub signature: SigBytes,
    /// The voter's inclusion list for the child of `block_hash` (signed on its own).
    pub list: Option<InclusionList>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeout {
    pub round: u64,
    pub high_qc: Certificate,
    /// The TC that opened `round` for the sender, so replicas that missed it can follow
    /// (not covered by the signature: it is verified on its own).
    pub entry_tc: Option<TimeoutCert>,
    pub signature: SigBytes,
}

/// 2f+1 timeouts for one round; carries the highest QC any of the signers reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutCert {
    pub round: u64,
    pub high_qc: Certificate,
    /// (operator, the round of that operator's highest QC, signature over both rounds).
    pub signatures: Vec<(u16, u64, SigBytes)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedBlock {
    pub block: Block,
    pub qc: Certificate,
    pub parent_qc: Option<Certificate>,
}

/// Messages between native-engine replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NativeMessage {
    Proposal(Box<Proposal>),
    Vote(Vote),
    Timeout(Box<Timeout>),
    /// A TC, broadcast by the replica that formed it so every replica (the next leader above
    /// all) enters the next round at once.
    Tc(Box<TimeoutCert>),
    /// Ask for a certified block this replica is missing (an uncommitted ancestor).
    FetchBlock(B256),
    /// Answer to `FetchBlock`: the block, its QC, and the QC of its parent (its justification).
    Block(Box<FetchedBlock>),
}

impl TimeoutCert {
    /// Checks 2f+1 distinct valid signatures, and that `high_qc` is the highest reported QC.
    pub fn verify(&self, chain_id: u64, set: &OperatorSet) -> Result<(), CertificateError> {
        let mut seen = BTreeSet::new();
        let mut max_reported = 0;
        for (op, hqc_round, sig) in &self.signatures {
            if !seen.insert(*op) {
                return Err(CertificateError::DuplicateSigner(*op));
            }
            set.verify(*op, &timeout_message(chain_id, self.round, *hqc_round), &sig.0)?;
            max_reported = max_reported.max(*hqc_round);
        }
        if seen.len() < set.quorum() {
            return Err(CertificateError::NoQuorum { have: seen.len(), need: set.quorum() });
        }
        if self.high_qc.round != max_reported {
            return Err(CertificateError::BadKey(format!(
                "timeout certificate carries QC of round {} but signers reported {max_reported}",
                self.high_qc.round
            )));
        }
        Ok(())
    }
}

/// Verifies a QC: the genesis certificate (round 0, no signatures) for the genesis hash, or a
/// quorum of vote signatures over (chain, round, block hash).
pub fn verify_qc(qc: &Certificate, chain_id: u64, set: &OperatorSet, genesis: &B256) -> Result<(), CertificateError> {
    if qc.hotstuff_rs.is_some() {
        // Only the native vote format certifies native blocks.
        return Err(CertificateError::Malformed("a hotstuff-rs certificate in the native engine".into()));
    }
    if qc.round == 0 && qc.signatures.is_empty() && &qc.block_hash == genesis {
        return Ok(());
    }
    if qc.chain_id != chain_id {
        return Err(CertificateError::BadKey(format!("certificate for chain {}", qc.chain_id)));
    }
    qc.verify(set, &qc.block_hash)
}

/// The certificate that stands for the genesis block.
pub fn genesis_qc(chain_id: u64, genesis: B256) -> Certificate {
    Certificate { chain_id, round: 0, block_hash: genesis, signatures: vec![], hotstuff_rs: None }
}

/// Builds a vote signature.
pub fn sign_vote(signer: &crate::OperatorSigner, chain_id: u64, round: u64, block_hash: &B256) -> SigBytes {
    SigBytes(signer.sign(&vote_message(chain_id, round, block_hash)))
}
