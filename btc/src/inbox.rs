//! The Bitcoin inbox: messages to the L2 that anyone can post in Bitcoin, found by the watcher
//! and acted on by every replica at the same L2 block (DESIGN.md §6). Today it carries forced
//! L2 transactions; tunnel deposits will ride the same inbox.
//!
//! A forced transaction is a signed L2 tx in a taproot script-path spend (the "reveal" tx) whose
//! leaf script is
//! `<x-only key> OP_CHECKSIG OP_FALSE OP_IF "bssf" <chain_id u32 BE> <raw tx in ≤ 520-byte pushes> OP_ENDIF`.
//! It falls due in the L2 block whose Bitcoin headers bring in the height at which the reveal
//! tx has `forced_confirmations` confirmations.

use super::index::BtcIndex;
use alloy_primitives::{keccak256, Bytes, B256};
use bitcoin::hashes::Hash;
use bitcoin::opcodes::all::{OP_CHECKSIG, OP_ENDIF, OP_IF};
use bitcoin::script::{Builder, Instruction, PushBytesBuf};
use bitcoin::{BlockHash, Script, ScriptBuf, Transaction, Txid, XOnlyPublicKey};
use serde::{Deserialize, Serialize};

/// Tag of a forced-transaction envelope.
pub const FORCED_TAG: &[u8; 4] = b"bssf";
/// Most inbox messages taken from one Bitcoin block (the first ones, in block order, that the
/// [`InboxFilter`] accepts): what an L2 block has to execute first stays bounded whatever is
/// posted to Bitcoin, and envelopes of other chains or junk cannot crowd out this chain's.
pub const MAX_MESSAGES_PER_BLOCK: usize = 64;

/// Which envelopes the index keeps, and counts towards [`MAX_MESSAGES_PER_BLOCK`]: those for
/// this chain whose payload decodes as a signed L2 transaction. The decoder is the hVM's, given
/// by the node (this crate knows no L2 transaction format).
#[derive(Clone, Copy, Debug, Default)]
pub struct InboxFilter {
    /// Only envelopes for this chain id (None: every chain).
    pub chain_id: Option<u32>,
    /// Only payloads this accepts (None: every payload).
    pub decodes: Option<fn(&[u8]) -> bool>,
}

impl InboxFilter {
    /// Every envelope, of every chain (tools and tests that read the inbox whole).
    pub fn any() -> Self {
        Self { chain_id: None, decodes: None }
    }

    pub fn accepts(&self, chain_id: u32, raw: &[u8]) -> bool {
        self.chain_id.is_none_or(|c| c == chain_id) && self.decodes.is_none_or(|d| d(raw))
    }
}
/// Largest raw L2 transaction an envelope may carry.
pub const MAX_FORCED_TX_BYTES: usize = 128 * 1024;
/// Largest push Bitcoin's script interpreter allows.
pub const MAX_PUSH: usize = 520;

/// A forced L2 transaction seen in a Bitcoin block of the best chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMessage {
    pub height: u64,
    pub block: BlockHash,
    pub txid: Txid,
    /// Position among the block's inbox messages.
    pub position: u32,
    pub chain_id: u32,
    pub raw: Vec<u8>,
}

impl InboxMessage {
    /// keccak256 of the L2 tx: its L2 transaction hash.
    pub fn tx_hash(&self) -> B256 {
        keccak256(&self.raw)
    }

    /// The reveal txid in display order (as Bitcoin tools print it).
    pub fn txid_display(&self) -> B256 {
        let mut b = self.txid.to_byte_array();
        b.reverse();
        B256::from(b)
    }
}

