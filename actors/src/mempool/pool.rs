//! Mempool rules, without an actor: per-sender nonce queues, replacement by higher fee, future
//! nonces held until their gap closes, size limits with eviction of the cheapest tail tx.

use crate::hvm::{SignedTx, TxError};
use alloy_primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

/// Mempool limits. Defaults suit a devnet and a throughput run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Most transactions held in total.
    pub max_txs: usize,
    /// Most transactions held for one sender.
    pub max_per_sender: usize,
    /// How far past the sender's next nonce a transaction may be held.
    pub max_nonce_gap: u64,
    /// Fee increase, in percent, a replacement must pay on both fee cap and tip.
    pub price_bump_percent: u128,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self { max_txs: 200_000, max_per_sender: 4_096, max_nonce_gap: 4_096, price_bump_percent: 10 }
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
    /// Added, and the cheapest tail tx of another sender was evicted to make room (its hash).
    Evicted(B256),
}

#[derive(Default)]
struct SenderQueue {
    /// The committed nonce: the first nonce that can be included next.
    next_nonce: u64,
    txs: BTreeMap<u64, Arc<SignedTx>>,
}

#[derive(Default)]
pub struct Pool {
    cfg: PoolConfig,
    senders: HashMap<Address, SenderQueue>,
    by_hash: HashMap<B256, Arc<SignedTx>>,
}

fn bumped(old: u128, percent: u128) -> u128 {
    old.saturating_mul(100 + percent) / 100
}

