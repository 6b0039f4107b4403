//! Operator identities and commit certificates (2f+1 ed25519 signatures over a block hash).

use alloy_primitives::B256;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A public operator key (ed25519).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OperatorKey(pub [u8; 32]);

impl OperatorKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<Self, CertificateError> {
        let bytes = hex::decode(s.trim_start_matches("0x")).map_err(|e| CertificateError::BadKey(e.to_string()))?;
        let arr: [u8; 32] =
            bytes.try_into().map_err(|_| CertificateError::BadKey("operator key must be 32 bytes".into()))?;
        VerifyingKey::from_bytes(&arr).map_err(|e| CertificateError::BadKey(e.to_string()))?;
        Ok(Self(arr))
    }
}

/// An operator's secret signing key.
#[derive(Clone)]
pub struct OperatorSigner {
    key: SigningKey,
}

impl std::fmt::Debug for OperatorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OperatorSigner({})", self.public().to_hex())
    }
}

impl OperatorSigner {
    pub fn generate() -> Self {
        Self { key: SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    pub fn from_bytes(secret: [u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(&secret) }
    }

    pub fn from_hex(s: &str) -> Result<Self, CertificateError> {
        let bytes =
            hex::decode(s.trim().trim_start_matches("0x")).map_err(|e| CertificateError::BadKey(e.to_string()))?;
        let arr: [u8; 32] =
            bytes.try_into().map_err(|_| CertificateError::BadKey("operator secret must be 32 bytes".into()))?;
        Ok(Self::from_bytes(arr))
    }

    pub fn secret_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    pub fn public(&self) -> OperatorKey {
        OperatorKey(self.key.verifying_key().to_bytes())
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

/// The federation: operator public keys indexed by operator number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSet {
    pub keys: Vec<OperatorKey>,
}

impl OperatorSet {
    pub fn new(keys: Vec<OperatorKey>) -> Self {
        Self { keys }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The number of faulty operators tolerated: f = ⌊(n − 1) / 3⌋.
    pub fn max_faulty(&self) -> usize {
        self.keys.len().saturating_sub(1) / 3
    }

    /// Signatures needed for a certificate: n − f (= 2f + 1 when n = 3f + 1).
    pub fn quorum(&self) -> usize {
        self.keys.len() - self.max_faulty()
    }

    pub fn index_of(&self, key: &OperatorKey) -> Option<u16> {
        self.keys.iter().position(|k| k == key).and_then(|i| u16::try_from(i).ok())
    }

    /// Checks one operator signature over `msg`.
    pub fn verify(&self, operator: u16, msg: &[u8], sig: &[u8; 64]) -> Result<(), CertificateError> {
        let key = self.keys.get(operator as usize).ok_or(CertificateError::UnknownOperator(operator))?;
        let vk = VerifyingKey::from_bytes(&key.0).map_err(|e| CertificateError::BadKey(e.to_string()))?;
        vk.verify(msg, &Signature::from_bytes(sig)).map_err(|_| CertificateError::BadSignature(operator))
    }
}

/// What an operator signs to vote for a block: domain tag, chain id, round and block hash.
pub fn vote_message(chain_id: u64, round: u64, block_hash: &B256) -> Vec<u8> {
    let mut msg = Vec::with_capacity(8 + 8 + 8 + 32);
    msg.extend_from_slice(b"bss/vote");
    msg.extend_from_slice(&chain_id.to_be_bytes());
    msg.extend_from_slice(&round.to_be_bytes());
    msg.extend_from_slice(block_hash.as_slice());
    msg
}

/// A quorum of operator signatures over (chain id, round, block hash).
///
/// Blocks ordered by the hotstuff-rs engine carry that library's quorum certificate instead
/// (`hotstuff_rs`, with `signatures` empty): see [`HotstuffRsQc`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub chain_id: u64,
    pub round: u64,
    pub block_hash: B256,
    pub signatures: Vec<(u16, SigBytes)>,
    pub hotstuff_rs: Option<HotstuffRsQc>,
}

/// A hotstuff-rs (0.4) phase certificate for the hotstuff-rs block that carries an L2 block.
///
/// hotstuff-rs operators sign `borsh(chain_id, view, hs_block, phase)`, where `hs_block` is
/// `sha256(borsh(height) ‖ borsh(justify) ‖ data_hash)` and `data_hash` is our L2 block hash.
/// Keeping the height and the justify bytes lets anyone recompute `hs_block` from the L2 block
/// hash and check the signatures, without the library. Signatures sit one slot per operator, in
/// ascending order of the operators' key bytes (the library's validator order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotstuffRsQc {
    pub height: u64,
    /// The hotstuff-rs block's `justify` certificate, borsh-encoded as the library hashes it.
    pub justify: Vec<u8>,
    /// The phase's borsh tag (0 = Generic, the only phase of pipelined mode; 4 = Decide).
    pub phase: u8,
    pub signatures: Vec<Option<SigBytes>>,
}

/// Largest `justify` accepted for checking (a certificate of a 10-operator set is ~700 bytes).
pub const MAX_HOTSTUFF_RS_JUSTIFY: usize = 4_096;

impl HotstuffRsQc {
    /// The hotstuff-rs block hash committing to `data_hash` (our L2 block hash).
    pub fn block_hash(&self, data_hash: &B256) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.height.to_le_bytes());
        h.update(&self.justify);
        h.update(data_hash.as_slice());
        h.finalize().into()
    }

