//! One page of block sync.
//!
//! A page holds up to `sync_batch` full blocks with their certificates, plus the evidence that
//! the last of them is committed: the headers from it to the first block `n` whose child is
//! certified exactly one round later (a direct 2-chain commit), and that child with its QC as
//! the commit proof. On a healthy chain that is one header; after a run of timeouts a few more;
//! at the head, the stored commit proof of the head. The page is therefore bounded by
//! `sync_batch` blocks and [`MAX_LINK_HEADERS`] headers whatever the chain's length, and
//! `more` tells the requester to ask for the next page.

use crate::network::wire::WireMessage;
use bss_consensus::{BlockHeader, CommitProof};
use bss_storage::{StorageError, StoreReader};

/// Most headers one page carries to link its last block to a commit proof.
pub const MAX_LINK_HEADERS: u64 = 4_096;

/// The page starting at `from`, or None when there is nothing to send (or no evidence within
/// [`MAX_LINK_HEADERS`]).
pub fn page(reader: &StoreReader, from: u64, batch: u32) -> Result<Option<WireMessage>, StorageError> {
    let Some(head) = reader.head_number()? else { return Ok(None) };
    if from == 0 || from > head {
        return Ok(None);
    }
    let last = head.min(from.saturating_add(u64::from(batch.max(1)) - 1));
    let mut blocks = Vec::new();
    for n in from..=last {
        match reader.committed_block(n)? {
            Some(b) => blocks.push(b),
            None => return Ok(None),
        }
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
