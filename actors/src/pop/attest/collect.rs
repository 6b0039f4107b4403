//! What the attestation service decides, as pure code: which keystone statements this operator
//! signs, which of the other operators' signatures it keeps, and when a quorum makes a
//! certificate.
//!
//! Bounds (a peer decides what it sends): statements are kept only for keystone numbers within
//! [`WINDOW`] keystones of this node's head, one slot per operator and number (a later signature
//! from the same operator for the same number replaces nothing once one verified), and a
//! signature is verified only when it would fill an empty slot.

use crate::pop::keystone::{CertifiedKeystone, Keystone};
use bss_consensus::{OperatorSet, OperatorSigner};
use std::collections::BTreeMap;

/// Keystone numbers on either side of the head this node collects signatures for.
pub const WINDOW: u64 = 16;

/// Why a peer's signature was not kept (`bss_pop_attestations_refused_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    OutOfWindow,
    BadSignature,
    /// It signed another hash for a number this node committed (it equivocated, or forked).
    Conflicting,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::OutOfWindow => "out_of_window",
            Self::BadSignature => "bad_signature",
            Self::Conflicting => "conflicting",
        }
    }
}

/// A number still collecting: this node's statement (once committed) and each operator's
/// verified signature with the statement it signed.
#[derive(Default)]
struct Open {
    ours: Option<Keystone>,
    slots: Vec<Option<(Keystone, [u8; 64])>>,
}

pub struct Collector {
    pub chain_id: u32,
    pub interval: u64,
    pub me: u16,
    signer: OperatorSigner,
    set: OperatorSet,
    open: BTreeMap<u64, Open>,
    /// This node's committed head.
    head: u64,
}

/// What happened to a peer's signature.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Kept,
    /// Already held (or the number is already certified).
    Known,
    Refused(Refused),
}

impl Collector {
    pub fn new(chain_id: u32, interval: u64, me: u16, signer: OperatorSigner, set: OperatorSet) -> Self {
        Self { chain_id, interval: interval.max(1), me, signer, set, open: BTreeMap::new(), head: 0 }
    }

    pub fn set_head(&mut self, head: u64) {
        self.head = head;
        let low = self.low();
        self.open.retain(|n, _| *n >= low);
    }

    fn low(&self) -> u64 {
        self.head.saturating_sub(WINDOW * self.interval)
    }

    fn in_window(&self, n: u64) -> bool {
        n > 0 && n.is_multiple_of(self.interval) && n >= self.low() && n <= self.head + WINDOW * self.interval
    }

    fn slot(&mut self, n: u64) -> &mut Open {
        let size = self.set.len();
        let o = self.open.entry(n).or_default();
        if o.slots.len() != size {
            o.slots = vec![None; size];
        }
        o
    }

    /// This node committed keystone block `k`: signs its statement. Returns the signature.
    pub fn sign(&mut self, k: Keystone) -> [u8; 64] {
        let sig = self.signer.sign(&k.statement());
        let me = usize::from(self.me);
        let o = self.slot(k.l2_number);
        o.ours = Some(k);
        if let Some(s) = o.slots.get_mut(me) {
            *s = Some((k, sig));
        }
        sig
    }

    /// This node's own signature for `n`, if it signed it.
    pub fn own(&self, n: u64) -> Option<(Keystone, [u8; 64])> {
        self.open.get(&n).and_then(|o| o.slots.get(usize::from(self.me))).copied().flatten()
    }

    /// The numbers this node signed and still collects for.
    pub fn collecting(&self) -> Vec<u64> {
        self.open.iter().filter(|(_, o)| o.ours.is_some()).map(|(n, _)| *n).collect()
    }

    pub fn forget(&mut self, n: u64) {
        self.open.remove(&n);
    }

    /// A signature `from` another operator over `statement`.
    pub fn receive(&mut self, from: u16, statement: &[u8], sig: &[u8; 64]) -> Outcome {
        let Ok(k) = Keystone::from_statement(statement) else { return Outcome::Refused(Refused::Malformed) };
        if k.chain_id != self.chain_id || k.epoch != 0 || usize::from(from) >= self.set.len() {
            return Outcome::Refused(Refused::Malformed);
        }
        if !self.in_window(k.l2_number) {
            return Outcome::Refused(Refused::OutOfWindow);
        }
        if let Some(o) = self.open.get(&k.l2_number) {
            if o.ours.is_some_and(|ours| ours != k) {
                return Outcome::Refused(Refused::Conflicting);
            }
            if o.slots.get(usize::from(from)).is_some_and(|s| s.is_some()) {
                return Outcome::Known;
            }
        }
        if self.set.verify(from, statement, sig).is_err() {
            return Outcome::Refused(Refused::BadSignature);
        }
        let o = self.slot(k.l2_number);
        o.slots[usize::from(from)] = Some((k, *sig));
        Outcome::Kept
    }

