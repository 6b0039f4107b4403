//! One page of block sync.
//!
//! A page holds up to `sync_batch` full blocks with their certificates (fewer when they would
//! take more than half a frame: see [`page`]), plus the evidence that
//! the last of them is committed: the headers from it to the first block `n` whose child is
//! certified exactly one round later (a direct 2-chain commit), and that child with its QC as
//! the commit proof. On a healthy chain that is one header; after a run of timeouts a few more;
//! at the head, the stored commit proof of the head. The page is therefore bounded by
//! `sync_batch` blocks and [`MAX_LINK_HEADERS`] headers whatever the chain's length, and
//! `more` tells the requester to ask for the next page.

use crate::network::wire::WireMessage;
use bss_consensus::{codec, BlockHeader, CommitProof};
use bss_storage::{StorageError, StoreReader};

/// Most headers one page carries to link its last block to a commit proof.
pub const MAX_LINK_HEADERS: u64 = 4_096;

/// The page starting at `from`, or None when there is nothing to send (or no evidence within
/// [`MAX_LINK_HEADERS`]). Its blocks take at most `max_bytes` encoded (always at least one
/// block): a page of full blocks larger than the peer's frame cap would be refused whole, and
/// the requester would ask for it again forever.
pub fn page(
    reader: &StoreReader,
    from: u64,
    batch: u32,
    max_bytes: usize,
) -> Result<Option<WireMessage>, StorageError> {
    let Some(head) = reader.head_number()? else { return Ok(None) };
    if from == 0 || from > head {
        return Ok(None);
    }
    let mut last = head.min(from.saturating_add(u64::from(batch.max(1)) - 1));
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    for n in from..=last {
        let Some(b) = reader.committed_block(n)? else { return Ok(None) };
        let size = codec::encode(&b).map_or(usize::MAX, |v| v.len());
        if !blocks.is_empty() && bytes.saturating_add(size) > max_bytes {
            last = n - 1;
            break;
        }
        bytes = bytes.saturating_add(size);
        blocks.push(b);
    }
    let Some(mut cursor) = blocks.last().map(|(b, _)| b.header.clone()) else { return Ok(None) };
    let mut headers: Vec<BlockHeader> = Vec::new();
    let proof = loop {
        if cursor.number == head {
            break reader.commit_proof()?;
        }
        let (Some(child), Some(child_qc)) = (reader.header(cursor.number + 1)?, reader.certificate(cursor.number + 1)?)
        else {
            return Ok(None);
        };
        if child.round == cursor.round + 1 && child_qc.block_hash == child.hash() {
            break Some(CommitProof { child, child_qc });
        }
        if headers.len() as u64 >= MAX_LINK_HEADERS {
            tracing::warn!(target: "sync", from, "no direct commit within {MAX_LINK_HEADERS} blocks; sync page not served");
            return Ok(None);
        }
        headers.push(child.clone());
        cursor = child;
    };
    Ok(Some(WireMessage::SyncResponse { blocks, headers, proof, more: last < head }))
}

/// What a request from `from` gets: its page, or an empty last page when there is nothing to
/// send (the requester is not ahead of us, or no evidence is at hand). Without an answer the
/// requester would wait out a round timeout before asking anyone again.
pub fn answer(reader: &StoreReader, from: u64, batch: u32, max_bytes: usize) -> Result<WireMessage, StorageError> {
    Ok(page(reader, from, batch, max_bytes)?.unwrap_or_else(|| {
        tracing::debug!(target: "sync", from, "nothing to serve: an empty last page");
        WireMessage::SyncResponse { blocks: vec![], headers: vec![], proof: None, more: false }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Bytes, B256};
    use bss_consensus::{Block, Certificate};
    use bss_storage::{BlockBody, CommitBatch, GenesisBatch, StateChanges, StorageService, Store};

    fn header(number: u64, parent: B256) -> BlockHeader {
        BlockHeader { chain_id: 9, number, parent_hash: parent, round: number, ..Default::default() }
    }

    /// A store holding blocks 1..=n of ten 1 KiB "transactions" each, on consecutive rounds.
    fn chain_of(n: u64) -> (tempfile::TempDir, StoreReader) {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path(), false).expect("open");
        let genesis = Block { header: header(0, B256::ZERO), transactions: vec![] };
        let mut parent = genesis.hash();
        store.init_genesis(9, &GenesisBatch { block: genesis, changes: StateChanges::default() }).expect("genesis");
        let storage = StorageService::spawn(store.clone(), 4).expect("service");
        for number in 1..=n {
            let txs: Vec<Bytes> = (0..10u8).map(|i| Bytes::from(vec![i; 1024])).collect();
            let block = Block { header: header(number, parent), transactions: txs.clone() };
            parent = block.hash();
            let certificate =
                Certificate { chain_id: 9, round: number, block_hash: parent, signatures: vec![], hotstuff_rs: None };
            let body = BlockBody {
                tx_hashes: txs.iter().map(alloy_primitives::keccak256).collect(),
                senders: vec![Default::default(); txs.len()],
                transactions: txs,
            };
            let changes = StateChanges::default();
            let batch = CommitBatch { block, certificate, proof: None, body, receipts: vec![], changes };
            storage.commit_blocking(batch).expect("commit");
        }
        (dir, store.reader())
    }

    fn blocks_in(page: Option<WireMessage>) -> (Vec<u64>, bool) {
        match page {
            Some(WireMessage::SyncResponse { blocks, more, .. }) => {
                (blocks.iter().map(|(b, _)| b.number()).collect(), more)
            }
            other => panic!("expected a page, got {other:?}"),
        }
    }

    #[test]
    fn a_page_holds_at_most_its_block_count_and_its_byte_budget() {
        let (_dir, reader) = chain_of(12);
        let (blocks, more) = blocks_in(page(&reader, 1, 5, usize::MAX).expect("page"));
        assert_eq!((blocks, more), ((1..=5).collect(), true));
        // Each block takes a little over 10 KiB encoded: a 35 KiB budget holds three.
        let (blocks, more) = blocks_in(page(&reader, 4, 64, 35 * 1024).expect("page"));
        assert_eq!((blocks, more), ((4..=6).collect(), true));
        // A block larger than the whole budget still goes alone, or sync could never pass it.
        let (blocks, _) = blocks_in(page(&reader, 7, 64, 1).expect("page"));
        assert_eq!(blocks, vec![7]);
        let (blocks, more) = blocks_in(page(&reader, 10, 64, usize::MAX).expect("page"));
        assert_eq!((blocks, more), ((10..=12).collect(), false));
        assert!(page(&reader, 13, 64, usize::MAX).expect("page").is_none(), "nothing past the head");
        // A request past the head is still answered: an empty last page.
        match answer(&reader, 13, 64, usize::MAX).expect("answer") {
            WireMessage::SyncResponse { blocks, headers, proof: None, more: false } => {
                assert!(blocks.is_empty() && headers.is_empty())
            }
            other => panic!("expected an empty last page, got {other:?}"),
        }
    }
}
