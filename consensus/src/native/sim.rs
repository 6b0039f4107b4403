//! Deterministic simulation of native-engine replicas: one process, virtual time, a seeded
//! network that drops, delays, reorders and partitions, crashes and restarts from persisted
//! safety data, and Byzantine replicas. Invariant checked at every commit: no two different
//! blocks are committed at one height. A failing run prints its seed; replay it with
//! `BSS_SIM_SEED=<seed> cargo test -p bss-consensus sim`.

use super::core::{head_qc, NativeConfig, NativeEngine};
use super::messages::{proposal_message, sign_vote, NativeMessage, Proposal, Vote};
use crate::certificate::SigBytes;
use crate::engine::{CommitProof, Effect, Engine, Input, SafetyData};
use crate::inclusion::{obligations, InclusionList};
use crate::{Block, BlockHeader, BtcAttributes, Certificate, OperatorSet, OperatorSigner};
use alloy_primitives::{keccak256, Bytes, B256};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    Honest,
    /// As leader, sends one proposal to half the replicas and a conflicting one to the rest.
    Equivocator,
    /// Votes for every proposal it sees, conflicting or not, to everyone.
    DoubleVoter,
    /// Proposes blocks whose state root replicas cannot reproduce.
    WrongRoot,
    /// Never includes or lists the scenario's due transactions; otherwise honest.
    Censor,
    /// Signs two different inclusion lists with every vote (each naming a made-up tx) and sends
    /// both to even replicas, one to odd ones.
    ListEquivocator,
    /// Votes without inclusion lists.
    Listless,
}

#[derive(Clone, Debug)]
enum Event {
    Deliver { to: usize, from: u16, msg: NativeMessage },
    Input { node: usize, epoch: u32, input: Input<NativeMessage> },
    Crash(usize),
    Restart(usize),
}

struct Replica {
    index: u16,
    signer: OperatorSigner,
    behavior: Behavior,
    engine: Option<NativeEngine>,
    epoch: u32,
    /// What survives a crash: persisted safety data, persisted blocks, the committed chain.
    safety: SafetyData,
    persisted_blocks: Vec<Block>,
    committed: Vec<(Block, Certificate)>,
    last_proof: Option<CommitProof>,
}

pub struct Partition {
    pub start_ms: u64,
    pub end_ms: u64,
    /// Replicas on one side; the rest are on the other.
    pub side: Vec<u16>,
}

pub struct Scenario {
    pub n: usize,
    pub behaviors: Vec<Behavior>,
    /// Replica indices run twice with the same key (the second copy is Byzantine).
    pub twins: Vec<u16>,
    pub drop_rate: f64,
    pub max_delay_ms: u64,
    pub partitions: Vec<Partition>,
    /// (at_ms, replica, restart_at_ms)
    pub crashes: Vec<(u64, usize, u64)>,
    pub duration_ms: u64,
    /// Blocks every live honest replica must commit after the network is healed.
    pub min_progress_after_heal: u64,
    /// Transactions every honest replica holds due from the start (the mock mempool).
    pub due: Vec<Bytes>,
}

pub struct Sim {
    rng: StdRng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: HashMap<usize, Event>,
    replicas: Vec<Replica>,
    /// For twins: extra replica slots that share an operator index with another slot.
    slot_index: Vec<u16>,
    set: OperatorSet,
    genesis: BlockHeader,
    committed_at: BTreeMap<u64, B256>,
    /// Every block any replica built (the mock executor's view of the world).
    headers: HashMap<B256, BlockHeader>,
    /// The transactions of every block built, by block hash.
    bodies: HashMap<B256, Vec<Bytes>>,
    scenario: Scenario,
    pub seed: u64,
}

const CHAIN: u64 = 77;

fn genesis() -> BlockHeader {
    BlockHeader {
        chain_id: CHAIN,
        number: 0,
        parent_hash: B256::ZERO,
        round: 0,
        proposer: 0,
        timestamp_ms: 0,
        transactions_root: B256::ZERO,
        receipts_root: B256::ZERO,
        state_root: B256::ZERO,
        gas_used: 0,
        gas_limit: 1,
        base_fee: 1,
        btc: BtcAttributes::default(),
        anchors: vec![],
        inclusion: vec![],
        forced: vec![],
        mints: vec![],
    }
}

