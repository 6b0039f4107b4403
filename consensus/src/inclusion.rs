//! Inclusion lists (DESIGN.md §6, README "Censorship resistance"): signed lists of transactions
//! an operator has held valid for `inclusion_deadline` blocks, carried in its vote for a block
//! and embedded in that block's child by the next leader.
//!
//! The rule voters enforce, judged only from what the proposal embeds:
//! * a proposal that extends a QC of the round right before its own (the normal path) embeds
//!   lists bound to its parent from at least 2f+1 distinct operators, every one validly signed;
//!   after a failed round (a TC opened the round) lists are optional, but any embedded must be
//!   valid;
//! * two different lists from one operator for one parent are evidence of equivocation: that
//!   operator's lists still count towards the 2f+1 signers but oblige nothing;
//! * every tx named by a list of a non-equivocating operator is in the block, unless appending
//!   it after the block's last tx fails (decoding, signature, chain id, nonce, funds) or its gas
//!   limit no longer fits (conditional inclusion) — checked by re-execution in the hVM.

use crate::certificate::SigBytes;
use crate::{CertificateError, OperatorSet, OperatorSigner};
use alloy_primitives::{keccak256, Bytes, B256};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most transactions one list names.
pub const MAX_LIST_TXS: usize = 16;
/// Most bytes of raw transactions one list carries.
pub const MAX_LIST_BYTES: usize = 64 * 1024;

/// One operator's signed list of due transactions for the child of `parent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionList {
    pub operator: u16,
    /// EIP-2718 encoded signed transactions.
    pub txs: Vec<Bytes>,
    pub signature: SigBytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InclusionError {
    #[error("inclusion list of operator {0} names {1} txs (most {MAX_LIST_TXS})")]
    TooManyTxs(u16, usize),
    #[error("inclusion list of operator {0} carries {1} bytes (most {MAX_LIST_BYTES})")]
    TooLarge(u16, usize),
    #[error("inclusion list of operator {0}: {1}")]
    Signature(u16, CertificateError),
    #[error("operator {0} appears with the same inclusion list twice, or more than twice")]
    Duplicate(u16),
    #[error("inclusion lists from {have} operators, {need} needed")]
    NoQuorum { have: usize, need: usize },
}

/// What an operator signs: domain, chain, the parent block, and the hashes of the listed txs.
pub fn list_message(chain_id: u64, parent: &B256, txs: &[Bytes]) -> Vec<u8> {
    let mut hashes = Vec::with_capacity(32 * txs.len());
    for t in txs {
        hashes.extend_from_slice(keccak256(t).as_slice());
    }
    let mut m = b"bss/inclusion".to_vec();
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(parent.as_slice());
    m.extend_from_slice(keccak256(hashes).as_slice());
    m
}

impl InclusionList {
    /// Signs `txs` (cut to the list bounds, oldest first) as `signer`'s list for `parent`'s child.
    /// A tx that would take the list over its byte bound is left out and costs the ones after
    /// it nothing: one oversized tx cannot empty a list.
    pub fn sign(signer: &OperatorSigner, operator: u16, chain_id: u64, parent: &B256, mut txs: Vec<Bytes>) -> Self {
        let mut total = 0usize;
        txs.retain(|t| match total.checked_add(t.len()).filter(|sum| *sum <= MAX_LIST_BYTES) {
            Some(sum) => {
                total = sum;
                true
            }
            None => false,
        });
        txs.truncate(MAX_LIST_TXS);
        let signature = SigBytes(signer.sign(&list_message(chain_id, parent, &txs)));
        Self { operator, txs, signature }
    }

