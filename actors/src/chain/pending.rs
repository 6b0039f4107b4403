//! The uncommitted blocks of this node: each held once, with its execution result once it has
//! one, pruned when a block at or below its height commits.

use crate::hvm::ExecutedBlock;
use alloy_primitives::B256;
use bss_consensus::Block;
use std::collections::HashMap;
use std::sync::Arc;

/// Most uncommitted ancestors walked back from one block (the engines keep far fewer).
pub const MAX_ANCESTRY: usize = 256;

#[derive(Clone)]
pub struct Entry {
    pub block: Block,
    pub executed: Option<Arc<ExecutedBlock>>,
}

#[derive(Default)]
pub struct PendingBlocks {
    blocks: HashMap<B256, Entry>,
}

impl PendingBlocks {
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Remembers a block (kept as it is if already known).
    pub fn insert(&mut self, block: Block) {
        self.blocks.entry(block.hash()).or_insert(Entry { block, executed: None });
    }

    /// Records a block's execution result.
    pub fn executed(&mut self, executed: Arc<ExecutedBlock>) {
        let block = executed.block.clone();
        self.blocks.entry(block.hash()).or_insert(Entry { block, executed: None }).executed = Some(executed);
    }

    pub fn result(&self, hash: &B256) -> Option<Arc<ExecutedBlock>> {
        self.blocks.get(hash).and_then(|e| e.executed.clone())
    }

    /// The uncommitted chain from the block after `head` up to `hash`, oldest first. Empty when
    /// `hash` is the head; it starts later than `head` when an ancestor is unknown (the executor
    /// then refuses the unknown parent).
    pub fn chain_to(&self, hash: &B256, head: &B256) -> Vec<Entry> {
        let mut chain = Vec::new();
        let mut cursor = *hash;
        while cursor != *head && chain.len() < MAX_ANCESTRY {
            let Some(e) = self.blocks.get(&cursor) else { break };
            chain.push(e.clone());
            cursor = e.block.header.parent_hash;
        }
        chain.reverse();
        chain
    }

    /// Forgets every block at or below the committed height.
    pub fn prune(&mut self, committed: u64) {
        self.blocks.retain(|_, e| e.block.number() > committed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bss_consensus::BlockHeader;

    fn child(parent: &BlockHeader, salt: u64) -> Block {
        let mut header = parent.clone();
        header.number += 1;
        header.parent_hash = parent.hash();
        header.timestamp_ms = salt;
        Block { header, transactions: vec![] }
    }

    fn genesis() -> BlockHeader {
        crate::hvm::Genesis {
            spec: crate::hvm::ChainSpec {
                chain_id: 1,
                gas_limit: 30_000_000,
                min_base_fee: 1,
                fee_recipient: Default::default(),
                max_tx_size: 1 << 17,
            },
            base_fee: 1,
            timestamp_ms: 0,
            alloc: vec![],
            predeploys: vec![],
            rules_hash: Default::default(),
        }
        .build()
        .0
        .block
        .header
    }

    #[test]
    fn chain_to_walks_back_to_the_head_and_prune_forgets_committed_forks() {
        let g = genesis();
        let a = child(&g, 1);
        let b = child(&a.header, 2);
        let fork = child(&g, 3);
        let mut p = PendingBlocks::default();
        for blk in [b.clone(), a.clone(), fork.clone()] {
            p.insert(blk);
        }
        let chain: Vec<u64> = p.chain_to(&b.hash(), &g.hash()).iter().map(|e| e.block.number()).collect();
        assert_eq!(chain, vec![1, 2]);
        assert!(p.chain_to(&g.hash(), &g.hash()).is_empty());
        // An unknown ancestor cuts the chain short: it starts after the gap.
        let orphan = child(&child(&b.header, 4).header, 5);
        p.insert(orphan.clone());
        let short = p.chain_to(&orphan.hash(), &g.hash());
        assert_eq!(short.len(), 1);
        assert_ne!(short[0].block.header.parent_hash, b.hash());
        p.prune(1);
        assert_eq!(p.len(), 2, "a and its fork sibling are gone, b and the orphan stay");
        assert!(p.chain_to(&b.hash(), &a.hash()).len() == 1);
    }
}
