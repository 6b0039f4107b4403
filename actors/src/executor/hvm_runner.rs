use super::messages::ExecutorError;
use super::metrics::ExecutorMetrics;
use crate::btc::deposit::mints_due;
use crate::btc::inbox::{forced_due, ForcedTx};
use crate::btc::{check_attributes, next_attributes, BtcLink};
use crate::hvm::btc_precompiles::{btc_at, BtcAt};
use crate::hvm::execute::BlockDiff;
use crate::hvm::execute::ProposalFields;
use crate::hvm::leaf_cache::LeafCache;
use crate::hvm::lthash::LtHash;
use crate::hvm::{BlockBuilder, ChainSpec, ExecutedBlock, ExecutionError, LayeredState, SignedTx, TxError};
use crate::pop::finality::anchors_for;
use alloy_primitives::B256;
use bss_consensus::{Block, BlockHeader, Mint};
use bss_storage::{StorageError, StoreReader};
use metrics::Histogram;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, info_span, warn};

/// How many of the blocks executed here last keep their changes in memory.
const RECENT_DIFFS: usize = 8;

/// The hVM over committed state: builds and re-executes blocks. Its state is the committed head
/// (header and state accumulator), reloaded from storage whenever storage moves on, and the
/// changes of the last blocks it executed.
pub struct Executor {
    spec: ChainSpec,
    reader: StoreReader,
    btc: Option<BtcLink>,
    head: BlockHeader,
    head_acc: LtHash,
    /// Changes of the blocks executed here last, oldest first. Once one of them is the committed
    /// head, blocks on it read through its changes first: what the head touched (its senders,
    /// their balances and token slots) is what the next blocks touch again, and a map lookup
    /// costs far less than a store read. It is consistent: the store holds the head, and
    /// everything committed after the head is in the layers above it.
    recent: VecDeque<Arc<BlockDiff>>,
    /// Expansions of the state leaves the last two blocks executed here added: the next block
    /// removes most of them again (`bss_hvm::leaf_cache`).
    leaf_cache: LeafCache,
    metrics: ExecutorMetrics,
    /// Byzantine test mode `btc-rewind:N` (None on an honest operator).
    btc_rewind: Option<u64>,
}

impl Executor {
    /// Loads the committed head from storage.
    pub fn load(
        spec: ChainSpec,
        reader: StoreReader,
        btc: Option<BtcLink>,
        metrics: ExecutorMetrics,
    ) -> Result<Self, StorageError> {
        let (head, head_acc) = Self::committed_head(&reader)?;
        Ok(Self {
            spec,
            reader,
            btc,
            head,
            head_acc,
            recent: VecDeque::new(),
            leaf_cache: LeafCache::default(),
            metrics,
            btc_rewind: None,
        })
    }

    /// Byzantine `btc-rewind:N`: the blocks this executor builds restart their Bitcoin headers
    /// N heights below the parent's tip (`crate::node::byzantine::rewound_attributes`).
    pub fn with_btc_rewind(mut self, n: Option<u64>) -> Self {
        self.btc_rewind = n;
        self
    }

    /// The committed head and its state accumulator. They are two reads; a commit landing
    /// between them shows as an accumulator that does not match the header's state root, and
    /// the pair is read again.
    fn committed_head(reader: &StoreReader) -> Result<(BlockHeader, LtHash), StorageError> {
        let mut attempts = 0;
        loop {
            let n = reader.head_number()?.unwrap_or(0);
            let missing =
                |what: &str| StorageError::Corrupt { keyspace: "headers", reason: format!("{what} {n} missing") };
            let head = reader.header(n)?.ok_or_else(|| missing("head header"))?;
            let acc = reader
                .state_accumulator()?
                .and_then(|b| LtHash::from_bytes(&b))
                .ok_or_else(|| missing("state accumulator at"))?;
            if acc.root() == head.state_root {
                return Ok((head, acc));
            }
            attempts += 1;
            if attempts > 100 {
                return Err(StorageError::Corrupt {
                    keyspace: "meta",
                    reason: format!("the state accumulator does not match head {n}'s state root"),
                });
            }
        }
    }

    /// Follows storage's committed head.
    fn refresh(&mut self) -> Result<(), StorageError> {
        if self.reader.head_number()?.unwrap_or(0) != self.head.number {
            (self.head, self.head_acc) = Self::committed_head(&self.reader)?;
        }
        Ok(())
    }

