//! The keystone (DESIGN.md §7): a committed L2 header anchored in Bitcoin, exactly 80 bytes in one
//! OP_RETURN output:
//! `"BSS" | version u8 | chain_id u32 BE | l2_number u32 BE | btc_ref_height u32 BE |
//!  l2_block_hash [32] | state_root [32]`.

use alloy_primitives::B256;
use bss_consensus::BlockHeader;

pub const MAGIC: &[u8; 3] = b"BSS";
pub const VERSION: u8 = 1;
pub const LEN: usize = 80;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keystone {
    pub chain_id: u32,
    pub l2_number: u32,
    /// The Bitcoin tip the L2 block builds on (its BTC attributes).
    pub btc_ref_height: u32,
    pub l2_hash: B256,
    pub state_root: B256,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoneError {
    #[error("a keystone is {LEN} bytes, got {0}")]
    Length(usize),
    #[error("not a keystone (magic)")]
    Magic,
    #[error("keystone version {0} is unknown")]
    Version(u8),
}

impl Keystone {
    pub fn of(header: &BlockHeader) -> Self {
        Self {
            chain_id: header.chain_id as u32,
            l2_number: header.number as u32,
            btc_ref_height: header.btc.tip_height as u32,
            l2_hash: header.hash(),
            state_root: header.state_root,
        }
    }

    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[..3].copy_from_slice(MAGIC);
        out[3] = VERSION;
        out[4..8].copy_from_slice(&self.chain_id.to_be_bytes());
        out[8..12].copy_from_slice(&self.l2_number.to_be_bytes());
        out[12..16].copy_from_slice(&self.btc_ref_height.to_be_bytes());
        out[16..48].copy_from_slice(self.l2_hash.as_slice());
        out[48..80].copy_from_slice(self.state_root.as_slice());
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, KeystoneError> {
        if b.len() != LEN {
            return Err(KeystoneError::Length(b.len()));
        }
        if &b[..3] != MAGIC {
            return Err(KeystoneError::Magic);
        }
        if b[3] != VERSION {
            return Err(KeystoneError::Version(b[3]));
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(Self {
            chain_id: u32_at(4),
            l2_number: u32_at(8),
            btc_ref_height: u32_at(12),
            l2_hash: B256::from_slice(&b[16..48]),
            state_root: B256::from_slice(&b[48..80]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eighty_bytes_roundtrip_and_bad_input() {
        let k = Keystone {
            chain_id: 1337,
            l2_number: 42,
            btc_ref_height: 101,
            l2_hash: B256::repeat_byte(7),
            state_root: B256::repeat_byte(9),
        };
        let b = k.encode();
        assert_eq!(b.len(), 80);
        assert_eq!(&b[..4], b"BSS\x01");
        assert_eq!(Keystone::decode(&b), Ok(k));
        assert_eq!(Keystone::decode(&b[..79]), Err(KeystoneError::Length(79)));
        let mut wrong = b;
        wrong[0] = b'X';
        assert_eq!(Keystone::decode(&wrong), Err(KeystoneError::Magic));
        wrong = b;
        wrong[3] = 9;
        assert_eq!(Keystone::decode(&wrong), Err(KeystoneError::Version(9)));
    }
}