    /// What each operator signed (borsh of `(ChainID, ViewNumber, CryptoHash, Phase)`).
    pub fn vote_message(chain_id: u64, view: u64, hs_block: &[u8; 32], phase: u8) -> Vec<u8> {
        let mut msg = Vec::with_capacity(8 + 8 + 32 + 1);
        msg.extend_from_slice(&chain_id.to_le_bytes());
        msg.extend_from_slice(&view.to_le_bytes());
        msg.extend_from_slice(hs_block);
        msg.push(phase);
        msg
    }

    fn verify(&self, chain_id: u64, view: u64, l2_hash: &B256, set: &OperatorSet) -> Result<(), CertificateError> {
        if self.justify.len() > MAX_HOTSTUFF_RS_JUSTIFY {
            return Err(CertificateError::Malformed(format!("justify of {} bytes", self.justify.len())));
        }
        if self.phase != 0 && self.phase != 4 {
            return Err(CertificateError::Malformed(format!("phase {} does not commit a block", self.phase)));
        }
        if self.signatures.len() != set.len() {
            return Err(CertificateError::Malformed(format!(
                "{} signature slots for {} operators",
                self.signatures.len(),
                set.len()
            )));
        }
        let msg = Self::vote_message(chain_id, view, &self.block_hash(l2_hash), self.phase);
        // The library's order: ascending key bytes.
        let mut order: Vec<u16> = (0..set.len() as u16).collect();
        order.sort_by_key(|i| set.keys[*i as usize].0);
        let mut have = 0;
        for (slot, sig) in self.signatures.iter().enumerate() {
            let Some(sig) = sig else { continue };
            let operator = order[slot];
            set.verify(operator, &msg, &sig.0)?;
            have += 1;
        }
        // hotstuff-rs's quorum: ⌊2n/3⌋ + 1 of equal powers.
        let need = set.len() * 2 / 3 + 1;
        if have < need {
            return Err(CertificateError::NoQuorum { have, need });
        }
        Ok(())
    }
}

/// A 64-byte ed25519 signature (serde-friendly wrapper).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigBytes(#[serde(with = "sig_serde")] pub [u8; 64]);

mod sig_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: Vec<u8> = Vec::deserialize(d)?;
        v.try_into().map_err(|_| serde::de::Error::custom("signature must be 64 bytes"))
    }
}

