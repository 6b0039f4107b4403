//! The keystone (DESIGN.md §7): a committed L2 header anchored in Bitcoin, version 2, exactly 52
//! bytes in one OP_RETURN output:
//! `"BSS" | 0x02 | chain_id u32 BE | l2_number u64 BE | btc_ref_height u32 BE | l2_block_hash [32]`.
//!
//! Version 1 (80 bytes) also carried the state root; the block hash already commits to it, and
//! its 32-bit L2 number would wrap. Payloads of any other version are not keystones. Who may
//! write a keystone that counts is decided in [`super::finality`], not here: anyone can post
//! these bytes to Bitcoin.

use alloy_primitives::B256;
use bss_consensus::BlockHeader;

pub const MAGIC: &[u8; 3] = b"BSS";
pub const VERSION: u8 = 2;
pub const LEN: usize = 52;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keystone {
    pub chain_id: u32,
    pub l2_number: u64,
    /// The Bitcoin tip the L2 block builds on (its BTC attributes).
    pub btc_ref_height: u32,
    pub l2_hash: B256,
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
            // The L2 chain id and Bitcoin heights fit in 32 bits by configuration (chain ids are
            // checked at start-up); a larger one would be truncated identically by every operator.
            chain_id: header.chain_id as u32,
            l2_number: header.number,
            btc_ref_height: header.btc.tip_height as u32,
            l2_hash: header.hash(),
        }
    }

    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[..3].copy_from_slice(MAGIC);
        out[3] = VERSION;
        out[4..8].copy_from_slice(&self.chain_id.to_be_bytes());
        out[8..16].copy_from_slice(&self.l2_number.to_be_bytes());
        out[16..20].copy_from_slice(&self.btc_ref_height.to_be_bytes());
        out[20..52].copy_from_slice(self.l2_hash.as_slice());
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, KeystoneError> {
        if b.len() < 4 || &b[..3] != MAGIC {
            return Err(if b.len() < 4 { KeystoneError::Length(b.len()) } else { KeystoneError::Magic });
        }
        if b[3] != VERSION {
            return Err(KeystoneError::Version(b[3]));
        }
        let b: &[u8; LEN] = b.try_into().map_err(|_| KeystoneError::Length(b.len()))?;
        let mut u32_at = [0u8; 4];
        let mut u64_at = [0u8; 8];
        u32_at.copy_from_slice(&b[4..8]);
        let chain_id = u32::from_be_bytes(u32_at);
        u64_at.copy_from_slice(&b[8..16]);
        let l2_number = u64::from_be_bytes(u64_at);
        u32_at.copy_from_slice(&b[16..20]);
        let btc_ref_height = u32::from_be_bytes(u32_at);
        Ok(Self { chain_id, l2_number, btc_ref_height, l2_hash: B256::from_slice(&b[20..52]) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fifty_two_bytes_roundtrip_and_bad_input() {
        let k =
            Keystone { chain_id: 1337, l2_number: u64::MAX - 1, btc_ref_height: 101, l2_hash: B256::repeat_byte(7) };
        let b = k.encode();
        assert_eq!(b.len(), 52);
        assert_eq!(&b[..4], b"BSS\x02");
        assert_eq!(Keystone::decode(&b), Ok(k));
        assert_eq!(Keystone::decode(&b[..51]), Err(KeystoneError::Length(51)));
        assert_eq!(Keystone::decode(&b[..2]), Err(KeystoneError::Length(2)));
        let mut wrong = b;
        wrong[0] = b'X';
        assert_eq!(Keystone::decode(&wrong), Err(KeystoneError::Magic));
        wrong = b;
        wrong[3] = 1;
        assert_eq!(Keystone::decode(&wrong), Err(KeystoneError::Version(1)));
        // A version-1 keystone (80 bytes) is not accepted as version 2.
        let mut v1 = [0u8; 80];
        v1[..4].copy_from_slice(b"BSS\x01");
        assert_eq!(Keystone::decode(&v1), Err(KeystoneError::Version(1)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(bss_consensus::proptest_cases(256)))]

        /// Any bytes decode to a keystone or an error, never a panic; every keystone roundtrips.
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(k) = Keystone::decode(&bytes) {
                prop_assert_eq!(&k.encode()[..], &bytes[..]);
            }
        }

        #[test]
        fn encode_decode_roundtrip(chain in any::<u32>(), n in any::<u64>(), h in any::<u32>(), hash in any::<[u8; 32]>()) {
            let k = Keystone { chain_id: chain, l2_number: n, btc_ref_height: h, l2_hash: B256::from(hash) };
            prop_assert_eq!(Keystone::decode(&k.encode()), Ok(k));
        }

        /// A valid keystone with one byte changed still never panics the decoder.
        #[test]
        fn mutated_keystones(i in 0usize..52, v in any::<u8>()) {
            let mut b = Keystone { chain_id: 1, l2_number: 2, btc_ref_height: 3, l2_hash: B256::ZERO }.encode();
            b[i] = v;
            let _ = Keystone::decode(&b);
        }
    }
}
