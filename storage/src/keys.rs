//! Key layouts. Integers are big-endian so that keys sort numerically.

use alloy_primitives::{Address, B256, U256};

pub const META_HEAD: &[u8] = b"head";
pub const META_CHAIN_ID: &[u8] = b"chain_id";
pub const META_GENESIS: &[u8] = b"genesis_hash";
pub const META_STATE_ACC: &[u8] = b"state_accumulator";
pub const META_SAFETY: &[u8] = b"safety";
pub const META_COMMIT_PROOF: &[u8] = b"commit_proof";

pub fn number(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

pub fn slot(address: &Address, slot: &U256) -> [u8; 52] {
    let mut k = [0u8; 52];
    k[..20].copy_from_slice(address.as_slice());
    k[20..].copy_from_slice(&slot.to_be_bytes::<32>());
    k
}

pub fn tx_location(number: u64, index: u32) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..8].copy_from_slice(&number.to_be_bytes());
    v[8..].copy_from_slice(&index.to_be_bytes());
    v
}

pub fn parse_tx_location(v: &[u8]) -> Option<(u64, u32)> {
    let n = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let i = u32::from_be_bytes(v.get(8..12)?.try_into().ok()?);
    Some((n, i))
}

pub fn parse_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

pub fn parse_b256(v: &[u8]) -> Option<B256> {
    (v.len() == 32).then(|| B256::from_slice(v))
}

/// The sequence number of a mempool journal key; None for the older hash-keyed entries.
pub fn journal_seq(key: &[u8]) -> Option<u64> {
    parse_u64(key)
}