/// The envelope leaf script carrying `raw` for `chain_id`, spendable by `key`.
pub fn envelope_script(key: &XOnlyPublicKey, chain_id: u32, raw: &[u8]) -> ScriptBuf {
    let mut b = Builder::new()
        .push_x_only_key(key)
        .push_opcode(OP_CHECKSIG)
        .push_opcode(bitcoin::opcodes::OP_FALSE)
        .push_opcode(OP_IF)
        .push_slice(FORCED_TAG)
        .push_slice(chain_id.to_be_bytes());
    for chunk in chunks(raw) {
        // A chunk is 2..=520 bytes: never a 0- or 1-byte push, which minimal-push rules would
        // want written as OP_0 / OP_N.
        let push = PushBytesBuf::try_from(chunk.to_vec()).unwrap_or_default();
        b = b.push_slice(push);
    }
    b.push_opcode(OP_ENDIF).into_script()
}

/// Splits `raw` into pushes of at most 520 bytes, none shorter than 2.
fn chunks(raw: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = raw.chunks(MAX_PUSH).collect();
    let n = out.len();
    if n >= 2 && out[n - 1].len() < 2 {
        // Rebalance the last two: 520 + 1 → 519 + 2.
        let start = (n - 2) * MAX_PUSH;
        out[n - 2] = &raw[start..raw.len() - 2];
        out[n - 1] = &raw[raw.len() - 2..];
    }
    out
}

/// Parses a leaf script as a forced-tx envelope: (chain id, raw tx).
pub fn parse_envelope(script: &Script) -> Option<(u32, Vec<u8>)> {
    let mut it = script.instructions();
    let mut next = || it.next()?.ok();
    match next()? {
        Instruction::PushBytes(k) if k.len() == 32 => {}
        _ => return None,
    }
    if next()? != Instruction::Op(OP_CHECKSIG) {
        return None;
    }
    match next()? {
        Instruction::PushBytes(b) if b.is_empty() => {}
        _ => return None,
    }
    if next()? != Instruction::Op(OP_IF) {
        return None;
    }
    match next()? {
        Instruction::PushBytes(b) if b.as_bytes() == FORCED_TAG => {}
        _ => return None,
    }
    let chain_id = match next()? {
        Instruction::PushBytes(b) => u32::from_be_bytes(b.as_bytes().try_into().ok()?),
        _ => return None,
    };
    let mut raw = Vec::new();
    loop {
        match next()? {
            Instruction::PushBytes(b) => {
                raw.extend_from_slice(b.as_bytes());
                if raw.len() > MAX_FORCED_TX_BYTES {
                    return None;
                }
            }
            Instruction::Op(op) if op == OP_ENDIF => break,
            Instruction::Op(_) => return None,
        }
    }
    // Nothing may follow the envelope.
    if next().is_some() || raw.is_empty() {
        return None;
    }
    Some((chain_id, raw))
}

/// Forced-tx envelopes in a transaction's script-path spends, in input order.
pub fn envelopes(tx: &Transaction) -> Vec<(u32, Vec<u8>)> {
    tx.input
        .iter()
        .filter_map(|i| i.witness.taproot_leaf_script())
        .filter(|l| l.version == bitcoin::taproot::LeafVersion::TapScript)
        .filter_map(|l| parse_envelope(l.script))
        .collect()
}

/// Inbox messages of a block that `filter` accepts, bounded by [`MAX_MESSAGES_PER_BLOCK`].
pub fn messages_in(
    height: u64,
    block: &BlockHash,
    txs: &[(Txid, &Transaction)],
    filter: &InboxFilter,
) -> Vec<InboxMessage> {
    let mut out = Vec::new();
    for (txid, tx) in txs {
        if tx.is_coinbase() {
            continue;
        }
        for (chain_id, raw) in envelopes(tx).into_iter().filter(|(c, raw)| filter.accepts(*c, raw)) {
            if out.len() == MAX_MESSAGES_PER_BLOCK {
                return out;
            }
            let position = out.len() as u32;
            out.push(InboxMessage { height, block: *block, txid: *txid, position, chain_id, raw });
        }
    }
    out
}

