//! The L2 block (DESIGN.md §3).

use alloy_primitives::{keccak256, Bytes, B256};
use serde::{Deserialize, Serialize};

/// The Bitcoin view a block builds on: its tip and the raw headers that extend the parent's tip.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BtcAttributes {
    pub tip_height: u64,
    pub tip_hash: B256,
    /// At most six raw 80-byte Bitcoin headers extending the parent's tip.
    pub headers: Vec<Bytes>,
}

/// A keystone newly seen confirmed in Bitcoin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub l2_number: u64,
    pub btc_txid: B256,
    pub btc_height: u64,
}

/// A transaction forced in through Bitcoin (DESIGN.md §6) that fell due in this block: executed
/// first, before any other transaction, or skipped with the reason it is invalid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForcedOutcome {
    /// The reveal tx that carries the envelope (display order, as Bitcoin tools print it).
    pub btc_txid: B256,
    pub btc_height: u64,
    /// keccak256 of the raw L2 transaction.
    pub tx_hash: B256,
    /// `None`: executed (it is in the block's transactions); [`CARRIED`]: it did not fit in
    /// what was left of the block's gas, and it runs first in the next block; otherwise why it
    /// was skipped for good.
    pub skipped: Option<String>,
}

/// The `skipped` of a forced tx carried to the next block: it, and every forced tx after it,
/// did not fit in the block's remaining gas. The next block runs the carried ones first, in
/// order, from an empty block (where any valid tx fits), so each runs within as many blocks
/// as there are forced txs ahead of it.
pub const CARRIED: &str = "carried to the next block: does not fit in the block's remaining gas";

impl ForcedOutcome {
    pub fn is_carried(&self) -> bool {
        self.skipped.as_deref() == Some(CARRIED)
    }
}

/// hBTC minted in this block for a Bitcoin deposit to the tunnel vault that reached
/// `tunnel.deposit_confirmations` in this block's Bitcoin view: a system effect every replica
/// derives from the view (no transaction carries it), in Bitcoin order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mint {
    /// The deposit tx (display order, as Bitcoin tools print it).
    pub btc_txid: B256,
    pub btc_height: u64,
    pub recipient: alloy_primitives::Address,
    /// Satoshis paid to the vault = hBTC units minted.
    pub sats: u64,
}

/// The L2 block header. Its hash is keccak256 of its canonical bincode encoding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub chain_id: u64,
    pub number: u64,
    pub parent_hash: B256,
    /// The consensus round (view) in which the block was proposed.
    pub round: u64,
    /// Index of the proposing operator.
    pub proposer: u16,
    pub timestamp_ms: u64,
    pub transactions_root: B256,
    pub receipts_root: B256,
    pub state_root: B256,
    pub gas_used: u64,
    pub gas_limit: u64,
    pub base_fee: u64,
    pub btc: BtcAttributes,
    pub anchors: Vec<Anchor>,
    /// Signed inclusion lists of the parent's voters that this block answers (see
    /// [`crate::inclusion`]).
    pub inclusion: Vec<crate::inclusion::InclusionList>,
    /// Forced transactions that fell due with this block's Bitcoin view, in Bitcoin order.
    pub forced: Vec<ForcedOutcome>,
    /// hBTC mints for the deposits that fell due with this block's Bitcoin view.
    pub mints: Vec<Mint>,
}

impl BlockHeader {
    /// keccak256 of the canonical encoding.
    pub fn hash(&self) -> B256 {
        // Encoding a plain struct of integers, hashes and byte vectors into a Vec cannot fail.
        let bytes = crate::codec::encode(self).unwrap_or_default();
        keccak256(bytes)
    }

    /// Timestamp in whole seconds, as the EVM sees it.
    pub fn timestamp_secs(&self) -> u64 {
        self.timestamp_ms / 1000
    }
}

/// A block: header plus EIP-2718 encoded signed transactions, in execution order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub transactions: Vec<Bytes>,
}

impl Block {
    pub fn hash(&self) -> B256 {
        self.header.hash()
    }

    pub fn number(&self) -> u64 {
        self.header.number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> BlockHeader {
        BlockHeader {
            chain_id: 7,
            number: 1,
            parent_hash: B256::repeat_byte(1),
            round: 3,
            proposer: 0,
            timestamp_ms: 1_700_000_000_000,
            transactions_root: B256::ZERO,
            receipts_root: B256::ZERO,
            state_root: B256::repeat_byte(2),
            gas_used: 0,
            gas_limit: 30_000_000,
            base_fee: 1_000_000_000,
            btc: BtcAttributes::default(),
            anchors: vec![],
            inclusion: vec![],
            forced: vec![],
            mints: vec![],
        }
    }

    #[test]
    fn hash_is_stable_and_sensitive_to_every_field() {
        let a = header();
        assert_eq!(a.hash(), header().hash());
        let mut b = header();
        b.state_root = B256::repeat_byte(3);
        assert_ne!(a.hash(), b.hash());
        let mut c = header();
        c.btc.headers.push(Bytes::from(vec![0u8; 80]));
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn canonical_roundtrip_rejects_trailing_bytes() {
        let bytes = crate::codec::encode(&header()).expect("encode");
        let back: BlockHeader = crate::codec::decode(&bytes).expect("decode");
        assert_eq!(back, header());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(crate::codec::decode::<BlockHeader>(&longer).is_err());
    }
}