/// The mock executor's deterministic state transition.
fn state_root(parent: &BlockHeader, round: u64) -> B256 {
    let mut m = parent.state_root.to_vec();
    m.extend_from_slice(&round.to_be_bytes());
    keccak256(m)
}

fn build(parent: &BlockHeader, round: u64, proposer: u16, salt: u64) -> Block {
    let mut header = parent.clone();
    header.number = parent.number + 1;
    header.parent_hash = parent.hash();
    header.round = round;
    header.proposer = proposer;
    header.timestamp_ms = parent.timestamp_ms + 1 + salt;
    header.state_root = state_root(parent, round);
    Block { header, transactions: vec![] }
}

impl Sim {
    pub fn new(seed: u64, scenario: Scenario) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let signers: Vec<OperatorSigner> = (0..scenario.n)
            .map(|_| {
                let mut secret = [0u8; 32];
                rng.fill(&mut secret);
                OperatorSigner::from_bytes(secret)
            })
            .collect();
        let set = OperatorSet::new(signers.iter().map(|s| s.public()).collect());
        let mut slot_index: Vec<u16> = (0..scenario.n as u16).collect();
        slot_index.extend(scenario.twins.iter().copied());
        let replicas = slot_index
            .iter()
            .enumerate()
            .map(|(slot, &index)| Replica {
                index,
                signer: signers[index as usize].clone(),
                behavior: if slot < scenario.n { scenario.behaviors[slot] } else { Behavior::Honest },
                engine: None,
                epoch: 0,
                safety: SafetyData::default(),
                persisted_blocks: vec![],
                committed: vec![],
                last_proof: None,
            })
            .collect();
        let mut sim = Self {
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            replicas,
            slot_index,
            set,
            genesis: genesis(),
            committed_at: BTreeMap::new(),
            headers: HashMap::from([(genesis().hash(), genesis())]),
            bodies: HashMap::new(),
            scenario,
            seed,
        };
        for slot in 0..sim.replicas.len() {
            sim.boot(slot);
        }
        let crashes: Vec<_> = sim.scenario.crashes.iter().map(|c| (c.0, c.1, c.2)).collect();
        for (at, node, back) in crashes {
            sim.schedule(at, Event::Crash(node));
            sim.schedule(back, Event::Restart(node));
        }
        sim
    }

    fn is_faulty(&self, slot: usize) -> bool {
        slot >= self.scenario.n || self.replicas[slot].behavior != Behavior::Honest
    }

    fn config(&self) -> NativeConfig {
        NativeConfig {
            chain_id: CHAIN,
            operators: self.set.clone(),
            genesis_hash: self.genesis.hash(),
            base_timeout: Duration::from_millis(400),
            max_timeout: Duration::from_secs(3),
            block_time: Duration::ZERO,
            reputation_window: 2 * self.scenario.n,
        }
    }

    fn boot(&mut self, slot: usize) {
        let cfg = self.config();
        let r = &mut self.replicas[slot];
        r.epoch += 1;
        let (head, cert) = match r.committed.last() {
            Some((b, c)) => (b.header.clone(), Some(c.clone())),
            None => (self.genesis.clone(), None),
        };
        let qc = head_qc(CHAIN, self.genesis.hash(), &head, cert);
        let keep = NativeEngine::history_len(&cfg);
        let history: Vec<(u64, u16)> =
            r.committed.iter().rev().take(keep).rev().map(|(b, _)| (b.header.round, b.header.proposer)).collect();
        let engine =
            NativeEngine::new(cfg, r.signer.clone(), head, qc, r.safety.clone(), r.persisted_blocks.clone(), history)
                .expect("replica key in the operator set");
        r.engine = Some(engine);
        let epoch = r.epoch;
        self.schedule(self.now, Event::Input { node: slot, epoch, input: Input::Start });
    }

    fn schedule(&mut self, at: u64, e: Event) {
        self.seq += 1;
        let id = self.seq as usize;
        self.events.insert(id, e);
        self.queue.push(Reverse((at, self.seq, id)));
    }

    fn cut(&self, a: u16, b: u16) -> bool {
        self.scenario
            .partitions
            .iter()
            .any(|p| self.now >= p.start_ms && self.now < p.end_ms && (p.side.contains(&a) != p.side.contains(&b)))
    }

    fn send(&mut self, from_slot: usize, to_index: u16, msg: NativeMessage) {
        let from = self.slot_index[from_slot];
        for to in 0..self.replicas.len() {
            if self.slot_index[to] != to_index || to == from_slot {
                continue;
            }
            if self.cut(from, to_index) || self.rng.gen_bool(self.scenario.drop_rate) {
                continue;
            }
            let delay = self.rng.gen_range(1..=self.scenario.max_delay_ms);
            self.schedule(self.now + delay, Event::Deliver { to, from, msg: msg.clone() });
        }
    }

    fn broadcast(&mut self, from_slot: usize, msg: NativeMessage) {
        for i in 0..self.scenario.n as u16 {
            if i != self.slot_index[from_slot] {
                self.send(from_slot, i, msg.clone());
            }
        }
    }

    fn step(&mut self) -> bool {
        let Some(Reverse((at, _, id))) = self.queue.pop() else {
            return false;
        };
        if at > self.scenario.duration_ms {
            return false;
        }
        self.now = at;
        let Some(event) = self.events.remove(&id) else {
            return true;
        };
        match event {
            Event::Crash(slot) => self.replicas[slot].engine = None,
            Event::Restart(slot) => self.boot(slot),
            Event::Deliver { to, from, msg } => {
                self.byzantine_on_receive(to, &msg);
                self.input(to, Input::Message { from, message: msg });
            }
            Event::Input { node, epoch, input } => {
                if self.replicas[node].epoch == epoch {
                    self.input(node, input);
                }
            }
        }
        true
    }

    fn input(&mut self, slot: usize, input: Input<NativeMessage>) {
        let Some(engine) = self.replicas[slot].engine.as_mut() else {
            return;
        };
        let effects = engine.handle(input);
        for e in effects {
            self.effect(slot, e);
        }
    }

    fn later(&mut self, slot: usize, delay: u64, input: Input<NativeMessage>) {
        let epoch = self.replicas[slot].epoch;
        self.schedule(self.now + delay, Event::Input { node: slot, epoch, input });
    }

    fn effect(&mut self, slot: usize, e: Effect<NativeMessage>) {
        if std::env::var("BSS_SIM_TRACE").ok().and_then(|v| v.parse::<usize>().ok()) == Some(slot) {
            let brief = match &e {
                Effect::Commit { block, .. } => {
                    format!("Commit #{} r{}", block.number(), block.header.round)
                }
                Effect::Send { to, message } => format!("Send {to} {}", brief(message)),
                Effect::Broadcast(m) => format!("Broadcast {}", brief(m)),
                Effect::RequestSync { peer, from_number } => {
                    format!("RequestSync {peer} {from_number}")
                }
                Effect::ScheduleTimer { kind, .. } => format!("Timer {kind:?}"),
                Effect::RequestValidation { block } => format!("Validate r{}", block.header.round),
                other => format!("{:?}", std::mem::discriminant(other)),
            };
            let round = self.replicas[slot].engine.as_ref().map_or(0, |e| e.round());
            let leader = self.replicas[slot].engine.as_ref().map_or(99, |e| e.leader(round));
            eprintln!("t={} slot={slot} round={round} leader={leader} {brief}", self.now);
        }
        match e {
            Effect::PersistSafety(s) => self.replicas[slot].safety = s,
            Effect::PersistBlock(b) => self.replicas[slot].persisted_blocks.push(b),
            Effect::Broadcast(m) => self.byzantine_broadcast(slot, m),
            Effect::Send { to, message } => self.send(slot, to, message),
            Effect::ScheduleTimer { kind, after } => {
                let delay = (after.as_millis() as u64).max(1);
                self.later(slot, delay, Input::TimerFired(kind));
            }
            Effect::RequestProposal { round, parent, lists } => {
                let me = self.replicas[slot].index;
                let mut block = build(&parent, round, me, 0);
                // The mock executor: every listed tx is valid unless an ancestor already has it.
                let parent_hash = parent.hash();
                block.transactions = obligations(&lists)
                    .into_iter()
                    .filter(|t| !self.in_chain(&parent_hash, t))
                    .filter(|t| self.replicas[slot].behavior != Behavior::Censor || !self.scenario.due.contains(t))
                    .collect();
                block.header.inclusion = lists;
                if self.replicas[slot].behavior == Behavior::WrongRoot {
                    block.header.state_root = B256::repeat_byte(0xee);
                }
                self.remember(&block);
                let due = self.due_after(slot, &block);
                self.later(slot, 1, Input::ProposalReady { round, block, due });
            }
            Effect::RequestValidation { block } => {
                let parent = self.parent_header(slot, &block);
                let result = match parent {
                    Some(p) if block.header.state_root != state_root(&p, block.header.round) => {
                        Err("state root mismatch".to_string())
                    }
                    Some(_) => self.check_obligations(&block),
                    None => Err("unknown parent".to_string()),
                };
                let due = self.due_after(slot, &block);
                self.later(slot, 1, Input::ValidationDone { block_hash: block.hash(), result, due });
            }
            Effect::Commit { block, certificate, proof } => self.commit(slot, block, certificate, proof),
            Effect::RequestSync { peer, from_number } => self.serve_sync(slot, peer, from_number),
        }
    }

    fn remember(&mut self, block: &Block) {
        self.headers.insert(block.hash(), block.header.clone());
        self.bodies.insert(block.hash(), block.transactions.clone());
    }

    /// Whether `tx` is in the block `tip` or one of its ancestors (appending it again fails).
    fn in_chain(&self, tip: &B256, tx: &Bytes) -> bool {
        let mut cursor = *tip;
        while let Some(h) = self.headers.get(&cursor) {
            if self.bodies.get(&cursor).is_some_and(|b| b.contains(tx)) {
                return true;
            }
            if h.number == 0 {
                break;
            }
            cursor = h.parent_hash;
        }
        false
    }

    /// The mock executor's conditional-inclusion check.
    fn check_obligations(&self, block: &Block) -> Result<(), String> {
        for t in obligations(&block.header.inclusion) {
            if !block.transactions.contains(&t) && !self.in_chain(&block.header.parent_hash, &t) {
                return Err(format!("omits listed tx {}", keccak256(&t)));
            }
        }
        Ok(())
    }

    /// The mock mempool: the scenario's due txs not yet in `block`'s chain (none for a censor).
    fn due_after(&self, slot: usize, block: &Block) -> Vec<Bytes> {
        if matches!(self.replicas[slot].behavior, Behavior::Censor) {
            return vec![];
        }
        let hash = block.hash();
        self.scenario.due.iter().filter(|t| !self.in_chain(&hash, t)).cloned().collect()
    }

    fn parent_header(&self, _slot: usize, block: &Block) -> Option<BlockHeader> {
        self.headers.get(&block.header.parent_hash).cloned()
    }

    fn commit(&mut self, slot: usize, block: Block, cert: Certificate, proof: Option<CommitProof>) {
        let seed = self.seed;
        let number = block.number();
        let hash = block.hash();
        if let Err(e) = self.check_obligations(&block) {
            panic!("seed {seed}: replica {slot} committed block {number} that breaks the inclusion rule: {e}");
        }
        let r = &mut self.replicas[slot];
        let expected = r.committed.last().map_or(1, |(b, _)| b.number() + 1);
        assert_eq!(number, expected, "seed {seed}: replica {slot} committed out of order");
        r.committed.push((block, cert));
        if proof.is_some() {
            r.last_proof = proof;
        }
        if self.is_faulty(slot) {
            return;
        }
        match self.committed_at.get(&number) {
            Some(h) => {
                assert_eq!(*h, hash, "seed {seed}: SAFETY VIOLATION at height {number}: two different blocks committed")
            }
            None => {
                self.committed_at.insert(number, hash);
            }
        }
    }

    fn serve_sync(&mut self, slot: usize, peer: u16, from_number: u64) {
        let Some(server) =
            (0..self.replicas.len()).find(|s| self.slot_index[*s] == peer && self.replicas[*s].engine.is_some())
        else {
            return;
        };
        if self.cut(self.slot_index[slot], peer) {
            return;
        }
        let r = &self.replicas[server];
        // At most 8 full blocks; the rest linked by headers, as the node answers.
        let all: Vec<_> = r.committed.iter().filter(|(b, _)| b.number() >= from_number).cloned().collect();
        let blocks: Vec<_> = all.iter().take(8).cloned().collect();
        let headers = all.iter().skip(8).map(|(b, _)| b.header.clone()).collect();
        let input = Input::Synced { from: peer, blocks, headers, proof: r.last_proof.clone(), more: false };
        let delay = self.rng.gen_range(1..=self.scenario.max_delay_ms);
        self.later(slot, delay, input);
    }

    fn byzantine_broadcast(&mut self, slot: usize, m: NativeMessage) {
        match (&m, self.replicas[slot].behavior) {
            (NativeMessage::Proposal(p), Behavior::Equivocator) => {
                let mut other = p.block.clone();
                other.header.timestamp_ms += 1_000;
                let hash = other.hash();
                self.remember(&other);
                let signer = &self.replicas[slot].signer;
                let twin = Proposal {
                    signature: SigBytes(signer.sign(&proposal_message(CHAIN, other.header.round, &hash))),
                    block: other,
                    justify: p.justify.clone(),
                    tc: p.tc.clone(),
                };
                for i in 0..self.scenario.n as u16 {
                    if i == self.slot_index[slot] {
                        continue;
                    }
                    let msg = if i % 2 == 0 { m.clone() } else { NativeMessage::Proposal(Box::new(twin.clone())) };
                    self.send(slot, i, msg);
                }
            }
            (NativeMessage::Vote(v), Behavior::Listless) => {
                let v = Vote { list: None, ..v.clone() };
                self.broadcast(slot, NativeMessage::Vote(v));
            }
            (NativeMessage::Vote(v), Behavior::ListEquivocator) => {
                let me = self.slot_index[slot];
                let signer = self.replicas[slot].signer.clone();
                let made_up = |tag: u8| Bytes::from(vec![tag, me as u8, (v.round % 251) as u8]);
                let a = InclusionList::sign(&signer, me, CHAIN, &v.block_hash, vec![made_up(0xa)]);
                let b = InclusionList::sign(&signer, me, CHAIN, &v.block_hash, vec![made_up(0xb)]);
                for i in 0..self.scenario.n as u16 {
                    if i == me {
                        continue;
                    }
                    let with = |l: &InclusionList| NativeMessage::Vote(Vote { list: Some(l.clone()), ..v.clone() });
                    self.send(slot, i, with(&b));
                    if i % 2 == 0 {
                        self.send(slot, i, with(&a));
                    }
                }
            }
            _ => self.broadcast(slot, m),
        }
    }

    /// Committed blocks of an honest replica.
    pub fn committed_blocks(&self, slot: usize) -> impl Iterator<Item = &Block> {
        self.replicas[slot].committed.iter().map(|(b, _)| b)
    }

    fn byzantine_on_receive(&mut self, slot: usize, msg: &NativeMessage) {
        if self.replicas[slot].behavior != Behavior::DoubleVoter || self.replicas[slot].engine.is_none() {
            return;
        }
        if let NativeMessage::Proposal(p) = msg {
            let round = p.block.header.round;
            let hash = p.block.hash();
            let vote = Vote {
                round,
                block_hash: hash,
                signature: sign_vote(&self.replicas[slot].signer, CHAIN, round, &hash),
                list: None,
            };
            self.broadcast(slot, NativeMessage::Vote(vote));
        }
    }

    /// Committed height of every live honest replica.
    pub fn honest_heights(&self) -> Vec<(usize, u64)> {
        (0..self.scenario.n)
            .filter(|s| !self.is_faulty(*s) && self.replicas[*s].engine.is_some())
            .map(|s| (s, self.replicas[s].committed.last().map_or(0, |(b, _)| b.number())))
            .collect()
    }

    pub fn run_until(&mut self, t: u64) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > t {
                break;
            }
            if !self.step() {
                break;
            }
        }
        self.now = self.now.max(t);
    }
}

