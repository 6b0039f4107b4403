//! Mempool rules, without an actor: per-sender nonce queues, replacement by higher fee, future
//! nonces held until their gap closes, and limits that make filling the pool cost money:
//!
//! * a tx's cost (gas × fee cap + value) is computed with checked arithmetic, and the cumulative
//!   cost of all of a sender's pooled txs must fit its committed balance;
//! * the pool is bounded by count and by bytes, each sender by count, and each sender's *queued*
//!   txs (those waiting for a nonce gap to close) by a smaller count and a time to live;
//! * when full, the cheapest tail tx of another sender is evicted, found in O(log n) through an
//!   ordered index of every sender's tail, never by scanning senders.

use crate::{SignedTx, TxError};
use alloy_primitives::{Address, B256, U256};
use bss_consensus::inclusion::MAX_LIST_BYTES;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Mempool limits. Defaults suit a devnet and a throughput run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Most transactions held in total. Default 200,000.
    pub max_txs: usize,
    /// Most bytes of raw transactions held in total. Default 256 MiB.
    pub max_bytes: usize,
    /// Most transactions held for one sender. Default 4,096.
    pub max_per_sender: usize,
    /// Most transactions one sender may have waiting for a nonce gap to close. Default 1,024
    /// (pipelined clients send over several connections, so gaps are normal for a moment).
    pub max_queued_per_sender: usize,
    /// How long a transaction may wait for its nonce gap to close. Default 10 minutes.
    #[serde(with = "humantime_serde")]
    pub queued_ttl: Duration,
    /// How far past the sender's next nonce a transaction may be held. Default 4,096.
    pub max_nonce_gap: u64,
    /// Fee increase, in percent, a replacement must pay on both fee cap and tip. Default 10.
    pub price_bump_percent: u128,
    /// Executable transactions in the pool past which JSON-RPC submissions wait for blocks to
    /// drain it (backpressure: a client that sends faster than the federation commits is slowed
    /// instead of every accepted tx queueing for longer). Default 8,192.
    pub admission_backlog: usize,
    /// Longest a submission waits for the backlog to drain before it is admitted anyway.
    /// Default 5 s.
    #[serde(with = "humantime_serde")]
    pub admission_wait: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_txs: 200_000,
            max_bytes: 256 * 1024 * 1024,
            max_per_sender: 4_096,
            max_queued_per_sender: 1_024,
            queued_ttl: Duration::from_secs(600),
            max_nonce_gap: 4_096,
            price_bump_percent: 10,
            admission_backlog: 8_192,
            admission_wait: Duration::from_secs(5),
        }
    }
}

/// The sender's committed nonce and balance, read when a tx arrives.
#[derive(Clone, Copy, Debug, Default)]
pub struct SenderState {
    pub nonce: u64,
    pub balance: U256,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// Replaced a tx with the same sender and nonce (its hash).
    Replaced(B256),
    /// Added, and the cheapest tail tx of another sender was evicted to make room (their hashes).
    Evicted(Vec<B256>),
}

struct Pooled {
    tx: Arc<SignedTx>,
    cost: U256,
    added: Instant,
    /// The committed height when this tx was admitted (for inclusion lists).
    height: u64,
}

#[derive(Default)]
struct SenderQueue {
    /// The committed nonce: the first nonce that can be included next.
    next_nonce: u64,
    /// The first nonce at or after `next_nonce` that is not pooled: `next_nonce..run_end` are
    /// executable, everything above waits for a gap to close.
    run_end: u64,
    txs: BTreeMap<u64, Pooled>,
    /// Sum of the costs of `txs` (never above the balance seen at admission).
    cost: U256,
    /// This sender's entry in `Pool::tails`.
    tail: Option<(u128, B256)>,
}

impl SenderQueue {
    fn pending(&self) -> usize {
        (self.run_end - self.next_nonce) as usize
    }

    /// How many txs sit behind a nonce gap.
    fn queued(&self) -> usize {
        self.txs.len() - self.pending()
    }

    fn extend_run(&mut self) {
        self.run_end = self.run_end.max(self.next_nonce);
        while self.txs.contains_key(&self.run_end) {
            self.run_end += 1;
        }
    }

