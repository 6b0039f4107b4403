//! hotstuff-rs's `App` over our executor: a hotstuff-rs block carries exactly one datum, the
//! canonical encoding of our L2 block, and its `data_hash` is the L2 block hash. Producing and
//! validating go through the same executor as the native engine, with the same re-execution
//! checks (every derived header field, BTC attributes and anchors for proposals).
//!
//! hotstuff-rs calls these methods on its own threads; they wait for our actors with
//! `futures::executor::block_on`, which needs no runtime of its own.

use super::kv::FjallKv;
use crate::consensus::now_ms;
use crate::executor::ExecutorHandle;
use crate::hvm::execute::ProposalFields;
use crate::hvm::fees::next_base_fee;
use crate::mempool::MempoolHandle;
use alloy_primitives::keccak256;
use bss_consensus::{codec, Block, BlockHeader};
use bss_storage::StoreReader;
use futures::executor::block_on;
use hotstuff_rs::app::{App, ProduceBlockRequest, ProduceBlockResponse, ValidateBlockRequest, ValidateBlockResponse};
use hotstuff_rs::block_tree::accessors::app::AppBlockTreeView;
use hotstuff_rs::types::data_types::{CryptoHash, Data, Datum};
use std::time::Duration;
use tracing::{debug, warn};

#[derive(Clone, Debug)]
pub struct AppConfig {
    pub operator_index: u16,
    pub min_base_fee: u64,
    pub max_block_txs: usize,
    pub max_clock_drift: Duration,
    /// This node's Bitcoin view and how long a proposal may wait for it (as the native engine).
    pub btc: Option<(crate::btc::BtcLink, Duration)>,
}

pub struct BssApp {
    pub cfg: AppConfig,
    pub executor: ExecutorHandle,
    pub mempool: MempoolHandle,
    pub reader: StoreReader,
    /// Our L2 genesis: the parent of the first hotstuff-rs block.
    pub genesis: BlockHeader,
}

/// The L2 block a hotstuff-rs block carries.
pub fn l2_block(data: &Data) -> Option<Block> {
    match data.vec().as_slice() {
        [datum] => codec::decode_untrusted::<Block>(datum.bytes()).ok(),
        _ => None,
    }
}

fn l2_of(tree: &AppBlockTreeView<FjallKv>, hs: &CryptoHash) -> Option<Block> {
    l2_block(&tree.block_data(hs).ok()??)
}

impl BssApp {
    /// The L2 parent of a hotstuff-rs block whose justify points at `parent` (genesis: zeros).
    fn parent_l2(&self, tree: &AppBlockTreeView<FjallKv>, parent: Option<CryptoHash>) -> Option<BlockHeader> {
        match parent {
            None => Some(self.genesis.clone()),
            Some(p) if p.bytes() == [0u8; 32] => Some(self.genesis.clone()),
            Some(p) => l2_of(tree, &p).map(|b| b.header),
        }
    }

    /// Uncommitted L2 ancestors from `parent` back to our committed head, oldest first: the
    /// executor may not have run them (after a restart, or blocks that arrived by block sync).
    fn ancestry(&self, tree: &AppBlockTreeView<FjallKv>, parent: Option<CryptoHash>) -> Vec<Block> {
        let head = self.reader.head_number().ok().flatten().unwrap_or(0);
        let mut out = vec![];
        let mut cursor = parent.filter(|p| p.bytes() != [0u8; 32]);
        while let Some(h) = cursor {
            let Some(block) = tree.block(&h).ok().flatten() else { break };
            let Some(l2) = l2_block(&block.data) else { break };
            if l2.number() <= head {
                break;
            }
            out.push(l2);
            cursor = Some(block.justify.block).filter(|p| p.bytes() != [0u8; 32]);
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
        if proposal && block.header.timestamp_ms > now_ms() + self.cfg.max_clock_drift.as_millis() as u64 {
            return refuse("timestamp too far ahead".into());
        }
        let ancestors = self.ancestry(tree, Some(parent));
        let (executor, mempool) = (self.executor.clone(), self.mempool.clone());
        if let Some((link, wait)) = self.cfg.btc.as_ref().filter(|_| proposal) {
            // A watcher a little behind the leader's gets a bounded time to catch up.
            let attrs = &block.header.btc;
            link.view.wait_for_blocking(*wait, |v| crate::btc::view_ready(attrs, v, &link.rules));
        }
        let result = block_on(async move {
            for b in ancestors {
                executor.execute_certified(b).await?;
            }
            if proposal {
                let hashes = block.transactions.iter().map(keccak256).collect();
                let known = mempool.get_many(hashes).await;
                executor.validate(block, known).await
            } else {
                executor.execute_certified(block).await
            }
        });
        match result {
            Ok(_) => ValidateBlockResponse::Valid { app_state_updates: None, validator_set_updates: None },
            Err(e) => refuse(e.to_string()),
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
        let fields = ProposalFields {
            round: view,
            proposer: self.cfg.operator_index,
            timestamp_ms: now_ms(),
            btc: bss_consensus::BtcAttributes { headers: vec![], ..parent.btc.clone() },
            anchors: vec![],
        };
        let base_fee = next_base_fee(parent.base_fee, parent.gas_used, parent.gas_limit, self.cfg.min_base_fee);
        let (executor, mempool, max_txs) = (self.executor.clone(), self.mempool.clone(), self.cfg.max_block_txs);
        let (parent_hash, gas_limit) = (parent.hash(), parent.gas_limit);
        let built = block_on(async move {
            for b in ancestors {
                executor.execute_certified(b).await?;
            }
            let candidates = mempool.select(base_fee, gas_limit, max_txs).await.unwrap_or_default();
            executor.build(parent_hash, fields, candidates).await
        });
        match built {
            Ok(executed) => {
                self.mempool.drop_invalid(executed.rejected.iter().map(|(h, _)| *h).collect());
                let block = &executed.block;
                debug!(target: "hotstuff-rs", view, number = block.number(), txs = block.transactions.len(), "produced");
                match codec::encode(block) {
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
                metrics::counter!("bss_proposal_failures_total").increment(1);
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