fn brief(m: &NativeMessage) -> String {
    match m {
        NativeMessage::Proposal(p) => {
            format!("Proposal r{} #{}", p.block.header.round, p.block.number())
        }
        NativeMessage::Vote(v) => format!("Vote r{}", v.round),
        NativeMessage::Timeout(t) => format!("Timeout r{} hqc r{}", t.round, t.high_qc.round),
        NativeMessage::Tc(tc) => format!("TC r{}", tc.round),
        NativeMessage::FetchBlock(h) => format!("Fetch {h}"),
        NativeMessage::Block(b) => format!("Block #{}", b.block.number()),
    }
}

/// The seeds to run: `BSS_SIM_SEED=<n>` replays one; `BSS_SIM_SOAK=<k>` runs k times as many
/// (the long tier, not in CI's default run).
pub(super) fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    if let Some(seed) = std::env::var("BSS_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let k: u64 = std::env::var("BSS_SIM_SOAK").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let len = default.end - default.start;
    (default.start..default.start + len * k.max(1)).map(|s| if s < default.end { s } else { s * 7_919 }).collect()
}

/// Runs the scenario; checks safety throughout and progress after the last fault heals.
pub(super) fn check(seed: u64, scenario: Scenario) -> Sim {
    let heal =
        scenario.partitions.iter().map(|p| p.end_ms).chain(scenario.crashes.iter().map(|c| c.2)).max().unwrap_or(0);
    let min_progress = scenario.min_progress_after_heal;
    let duration = scenario.duration_ms;
    let mut sim = Sim::new(seed, scenario);
    sim.run_until(heal);
    let before: BTreeMap<usize, u64> = sim.honest_heights().into_iter().collect();
    sim.run_until(duration);
    let max_before = before.values().copied().max().unwrap_or(0);
    for (slot, h) in sim.honest_heights() {
        assert!(
            h >= max_before + min_progress,
            "seed {seed}: replica {slot} at height {h}, expected ≥ {} after the network healed (heights before heal {before:?})",
            max_before + min_progress
        );
    }
    sim
}

