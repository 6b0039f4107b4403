//! The keystone (DESIGN.md §7), version 3: a committed L2 header's statement and the federation's
//! certificate over it.
//!
//! Statement, 56 bytes:
//! `"BSS" | 0x03 | chain_id u32 BE | epoch u32 BE | l2_number u64 BE | btc_ref_height u32 BE |
//! l2_block_hash [32]`. Every operator of the epoch signs exactly these bytes with its ed25519
//! operator key (the `"BSS\x03"` prefix keeps them apart from votes, `"bss/vote…"`, and from
//! hotstuff-rs's 49-byte votes). Signatures of a quorum (2f+1) make the certificate: a signer
//! bitmap (bit i of byte i/8, least significant first, = operator i; ⌈n/8⌉ bytes) and the
//! signatures in operator order.
//!
//! Canonical encoding (what the index stores, RPC serves and `bss verify` reads):
//! `statement [56] | bitmap_len u8 | bitmap | signatures [64 × popcount]`. In Bitcoin it rides in
//! the witness of a tapscript spend ([`crate::pop_tx`]) as `statement ‖ bitmap` (one item of at
//! most 80 bytes, policy's `MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE`) then one 64-byte item per
//! signature: [`CertifiedKeystone::witness_items`] and [`CertifiedKeystone::from_witness_items`].
//!
//! Version 2 (52 bytes in an OP_RETURN, counted when an operator's keystone key paid for it) is
//! recognised only to be ignored: see [`super::finality`]. Version 1 (80 bytes) is unknown.

use alloy_primitives::B256;
use bss_consensus::{BlockHeader, OperatorSet};

pub const MAGIC: &[u8; 3] = b"BSS";
pub const VERSION: u8 = 3;
/// The version whose keystones counted by who paid for them (now never counted).
pub const VERSION_2: u8 = 2;
pub const STATEMENT_LEN: usize = 56;
/// Largest witness item standard policy relays in a tapscript spend.
pub const MAX_WITNESS_ITEM: usize = 80;
/// Largest signer bitmap: what fits beside the statement in one standard witness item (192
/// operators).
pub const MAX_BITMAP: usize = MAX_WITNESS_ITEM - STATEMENT_LEN;
pub const SIGNATURE_LEN: usize = 64;

/// What the federation signs: one committed L2 block and the Bitcoin tip it builds on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Keystone {
    pub chain_id: u32,
    /// The operator set's epoch the block belongs to (0 until epochs exist).
    pub epoch: u32,
    pub l2_number: u64,
    /// The Bitcoin tip the L2 block builds on (its BTC attributes).
    pub btc_ref_height: u32,
    pub l2_hash: B256,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoneError {
    #[error("a keystone statement is {STATEMENT_LEN} bytes, got {0}")]
    Length(usize),
    #[error("not a keystone (magic)")]
    Magic,
    #[error("keystone version {0} is not {VERSION}")]
    Version(u8),
    #[error("signer bitmap of {0} bytes (1..={MAX_BITMAP})")]
    Bitmap(usize),
    #[error("{signers} signers in the bitmap but {signatures} signatures")]
    Signatures { signers: usize, signatures: usize },
    #[error("signature item of {0} bytes, not {SIGNATURE_LEN}")]
    SignatureLength(usize),
    #[error("certificate: {0}")]
    Certificate(String),
}

impl Keystone {
    pub fn of(header: &BlockHeader, epoch: u32) -> Self {
        Self {
            // The L2 chain id and Bitcoin heights fit in 32 bits by configuration (chain ids are
            // checked at start-up); a larger one would be truncated identically by every operator.
            chain_id: header.chain_id as u32,
            epoch,
            l2_number: header.number,
            btc_ref_height: header.btc.tip_height as u32,
            l2_hash: header.hash(),
        }
    }

    /// The 56 bytes every operator signs.
    pub fn statement(&self) -> [u8; STATEMENT_LEN] {
        let mut out = [0u8; STATEMENT_LEN];
        out[..3].copy_from_slice(MAGIC);
        out[3] = VERSION;
        out[4..8].copy_from_slice(&self.chain_id.to_be_bytes());
        out[8..12].copy_from_slice(&self.epoch.to_be_bytes());
        out[12..20].copy_from_slice(&self.l2_number.to_be_bytes());
        out[20..24].copy_from_slice(&self.btc_ref_height.to_be_bytes());
        out[24..56].copy_from_slice(self.l2_hash.as_slice());
        out
    }

    pub fn from_statement(b: &[u8]) -> Result<Self, KeystoneError> {
        check_prefix(b)?;
        let b: &[u8; STATEMENT_LEN] = b.try_into().map_err(|_| KeystoneError::Length(b.len()))?;
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut n = [0u8; 8];
        n.copy_from_slice(&b[12..20]);
        Ok(Self {
            chain_id: u32_at(4),
            epoch: u32_at(8),
            l2_number: u64::from_be_bytes(n),
            btc_ref_height: u32_at(20),
            l2_hash: B256::from_slice(&b[24..56]),
        })
    }
}