    /// The state after `parent`: committed state plus the layers leading to it.
    fn state_at(
        &mut self,
        parent: &B256,
        layers: &[Arc<ExecutedBlock>],
    ) -> Result<(LayeredState, BlockHeader, LtHash), ExecutorError> {
        self.refresh()?;
        let head_hash = self.head.hash();
        let warm: Vec<Arc<BlockDiff>> =
            self.recent.iter().rev().find(|d| d.hash == head_hash).cloned().into_iter().collect();
        if !warm.is_empty() {
            self.metrics.warm_layer_hits.increment(1);
        }
        if *parent == head_hash {
            let state = LayeredState { base: self.reader.clone(), layers: warm };
            return Ok((state, self.head.clone(), self.head_acc.clone()));
        }
        let end = layers.iter().position(|l| l.block.hash() == *parent).ok_or(ExecutorError::UnknownParent(*parent))?;
        // Layers committed since the caller looked are already in the base state.
        let live: Vec<&Arc<ExecutedBlock>> =
            layers[..=end].iter().filter(|l| l.block.number() > self.head.number).collect();
        let mut expected = head_hash;
        for l in &live {
            if l.block.header.parent_hash != expected {
                return Err(ExecutorError::UnknownParent(l.block.header.parent_hash));
            }
            expected = l.block.hash();
        }
        let tip = live.last().ok_or(ExecutorError::UnknownParent(*parent))?;
        let layers = warm.into_iter().chain(live.iter().map(|l| l.diff.clone())).collect();
        let state = LayeredState { base: self.reader.clone(), layers };
        Ok((state, tip.block.header.clone(), tip.accumulator.clone()))
    }

    /// Whether blocks on the committed head read through its changes kept here.
    #[cfg(test)]
    pub(super) fn head_is_warm(&mut self) -> bool {
        self.refresh().is_ok() && self.recent.iter().any(|d| d.hash == self.head.hash())
    }

    /// Checks a proposal's BTC attributes against its parent and this node's Bitcoin view.
    fn check_btc(&self, parent: &BlockHeader, block: &Block) -> Result<(), ExecutorError> {
        let proposed = &block.header.btc;
        match &self.btc {
            Some(link) => {
                let view = link.view.current();
                check_attributes(&parent.btc, proposed, &view, &link.rules)?;
                let expected = anchors_for(&view, proposed, &link.keystones);
                if expected != block.header.anchors {
                    let at = expected.iter().zip(&block.header.anchors).position(|(a, b)| a != b);
                    let at = at.unwrap_or(expected.len().min(block.header.anchors.len()));
                    return Err(ExecutorError::Anchors {
                        proposed: block.header.anchors.len(),
                        expected: expected.len(),
                        difference: format!(
                            "#{at}: the block has {:?}, this node expects {:?}",
                            block.header.anchors.get(at),
                            expected.get(at)
                        ),
                    });
                }
                Ok(())
            }
            None if proposed.headers.is_empty()
                && proposed.tip_hash == parent.btc.tip_hash
                && block.header.anchors.is_empty() =>
            {
                Ok(())
            }
            None => Err(ExecutorError::NoBtcView),
        }
    }

    /// What falls due in a child of `parent` with these BTC attributes, derived from the
    /// Bitcoin view: the hBTC mints for deposits its new headers confirm
    /// `deposit_confirmations` times, and the forced txs — first those `parent` carried
    /// (`bss_consensus::CARRIED`), then those whose reveal the new headers confirm
    /// `forced_confirmations` times. The view must hold the tip.
    fn due(
        &self,
        parent: &BlockHeader,
        attrs: &bss_consensus::BtcAttributes,
    ) -> Result<(Vec<Mint>, Vec<ForcedTx>), ExecutorError> {
        let Some(link) = &self.btc else { return Ok((vec![], vec![])) };
        // The view as of the block's tip: the best chain, or the fork a reorg left it on.
        let current = link.view.current();
        let tip = crate::btc::attributes::tip_hash(attrs);
        let resolved = tip.and_then(|h| current.as_of_tip(attrs.tip_height, &h));
        let view = resolved.clone().unwrap_or(current);
        // A carried tx's reveal is in the inbox the parent's view read; one that a Bitcoin
        // reorg has since removed is no longer forced.
        let mut forced: Vec<ForcedTx> = parent
            .forced
            .iter()
            .filter(|o| o.is_carried())
            .filter_map(|o| {
                let m =
                    view.inbox_between(o.btc_height, o.btc_height).into_iter().find(|m| m.tx_hash() == o.tx_hash)?;
                Some(ForcedTx { btc_txid: o.btc_txid, btc_height: o.btc_height, raw: m.raw.into() })
            })
            .collect();
        if attrs.headers.is_empty() {
            return Ok((vec![], forced));
        }
        if resolved.is_none() {
            return Err(ExecutorError::BtcTipUnknown { height: attrs.tip_height });
        }
        let first = attrs.tip_height + 1 - attrs.headers.len() as u64;
        let mints = match &link.tunnel {
            Some(rules) => mints_due(&view, first, attrs.tip_height, rules),
            None => vec![],
        };
        forced.extend(forced_due(&view, first, attrs.tip_height, link.rules.forced_confirmations, self.spec.chain_id));
        Ok((mints, forced))
    }