    /// Bounds and signature.
    pub fn verify(&self, chain_id: u64, parent: &B256, set: &OperatorSet) -> Result<(), InclusionError> {
        if self.txs.len() > MAX_LIST_TXS {
            return Err(InclusionError::TooManyTxs(self.operator, self.txs.len()));
        }
        let bytes = self.txs.iter().fold(0usize, |a, t| a.saturating_add(t.len()));
        if bytes > MAX_LIST_BYTES {
            return Err(InclusionError::TooLarge(self.operator, bytes));
        }
        set.verify(self.operator, &list_message(chain_id, parent, &self.txs), &self.signature.0)
            .map_err(|e| InclusionError::Signature(self.operator, e))
    }
}

/// Checks the lists embedded in a block whose parent is `parent`: bounds, signatures, at most
/// two (different) lists per operator, and — when `required` — 2f+1 distinct signers.
/// Returns the operators caught equivocating.
pub fn check_embedded(
    lists: &[InclusionList],
    chain_id: u64,
    parent: &B256,
    set: &OperatorSet,
    required: bool,
) -> Result<BTreeSet<u16>, InclusionError> {
    let mut by_operator: BTreeMap<u16, Vec<&InclusionList>> = BTreeMap::new();
    for l in lists {
        l.verify(chain_id, parent, set)?;
        let seen = by_operator.entry(l.operator).or_default();
        if seen.len() == 2 || seen.iter().any(|s| s.txs == l.txs) {
            return Err(InclusionError::Duplicate(l.operator));
        }
        seen.push(l);
    }
    if required && by_operator.len() < set.quorum() {
        return Err(InclusionError::NoQuorum { have: by_operator.len(), need: set.quorum() });
    }
    Ok(by_operator.iter().filter(|(_, ls)| ls.len() == 2).map(|(op, _)| *op).collect())
}

/// The raw transactions a block must include or show to fail: those of every list whose
/// operator did not equivocate, first occurrence first.
pub fn obligations(lists: &[InclusionList]) -> Vec<Bytes> {
    let mut count: BTreeMap<u16, usize> = BTreeMap::new();
    for l in lists {
        *count.entry(l.operator).or_default() += 1;
    }
    let mut seen = BTreeSet::new();
    let mut out = vec![];
    for l in lists.iter().filter(|l| count[&l.operator] == 1) {
        for t in &l.txs {
            if seen.insert(keccak256(t)) {
                out.push(t.clone());
            }
        }
    }
    out
}

/// The lists one replica collected for one parent block: at most two per operator (the second
/// only when it differs: equivocation evidence), bounded whatever peers send.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    lists: BTreeMap<u16, Vec<InclusionList>>,
}

impl Collected {
    /// Adds a list already verified for this parent. Returns true if it is new.
    pub fn add(&mut self, list: InclusionList) -> bool {
        let seen = self.lists.entry(list.operator).or_default();
        if seen.len() == 2 || seen.iter().any(|s| s.txs == list.txs) {
            return false;
        }
        seen.push(list);
        true
    }

    /// Whether this exact list (or two lists already) is held for its operator: a replay,
    /// dropped before its signature is checked again.
    pub fn holds(&self, list: &InclusionList) -> bool {
        self.lists.get(&list.operator).is_some_and(|seen| seen.len() == 2 || seen.iter().any(|s| s.txs == list.txs))
    }

    pub fn signers(&self) -> usize {
        self.lists.len()
    }