/// Magic and version of any keystone-shaped bytes.
fn check_prefix(b: &[u8]) -> Result<(), KeystoneError> {
    if b.len() < 4 {
        return Err(KeystoneError::Length(b.len()));
    }
    if &b[..3] != MAGIC {
        return Err(KeystoneError::Magic);
    }
    if b[3] != VERSION {
        return Err(KeystoneError::Version(b[3]));
    }
    Ok(())
}

/// The version byte of keystone-shaped bytes (`"BSS"` then a version), if they have one.
pub fn version_of(b: &[u8]) -> Option<u8> {
    (b.len() >= 4 && &b[..3] == MAGIC).then(|| b[3])
}

/// A keystone and the signatures of the operators who signed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedKeystone {
    pub keystone: Keystone,
    /// Signers' operator indices, ascending, each once.
    pub signers: Vec<u16>,
    /// One per signer, in the same order.
    pub signatures: Vec<[u8; SIGNATURE_LEN]>,
}

impl CertifiedKeystone {
    /// Bitmap of `signers` over a set of `operators` (⌈n/8⌉ bytes, at least one).
    fn bitmap(&self, operators: usize) -> Vec<u8> {
        let mut bits = vec![0u8; operators.div_ceil(8).max(1)];
        for s in &self.signers {
            if let Some(b) = bits.get_mut(usize::from(*s) / 8) {
                *b |= 1 << (s % 8);
            }
        }
        bits
    }

    /// The smallest bitmap covering every signer.
    fn own_bitmap(&self) -> Vec<u8> {
        let top = self.signers.iter().max().map_or(1, |m| usize::from(*m) + 1);
        self.bitmap(top)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let bitmap = self.own_bitmap();
        let mut out = Vec::with_capacity(STATEMENT_LEN + 1 + bitmap.len() + SIGNATURE_LEN * self.signatures.len());
        out.extend_from_slice(&self.keystone.statement());
        out.push(bitmap.len() as u8);
        out.extend_from_slice(&bitmap);
        for s in &self.signatures {
            out.extend_from_slice(s);
        }
        out
    }

    /// Decodes the canonical encoding (bounded: the bitmap and the signatures must account for
    /// every byte).
    pub fn decode(b: &[u8]) -> Result<Self, KeystoneError> {
        check_prefix(b)?;
        if b.len() < STATEMENT_LEN + 1 {
            return Err(KeystoneError::Length(b.len()));
        }
        let keystone = Keystone::from_statement(&b[..STATEMENT_LEN])?;
        let len = usize::from(b[STATEMENT_LEN]);
        let rest = &b[STATEMENT_LEN + 1..];
        if len == 0 || len > MAX_BITMAP || rest.len() < len {
            return Err(KeystoneError::Bitmap(len));
        }
        let (bitmap, sigs) = rest.split_at(len);
        Self::assemble(keystone, bitmap, sigs.chunks(SIGNATURE_LEN))
    }

    fn assemble<'a>(
        keystone: Keystone,
        bitmap: &[u8],
        sigs: impl ExactSizeIterator<Item = &'a [u8]>,
    ) -> Result<Self, KeystoneError> {
        // Canonical: the last bitmap byte is not empty (no trailing zero bytes).
        if bitmap.len() > MAX_BITMAP || bitmap.last().is_none_or(|b| *b == 0) {
            return Err(KeystoneError::Bitmap(bitmap.len()));
        }
        let signers: Vec<u16> =
            (0..bitmap.len() * 8).filter(|i| bitmap[i / 8] & (1 << (i % 8)) != 0).map(|i| i as u16).collect();
        if signers.len() != sigs.len() {
            return Err(KeystoneError::Signatures { signers: signers.len(), signatures: sigs.len() });
        }
        let signatures = sigs
            .map(|s| <[u8; SIGNATURE_LEN]>::try_from(s).map_err(|_| KeystoneError::SignatureLength(s.len())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keystone, signers, signatures })
    }

    /// The witness data items: `statement ‖ bitmap`, then each signature.
    pub fn witness_items(&self) -> Vec<Vec<u8>> {
        let mut first = self.keystone.statement().to_vec();
        first.extend(self.own_bitmap());
        std::iter::once(first).chain(self.signatures.iter().map(|s| s.to_vec())).collect()
    }

    pub fn from_witness_items(items: &[&[u8]]) -> Result<Self, KeystoneError> {
        let (first, sigs) = items.split_first().ok_or(KeystoneError::Length(0))?;
        check_prefix(first)?;
        if first.len() <= STATEMENT_LEN {
            return Err(KeystoneError::Length(first.len()));
        }
        let keystone = Keystone::from_statement(&first[..STATEMENT_LEN])?;
        Self::assemble(keystone, &first[STATEMENT_LEN..], sigs.iter().copied())
    }

    /// Whether a quorum of `set`'s operators signed this statement: every signer is in the set,
    /// every signature verifies, and there are at least `set.quorum()` of them.
    pub fn verify(&self, set: &OperatorSet) -> Result<(), KeystoneError> {
        let need = set.quorum();
        if set.is_empty() || self.signers.len() < need {
            return Err(KeystoneError::Certificate(format!("{} signers, {need} needed", self.signers.len())));
        }
        let statement = self.keystone.statement();
        for (op, sig) in self.signers.iter().zip(&self.signatures) {
            set.verify(*op, &statement, sig).map_err(|e| KeystoneError::Certificate(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