fn rand_partitions(rng: &mut StdRng, n: usize) -> Vec<Partition> {
    let mut out = vec![];
    let mut t = rng.gen_range(500..2_000);
    for _ in 0..rng.gen_range(0..3) {
        let len = rng.gen_range(500..3_000);
        let k = rng.gen_range(1..n);
        let mut side: Vec<u16> = (0..n as u16).collect();
        for i in (1..side.len()).rev() {
            let j = rng.gen_range(0..=i);
            side.swap(i, j);
        }
        side.truncate(k);
        out.push(Partition { start_ms: t, end_ms: t + len, side });
        t += len + rng.gen_range(200..1_500);
    }
    out
}

pub(super) fn lossy(seed: u64, n: usize, behaviors: Vec<Behavior>, twins: Vec<u16>) -> Scenario {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let partitions = rand_partitions(&mut rng, n);
    Scenario {
        n,
        behaviors,
        twins,
        drop_rate: rng.gen_range(0.0..0.15),
        max_delay_ms: rng.gen_range(5..80),
        partitions,
        crashes: vec![],
        duration_ms: 15_000,
        min_progress_after_heal: 5,
        due: vec![],
    }
}

#[test]
fn sim_n4_lossy_partitioned_network() {
    for seed in seeds(0..80) {
        check(seed, lossy(seed, 4, vec![Behavior::Honest; 4], vec![]));
    }
}