impl Pool {
    pub fn new(cfg: PoolConfig) -> Self {
        Self { cfg, senders: HashMap::new(), by_hash: HashMap::new() }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn get(&self, hash: &B256) -> Option<Arc<SignedTx>> {
        self.by_hash.get(hash).cloned()
    }

    /// The next nonce the sender would use counting pooled txs (eth_getTransactionCount "pending").
    pub fn pending_nonce(&self, sender: &Address) -> Option<u64> {
        let q = self.senders.get(sender)?;
        let mut n = q.next_nonce;
        while q.txs.contains_key(&n) {
            n += 1;
        }
        Some(n)
    }

    /// (executable, waiting for a nonce gap to close) counts.
    pub fn counts(&self) -> (usize, usize) {
        let mut pending = 0;
        for q in self.senders.values() {
            let mut n = q.next_nonce;
            while q.txs.contains_key(&n) {
                pending += 1;
                n += 1;
            }
        }
        (pending, self.len() - pending)
    }

    /// Admits a transaction whose stateless checks already passed.
    pub fn insert(&mut self, tx: Arc<SignedTx>, state: SenderState) -> Result<Inserted, TxError> {
        if self.by_hash.contains_key(&tx.hash) {
            return Err(TxError::AlreadyKnown);
        }
        let nonce = tx.nonce();
        let next = self.senders.get(&tx.sender).map_or(state.nonce, |q| q.next_nonce.max(state.nonce));
        if nonce < next {
            return Err(TxError::NonceTooLow { address: tx.sender, tx: nonce, state: next });
        }
        if nonce > next + self.cfg.max_nonce_gap {
            return Err(TxError::NonceTooHigh { address: tx.sender, tx: nonce, state: next });
        }
        let cost = tx.max_cost();
        if cost > state.balance {
            return Err(TxError::InsufficientFunds { address: tx.sender, have: state.balance, want: cost });
        }
        let existing = self.senders.get(&tx.sender).and_then(|q| q.txs.get(&nonce)).cloned();
        if let Some(old) = &existing {
            let bump = self.cfg.price_bump_percent;
            if tx.max_fee_per_gas() < bumped(old.max_fee_per_gas(), bump)
                || tx.max_priority_fee_per_gas() < bumped(old.max_priority_fee_per_gas(), bump)
            {
                return Err(TxError::ReplacementUnderpriced);
            }
        } else if self.senders.get(&tx.sender).is_some_and(|q| q.txs.len() >= self.cfg.max_per_sender) {
            return Err(TxError::PoolFull);
        }
        let mut evicted = None;
        if existing.is_none() && self.len() >= self.cfg.max_txs {
            let victim = self
                .cheapest_tail()
                .filter(|v| v.sender != tx.sender && v.max_priority_fee_per_gas() < tx.max_priority_fee_per_gas());
            match victim {
                Some(v) => {
                    self.remove(&v.hash);
                    evicted = Some(v.hash);
                }
                None => return Err(TxError::PoolFull),
            }
        }
        let queue = self.senders.entry(tx.sender).or_default();
        queue.next_nonce = next;
        if let Some(old) = queue.txs.insert(nonce, tx.clone()) {
            self.by_hash.remove(&old.hash);
        }
        self.by_hash.insert(tx.hash, tx);
        Ok(match (existing, evicted) {
            (Some(old), _) => Inserted::Replaced(old.hash),
            (None, Some(h)) => Inserted::Evicted(h),
            (None, None) => Inserted::New,
        })
    }

    fn cheapest_tail(&self) -> Option<Arc<SignedTx>> {
        self.senders
            .values()
            .filter_map(|q| q.txs.values().next_back())
            .min_by_key(|t| t.max_priority_fee_per_gas())
            .cloned()
    }

    pub fn remove(&mut self, hash: &B256) -> Option<Arc<SignedTx>> {
        let tx = self.by_hash.remove(hash)?;
        if let Some(q) = self.senders.get_mut(&tx.sender) {
            q.txs.remove(&tx.nonce());
            if q.txs.is_empty() {
                self.senders.remove(&tx.sender);
            }
        }
        Some(tx)
    }

    /// Executable transactions, best tip first, each sender's in nonce order, at most `max_gas`
    /// worth of gas limits and `max_count` transactions.
    pub fn select(&self, base_fee: u64, max_gas: u64, max_count: usize) -> Vec<Arc<SignedTx>> {
        let mut heap = BinaryHeap::new();
        for (sender, q) in &self.senders {
            if let Some(tx) = q.txs.get(&q.next_nonce) {
                if let Some(tip) = tx.effective_tip(base_fee) {
                    heap.push((tip, Reverse(tx.hash), *sender, q.next_nonce));
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
            let Some(tx) = q.txs.get(&nonce) else {
                continue;
            };
            if gas + tx.gas_limit() > max_gas {
                continue;
            }
            gas += tx.gas_limit();
            out.push(tx.clone());
            if let Some(next) = q.txs.get(&(nonce + 1)) {
                if let Some(tip) = next.effective_tip(base_fee) {
                    heap.push((tip, Reverse(next.hash), sender, nonce + 1));
                }
            }
        }
        out
    }

    /// A block committed: senders' nonces advanced. Drops every tx that can no longer be included.
    /// Returns how many were dropped.
    pub fn on_committed(&mut self, advanced: &[(Address, u64)]) -> usize {
        let mut dropped = 0;
        for (sender, next_nonce) in advanced {
            let Some(q) = self.senders.get_mut(sender) else {
                continue;
            };
            q.next_nonce = q.next_nonce.max(*next_nonce);
            let stale: Vec<u64> = q.txs.range(..q.next_nonce).map(|(n, _)| *n).collect();
            for n in stale {
                if let Some(tx) = q.txs.remove(&n) {
                    self.by_hash.remove(&tx.hash);
                    dropped += 1;
                }
            }
            if q.txs.is_empty() {
                self.senders.remove(sender);
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hvm::accounts::DevKey;
    use alloy_consensus::TxEip1559;
    use alloy_primitives::TxKind;

    fn tx(key: &DevKey, nonce: u64, tip: u128) -> Arc<SignedTx> {
        let raw = key.sign_raw(TxEip1559 {
            chain_id: 1,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 10_000 + tip,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(Address::repeat_byte(1)),
            ..Default::default()
        });
        Arc::new(SignedTx::decode(&raw).expect("decode"))
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
    fn full_pool_evicts_cheaper_tail_or_refuses() {
        let mut p = Pool::new(PoolConfig { max_txs: 2, ..Default::default() });
        p.insert(tx(&DevKey::from_seed(1), 0, 5), rich()).expect("insert");
        p.insert(tx(&DevKey::from_seed(2), 0, 6), rich()).expect("insert");
        assert_eq!(p.insert(tx(&DevKey::from_seed(3), 0, 1), rich()), Err(TxError::PoolFull));
        assert!(matches!(p.insert(tx(&DevKey::from_seed(4), 0, 9), rich()), Ok(Inserted::Evicted(_))));
        assert_eq!(p.len(), 2);
    }
}