    /// The committed nonce moved to `next`: returns the txs below it, which can never be included.
    fn advance(&mut self, next: u64) -> Vec<Pooled> {
        self.next_nonce = self.next_nonce.max(next);
        let stale: Vec<u64> = self.txs.range(..self.next_nonce).map(|(n, _)| *n).collect();
        let out: Vec<Pooled> = stale.into_iter().filter_map(|n| self.txs.remove(&n)).collect();
        for p in &out {
            self.cost -= p.cost;
        }
        self.extend_run();
        out
    }

    fn take(&mut self, nonce: u64) -> Option<Pooled> {
        let p = self.txs.remove(&nonce)?;
        self.cost -= p.cost;
        if (self.next_nonce..self.run_end).contains(&nonce) {
            self.run_end = nonce;
        }
        Some(p)
    }
}

#[derive(Default)]
pub struct Pool {
    cfg: PoolConfig,
    senders: HashMap<Address, SenderQueue>,
    by_hash: HashMap<B256, Arc<SignedTx>>,
    bytes: usize,
    /// Every sender's highest-nonce tx, cheapest tip first: the eviction candidates.
    tails: BTreeSet<(u128, B256, Address)>,
    /// The committed height, as last told ([`Pool::set_height`]).
    height: u64,
}

fn bumped(old: u128, percent: u128) -> u128 {
    old.saturating_mul(100 + percent) / 100
}