#[test]
fn sim_n7_lossy_partitioned_network() {
    for seed in seeds(1_000..1_025) {
        check(seed, lossy(seed, 7, vec![Behavior::Honest; 7], vec![]));
    }
}

#[test]
fn sim_n4_crash_and_restart_from_persisted_safety_data() {
    for seed in seeds(2_000..2_040) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut s = lossy(seed, 4, vec![Behavior::Honest; 4], vec![]);
        let victim = rng.gen_range(0..4);
        let at = rng.gen_range(1_000..6_000);
        s.crashes = vec![(at, victim, at + rng.gen_range(500..5_000))];
        check(seed, s);
    }
}

#[test]
fn sim_n7_two_crashes_and_restarts() {
    for seed in seeds(3_000..3_020) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut s = lossy(seed, 7, vec![Behavior::Honest; 7], vec![]);
        let a = rng.gen_range(0..7);
        let b = (a + rng.gen_range(1..7)) % 7;
        let t = rng.gen_range(1_000..5_000);
        s.crashes = vec![(t, a, t + 3_000), (t + 500, b, t + 6_000)];
        check(seed, s);
    }
}

#[test]
fn sim_byzantine_equivocator_double_voter_wrong_root_and_twins() {
    for seed in seeds(4_000..4_064) {
        let kind = seed % 4;
        let mut b = vec![Behavior::Honest; 4];
        let byz = (seed / 4 % 4) as usize;
        let mut twins = vec![];
        match kind {
            0 => b[byz] = Behavior::Equivocator,
            1 => b[byz] = Behavior::DoubleVoter,
            2 => b[byz] = Behavior::WrongRoot,
            _ => {
                // The twin copy of `byz` is the faulty one; the original counts as faulty too,
                // since one key now acts twice.
                b[byz] = Behavior::DoubleVoter;
                twins.push(byz as u16);
            }
        }
        check(seed, lossy(seed, 4, b, twins));
    }
}

