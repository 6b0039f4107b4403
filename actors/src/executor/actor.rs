use super::messages::{Build, Committed, ExecutorError, Validate};
use crate::btc::{check_attributes, next_attributes, BtcLink};
use crate::hvm::btc_precompiles::{btc_at, BtcAt};
use crate::hvm::lthash::LtHash;
use crate::hvm::{BlockBuilder, ChainSpec, ExecutedBlock, ExecutionError, LayeredState, SignedTx};
use crate::pop::finality::anchors_for;
use actix::prelude::*;
use alloy_primitives::B256;
use bss_consensus::BlockHeader;
use bss_storage::StoreReader;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, info_span, warn};

pub struct ExecutorActor {
    spec: ChainSpec,
    reader: StoreReader,
    head: BlockHeader,
    head_acc: LtHash,
    pending: HashMap<B256, Arc<ExecutedBlock>>,
    btc: Option<BtcLink>,
}

impl ExecutorActor {
    pub fn new(
        spec: ChainSpec,
        reader: StoreReader,
        head: BlockHeader,
        head_acc: LtHash,
        btc: Option<BtcLink>,
    ) -> Self {
        Self { spec, reader, head, head_acc, pending: HashMap::new(), btc }
    }

    /// Checks a proposal's BTC attributes against its parent and this node's Bitcoin view.
    fn check_btc(&self, parent: &BlockHeader, block: &bss_consensus::Block) -> Result<(), ExecutorError> {
        let proposed = &block.header.btc;
        match &self.btc {
            Some(link) => {
                let view = link.view.current();
                check_attributes(&parent.btc, proposed, &view, &link.rules)?;
                let expected = anchors_for(&view, proposed, &link.keystones);
                if expected != block.header.anchors {
                    return Err(ExecutorError::Anchors {
                        proposed: block.header.anchors.len(),
                        expected: expected.len(),
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

    fn btc_at(&self, attrs: &bss_consensus::BtcAttributes) -> Option<BtcAt> {
        let link = self.btc.as_ref()?;
        let at = btc_at(link, attrs);
        if at.is_none() && attrs.tip_hash != B256::ZERO {
            warn!(target: "executor", tip_height = attrs.tip_height, "the Bitcoin view does not hold this block's BTC tip; hVM precompiles return empty output");
        }
        at
    }

    /// The state after `parent`: committed state plus the uncommitted blocks leading to it.
    fn state_at(&self, parent: &B256) -> Result<(LayeredState, BlockHeader, LtHash), ExecutorError> {
        let head_hash = self.head.hash();
        if *parent == head_hash {
            let state = LayeredState { base: self.reader.clone(), layers: vec![] };
            return Ok((state, self.head.clone(), self.head_acc.clone()));
        }
        let tip = self.pending.get(parent).ok_or(ExecutorError::UnknownParent(*parent))?;
        let mut layers = vec![tip.diff.clone()];
        let mut cursor = tip.block.header.parent_hash;
        while cursor != head_hash {
            let b = self.pending.get(&cursor).ok_or(ExecutorError::UnknownParent(cursor))?;
            layers.push(b.diff.clone());
            cursor = b.block.header.parent_hash;
        }
        layers.reverse();
        let state = LayeredState { base: self.reader.clone(), layers };
        Ok((state, tip.block.header.clone(), tip.accumulator.clone()))
    }

    fn record(&mut self, executed: ExecutedBlock, started: Instant, kind: &'static str) -> Arc<ExecutedBlock> {
        let secs = started.elapsed().as_secs_f64();
        metrics::histogram!("bss_execution_seconds", "kind" => kind).record(secs);
        debug!(target: "executor", kind, number = executed.block.number(), txs = executed.block.transactions.len(), secs, "executed");
        let executed = Arc::new(executed);
        self.pending.insert(executed.block.hash(), executed.clone());
        executed
    }
}

impl Actor for ExecutorActor {
    type Context = SyncContext<Self>;
}

impl Handler<Build> for ExecutorActor {
    type Result = Result<Arc<ExecutedBlock>, ExecutorError>;

    fn handle(&mut self, msg: Build, _: &mut Self::Context) -> Self::Result {
        let span = info_span!(target: "executor", "build", round = msg.fields.round);
        let _g = span.enter();
        let started = Instant::now();
        let (state, parent, acc) = self.state_at(&msg.parent)?;
        let mut fields = msg.fields;
        if let Some(link) = &self.btc {
            let view = link.view.current();
            fields.btc = next_attributes(&parent.btc, &view, &link.rules);
            fields.anchors = anchors_for(&view, &fields.btc, &link.keystones);
        }
        let executed = BlockBuilder::new(&self.spec, &state, &parent, &acc)
            .with_btc(self.btc_at(&fields.btc))
            .build(&fields, msg.candidates)?;
        Ok(self.record(executed, started, "build"))
    }
}

impl Handler<Validate> for ExecutorActor {
    type Result = Result<Arc<ExecutedBlock>, ExecutorError>;

    fn handle(&mut self, msg: Validate, _: &mut Self::Context) -> Self::Result {
        let hash = msg.block.hash();
        if let Some(done) = self.pending.get(&hash) {
            return Ok(done.clone());
        }
        let span =
            info_span!(target: "executor", "validate", number = msg.block.number(), round = msg.block.header.round);
        let _g = span.enter();
        let started = Instant::now();
        let known: HashMap<B256, Arc<SignedTx>> = msg.known.into_iter().map(|t| (t.hash, t)).collect();
        let mut txs = Vec::with_capacity(msg.block.transactions.len());
        for (index, raw) in msg.block.transactions.iter().enumerate() {
            let hash = alloy_primitives::keccak256(raw);
            match known.get(&hash) {
                Some(t) => txs.push(t.clone()),
                None => txs.push(Arc::new(SignedTx::decode(raw).map_err(|e| ExecutionError::Undecodable {
                    number: msg.block.number(),
                    index,
                    reason: e.to_string(),
                })?)),
            }
        }
        let (state, parent, acc) = self.state_at(&msg.block.header.parent_hash)?;
        if msg.check_btc {
            self.check_btc(&parent, &msg.block)?;
        }
        let executed = BlockBuilder::new(&self.spec, &state, &parent, &acc)
            .with_btc(self.btc_at(&msg.block.header.btc))
            .validate(&msg.block, txs)?;
        Ok(self.record(executed, started, "validate"))
    }
}

impl Handler<Committed> for ExecutorActor {
    type Result = ();

    fn handle(&mut self, msg: Committed, _: &mut Self::Context) {
        if let Some(b) = self.pending.remove(&msg.hash) {
            self.head = b.block.header.clone();
            self.head_acc = b.accumulator.clone();
            let n = self.head.number;
            self.pending.retain(|_, p| p.block.number() > n);
        }
    }
}
