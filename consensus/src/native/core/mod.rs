mod sync;
#[cfg(test)]
mod tests;

use super::leader::Reputation;
use super::messages::{
    genesis_qc, proposal_message, sign_vote, timeout_message, verify_qc, NativeMessage, Proposal, Timeout, TimeoutCert,
    Vote,
};
use crate::certificate::{vote_message, SigBytes};
use crate::engine::{CommitProof, Effect, Engine, Input, SafetyData, TimerKind};
use crate::inclusion::{check_embedded, Collected, InclusionList};
use crate::{Block, BlockHeader, Certificate, OperatorSet, OperatorSigner};
use alloy_primitives::{Bytes, B256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tracing::{debug, info, warn};

type Fx = Vec<Effect<NativeMessage>>;

#[derive(Clone, Debug)]
pub struct NativeConfig {
    pub chain_id: u64,
    pub operators: OperatorSet,
    /// Genesis block hash (its QC is implicit).
    pub genesis_hash: B256,
    /// First round timeout; doubles (×1.5) per consecutive failed round up to `max_timeout`.
    pub base_timeout: Duration,
    pub max_timeout: Duration,
    /// Minimum pause between a QC and the next proposal (block-time pacing).
    pub block_time: Duration,
    /// Committed blocks remembered for leader reputation.
    pub reputation_window: usize,
}

/// Votes, timeouts and proposals more than this many rounds ahead of the current round are not
/// kept (certificates, which 2f+1 signed, still move a lagging replica forward).
pub const ROUND_WINDOW: u64 = 100;

pub struct NativeEngine {
    cfg: NativeConfig,
    signer: OperatorSigner,
    me: u16,
    round: u64,
    safety: SafetyData,
    high_qc: Certificate,
    committed: BlockHeader,
    /// Known blocks above the committed head (validated or not).
    blocks: HashMap<B256, Block>,
    /// QC of each known block, from proposals' justifications.
    qcs: HashMap<B256, Certificate>,
    validated: HashSet<B256>,
    /// The proposal of the current round waiting for validation before this replica votes.
    pending_vote: Option<(u64, B256)>,
    /// Valid proposals seen (by block hash), to answer fetches from replicas that missed them.
    proposals: HashMap<B256, Proposal>,
    /// Blocks asked for and not yet received.
    fetching: HashSet<B256>,
    /// Proposals waiting for a missing parent.
    waiting: HashMap<B256, Vec<(u16, Proposal)>>,
    votes: HashMap<(u64, B256), BTreeMap<u16, SigBytes>>,
    /// Inclusion lists that came with votes, by the block voted for (the lists' parent).
    lists: HashMap<B256, Collected>,
    /// This leader has the QC for its round but not yet 2f+1 inclusion lists for its parent.
    awaiting_lists: bool,
    /// The block each operator voted for in each round: a second, different vote from the same
    /// operator in a round (equivocation) is dropped, so one peer adds at most one entry a round.
    voted: HashMap<(u64, u16), B256>,
    timeouts: BTreeMap<u64, BTreeMap<u16, Timeout>>,
    my_timeout: Option<Timeout>,
    /// TC that opened the current round, if it was opened by one.
    entry_tc: Option<TimeoutCert>,
    requested_round: u64,
    reputation: Reputation,
    failed_rounds: u32,
    sync_pending: bool,
    /// The last peer that sent a valid proposal: whom to ask when something is missing.
    last_peer: u16,
    metrics: super::metrics::NativeMetrics,
}

impl NativeEngine {
    /// `committed` is the last committed header (genesis on a new chain), `safety` what this
    /// replica persisted, `pending` the uncommitted blocks it persisted before voting, and
    /// `history` the (round, proposer) of recent committed blocks, oldest first, so leader
    /// reputation after a restart matches the other replicas'.
    pub fn new(
        cfg: NativeConfig,
        signer: OperatorSigner,
        committed: BlockHeader,
        committed_qc: Certificate,
        safety: SafetyData,
        pending: Vec<Block>,
        history: Vec<(u64, u16)>,
    ) -> Option<Self> {
        let me = cfg.operators.index_of(&signer.public())?;
        let n = cfg.operators.len();
        let high_qc = match &safety.highest_qc {
            Some(q) if q.round > committed_qc.round => q.clone(),
            _ => committed_qc.clone(),
        };
        let mut qcs = HashMap::new();
        qcs.insert(committed.hash(), committed_qc);
        let blocks = pending.into_iter().filter(|b| b.number() > committed.number).map(|b| (b.hash(), b)).collect();
        let mut reputation = Reputation::new(n, cfg.operators.max_faulty(), cfg.reputation_window);
        for (round, proposer) in history {
            reputation.on_commit(round, proposer);
        }
        Some(Self {
            round: 0,
            me,
            signer,
            high_qc,
            committed,
            blocks,
            qcs,
            validated: HashSet::new(),
            pending_vote: None,
            waiting: HashMap::new(),
            voted: HashMap::new(),
            proposals: HashMap::new(),
            fetching: HashSet::new(),
            votes: HashMap::new(),
            lists: HashMap::new(),
            awaiting_lists: false,
            timeouts: BTreeMap::new(),
            my_timeout: None,
            entry_tc: None,
            requested_round: 0,
            reputation,
            failed_rounds: 0,
            sync_pending: false,
            last_peer: 0,
            metrics: super::metrics::NativeMetrics::register(),
            safety,
            cfg,
        })
    }

    pub fn round(&self) -> u64 {
        self.round
    }

    pub fn committed(&self) -> &BlockHeader {
        &self.committed
    }

    pub fn leader(&self, round: u64) -> u16 {
        self.reputation.leader(round)
    }

    /// How many committed blocks of history the engine wants at start-up.
    pub fn history_len(cfg: &NativeConfig) -> usize {
        super::leader::history_len(cfg.reputation_window)
    }

    fn quorum(&self) -> usize {
        self.cfg.operators.quorum()
    }

    fn round_timeout(&self) -> Duration {
        let factor = 1.5f64.powi(self.failed_rounds.min(20) as i32);
        self.cfg.base_timeout.mul_f64(factor).min(self.cfg.max_timeout)
    }

    fn header_of(&self, hash: &B256) -> Option<&BlockHeader> {
        if *hash == self.committed.hash() {
            return Some(&self.committed);
        }
        self.blocks.get(hash).map(|b| &b.header)
    }

    fn persist(&self) -> Effect<NativeMessage> {
        Effect::PersistSafety(self.safety.clone())
    }

    // ---- rounds -------------------------------------------------------------------------

    fn enter_round(&mut self, round: u64, fx: &mut Fx) {
        if round <= self.round {
            return;
        }
        self.round = round;
        self.my_timeout = None;
        self.awaiting_lists = false;
        self.pending_vote = None;
        self.metrics.round.set(round as f64);
        self.metrics.leader.set(f64::from(self.leader(round)));
        fx.push(Effect::ScheduleTimer { kind: TimerKind::RoundTimeout { round }, after: self.round_timeout() });
        debug!(target: "consensus::native", round, leader = self.leader(round), "entered round");
        self.maybe_propose(fx);
    }

    fn maybe_propose(&mut self, fx: &mut Fx) {
        let round = self.round;
        if self.leader(round) != self.me || self.requested_round >= round || round <= self.safety.last_signed_round {
            return;
        }
        if self.header_of(&self.high_qc.block_hash).is_none() {
            return; // the parent will be fetched; proposing resumes when it arrives
        }
        self.requested_round = round;
        if self.cfg.block_time.is_zero() {
            self.request_payload(fx);
        } else {
            fx.push(Effect::ScheduleTimer { kind: TimerKind::Propose, after: self.cfg.block_time });
        }
    }

    fn request_payload(&mut self, fx: &mut Fx) {
        if self.requested_round != self.round || self.leader(self.round) != self.me {
            return;
        }
        let Some(parent) = self.header_of(&self.high_qc.block_hash).cloned() else {
            return;
        };
        let collected = self.lists.get(&self.high_qc.block_hash);
        if lists_required(self.high_qc.round, self.round) && collected.map_or(0, |c| c.signers()) < self.quorum() {
            // The votes that formed the QC are on their way with their lists (or the round
            // times out and the next proposal, after a TC, needs none).
            if !self.awaiting_lists {
                self.metrics.awaiting_lists.increment(1);
            }
            self.awaiting_lists = true;
            return;
        }
        self.awaiting_lists = false;
        let lists = collected.map(|c| c.embed()).unwrap_or_default();
        fx.push(Effect::RequestProposal { round: self.round, parent, lists });
    }

    // ---- certificates and commits ----------------------------------------------------------

    fn process_qc(&mut self, qc: &Certificate, fx: &mut Fx) {
        self.qcs.entry(qc.block_hash).or_insert_with(|| qc.clone());
        if qc.round > self.high_qc.round {
            self.high_qc = qc.clone();
            self.safety.highest_qc = Some(qc.clone());
        }
        self.try_commit(qc, fx);
        if qc.round + 1 > self.round {
            self.failed_rounds = 0;
            self.entry_tc = None;
            self.enter_round(qc.round + 1, fx);
        }
    }

    fn try_commit(&mut self, qc: &Certificate, fx: &mut Fx) {
        let Some(certified) = self.blocks.get(&qc.block_hash).map(|b| b.header.clone()) else {
            return;
        };
        let Some(parent) = self.header_of(&certified.parent_hash).cloned() else {
            return;
        };
        if certified.round != parent.round + 1 || parent.number <= self.committed.number {
            return;
        }
        // Collect the uncommitted chain ending at `parent`.
        let mut chain = vec![];
        let mut cursor = parent.hash();
        while cursor != self.committed.hash() {
            let Some(b) = self.blocks.get(&cursor) else {
                warn!(target: "consensus::native", missing = %cursor, "cannot commit: ancestor missing; syncing");
                self.request_sync(self.last_peer, fx);
                return;
            };
            chain.push(b.clone());
            cursor = b.header.parent_hash;
        }
        chain.reverse();
        let last = chain.len() - 1;
        for (i, block) in chain.into_iter().enumerate() {
            let hash = block.hash();
            let Some(certificate) = self.qcs.get(&hash).cloned() else {
                warn!(target: "consensus::native", block = %hash, "cannot commit: no QC for ancestor; syncing");
                self.request_sync(self.last_peer, fx);
                return;
            };
            let proof = (i == last).then(|| CommitProof { child: certified.clone(), child_qc: qc.clone() });
            self.mark_committed(&block.header);
            fx.push(Effect::Commit { block, certificate, proof });
        }
        self.prune();
    }

    fn mark_committed(&mut self, header: &BlockHeader) {
        self.reputation.on_commit(header.round, header.proposer);
        self.committed = header.clone();
    }

    fn prune(&mut self) {
        let n = self.committed.number;
        let head = self.committed.hash();
        self.blocks.retain(|_, b| b.number() > n);
        self.proposals.retain(|_, p| p.block.number() > n);
        self.waiting.retain(|_, ws| {
            ws.retain(|(_, p)| p.block.number() > n);
            !ws.is_empty()
        });
        // A flood of proposals for unknown parents must not grow without bound.
        if self.waiting.len() > 256 {
            self.waiting.clear();
        }
        self.fetching.clear();
        let keep: HashSet<B256> = self.blocks.keys().copied().chain([head]).collect();
        self.qcs.retain(|h, q| keep.contains(h) || q.round >= self.high_qc.round);
        self.validated.retain(|h| keep.contains(h));
        let r = self.committed.round;
        self.votes.retain(|(round, _), _| *round >= r);
        let voted_for: HashSet<B256> = self.votes.keys().map(|(_, h)| *h).collect();
        self.lists.retain(|h, _| keep.contains(h) || voted_for.contains(h));
        self.voted.retain(|(round, _), _| *round >= r);
        self.timeouts.retain(|round, _| *round + 1 >= self.round);
    }

    // ---- proposals --------------------------------------------------------------------------

    fn on_proposal_ready(&mut self, round: u64, block: Block, due: Vec<Bytes>, fx: &mut Fx) {
        if round != self.round || self.leader(round) != self.me || round <= self.safety.last_signed_round {
            debug!(target: "consensus::native", round, "stale payload dropped");
            return;
        }
        if block.header.parent_hash != self.high_qc.block_hash || block.header.round != round {
            warn!(target: "consensus::native", round, "payload does not extend the highest QC; dropped");
            return;
        }
        let hash = block.hash();
        self.safety.last_signed_round = round;
        let tc = self.entry_tc.clone().filter(|tc| tc.round + 1 == round);
        let proposal = Proposal {
            signature: SigBytes(self.signer.sign(&proposal_message(self.cfg.chain_id, round, &hash))),
            block: block.clone(),
            justify: self.high_qc.clone(),
            tc,
        };
        self.blocks.insert(hash, block.clone());
        self.validated.insert(hash);
        self.proposals.insert(hash, proposal.clone());
        fx.push(Effect::PersistBlock(block));
        fx.push(self.persist());
        fx.push(Effect::Broadcast(NativeMessage::Proposal(Box::new(proposal))));
        info!(target: "consensus::native", round, %hash, "proposed");
        self.send_vote(round, hash, due, fx);
    }

    fn send_vote(&mut self, round: u64, hash: B256, due: Vec<Bytes>, fx: &mut Fx) {
        let list = InclusionList::sign(&self.signer, self.me, self.cfg.chain_id, &hash, due);
        let vote = Vote {
            round,
            block_hash: hash,
            signature: sign_vote(&self.signer, self.cfg.chain_id, round, &hash),
            list: Some(list),
        };
        self.metrics.votes_sent.increment(1);
        // Votes go to every replica (n ≤ 10 keeps this cheap): the next leader needs them to
        // propose, and everyone else forms the QC too, so a dead next leader cannot keep the
        // previous block from committing.
        fx.push(Effect::Broadcast(NativeMessage::Vote(vote.clone())));
        self.on_vote(self.me, vote, fx);
    }

    fn on_proposal(&mut self, from: u16, p: Proposal, fx: &mut Fx) {
        let h = &p.block.header;
        let round = h.round;
        let hash = p.block.hash();
        if round <= self.committed.round || self.blocks.contains_key(&hash) && self.validated.contains(&hash) {
            return;
        }
        if round > self.round.saturating_add(ROUND_WINDOW) && p.justify.round <= self.high_qc.round {
            // Far ahead of us, and its QC teaches us nothing: a flood, not progress.
            self.metrics.dropped_future_round.increment(1);
            return;
        }
        if self.proposals.contains_key(&hash) {
            return; // a replay of a proposal already verified and being handled
        }
        // The proposal may be relayed (fetched from a voter): what matters is that the leader of
        // the round signed it.
        let proposer = h.proposer;
        // Only the leader of the round in our view: reputation is computed from committed
        // blocks alone, so every replica at the same commit height agrees, and an operator it
        // excluded cannot race the real leader by claiming its round-robin slot.
        if proposer != self.leader(round) {
            // Our leader view comes from our committed chain; if that is behind, so is the view.
            // A valid QC well ahead of our commits means: catch up first.
            if p.justify.round > self.committed.round + 2
                && verify_qc(&p.justify, self.cfg.chain_id, &self.cfg.operators, &self.cfg.genesis_hash).is_ok()
            {
                self.request_sync(from, fx);
            }
            debug!(target: "consensus::native", from, proposer, round, "proposal by a replica that does not lead this round in our view");
            return;
        }
        let msg = proposal_message(self.cfg.chain_id, round, &hash);
        if self.cfg.operators.verify(proposer, &msg, &p.signature.0).is_err()
            || h.chain_id != self.cfg.chain_id
            || h.parent_hash != p.justify.block_hash
            || p.justify.round >= round
            || verify_qc(&p.justify, self.cfg.chain_id, &self.cfg.operators, &self.cfg.genesis_hash).is_err()
        {
            warn!(target: "consensus::native", from, round, "invalid proposal dropped");
            self.metrics.invalid_messages.increment(1);
            return;
        }
        if let Err(e) = check_embedded(
            &h.inclusion,
            self.cfg.chain_id,
            &h.parent_hash,
            &self.cfg.operators,
            lists_required(p.justify.round, round),
        ) {
            warn!(target: "consensus::native", from, round, error = %e, "proposal refused: inclusion lists");
            self.metrics.refused_inclusion.increment(1);
            return;
        }
        if let Some(tc) = &p.tc {
            if tc.verify(self.cfg.chain_id, &self.cfg.operators).is_err()
                || verify_qc(&tc.high_qc, self.cfg.chain_id, &self.cfg.operators, &self.cfg.genesis_hash).is_err()
            {
                warn!(target: "consensus::native", from, round, "proposal with an invalid TC dropped");
                return;
            }
        }
        self.last_peer = from;
        self.process_qc(&p.justify, fx);
        if let Some(tc) = &p.tc {
            self.process_tc(tc.clone(), fx);
        }
        let Some(parent) = self.header_of(&h.parent_hash).cloned() else {
            if p.justify.round > self.committed.round {
                debug!(target: "consensus::native", round, parent = %h.parent_hash, "parent missing; fetching");
                fx.push(Effect::Send { to: from, message: NativeMessage::FetchBlock(h.parent_hash) });
                self.waiting.entry(h.parent_hash).or_default().push((from, p));
                self.request_sync(from, fx);
            }
            return;
        };
        if h.number != parent.number + 1 {
            warn!(target: "consensus::native", from, round, "proposal with a wrong block number dropped");
            return;
        }
        self.blocks.insert(hash, p.block.clone());
        self.fetching.remove(&hash);
        self.qcs.entry(h.parent_hash).or_insert_with(|| p.justify.clone());
        self.proposals.insert(hash, p.clone());
        let safe = round > self.safety.last_signed_round
            && round == self.round
            && (p.justify.round + 1 == round
                || p.tc.as_ref().is_some_and(|tc| {
                    tc.round + 1 == round && p.justify.round >= tc.signatures.iter().map(|s| s.1).max().unwrap_or(0)
                }));
        // Every stored block is executed by the node (it is needed to build on or commit it);
        // the result only matters for the vote when it is safe to vote for it.
        if safe {
            self.pending_vote = Some((round, hash));
        }
        fx.push(Effect::RequestValidation { block: p.block.clone() });
        // A block we were waiting for may unblock proposals and our own proposal.
        if let Some(waiters) = self.waiting.remove(&hash) {
            for (f, w) in waiters {
                self.on_proposal(f, w, fx);
            }
        }
        self.maybe_propose(fx);
    }

    fn on_validation_done(&mut self, hash: B256, result: Result<(), String>, due: Vec<Bytes>, fx: &mut Fx) {
        let Some((round, pending)) = self.pending_vote else {
            return;
        };
        if pending != hash {
            return;
        }
        self.pending_vote = None;
        if let Err(reason) = result {
            warn!(target: "consensus::native", round, %hash, reason, "refusing to vote: re-execution disagrees");
            self.metrics.refused_proposals.increment(1);
            return;
        }
        if round != self.round || round <= self.safety.last_signed_round {
            return;
        }
        self.validated.insert(hash);
        self.safety.last_signed_round = round;
        if let Some(block) = self.blocks.get(&hash) {
            fx.push(Effect::PersistBlock(block.clone()));
        }
        fx.push(self.persist());
        self.send_vote(round, hash, due, fx);
    }

    // ---- votes and timeouts ----------------------------------------------------------------

    fn on_vote(&mut self, from: u16, v: Vote, fx: &mut Fx) {
        if v.round + 1 < self.round || v.round <= self.committed.round {
            return;
        }
        if v.round > self.round.saturating_add(ROUND_WINDOW) {
            self.metrics.dropped_future_round.increment(1);
            return;
        }
        // A replayed vote is not verified again; a second vote in a round for another block is
        // equivocation and is not stored.
        match self.voted.get(&(v.round, from)) {
            Some(h) if *h == v.block_hash => {
                // A second list with the same vote: equivocation evidence if it differs.
                self.take_list(from, &v, fx);
                return;
            }
            Some(_) => {
                self.metrics.dropped_equivocating_vote.increment(1);
                return;
            }
            None => {}
        }
        if from != self.me {
            let msg = vote_message(self.cfg.chain_id, v.round, &v.block_hash);
            if self.cfg.operators.verify(from, &msg, &v.signature.0).is_err() {
                warn!(target: "consensus::native", from, round = v.round, "bad vote signature");
                self.metrics.invalid_messages.increment(1);
                return;
            }
        }
        self.metrics.votes_received.increment(1);
        self.voted.insert((v.round, from), v.block_hash);
        self.take_list(from, &v, fx);
        // A vote for a block we never received: its proposal was lost on the way to us. Ask the
        // voter for it while the round is still open.
        if from != self.me
            && v.round >= self.round
            && !self.blocks.contains_key(&v.block_hash)
            && self.fetching.insert(v.block_hash)
        {
            fx.push(Effect::Send { to: from, message: NativeMessage::FetchBlock(v.block_hash) });
        }
        let quorum = self.quorum();
        let entry = self.votes.entry((v.round, v.block_hash)).or_default();
        if entry.len() >= quorum {
            return; // QC already formed
        }
        entry.insert(from, v.signature);
        if entry.len() == quorum {
            let qc = Certificate {
                chain_id: self.cfg.chain_id,
                round: v.round,
                block_hash: v.block_hash,
                signatures: entry.iter().map(|(o, s)| (*o, *s)).collect(),
                hotstuff_rs: None,
            };
            debug!(target: "consensus::native", round = v.round, "formed QC");
            self.process_qc(&qc, fx);
            self.maybe_propose(fx);
        }
    }

    /// Keeps the inclusion list a vote carries (verified: it is signed on its own), and lets a
    /// leader waiting for lists propose once it has 2f+1.
    fn take_list(&mut self, from: u16, v: &Vote, fx: &mut Fx) {
        let Some(list) = v.list.clone() else { return };
        if list.operator != from {
            return;
        }
        let collected = self.lists.entry(v.block_hash).or_default();
        if collected.holds(&list) {
            return;
        }
        if from != self.me {
            if let Err(e) = list.verify(self.cfg.chain_id, &v.block_hash, &self.cfg.operators) {
                warn!(target: "consensus::native", from, round = v.round, error = %e, "invalid inclusion list dropped");
                self.metrics.invalid_messages.increment(1);
                return;
            }
        }
        if collected.add(list) && self.awaiting_lists && v.block_hash == self.high_qc.block_hash {
            self.request_payload(fx);
        }
    }

    fn on_round_timer(&mut self, round: u64, fx: &mut Fx) {
        if round != self.round {
            return;
        }
        // Every firing in the current round: a round timer's period passed without progress.
        self.metrics.round_timer_fired.increment(1);
        if self.my_timeout.is_none() {
            if round < self.safety.last_signed_round {
                return;
            }
            self.failed_rounds += 1;
            self.metrics.timeouts.increment(1);
            warn!(target: "consensus::native", round, leader = self.leader(round), "round timed out");
            let t = Timeout {
                round,
                high_qc: self.high_qc.clone(),
                entry_tc: self.entry_tc.clone().filter(|tc| tc.round + 1 == round),
                signature: SigBytes(self.signer.sign(&timeout_message(self.cfg.chain_id, round, self.high_qc.round))),
            };
            self.safety.last_signed_round = self.safety.last_signed_round.max(round);
            self.my_timeout = Some(t);
            fx.push(self.persist());
        }
        if let Some(t) = self.my_timeout.clone() {
            fx.push(Effect::Broadcast(NativeMessage::Timeout(Box::new(t.clone()))));
            self.on_timeout(self.me, t, fx);
        }
        if round == self.round {
            fx.push(Effect::ScheduleTimer { kind: TimerKind::RoundTimeout { round }, after: self.round_timeout() });
        }
    }

    fn on_timeout(&mut self, from: u16, t: Timeout, fx: &mut Fx) {
        if t.round > self.round.saturating_add(ROUND_WINDOW) {
            // Certificates still move a lagging replica forward (TCs, QCs in proposals); single
            // timeouts that far ahead are not kept.
            self.metrics.dropped_future_round.increment(1);
            return;
        }
        if self.timeouts.get(&t.round).is_some_and(|s| s.contains_key(&from)) {
            return; // already counted (a replay is not verified again)
        }
        if from != self.me {
            let msg = timeout_message(self.cfg.chain_id, t.round, t.high_qc.round);
            if self.cfg.operators.verify(from, &msg, &t.signature.0).is_err()
                || verify_qc(&t.high_qc, self.cfg.chain_id, &self.cfg.operators, &self.cfg.genesis_hash).is_err()
            {
                warn!(target: "consensus::native", from, round = t.round, "invalid timeout dropped");
                self.metrics.invalid_messages.increment(1);
                return;
            }
            self.process_qc(&t.high_qc, fx);
            if let Some(tc) = t.entry_tc.clone() {
                if tc.round + 1 > self.round
                    && tc.verify(self.cfg.chain_id, &self.cfg.operators).is_ok()
                    && verify_qc(&tc.high_qc, self.cfg.chain_id, &self.cfg.operators, &self.cfg.genesis_hash).is_ok()
                {
                    self.process_tc(tc, fx);
                }
            }
            if self.header_of(&t.high_qc.block_hash).is_none() && t.high_qc.round > self.committed.round {
                fx.push(Effect::Send { to: from, message: NativeMessage::FetchBlock(t.high_qc.block_hash) });
                if t.high_qc.round > self.committed.round + 2 {
                    self.request_sync(from, fx);
                }
            }
        }
        if t.round < self.round {
            // The sender is behind: our own timeout for our round carries the TC it is missing.
            if let Some(mine) = self.my_timeout.clone().filter(|m| m.entry_tc.is_some()) {
                fx.push(Effect::Send { to: from, message: NativeMessage::Timeout(Box::new(mine)) });
            }
            return;
        }
        let round = t.round;
        let set = self.timeouts.entry(round).or_default();
        set.insert(from, t);
        let count = set.len();
        // f+1 replicas gave up on a round at or above ours: join them.
        if round > self.round && count > self.cfg.operators.max_faulty() {
            self.enter_round(round, fx);
            self.on_round_timer(round, fx);
            return;
        }
        if round == self.round && count >= self.quorum() {
            let set = &self.timeouts[&round];
            let high_qc = set.values().map(|t| &t.high_qc).max_by_key(|q| q.round).cloned();
            let Some(high_qc) = high_qc else { return };
            let tc = TimeoutCert {
                round,
                high_qc,
                signatures: set.iter().map(|(o, t)| (*o, t.high_qc.round, t.signature)).collect(),
            };
            fx.push(Effect::Broadcast(NativeMessage::Tc(Box::new(tc.clone()))));
            self.process_tc(tc, fx);
        }
    }

    fn process_tc(&mut self, tc: TimeoutCert, fx: &mut Fx) {
        self.process_qc(&tc.high_qc, fx);
        if tc.round + 1 > self.round {
            debug!(target: "consensus::native", round = tc.round, "timeout certificate");
            self.entry_tc = Some(tc.clone());
            self.enter_round(tc.round + 1, fx);
        }
    }
}

impl Engine for NativeEngine {
    type Message = NativeMessage;

    fn name(&self) -> &'static str {
        "native"
    }

    fn handle(&mut self, input: Input<NativeMessage>) -> Fx {
        let mut fx = Vec::new();
        match input {
            Input::Start => {
                // Resume in the last round this replica signed in: it may still time out there
                // (never vote again), so replicas that stayed in that round can form a TC.
                let start = (self.high_qc.round + 1).max(self.safety.last_signed_round);
                // Blocks reloaded from storage must be executed again before anything builds on
                // or commits them.
                let mut reloaded: Vec<Block> = self.blocks.values().cloned().collect();
                reloaded.sort_by_key(|b| b.number());
                fx.extend(reloaded.into_iter().map(|block| Effect::RequestValidation { block }));
                let hq = self.high_qc.clone();
                self.try_commit(&hq, &mut fx);
                self.enter_round(start, &mut fx);
            }
            Input::TimerFired(TimerKind::Propose) => self.request_payload(&mut fx),
            Input::TimerFired(TimerKind::RoundTimeout { round }) => {
                self.sync_pending = false;
                self.on_round_timer(round, &mut fx)
            }
            Input::ProposalReady { round, block, due } => self.on_proposal_ready(round, block, due, &mut fx),
            Input::ValidationDone { block_hash, result, due } => {
                self.on_validation_done(block_hash, result, due, &mut fx)
            }
            Input::Message { from, message } => {
                if from as usize >= self.cfg.operators.len() || from == self.me {
                    return fx;
                }
                match message {
                    NativeMessage::Proposal(p) => self.on_proposal(from, *p, &mut fx),
                    NativeMessage::Vote(v) => self.on_vote(from, v, &mut fx),
                    NativeMessage::Timeout(t) => self.on_timeout(from, *t, &mut fx),
                    NativeMessage::Tc(tc) => {
                        if tc.round + 1 > self.round
                            && tc.verify(self.cfg.chain_id, &self.cfg.operators).is_ok()
                            && verify_qc(&tc.high_qc, self.cfg.chain_id, &self.cfg.operators, &self.cfg.genesis_hash)
                                .is_ok()
                        {
                            self.process_tc(*tc, &mut fx);
                        }
                    }
                    NativeMessage::FetchBlock(h) => self.on_fetch(from, h, &mut fx),
                    NativeMessage::Block(b) => self.on_fetched(from, *b, &mut fx),
                }
            }
            Input::PeerConnected { peer } => self.request_sync(peer, &mut fx),
            Input::Synced { from, blocks, headers, proof, more } => {
                self.on_synced(from, blocks, headers, proof, more, &mut fx)
            }
        }
        fx
    }
}

/// Whether a proposal for `round` extending a QC of `justify_round` must embed 2f+1 inclusion
/// lists: on the normal path (the QC is of the round right before), except on genesis, which
/// nobody voted for. After a failed round the lists of the QC's voters may be lost.
pub fn lists_required(justify_round: u64, round: u64) -> bool {
    justify_round > 0 && justify_round + 1 == round
}

/// The QC that stands for a committed head: its stored certificate, or genesis's implicit one.
pub fn head_qc(chain_id: u64, genesis_hash: B256, head: &BlockHeader, stored: Option<Certificate>) -> Certificate {
    match stored {
        Some(c) => c,
        None => genesis_qc(chain_id, if head.number == 0 { head.hash() } else { genesis_hash }),
    }
}