impl Certificate {
    /// How many operators signed it (either engine's format).
    pub fn signer_count(&self) -> usize {
        match &self.hotstuff_rs {
            Some(q) => q.signatures.iter().filter(|s| s.is_some()).count(),
            None => self.signatures.len(),
        }
    }

    /// Verifies that a quorum of distinct operators signed this certificate for `block_hash`.
    pub fn verify(&self, set: &OperatorSet, block_hash: &B256) -> Result<(), CertificateError> {
        if &self.block_hash != block_hash {
            return Err(CertificateError::WrongBlock { expected: *block_hash, got: self.block_hash });
        }
        if let Some(qc) = &self.hotstuff_rs {
            return qc.verify(self.chain_id, self.round, block_hash, set);
        }
        let msg = vote_message(self.chain_id, self.round, &self.block_hash);
        let mut seen = BTreeSet::new();
        for (op, sig) in &self.signatures {
            if !seen.insert(*op) {
                return Err(CertificateError::DuplicateSigner(*op));
            }
            set.verify(*op, &msg, &sig.0)?;
        }
        if seen.len() < set.quorum() {
            return Err(CertificateError::NoQuorum { have: seen.len(), need: set.quorum() });
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    #[error("certificate is for block {got}, expected {expected}")]
    WrongBlock { expected: B256, got: B256 },
    #[error("operator {0} signed twice")]
    DuplicateSigner(u16),
    #[error("operator {0} is not in the operator set")]
    UnknownOperator(u16),
    #[error("bad signature from operator {0}")]
    BadSignature(u16),
    #[error("{have} signatures, need {need}")]
    NoQuorum { have: usize, need: usize },
    #[error("bad operator key: {0}")]
    BadKey(String),
    #[error("malformed certificate: {0}")]
    Malformed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn federation(n: usize) -> (Vec<OperatorSigner>, OperatorSet) {
        let signers: Vec<_> = (0..n).map(|_| OperatorSigner::generate()).collect();
        let set = OperatorSet::new(signers.iter().map(|s| s.public()).collect());
        (signers, set)
    }

    fn cert(signers: &[(u16, &OperatorSigner)], hash: B256) -> Certificate {
        let msg = vote_message(1, 5, &hash);
        Certificate {
            chain_id: 1,
            round: 5,
            block_hash: hash,
            signatures: signers.iter().map(|(i, s)| (*i, SigBytes(s.sign(&msg)))).collect(),
            hotstuff_rs: None,
        }
    }

    #[test]
    fn quorum_sizes() {
        assert_eq!(federation(1).1.quorum(), 1);
        assert_eq!(federation(4).1.quorum(), 3);
        assert_eq!(federation(7).1.quorum(), 5);
        assert_eq!(federation(10).1.quorum(), 7);
    }

    #[test]
    fn certificate_checks() {
        let (s, set) = federation(4);
        let h = B256::repeat_byte(9);
        let good = cert(&[(0, &s[0]), (1, &s[1]), (3, &s[3])], h);
        assert_eq!(good.verify(&set, &h), Ok(()));
        let short = cert(&[(0, &s[0]), (1, &s[1])], h);
        assert!(matches!(short.verify(&set, &h), Err(CertificateError::NoQuorum { .. })));
        let dup = cert(&[(0, &s[0]), (0, &s[0]), (1, &s[1])], h);
        assert_eq!(dup.verify(&set, &h), Err(CertificateError::DuplicateSigner(0)));
        let wrong_key = cert(&[(0, &s[0]), (1, &s[2]), (3, &s[3])], h);
        assert_eq!(wrong_key.verify(&set, &h), Err(CertificateError::BadSignature(1)));
        let unknown = cert(&[(0, &s[0]), (1, &s[1]), (9, &s[3])], h);
        assert_eq!(unknown.verify(&set, &h), Err(CertificateError::UnknownOperator(9)));
        assert!(good.verify(&set, &B256::ZERO).is_err());
    }
}