impl Pool {
    pub fn new(cfg: PoolConfig) -> Self {
        Self { cfg, ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Raw bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn get(&self, hash: &B256) -> Option<Arc<SignedTx>> {
        self.by_hash.get(hash).cloned()
    }

    /// Every transaction held, in no particular order.
    pub fn txs(&self) -> impl Iterator<Item = &Arc<SignedTx>> {
        self.by_hash.values()
    }

    /// The next nonce the sender would use counting pooled txs (eth_getTransactionCount "pending").
    pub fn pending_nonce(&self, sender: &Address) -> Option<u64> {
        self.senders.get(sender).map(|q| q.run_end.max(q.next_nonce))
    }

    /// (executable, waiting for a nonce gap to close) counts; O(senders), for gauges.
    pub fn counts(&self) -> (usize, usize) {
        let queued: usize = self.senders.values().map(SenderQueue::queued).sum();
        debug_assert!(queued <= self.len());
        (self.len() - queued, queued)
    }

    /// Re-indexes `sender`'s tail after its queue changed.
    fn retail(&mut self, sender: &Address) {
        let Some(q) = self.senders.get_mut(sender) else { return };
        let new = q.txs.values().next_back().map(|p| (p.tx.max_priority_fee_per_gas(), p.tx.hash));
        if new == q.tail {
            return;
        }
        if let Some((tip, hash)) = q.tail.take() {
            self.tails.remove(&(tip, hash, *sender));
        }
        if let Some((tip, hash)) = new {
            self.tails.insert((tip, hash, *sender));
        }
        q.tail = new;
        if q.txs.is_empty() {
            self.senders.remove(sender);
        }
    }

    /// Admits a transaction whose stateless checks already passed.
    pub fn insert(&mut self, tx: Arc<SignedTx>, state: SenderState) -> Result<Inserted, TxError> {
        self.insert_at(tx, state, Instant::now())
    }

    pub fn insert_at(&mut self, tx: Arc<SignedTx>, state: SenderState, now: Instant) -> Result<Inserted, TxError> {
        if self.by_hash.contains_key(&tx.hash) {
            return Err(TxError::AlreadyKnown);
        }
        let sender = tx.sender;
        let nonce = tx.nonce();
        let queue = self.senders.get(&sender);
        let next = queue.map_or(state.nonce, |q| q.next_nonce.max(state.nonce));
        if nonce < next {
            return Err(TxError::NonceTooLow { address: sender, tx: nonce, state: next });
        }
        if nonce > next.saturating_add(self.cfg.max_nonce_gap) {
            return Err(TxError::NonceTooHigh { address: sender, tx: nonce, state: next });
        }
        let cost = tx.max_cost().ok_or(TxError::CostOverflow { address: sender })?;
        let existing = queue.and_then(|q| q.txs.get(&nonce));
        // Everything this sender has pooled, with this tx in place of the one it replaces.
        let others = queue.map_or(U256::ZERO, |q| q.cost) - existing.map_or(U256::ZERO, |p| p.cost);
        let total = others.checked_add(cost).ok_or(TxError::CostOverflow { address: sender })?;
        if total > state.balance {
            return Err(TxError::InsufficientFunds { address: sender, have: state.balance, want: total });
        }
        if let Some(old) = existing {
            let bump = self.cfg.price_bump_percent;
            if tx.max_fee_per_gas() < bumped(old.tx.max_fee_per_gas(), bump)
                || tx.max_priority_fee_per_gas() < bumped(old.tx.max_priority_fee_per_gas(), bump)
            {
                return Err(TxError::ReplacementUnderpriced);
            }
        } else {
            if queue.is_some_and(|q| q.txs.len() >= self.cfg.max_per_sender) {
                return Err(TxError::PoolFull);
            }
            // A tx beyond the executable run waits behind a gap; how many may wait is capped.
            let run_end = queue.map_or(next, |q| q.run_end.max(next));
            let queued = queue.map_or(0, |q| q.queued());
            if nonce > run_end && queued >= self.cfg.max_queued_per_sender {
                return Err(TxError::TooManyQueued { address: sender, queued });
            }
        }
        let replaced = existing.map(|p| (p.tx.hash, p.tx.raw.len()));
        let freed = replaced.map_or(0, |(_, len)| len);
        let mut evicted = Vec::new();
        while replaced.is_none() && self.len() + 1 > self.cfg.max_txs
            || self.bytes - freed + tx.raw.len() > self.cfg.max_bytes
        {
            let victim = self
                .tails
                .iter()
                .find(|(_, _, s)| *s != sender)
                .filter(|(tip, _, _)| *tip < tx.max_priority_fee_per_gas())
                .map(|(_, h, _)| *h);
            match victim {
                Some(h) => {
                    self.remove(&h);
                    evicted.push(h);
                }
                None => return Err(TxError::PoolFull),
            }
        }
        let queue = self.senders.entry(sender).or_default();
        let mut gone = queue.advance(next);
        gone.extend(queue.take(nonce));
        queue.txs.insert(nonce, Pooled { tx: tx.clone(), cost, added: now, height: self.height });
        queue.cost += cost;
        queue.extend_run();
        for old in gone {
            self.by_hash.remove(&old.tx.hash);
            self.bytes -= old.tx.raw.len();
        }
        self.bytes += tx.raw.len();
        self.by_hash.insert(tx.hash, tx);
        self.retail(&sender);
        Ok(match (replaced, evicted.is_empty()) {
            (Some((old, _)), _) => Inserted::Replaced(old),
            (None, false) => Inserted::Evicted(evicted),
            (None, true) => Inserted::New,
        })
    }

    pub fn remove(&mut self, hash: &B256) -> Option<Arc<SignedTx>> {
        let tx = self.by_hash.remove(hash)?;
        self.bytes -= tx.raw.len();
        if let Some(q) = self.senders.get_mut(&tx.sender) {
            q.take(tx.nonce());
        }
        self.retail(&tx.sender);
        Some(tx)
    }

    /// Drops txs that waited behind a nonce gap longer than `queued_ttl`; returns their hashes.
    /// Runs on a timer (O(pooled txs)), not per insert.
    pub fn expire_queued(&mut self, now: Instant) -> Vec<B256> {
        let ttl = self.cfg.queued_ttl;
        let mut expired = Vec::new();
        for q in self.senders.values() {
            expired.extend(
                q.txs
                    .range(q.run_end.max(q.next_nonce)..)
                    .filter(|(_, p)| now.saturating_duration_since(p.added) > ttl)
                    .map(|(_, p)| p.tx.hash),
            );
        }
        for h in &expired {
            self.remove(h);
        }
        expired
    }

    /// Executable transactions, best tip first, each sender's in nonce order, at most `max_gas`
    /// worth of gas limits and `max_count` transactions.
    pub fn select(&self, base_fee: u64, max_gas: u64, max_count: usize) -> Vec<Arc<SignedTx>> {
        self.select_after(base_fee, max_gas, max_count, &HashMap::new())
    }

    /// Like `select`, for a block built on uncommitted blocks: `after` holds the next nonce of
    /// each sender those blocks already advanced, and each such sender's txs start there (the
    /// ones below are in the chain being built on, and would only take the new block's room).
    pub fn select_after(
        &self,
        base_fee: u64,
        max_gas: u64,
        max_count: usize,
        after: &HashMap<Address, u64>,
    ) -> Vec<Arc<SignedTx>> {
        let mut heap = BinaryHeap::new();
        for (sender, q) in &self.senders {
            let first = after.get(sender).map_or(q.next_nonce, |n| q.next_nonce.max(*n));
            if let Some(p) = q.txs.get(&first) {
                if let Some(tip) = p.tx.effective_tip(base_fee) {
                    heap.push((tip, Reverse(p.tx.hash), *sender, first));
                }
            }
        }
        let mut out = Vec::new();
        let mut gas = 0u64;
        while let Some((_, _, sender, nonce)) = heap.pop() {
            if out.len() >= max_count {
                break;
            }
            let Some(q) = self.senders.get(&sender) else {
                continue;
            };
            let Some(p) = q.txs.get(&nonce) else {
                continue;
            };
            let tx = &p.tx;
            if gas.saturating_add(tx.gas_limit()) > max_gas {
                continue;
            }
            gas += tx.gas_limit();
            out.push(tx.clone());
            if let Some(next) = q.txs.get(&(nonce + 1)) {
                if let Some(tip) = next.tx.effective_tip(base_fee) {
                    heap.push((tip, Reverse(next.tx.hash), sender, nonce + 1));
                }
            }
        }
        out
    }

    /// The committed height moved on (txs admitted from now on are stamped with it).
    pub fn set_height(&mut self, height: u64) {
        self.height = self.height.max(height);
    }

    /// Executable txs held since a committed height `h` with `h + deadline ≤ upcoming`: those the
    /// block at height `upcoming` must carry by this operator's account (its inclusion list).
    /// Oldest first, each sender's in nonce order, at most `max`; none over the list byte bound.
    /// O(senders).
    pub fn due(&self, upcoming: u64, deadline: u64, max: usize) -> Vec<Arc<SignedTx>> {
        let mut out: Vec<(u64, Address, u64, Arc<SignedTx>)> = Vec::new();
        for (sender, q) in &self.senders {
            for (nonce, p) in q.txs.range(q.next_nonce..q.run_end).take(max) {
                // A tx too large for any list is never listed (README "Censorship resistance":
                // it is still included by leaders that choose it, or forced through Bitcoin), and
                // the sender's later txs cannot run before it.
                if p.height.saturating_add(deadline) > upcoming || p.tx.raw.len() > MAX_LIST_BYTES {
                    break;
                }
                out.push((p.height, *sender, *nonce, p.tx.clone()));
            }
        }
        out.sort_by_key(|(h, s, n, _)| (*h, *s, *n));
        out.truncate(max);
        out.sort_by_key(|(_, s, n, _)| (*s, *n));
        out.into_iter().map(|(_, _, _, t)| t).collect()
    }

    /// A block committed: senders' nonces advanced. Drops every tx that can no longer be included.
    /// Returns how many were dropped.
    pub fn on_committed(&mut self, advanced: &[(Address, u64)]) -> usize {
        let mut dropped = 0;
        for (sender, next_nonce) in advanced {
            let Some(q) = self.senders.get_mut(sender) else {
                continue;
            };
            for p in q.advance(*next_nonce) {
                self.by_hash.remove(&p.tx.hash);
                self.bytes -= p.tx.raw.len();
                dropped += 1;
            }
            self.retail(sender);
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::DevKey;
    use alloy_consensus::TxEip1559;
    use alloy_primitives::TxKind;

    fn tx(key: &DevKey, nonce: u64, tip: u128) -> Arc<SignedTx> {
        tx_with(key, nonce, tip, U256::ZERO, 0)
    }

    fn tx_with(key: &DevKey, nonce: u64, tip: u128, value: U256, data: usize) -> Arc<SignedTx> {
        let raw = key.sign_raw(TxEip1559 {
            chain_id: 1,
            nonce,
            gas_limit: 21_000 + 16 * data as u64,
            max_fee_per_gas: 10_000 + tip,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(Address::repeat_byte(1)),
            value,
            input: vec![1u8; data].into(),
            ..Default::default()
        });
        Arc::new(SignedTx::decode(&raw).expect("decode"))
    }

    /// Checks every index against the pooled txs themselves.
    fn assert_consistent(p: &Pool) {
        let bytes: usize = p.by_hash.values().map(|t| t.raw.len()).sum();
        assert_eq!(p.bytes, bytes, "byte count");
        assert!(p.len() <= p.cfg.max_txs && p.bytes <= p.cfg.max_bytes, "limits");
        assert_eq!(p.tails.len(), p.senders.len(), "one tail per sender");
        let mut n = 0;
        for (sender, q) in &p.senders {
            assert!(!q.txs.is_empty());
            n += q.txs.len();
            let cost = q.txs.values().fold(U256::ZERO, |a, t| a + t.cost);
            assert_eq!(q.cost, cost, "cost sum of {sender}");
            let last = q.txs.values().next_back().expect("tail");
            assert!(p.tails.contains(&(last.tx.max_priority_fee_per_gas(), last.tx.hash, *sender)));
            let mut run = q.next_nonce;
            while q.txs.contains_key(&run) {
                run += 1;
            }
            assert_eq!(q.run_end.max(q.next_nonce), run, "run end of {sender}");
            assert!(q.queued() <= p.cfg.max_queued_per_sender, "queued cap");
        }
        assert_eq!(n, p.len());
    }

    #[test]
    fn a_wrapping_cost_is_insufficient_funds_not_free() {
        let k = DevKey::from_seed(7);
        let mut p = Pool::new(PoolConfig::default());
        let broke = SenderState { nonce: 0, balance: U256::ZERO };
        let err = p.insert(tx_with(&k, 0, 1, U256::MAX, 0), broke).expect_err("a wrapping cost was accepted");
        assert_eq!(err, TxError::CostOverflow { address: k.address });
        assert!(err.to_string().starts_with("insufficient funds for gas * price + value"), "{err}");
        assert!(p.is_empty());
    }

    #[test]
    fn a_second_tx_that_overdraws_is_refused() {
        let k = DevKey::from_seed(8);
        let mut p = Pool::new(PoolConfig::default());
        // Enough for one transfer of 1 ETH with gas, not for two.
        let one = U256::from(10u128.pow(18));
        let state = SenderState { nonce: 0, balance: one + U256::from(21_000u64 * 20_000) };
        p.insert(tx_with(&k, 0, 1, one, 0), state).expect("first fits");
        let err = p.insert(tx_with(&k, 1, 1, one, 0), state).expect_err("the second overdraws");
        assert!(matches!(err, TxError::InsufficientFunds { .. }), "{err}");
        // Replacing the first with a cheaper value is judged without the replaced one.
        p.insert(tx_with(&k, 0, 2_000, U256::from(1), 0), state).expect("replacement fits");
        assert_consistent(&p);
    }

    #[test]
    fn queued_txs_are_capped_per_sender_and_expire() {
        let k = DevKey::from_seed(9);
        let cfg = PoolConfig { max_queued_per_sender: 3, queued_ttl: Duration::from_secs(60), ..Default::default() };
        let mut p = Pool::new(cfg);
        let t0 = Instant::now();
        for n in 10..13 {
            p.insert_at(tx(&k, n, 1), rich(), t0).expect("queued");
        }
        let err = p.insert_at(tx(&k, 13, 1), rich(), t0).expect_err("a fourth queued tx");
        assert!(matches!(err, TxError::TooManyQueued { queued: 3, .. }), "{err}");
        // Executable txs are not capped by it.
        for n in 0..5 {
            p.insert_at(tx(&k, n, 1), rich(), t0).expect("pending");
        }
        assert_eq!(p.counts(), (5, 3));
        assert!(p.expire_queued(t0 + Duration::from_secs(30)).is_empty());
        assert_eq!(p.expire_queued(t0 + Duration::from_secs(61)).len(), 3);
        assert_eq!(p.counts(), (5, 0));
        assert_consistent(&p);
    }

    #[test]
    fn the_byte_limit_evicts_the_cheapest_or_refuses() {
        let cfg = PoolConfig { max_bytes: 3_000, ..Default::default() };
        let mut p = Pool::new(cfg);
        p.insert(tx_with(&DevKey::from_seed(1), 0, 5, U256::ZERO, 1_000), rich()).expect("insert");
        p.insert(tx_with(&DevKey::from_seed(2), 0, 6, U256::ZERO, 1_000), rich()).expect("insert");
        let cheap = tx_with(&DevKey::from_seed(3), 0, 1, U256::ZERO, 1_000);
        assert_eq!(p.insert(cheap, rich()), Err(TxError::PoolFull));
        let rich_tip = tx_with(&DevKey::from_seed(4), 0, 9, U256::ZERO, 1_000);
        assert!(matches!(p.insert(rich_tip, rich()), Ok(Inserted::Evicted(v)) if v.len() == 1));
        assert!(p.bytes() <= 3_000);
        assert_consistent(&p);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(bss_consensus::proptest_cases(64)))]

        /// Random inserts, removals, commits and expiries keep every index and limit right.
        #[test]
        fn pool_rules_hold_under_any_sequence(
            ops in proptest::collection::vec((0u8..4, 0u8..6, 0u64..12, 0u128..20, 0usize..300), 1..80),
        ) {
            let keys: Vec<DevKey> = (1..=6).map(DevKey::from_seed).collect();
            let cfg = PoolConfig { max_txs: 20, max_bytes: 4_000, max_per_sender: 8, max_queued_per_sender: 3, ..Default::default() };
            let mut p = Pool::new(cfg);
            let t0 = Instant::now();
            for (i, (op, who, nonce, tip, data)) in ops.into_iter().enumerate() {
                let k = &keys[who as usize];
                let now = t0 + Duration::from_secs(i as u64 * 20);
                match op {
                    0 | 1 => {
                        let _ = p.insert_at(tx_with(k, nonce, tip, U256::from(tip), data), rich(), now);
                    }
                    2 => {
                        p.on_committed(&[(k.address, nonce)]);
                    }
                    _ => {
                        p.expire_queued(now);
                    }
                }
                assert_consistent(&p);
            }
        }
    }

    fn rich() -> SenderState {
        SenderState { nonce: 0, balance: U256::from(10u128.pow(20)) }
    }

    #[test]
    fn nonce_rules_and_replacement() {
        let k = DevKey::from_seed(1);
        let mut p = Pool::new(PoolConfig::default());
        assert_eq!(p.insert(tx(&k, 0, 100), rich()), Ok(Inserted::New));
        assert_eq!(p.insert(tx(&k, 0, 100), rich()), Err(TxError::AlreadyKnown));
        assert_eq!(p.insert(tx(&k, 0, 105), rich()), Err(TxError::ReplacementUnderpriced));
        assert!(matches!(p.insert(tx(&k, 0, 2_000), rich()), Ok(Inserted::Replaced(_))));
        let low = SenderState { nonce: 5, ..rich() };
        assert!(matches!(p.insert(tx(&k, 3, 1), low), Err(TxError::NonceTooLow { .. })));
        let poor = SenderState { nonce: 0, balance: U256::from(1) };
        assert!(matches!(p.insert(tx(&DevKey::from_seed(2), 0, 1), poor), Err(TxError::InsufficientFunds { .. })));
        assert!(matches!(p.insert(tx(&k, 10_000, 1), rich()), Err(TxError::NonceTooHigh { .. })));
    }

    #[test]
    fn future_nonces_wait_for_the_gap() {
        let k = DevKey::from_seed(1);
        let mut p = Pool::new(PoolConfig::default());
        p.insert(tx(&k, 1, 10), rich()).expect("insert");
        assert!(p.select(1, u64::MAX, 100).is_empty());
        assert_eq!(p.counts(), (0, 1));
        p.insert(tx(&k, 0, 10), rich()).expect("insert");
        let sel = p.select(1, u64::MAX, 100);
        assert_eq!(sel.iter().map(|t| t.nonce()).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(p.pending_nonce(&k.address), Some(2));
        assert_eq!(p.on_committed(&[(k.address, 2)]), 2);
        assert!(p.is_empty());
    }

    #[test]
    fn selection_orders_by_tip_and_respects_gas() {
        let a = DevKey::from_seed(1);
        let b = DevKey::from_seed(2);
        let mut p = Pool::new(PoolConfig::default());
        p.insert(tx(&a, 0, 1), rich()).expect("insert");
        p.insert(tx(&b, 0, 50), rich()).expect("insert");
        let sel = p.select(1, 21_000, 100);
        assert_eq!(sel.len(), 1);
        assert_eq!(sel[0].sender, b.address);
    }

    #[test]
    fn selection_on_uncommitted_blocks_starts_past_their_nonces() {
        let (a, b) = (DevKey::from_seed(1), DevKey::from_seed(2));
        let mut p = Pool::new(PoolConfig::default());
        for n in 0..4 {
            p.insert(tx(&a, n, 1), rich()).expect("insert");
        }
        p.insert(tx(&b, 0, 1), rich()).expect("insert");
        // An uncommitted parent carried a's nonces 0 and 1: a block on it starts at 2, with
        // its whole gas for txs the parent does not hold.
        let after = HashMap::from([(a.address, 2)]);
        let sel = p.select_after(1, 3 * 21_000, 100, &after);
        let picked: Vec<(Address, u64)> = sel.iter().map(|t| (t.sender, t.nonce())).collect();
        assert_eq!(picked.len(), 3, "{picked:?}");
        assert!(
            picked.contains(&(a.address, 2)) && picked.contains(&(a.address, 3)) && picked.contains(&(b.address, 0))
        );
        // A nonce below what the pool already knows committed changes nothing.
        let stale = HashMap::from([(b.address, 0)]);
        assert_eq!(p.select_after(1, u64::MAX, 100, &stale).len(), 5);
    }

    #[test]
    fn full_pool_evicts_cheaper_tail_or_refuses() {
        let mut p = Pool::new(PoolConfig { max_txs: 2, ..Default::default() });
        p.insert(tx(&DevKey::from_seed(1), 0, 5), rich()).expect("insert");
        p.insert(tx(&DevKey::from_seed(2), 0, 6), rich()).expect("insert");
        assert_eq!(p.insert(tx(&DevKey::from_seed(3), 0, 1), rich()), Err(TxError::PoolFull));
        assert!(matches!(p.insert(tx(&DevKey::from_seed(4), 0, 9), rich()), Ok(Inserted::Evicted(_))));
        assert_eq!(p.len(), 2);
    }
}

#[cfg(test)]
mod due_tests {
    use super::*;
    use crate::accounts::DevKey;
    use alloy_consensus::TxEip1559;
    use alloy_primitives::TxKind;

    fn tx(key: &DevKey, nonce: u64) -> Arc<SignedTx> {
        let raw = key.sign_raw(TxEip1559 {
            chain_id: 1,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 10_000,
            to: TxKind::Call(Address::repeat_byte(1)),
            ..Default::default()
        });
        Arc::new(SignedTx::decode(&raw).expect("decode"))
    }

    #[test]
    fn txs_fall_due_after_the_deadline_executable_ones_only() {
        let (a, b) = (DevKey::from_seed(21), DevKey::from_seed(22));
        let rich = SenderState { nonce: 0, balance: U256::from(10u64).pow(U256::from(20u64)) };
        let mut p = Pool::new(PoolConfig::default());
        p.set_height(10);
        p.insert(tx(&a, 0), rich).expect("a0");
        p.insert(tx(&a, 2), rich).expect("a2 waits behind a gap");
        p.set_height(12);
        p.insert(tx(&b, 0), rich).expect("b0");
        // Admitted at 10 with a deadline of 8: on the list of the block at 18, not 17.
        assert!(p.due(17, 8, 16).is_empty());
        let due: Vec<u64> = p.due(18, 8, 16).iter().map(|t| t.nonce()).collect();
        assert_eq!(due, vec![0], "a's nonce 2 waits behind a gap; b is younger");
        assert_eq!(p.due(20, 8, 16).len(), 2);
        assert_eq!(p.due(20, 8, 1)[0].sender, a.address, "oldest first when cut");
    }

    #[test]
    fn a_tx_too_large_for_any_list_is_never_due_nor_are_its_senders_later_ones() {
        let (big, small) = (DevKey::from_seed(23), DevKey::from_seed(24));
        let rich = SenderState { nonce: 0, balance: U256::from(10u64).pow(U256::from(20u64)) };
        let mut p = Pool::new(PoolConfig::default());
        let oversized = big.sign_raw(TxEip1559 {
            chain_id: 1,
            gas_limit: 2_000_000,
            max_fee_per_gas: 10_000,
            to: TxKind::Call(Address::repeat_byte(1)),
            input: vec![1u8; MAX_LIST_BYTES + 1].into(),
            ..Default::default()
        });
        p.insert(Arc::new(SignedTx::decode(&oversized).expect("decode")), rich)
            .expect("admitted: it may still be included");
        p.insert(tx(&big, 1), rich).expect("behind it");
        p.insert(tx(&small, 0), rich).expect("small");
        let due: Vec<Address> = p.due(100, 8, 16).iter().map(|t| t.sender).collect();
        assert_eq!(due, vec![small.address]);
    }
}