#[test]
fn sim_n7_two_byzantine() {
    for seed in seeds(5_000..5_020) {
        let mut b = vec![Behavior::Honest; 7];
        b[(seed % 7) as usize] = Behavior::Equivocator;
        b[((seed + 3) % 7) as usize] = Behavior::DoubleVoter;
        check(seed, lossy(seed, 7, b, vec![]));
    }
}

#[test]
fn sim_no_quorum_means_no_commit_then_resumes() {
    // Two of four down: nothing may commit; bring one back and commits resume.
    for seed in seeds(6_000..6_010) {
        let mut s = lossy(seed, 4, vec![Behavior::Honest; 4], vec![]);
        s.partitions.clear();
        s.crashes = vec![(2_000, 1, 12_000), (2_000, 2, 40_000)];
        s.duration_ms = 25_000;
        let mut sim = Sim::new(seed, s);
        sim.run_until(4_000);
        let stalled = sim.honest_heights();
        sim.run_until(11_500);
        assert_eq!(sim.honest_heights(), stalled, "seed {seed}: committed without a quorum");
        sim.run_until(25_000);
        for (slot, h) in sim.honest_heights() {
            let before = stalled.iter().map(|x| x.1).max().unwrap_or(0);
            assert!(h >= before + 5, "seed {seed}: replica {slot} did not resume (height {h}, before {before})");
        }
    }
}

#[test]
fn sim_happy_path_commits_every_round() {
    let s = Scenario {
        n: 4,
        behaviors: vec![Behavior::Honest; 4],
        twins: vec![],
        drop_rate: 0.0,
        max_delay_ms: 10,
        partitions: vec![],
        crashes: vec![],
        duration_ms: 5_000,
        min_progress_after_heal: 0,
        due: vec![],
    };
    let mut sim = Sim::new(1, s);
    sim.run_until(5_000);
    let heights = sim.honest_heights();
    // At most ~2 × 10 ms per round: hundreds of blocks in 5 s.
    assert!(heights.iter().all(|(_, h)| *h > 100), "{heights:?}");
}