    /// Everything collected, as the leader embeds it (equivocators' pairs included as evidence).
    pub fn embed(&self) -> Vec<InclusionList> {
        self.lists.values().flatten().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> (Vec<OperatorSigner>, OperatorSet) {
        let signers: Vec<OperatorSigner> = (0..n).map(|i| OperatorSigner::from_bytes([i as u8 + 1; 32])).collect();
        let set = OperatorSet::new(signers.iter().map(|s| s.public()).collect());
        (signers, set)
    }

    fn tx(b: u8) -> Bytes {
        Bytes::from(vec![b; 40])
    }

    #[test]
    fn quorum_signatures_and_equivocation() {
        let (s, set) = set(4);
        let parent = B256::repeat_byte(9);
        let l = |i: usize, txs: Vec<Bytes>| InclusionList::sign(&s[i], i as u16, 7, &parent, txs);
        let lists = vec![l(0, vec![tx(1)]), l(1, vec![tx(2)]), l(2, vec![])];
        assert_eq!(check_embedded(&lists, 7, &parent, &set, true), Ok(BTreeSet::new()));
        assert_eq!(obligations(&lists), vec![tx(1), tx(2)]);
        // Two signers are not a quorum when lists are required; fine after a failed round.
        assert!(matches!(
            check_embedded(&lists[..2], 7, &parent, &set, true),
            Err(InclusionError::NoQuorum { have: 2, need: 3 })
        ));
        assert!(check_embedded(&lists[..2], 7, &parent, &set, false).is_ok());
        // Bound to the parent and the chain.
        assert!(check_embedded(&lists, 7, &B256::ZERO, &set, true).is_err());
        assert!(check_embedded(&lists, 8, &parent, &set, true).is_err());
        // A list claimed by another operator.
        let mut forged = lists.clone();
        forged[2].operator = 3;
        assert!(matches!(check_embedded(&forged, 7, &parent, &set, true), Err(InclusionError::Signature(3, _))));
        // Operator 1 signed two different lists: evidence; its txs oblige nothing.
        let mut eq = lists.clone();
        eq.push(l(1, vec![tx(3)]));
        assert_eq!(check_embedded(&eq, 7, &parent, &set, true), Ok(BTreeSet::from([1])));
        assert_eq!(obligations(&eq), vec![tx(1)]);
        // The same list twice is not evidence, just padding.
        let mut dup = lists.clone();
        dup.push(lists[1].clone());
        assert_eq!(check_embedded(&dup, 7, &parent, &set, true), Err(InclusionError::Duplicate(1)));
    }

    #[test]
    fn lists_are_bounded_when_signed_and_when_checked() {
        let (s, set) = set(4);
        let parent = B256::ZERO;
        let signed = InclusionList::sign(&s[0], 0, 7, &parent, (0..40).map(tx).collect());
        assert_eq!(signed.txs.len(), MAX_LIST_TXS);
        let big = InclusionList::sign(&s[0], 0, 7, &parent, vec![Bytes::from(vec![0u8; MAX_LIST_BYTES + 1])]);
        assert!(big.txs.is_empty());
        // An oversized tx first leaves the rest of the list alone, and a full list still cuts
        // at the byte bound.
        let mut mixed = vec![Bytes::from(vec![0u8; 100 * 1024]), tx(1), tx(2)];
        mixed.extend((0..3).map(|_| Bytes::from(vec![3u8; 30 * 1024])));
        let kept = InclusionList::sign(&s[0], 0, 7, &parent, mixed);
        assert_eq!(kept.txs.len(), 4, "tx(1), tx(2) and two of the 30 KiB txs");
        assert_eq!(&kept.txs[..2], &[tx(1), tx(2)]);
        kept.verify(7, &parent, &set).expect("within bounds");
        let mut over = signed.clone();
        over.txs.push(tx(99));
        assert!(matches!(over.verify(7, &parent, &set), Err(InclusionError::TooManyTxs(0, 17))));
    }

    #[test]
    fn collected_keeps_at_most_two_different_lists_per_operator() {
        let (s, _) = set(4);
        let parent = B256::ZERO;
        let mut c = Collected::default();
        assert!(c.add(InclusionList::sign(&s[0], 0, 7, &parent, vec![tx(1)])));
        assert!(!c.add(InclusionList::sign(&s[0], 0, 7, &parent, vec![tx(1)])));
        assert!(c.add(InclusionList::sign(&s[0], 0, 7, &parent, vec![tx(2)])));
        assert!(!c.add(InclusionList::sign(&s[0], 0, 7, &parent, vec![tx(3)])));
        assert_eq!((c.signers(), c.embed().len()), (1, 2));
    }
}
