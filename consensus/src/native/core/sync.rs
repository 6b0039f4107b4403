//! Fetching missing blocks and syncing committed blocks from peers.

use super::{Fx, NativeEngine};
use crate::engine::{CommitProof, Effect};
use crate::native::messages::{verify_qc, FetchedBlock, NativeMessage};
use crate::{Block, BlockHeader, Certificate};
use alloy_primitives::B256;
use tracing::{info, warn};

impl NativeEngine {
    // ---- fetching and sync -------------------------------------------------------------------

    pub(super) fn request_sync(&mut self, peer: u16, fx: &mut Fx) {
        if !self.sync_pending {
            self.sync_pending = true;
            fx.push(Effect::RequestSync { peer, from_number: self.committed.number + 1 });
        }
    }

    pub(super) fn on_fetch(&mut self, from: u16, hash: B256, fx: &mut Fx) {
        if let Some(p) = self.proposals.get(&hash) {
            fx.push(Effect::Send { to: from, message: NativeMessage::Proposal(Box::new(p.clone())) });
            return;
        }
        if let (Some(b), Some(q)) = (self.blocks.get(&hash), self.qcs.get(&hash)) {
            let fetched = FetchedBlock {
                block: b.clone(),
                qc: q.clone(),
                parent_qc: self.qcs.get(&b.header.parent_hash).cloned(),
            };
            fx.push(Effect::Send { to: from, message: NativeMessage::Block(Box::new(fetched)) });
        }
    }

    pub(super) fn on_fetched(&mut self, from: u16, fetched: FetchedBlock, fx: &mut Fx) {
        let FetchedBlock { block, qc, parent_qc } = fetched;
        let hash = block.hash();
        if qc.block_hash != hash
            || block.number() <= self.committed.number
            || verify_qc(&qc, self.cfg.chain_id, &self.cfg.operators, &self.cfg.genesis_hash).is_err()
        {
            return;
        }
        match self.header_of(&block.header.parent_hash) {
            Some(parent) if parent.number + 1 == block.number() => {}
            Some(_) => return,
            None => {
                fx.push(Effect::Send { to: from, message: NativeMessage::FetchBlock(block.header.parent_hash) });
                self.request_sync(from, fx);
                return;
            }
        }
        if let Some(pq) = parent_qc.filter(|pq| {
            pq.block_hash == block.header.parent_hash
                && verify_qc(pq, self.cfg.chain_id, &self.cfg.operators, &self.cfg.genesis_hash).is_ok()
        }) {
            self.qcs.entry(pq.block_hash).or_insert(pq);
        }
        self.blocks.insert(hash, block.clone());
        fx.push(Effect::RequestValidation { block });
        self.process_qc(&qc, fx);
        if let Some(waiters) = self.waiting.remove(&hash) {
            for (f, w) in waiters {
                self.on_proposal(f, w, fx);
            }
        }
        // Certified children we already hold may now commit.
        let children: Vec<Certificate> = self
            .blocks
            .values()
            .filter(|b| b.header.parent_hash == hash)
            .filter_map(|b| self.qcs.get(&b.hash()).cloned())
            .collect();
        for q in children {
            self.try_commit(&q, fx);
        }
        self.maybe_propose(fx);
    }

    pub(super) fn on_synced(
        &mut self,
        from: u16,
        blocks: Vec<(Block, Certificate)>,
        headers: Vec<BlockHeader>,
        proof: Option<CommitProof>,
        more: bool,
        fx: &mut Fx,
    ) {
        self.sync_pending = false;
        let Some(proof) = proof else { return };
        let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
            return;
        };
        if first.0.number() != self.committed.number + 1 {
            return;
        }
        // Verify everything before applying anything.
        let mut parent = self.committed.clone();
        for (block, cert) in &blocks {
            let h = &block.header;
            if h.parent_hash != parent.hash()
                || h.number != parent.number + 1
                || h.round <= parent.round
                || cert.block_hash != block.hash()
                || verify_qc(cert, self.cfg.chain_id, &self.cfg.operators, &self.cfg.genesis_hash).is_err()
            {
                warn!(target: "consensus::native", from, number = h.number, "sync response failed verification");
                self.metrics.invalid_messages.increment(1);
                return;
            }
            parent = h.clone();
        }
        // Headers link the last full block to the peer's committed head.
        for h in &headers {
            if h.parent_hash != parent.hash() || h.number != parent.number + 1 || h.round <= parent.round {
                warn!(target: "consensus::native", from, number = h.number, "sync headers do not link");
                return;
            }
            parent = h.clone();
        }
        let child = &proof.child;
        if child.parent_hash != parent.hash()
            || child.round != parent.round + 1
            || proof.child_qc.block_hash != child.hash()
            || verify_qc(&proof.child_qc, self.cfg.chain_id, &self.cfg.operators, &self.cfg.genesis_hash).is_err()
        {
            warn!(target: "consensus::native", from, "sync commit proof failed verification");
            return;
        }
        let more = more || !headers.is_empty();
        info!(target: "consensus::native", from, blocks = blocks.len(), to = last.0.number(), more, "synced committed blocks");
        for (block, _) in &blocks {
            self.mark_committed(&block.header);
        }
        if more {
            // The next page travels while this one is executed and written.
            self.request_sync(from, fx);
        }
        let n = blocks.len();
        for (i, (block, cert)) in blocks.into_iter().enumerate() {
            self.qcs.insert(block.hash(), cert.clone());
            let proof = (i + 1 == n).then(|| proof.clone());
            fx.push(Effect::Commit { block, certificate: cert, proof });
        }
        self.prune();
        if more {
            return;
        }
        self.process_qc(&proof.child_qc, fx);
        if self.header_of(&proof.child_qc.block_hash).is_none() {
            fx.push(Effect::Send { to: from, message: NativeMessage::FetchBlock(proof.child_qc.block_hash) });
        }
    }
}