    /// The certificate for `n` once a quorum signed this node's statement: the quorum's
    /// lowest-indexed signers (what a keystone tx carries).
    pub fn certificate(&self, n: u64) -> Option<CertifiedKeystone> {
        let o = self.open.get(&n)?;
        let ours = o.ours?;
        let matching: Vec<(u16, [u8; 64])> = o
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.filter(|(k, _)| *k == ours).map(|(_, sig)| (i as u16, sig)))
            .take(self.set.quorum())
            .collect();
        (matching.len() >= self.set.quorum()).then(|| CertifiedKeystone {
            keystone: ours,
            signers: matching.iter().map(|(i, _)| *i).collect(),
            signatures: matching.iter().map(|(_, s)| *s).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::B256;

    fn fed(n: u8) -> (Vec<OperatorSigner>, OperatorSet) {
        let s: Vec<OperatorSigner> = (0..n).map(|i| OperatorSigner::from_bytes([i + 1; 32])).collect();
        let set = OperatorSet::new(s.iter().map(|k| k.public()).collect());
        (s, set)
    }

    fn ks(n: u64, h: u8) -> Keystone {
        Keystone { chain_id: 7, epoch: 0, l2_number: n, btc_ref_height: 3, l2_hash: B256::repeat_byte(h) }
    }

    #[test]
    fn a_quorum_of_matching_signatures_makes_a_certificate_that_verifies() {
        let (s, set) = fed(4);
        let mut c = Collector::new(7, 5, 0, s[0].clone(), set.clone());
        c.set_head(10);
        let k = ks(10, 1);
        c.sign(k);
        assert!(c.certificate(10).is_none());
        assert_eq!(c.receive(2, &k.statement(), &s[2].sign(&k.statement())), Outcome::Kept);
        assert!(c.certificate(10).is_none());
        // Known: the slot is full; no second verification.
        assert_eq!(c.receive(2, &k.statement(), &[0; 64]), Outcome::Known);
        // A signature over another hash, a forged one, a foreign one, a far number.
        let other = ks(10, 2);
        assert_eq!(
            c.receive(1, &other.statement(), &s[1].sign(&other.statement())),
            Outcome::Refused(Refused::Conflicting)
        );
        assert_eq!(c.receive(1, &k.statement(), &s[3].sign(&k.statement())), Outcome::Refused(Refused::BadSignature));
        assert_eq!(c.receive(9, &k.statement(), &s[1].sign(&k.statement())), Outcome::Refused(Refused::Malformed));
        let far = ks(10 + 5 * (WINDOW + 1), 1);
        assert_eq!(
            c.receive(1, &far.statement(), &s[1].sign(&far.statement())),
            Outcome::Refused(Refused::OutOfWindow)
        );
        assert_eq!(c.receive(1, b"junk", &[0; 64]), Outcome::Refused(Refused::Malformed));
        assert_eq!(c.receive(3, &k.statement(), &s[3].sign(&k.statement())), Outcome::Kept);
        let cert = c.certificate(10).expect("quorum");
        assert_eq!(cert.signers, vec![0, 2, 3]);
        cert.verify(&set).expect("verifies");
    }

    /// Signatures that arrive before this node commits the block are kept and count once it
    /// does, if they match.
    #[test]
    fn early_signatures_count_once_the_block_commits() {
        let (s, set) = fed(4);
        let mut c = Collector::new(7, 5, 1, s[1].clone(), set.clone());
        c.set_head(3);
        let k = ks(5, 1);
        for i in [0usize, 3] {
            assert_eq!(c.receive(i as u16, &k.statement(), &s[i].sign(&k.statement())), Outcome::Kept);
        }
        assert!(c.certificate(5).is_none());
        c.set_head(5);
        c.sign(k);
        c.certificate(5).expect("quorum").verify(&set).expect("verifies");
        // Memory stays bounded as the head moves on.
        c.set_head(5 + 5 * (WINDOW + 1));
        assert!(c.collecting().is_empty());
    }
}