    fn btc_at(&self, attrs: &bss_consensus::BtcAttributes) -> Option<BtcAt> {
        let link = self.btc.as_ref()?;
        let at = btc_at(link, attrs);
        if at.is_none() && attrs.tip_hash != B256::ZERO {
            warn!(target: "executor", tip_height = attrs.tip_height, "the Bitcoin view does not hold this block's BTC tip; hVM precompiles return empty output");
        }
        at
    }

    fn record(executed: ExecutedBlock, started: Instant, kind: &'static str, h: &Histogram) -> Arc<ExecutedBlock> {
        let secs = started.elapsed().as_secs_f64();
        h.record(secs);
        debug!(target: "executor", kind, number = executed.block.number(), txs = executed.block.transactions.len(), secs, "executed");
        Arc::new(executed)
    }

    /// Keeps a block's changes among the recent ones.
    fn keep(&mut self, executed: Arc<ExecutedBlock>) -> Arc<ExecutedBlock> {
        let used = self.leaf_cache.take_use();
        self.metrics.leaves_remembered.increment(used.remembered);
        self.metrics.leaves_expanded.increment(used.expanded);
        if self.recent.len() == RECENT_DIFFS {
            self.recent.pop_front();
        }
        self.recent.push_back(executed.diff.clone());
        executed
    }

    /// Builds a block on `parent` (the committed head or the last of `layers`).
    pub fn build(
        &mut self,
        parent: &B256,
        layers: &[Arc<ExecutedBlock>],
        mut fields: ProposalFields,
        candidates: Vec<Arc<SignedTx>>,
    ) -> Result<Arc<ExecutedBlock>, ExecutorError> {
        let span = info_span!(target: "executor", "build", round = fields.round);
        let _g = span.enter();
        let started = Instant::now();
        let (state, parent, acc) = self.state_at(parent, layers)?;
        if let Some(link) = &self.btc {
            let view = link.view.current();
            fields.btc = match self.btc_rewind {
                Some(n) => crate::node::byzantine::rewound_attributes(&parent.btc, &view, &link.rules, n),
                None => next_attributes(&parent.btc, &view, &link.rules),
            };
            fields.anchors = anchors_for(&view, &fields.btc, &link.keystones);
        }
        (fields.mints, fields.forced) = self.due(&parent, &fields.btc)?;
        if fields.skip_mints {
            fields.mints.clear();
        }
        let executed = BlockBuilder::new(&self.spec, &state, &parent, &acc)
            .with_leaf_cache(&self.leaf_cache)
            .with_btc(self.btc_at(&fields.btc))
            .build(&fields, candidates)?;
        Ok(self.keep(Self::record(executed, started, "build", &self.metrics.build_seconds)))
    }

    /// Re-executes `block` on its parent; `known` are already decoded transactions by hash.
    pub fn validate(
        &mut self,
        layers: &[Arc<ExecutedBlock>],
        block: &Block,
        known: Vec<Arc<SignedTx>>,
        check_btc: bool,
    ) -> Result<Arc<ExecutedBlock>, ExecutorError> {
        let span = info_span!(target: "executor", "validate", number = block.number(), round = block.header.round);
        let _g = span.enter();
        let started = Instant::now();
        let known: HashMap<B256, Arc<SignedTx>> = known.into_iter().map(|t| (t.hash, t)).collect();
        let held: Vec<Option<Arc<SignedTx>>> =
            block.transactions.iter().map(|raw| known.get(&alloy_primitives::keccak256(raw)).cloned()).collect();
        // What no pool held is decoded and its sender recovered here, on every core.
        let unknown: Vec<&[u8]> =
            block.transactions.iter().zip(&held).filter(|(_, h)| h.is_none()).map(|(raw, _)| raw.as_ref()).collect();
        self.metrics.unknown_proposal_txs.increment(unknown.len() as u64);
        let mut decoded = SignedTx::decode_many(&unknown).into_iter();
        let mut txs = Vec::with_capacity(block.transactions.len());
        for (index, held) in held.into_iter().enumerate() {
            let decode = match held {
                Some(t) => Ok(t),
                None => decoded.next().unwrap_or_else(|| Err(TxError::Decode("not decoded".into()))).map(Arc::new),
            };
            let tx = decode.map_err(|e| ExecutionError::Undecodable {
                number: block.number(),
                index,
                reason: e.to_string(),
            })?;
            txs.push(tx);
        }
        let (state, parent, acc) = self.state_at(&block.header.parent_hash, layers)?;
        if check_btc {
            self.check_btc(&parent, block)?;
        }
        let (mints, forced) = self.due(&parent, &block.header.btc)?;
        let executed = BlockBuilder::new(&self.spec, &state, &parent, &acc)
            .with_leaf_cache(&self.leaf_cache)
            .with_btc(self.btc_at(&block.header.btc))
            .validate(block, txs, &mints, &forced)?;
        Ok(self.keep(Self::record(executed, started, "validate", &self.metrics.validate_seconds)))
    }
}