/// A forced L2 transaction due in a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForcedTx {
    pub btc_txid: B256,
    pub btc_height: u64,
    pub raw: Bytes,
}

/// Bitcoin heights whose inbox messages fall due when Bitcoin headers `first..=last` come into
/// an L2 block's view: those at which the new headers give `confirmations` confirmations.
pub fn due_heights(first: u64, last: u64, confirmations: u64) -> std::ops::RangeInclusive<u64> {
    let back = confirmations.saturating_sub(1);
    match (first.checked_sub(back), last.checked_sub(back)) {
        (Some(a), Some(b)) => a..=b,
        (None, Some(b)) => 0..=b,
        // Nothing has enough confirmations yet.
        _ => std::ops::RangeInclusive::new(1, 0),
    }
}

/// The forced transactions for `chain_id` due in an L2 block whose view adds Bitcoin heights
/// `first..=last` (read from `view`, whose best chain must hold that block's tip), in Bitcoin
/// order.
pub fn forced_due(view: &BtcIndex, first: u64, last: u64, confirmations: u64, chain_id: u64) -> Vec<ForcedTx> {
    if first > last {
        return vec![];
    }
    let heights = due_heights(first, last, confirmations);
    view.inbox_between(*heights.start(), *heights.end())
        .into_iter()
        .filter(|m| u64::from(m.chain_id) == chain_id)
        .map(|m| ForcedTx { btc_txid: m.txid_display(), btc_height: m.height, raw: Bytes::from(m.raw) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Keypair, Secp256k1};

    fn key() -> XOnlyPublicKey {
        let secp = Secp256k1::new();
        Keypair::from_seckey_slice(&secp, &[7u8; 32]).expect("key").x_only_public_key().0
    }

    #[test]
    fn envelope_roundtrips_for_every_size_and_rejects_lookalikes() {
        for len in [1usize, 2, 519, 520, 521, 522, 1040, 1041, 5000] {
            let raw: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
            let script = envelope_script(&key(), 0x0539, &raw);
            assert_eq!(parse_envelope(&script), Some((0x0539, raw.clone())), "len {len}");
            for c in chunks(&raw) {
                assert!(c.len() >= 2.min(len) && c.len() <= MAX_PUSH);
            }
        }
        let raw = vec![1u8; 100];
        let good = envelope_script(&key(), 5, &raw);
        // Wrong tag, trailing opcodes, empty payload: not envelopes.
        let wrong_tag =
            ScriptBuf::from_bytes(good.as_bytes().iter().map(|b| if *b == b'f' { b'g' } else { *b }).collect());
        assert_eq!(parse_envelope(&wrong_tag), None);
        let mut trailing = good.to_bytes();
        trailing.push(OP_CHECKSIG.to_u8());
        assert_eq!(parse_envelope(&ScriptBuf::from_bytes(trailing)), None);
        assert_eq!(parse_envelope(&envelope_script(&key(), 5, &[])), None);
        // Oversized payloads are not taken.
        assert_eq!(parse_envelope(&envelope_script(&key(), 5, &vec![1u8; MAX_FORCED_TX_BYTES + 1])), None);
    }

    #[test]
    fn due_heights_follow_confirmations() {
        // Headers 105..=107 arrive; with 6 confirmations, txs at 100..=102 fall due.
        assert_eq!(due_heights(105, 107, 6), 100..=102);
        assert_eq!(due_heights(3, 4, 6).count(), 0);
        assert_eq!(due_heights(3, 7, 6), 0..=2);
        assert_eq!(due_heights(10, 10, 1), 10..=10);
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;
    use crate::forced_tx::ForcedPoster;
    use crate::testkit::{mine_chain, mine_on, TestIndex};
    use bitcoin::{Network, OutPoint};

    /// Reveals at heights 2 and 4 (one for another chain at 4): the index finds them by height,
    /// and each falls due when the headers bring in its sixth confirmation.
    #[test]
    fn envelopes_are_indexed_by_height_and_fall_due_with_confirmations() {
        let poster = ForcedPoster::new([5; 32], Network::Regtest).expect("key");
        let coin = OutPoint::new(bitcoin::Txid::all_zeros(), 0);
        let reveal = |chain: u32, raw: &[u8]| poster.post(coin, 1_000_000, chain, raw, 1.0).expect("post").reveal;
        let mut blocks = mine_chain(None, 2, 1);
        blocks.push(mine_on(&blocks[1], vec![reveal(7, b"tx at two")], 1));
        blocks.push(mine_on(&blocks[2], vec![], 1));
        blocks.push(mine_on(&blocks[3], vec![reveal(7, b"tx at four"), reveal(8, b"other chain")], 1));
        for _ in 0..6 {
            let b = mine_on(blocks.last().expect("tip"), vec![], 1);
            blocks.push(b);
        }
        let index = TestIndex::of(&blocks);
        let view = index.view();
        let at = |a, b| view.inbox_between(a, b).into_iter().map(|m| m.raw).collect::<Vec<_>>();
        assert_eq!(at(2, 2), vec![b"tx at two".to_vec()]);
        assert_eq!(at(3, 3), Vec::<Vec<u8>>::new());
        assert_eq!(at(0, 10).len(), 3);
        // Headers 7..=8 arrive: height 2 has its sixth confirmation at 7, height 4 not yet.
        let due: Vec<Bytes> = forced_due(&view, 7, 8, 6, 7).into_iter().map(|f| f.raw).collect();
        assert_eq!(due, vec![Bytes::from_static(b"tx at two")]);
        let due: Vec<Bytes> = forced_due(&view, 9, 9, 6, 7).into_iter().map(|f| f.raw).collect();
        assert_eq!(due, vec![Bytes::from_static(b"tx at four")], "chain 8's envelope is not ours");
        assert!(forced_due(&view, 10, 10, 6, 7).is_empty());
        assert_eq!(view.inbox_by_tx_hash(&keccak256(b"tx at four")).map(|m| m.height), Some(4));
    }

    /// Issue 31, item 5: one Bitcoin tx with 64 envelopes of another chain (or junk) ahead of
    /// this chain's forced tx used to fill the block's cap; the cap now counts only what the
    /// filter accepts.
    #[test]
    fn other_chains_and_junk_do_not_count_towards_the_cap() {
        let poster = ForcedPoster::new([5; 32], Network::Regtest).expect("key");
        let coin = OutPoint::new(bitcoin::Txid::all_zeros(), 0);
        let reveal = |chain: u32, raw: &[u8]| poster.post(coin, 1_000_000, chain, raw, 1.0).expect("post").reveal;
        let mut crowd: Vec<bitcoin::Transaction> =
            (0..MAX_MESSAGES_PER_BLOCK as u32).map(|i| reveal(8, &i.to_be_bytes())).collect();
        crowd.extend((0..MAX_MESSAGES_PER_BLOCK as u32).map(|i| reveal(7, &[b'j', i as u8])));
        crowd.push(reveal(7, b"ok: a real tx"));
        let txids: Vec<Txid> = crowd.iter().map(|t| t.compute_txid()).collect();
        let with_ids: Vec<_> = txids.iter().copied().zip(crowd.iter()).collect();
        let hash = BlockHash::all_zeros();
        assert_eq!(messages_in(3, &hash, &with_ids, &InboxFilter::any()).len(), MAX_MESSAGES_PER_BLOCK);
        let ours = InboxFilter { chain_id: Some(7), decodes: Some(|raw| raw.starts_with(b"ok")) };
        let kept = messages_in(3, &hash, &with_ids, &ours);
        assert_eq!(kept.iter().map(|m| m.raw.clone()).collect::<Vec<_>>(), vec![b"ok: a real tx".to_vec()]);
        assert_eq!(kept[0].position, 0);
    }
}
