//! hotstuff-rs's `App` over the node's chain service: a hotstuff-rs block carries exactly one
//! datum, the canonical encoding of our L2 block, and its `data_hash` is the L2 block hash.
//! Producing and validating go through the same chain service as the native engine, with the
//! same checks (every derived header field, clock, BTC attributes and anchors for proposals).

use super::kv::FjallKv;
use super::Chain;
use bss_consensus::{codec, Block, BlockHeader};
use hotstuff_rs::app::{App, ProduceBlockRequest, ProduceBlockResponse, ValidateBlockRequest, ValidateBlockResponse};
use hotstuff_rs::block_tree::accessors::app::AppBlockTreeView;
use hotstuff_rs::types::data_types::{CryptoHash, Data, Datum};
use std::sync::Arc;
use tracing::{debug, warn};

pub(crate) struct BssApp {
    pub chain: Arc<dyn Chain>,
    /// Our L2 genesis: the parent of the first hotstuff-rs block.
    pub genesis: BlockHeader,
}

/// The L2 block a hotstuff-rs block carries.
pub(crate) fn l2_block(data: &Data) -> Option<Block> {
    match data.vec().as_slice() {
        [datum] => codec::decode_untrusted::<Block>(datum.bytes()).ok(),
        _ => None,
    }
}

fn l2_of(tree: &AppBlockTreeView<FjallKv>, hs: &CryptoHash) -> Option<Block> {
    l2_block(&tree.block_data(hs).ok()??)
}

fn is_genesis(hs: &CryptoHash) -> bool {
    hs.bytes() == [0u8; 32]
}

impl BssApp {
    /// The L2 parent of a hotstuff-rs block whose justify points at `parent` (genesis: zeros).
    fn parent_l2(&self, tree: &AppBlockTreeView<FjallKv>, parent: Option<CryptoHash>) -> Option<BlockHeader> {
        match parent {
            None => Some(self.genesis.clone()),
            Some(p) if is_genesis(&p) => Some(self.genesis.clone()),
            Some(p) => l2_of(tree, &p).map(|b| b.header),
        }
    }

    /// Uncommitted L2 ancestors from `parent` back to the committed head, oldest first: the chain
    /// service may not have seen them (after a restart, or blocks that arrived by block sync).
    fn ancestry(&self, tree: &AppBlockTreeView<FjallKv>, parent: Option<CryptoHash>) -> Vec<Block> {
        let head = self.chain.committed_height();
        let mut out = vec![];
        let mut cursor = parent.filter(|p| !is_genesis(p));
        while let Some(h) = cursor {
            let Some(block) = tree.block(&h).ok().flatten() else { break };
            let Some(l2) = l2_block(&block.data) else { break };
            if l2.number() <= head {
                break;
            }
            out.push(l2);
            cursor = Some(block.justify.block).filter(|p| !is_genesis(p));
        }
        out.reverse();
        out
    }

    fn validate(&mut self, request: ValidateBlockRequest<FjallKv>, proposal: bool) -> ValidateBlockResponse {
        let proposed = request.proposed_block();
        let tree = request.block_tree();
        let refuse = |why: String| {
            warn!(target: "hotstuff-rs", height = proposed.height.int(), reason = %why, "block refused");
            metrics::counter!("bss_validation_failures_total").increment(1);
            ValidateBlockResponse::Invalid
        };
        let Some(block) = l2_block(&proposed.data) else {
            return refuse("its data is not exactly one L2 block".into());
        };
        if proposed.data_hash.bytes() != block.hash().0 {
            return refuse("data_hash is not the L2 block hash".into());
        }
        let parent = proposed.justify.block;
        let Some(parent_l2) = self.parent_l2(tree, Some(parent)) else {
            return refuse("its parent carries no L2 block".into());
        };
        if block.header.parent_hash != parent_l2.hash() {
            return refuse(format!(
                "L2 parent {} is not the parent block's {}",
                block.header.parent_hash,
                parent_l2.hash()
            ));
        }
        let ancestors = self.ancestry(tree, Some(parent));
        match self.chain.validate(block, ancestors, proposal) {
            Ok(()) => ValidateBlockResponse::Valid { app_state_updates: None, validator_set_updates: None },
            Err(e) => refuse(e),
        }
    }
}

impl App<FjallKv> for BssApp {
    fn produce_block(&mut self, request: ProduceBlockRequest<FjallKv>) -> ProduceBlockResponse {
        let tree = request.block_tree();
        let view = request.cur_view().int();
        let empty = || ProduceBlockResponse {
            data_hash: CryptoHash::new([0; 32]),
            data: Data::new(vec![]),
            app_state_updates: None,
            validator_set_updates: None,
        };
        let Some(parent) = self.parent_l2(tree, request.parent_block()) else {
            warn!(target: "hotstuff-rs", view, "the parent block carries no L2 block; proposing nothing");
            return empty();
        };
        let ancestors = self.ancestry(tree, request.parent_block());
        match self.chain.propose(view, parent, ancestors) {
            Ok(block) => {
                debug!(target: "hotstuff-rs", view, number = block.number(), txs = block.transactions.len(), "produced");
                match codec::encode(&block) {
                    Ok(bytes) => ProduceBlockResponse {
                        data_hash: CryptoHash::new(block.hash().0),
                        data: Data::new(vec![Datum::new(bytes)]),
                        app_state_updates: None,
                        validator_set_updates: None,
                    },
                    Err(_) => empty(),
                }
            }
            Err(e) => {
                warn!(target: "hotstuff-rs", view, error = %e, "building a proposal failed; proposing nothing");
                empty()
            }
        }
    }

    fn validate_block(&mut self, request: ValidateBlockRequest<FjallKv>) -> ValidateBlockResponse {
        self.validate(request, true)
    }

    fn validate_block_for_sync(&mut self, request: ValidateBlockRequest<FjallKv>) -> ValidateBlockResponse {
        self.validate(request, false)
    }
}
