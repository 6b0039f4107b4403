//! The regtest node's mempool: accepts only transactions that could be mined on the current tip
//! (inputs exist and are unspent, scripts verify, fee at least the min relay fee, standard
//! outputs), replaces by fee (full RBF, BIP125's fee rules, Core 28's default), and follows the
//! chain through blocks and reorgs. Reject reasons are bitcoind's strings.

use super::utxo::{Coin, SpendError, UtxoSet};
use bitcoin::{Amount, OutPoint, Transaction, Txid, Weight};
use std::collections::{HashMap, HashSet};

/// 1 sat/vB, bitcoind's default `-minrelaytxfee` and `-incrementalrelayfee`.
pub const MIN_RELAY_SAT_PER_KVB: u64 = 1_000;
/// Core's `MAX_OP_RETURN_RELAY`: OP_RETURN, a push opcode and 80 bytes of data.
const MAX_OP_RETURN_SCRIPT: usize = 83;
const MAX_STANDARD_WEIGHT: u64 = 400_000;
/// Bitcoin Core's `MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE`.
const MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE: usize = 80;
/// Height that mempool outputs count as (Core's MEMPOOL_HEIGHT).
const MEMPOOL_HEIGHT: u64 = 0x7FFF_FFFF;

#[derive(Clone, Debug)]
pub struct MempoolEntry {
    pub tx: Transaction,
    pub txid: Txid,
    pub fee: Amount,
    pub vsize: u64,
    pub weight: u64,
    pub time: u64,
    pub height: u64,
    seq: u64,
}

impl MempoolEntry {
    /// sat per 1000 vbytes.
    pub fn feerate_kvb(&self) -> u64 {
        self.fee.to_sat() * 1000 / self.vsize.max(1)
    }
}

/// Why a transaction was refused, with the class bitcoind maps to an RPC code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("txn-already-in-mempool")]
    AlreadyInMempool,
    #[error("Transaction outputs already in utxo set")]
    AlreadyInChain,
    /// sendrawtransaction says "bad-txns-inputs-missingorspent", testmempoolaccept "missing-inputs".
    #[error("bad-txns-inputs-missingorspent")]
    MissingInputs,
    #[error("Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)")]
    MaxFeeExceeded,
    /// Any other mempool policy or consensus failure (RPC_VERIFY_REJECTED).
    #[error("{0}")]
    Rejected(String),
}

impl From<SpendError> for Reject {
    fn from(e: SpendError) -> Self {
        match e {
            SpendError::MissingOrSpent => Reject::MissingInputs,
            other => Reject::Rejected(other.to_string()),
        }
    }
}

fn rejected(s: impl Into<String>) -> Reject {
    Reject::Rejected(s.into())
}

pub struct Mempool {
    entries: HashMap<Txid, MempoolEntry>,
    spends: HashMap<OutPoint, Txid>,
    next_seq: u64,
    /// The minimum relay fee rate, sat/kvB (`-minrelaytxfee`; `setminrelaytxfee` raises it).
    pub min_relay_kvb: u64,
}

impl Default for Mempool {
    fn default() -> Self {
        Self { entries: HashMap::new(), spends: HashMap::new(), next_seq: 0, min_relay_kvb: MIN_RELAY_SAT_PER_KVB }
    }
}

/// BTC/kvB as bitcoind prints fee rates.
pub fn btc_per_kvb(sat_per_kvb: u64) -> f64 {
    sat_per_kvb as f64 / 100_000_000.0
}

/// IsStandardTx: the policy checks that need no UTXO set.
fn check_standard(tx: &Transaction) -> Result<(), Reject> {
    if !(1..=3).contains(&tx.version.0) {
        return Err(rejected("version"));
    }
    if tx.weight().to_wu() > MAX_STANDARD_WEIGHT {
        return Err(rejected("tx-size"));
    }
    if bitcoin::consensus::encode::serialize(&strip_witness(tx)).len() < 65 {
        return Err(rejected("tx-size-small"));
    }
    for i in &tx.input {
        if i.script_sig.len() > 1650 {
            return Err(rejected("scriptsig-size"));
        }
        if !i.script_sig.is_push_only() {
            return Err(rejected("scriptsig-not-pushonly"));
        }
    }
    let mut op_returns = 0;
    for o in &tx.output {
        let s = &o.script_pubkey;
        if s.is_op_return() {
            op_returns += 1;
            if s.len() > MAX_OP_RETURN_SCRIPT {
                return Err(rejected("scriptpubkey"));
            }
            continue;
        }
        let standard = s.is_p2pkh()
            || s.is_p2sh()
            || s.is_p2wpkh()
            || s.is_p2wsh()
            || s.is_p2tr()
            || s.is_p2pk()
            || s.is_multisig()
            || s.witness_version().is_some();
        if !standard {
            return Err(rejected("scriptpubkey"));
        }
        if o.value < s.minimal_non_dust() {
            return Err(rejected("dust"));
        }
    }
    if op_returns > 1 {
        return Err(rejected("multi-op-return"));
    }
    Ok(())
}

/// IsWitnessStandard for a taproot spend: no annex, and in a tapscript (leaf version 0xc0)
/// spend every stack item is at most 80 bytes (`MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE`).
fn check_taproot_witness(w: &bitcoin::Witness) -> Result<(), Reject> {
    let items: Vec<&[u8]> = w.iter().collect();
    if items.len() >= 2 && items.last().is_some_and(|a| a.first() == Some(&0x50)) {
        return Err(rejected("bad-witness-nonstandard"));
    }
    if items.len() >= 2 {
        let control = items[items.len() - 1];
        if control.first().is_some_and(|c| c & 0xfe == 0xc0)
            && items[..items.len() - 2].iter().any(|i| i.len() > MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE)
        {
            return Err(rejected("bad-witness-nonstandard"));
        }
    }
    Ok(())
}

fn strip_witness(tx: &Transaction) -> Transaction {
    let mut t = tx.clone();
    t.input.iter_mut().for_each(|i| i.witness.clear());
    t
}

/// What an accepted (or test-accepted) transaction costs.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub vsize: u64,
    pub fee: Amount,
    pub replaced: Vec<Txid>,
}

impl Mempool {
    pub fn get(&self, txid: &Txid) -> Option<&MempoolEntry> {
        self.entries.get(txid)
    }

    /// Entries in arrival order (parents always arrive before their children).
    pub fn ordered(&self) -> Vec<&MempoolEntry> {
        let mut v: Vec<_> = self.entries.values().collect();
        v.sort_by_key(|e| e.seq);
        v
    }

    /// Mempool txs that spend outputs of `txid`.
    pub fn children(&self, txid: &Txid) -> Vec<Txid> {
        let mut out: Vec<Txid> = self.spends.iter().filter(|(o, _)| o.txid == *txid).map(|(_, t)| *t).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Mempool txs whose outputs `txid` spends.
    pub fn parents(&self, txid: &Txid) -> Vec<Txid> {
        let Some(e) = self.entries.get(txid) else { return vec![] };
        let mut out: Vec<Txid> =
            e.tx.input.iter().map(|i| i.previous_output.txid).filter(|t| self.entries.contains_key(t)).collect();
        out.sort();
        out.dedup();
        out
    }

    /// The tx and every mempool descendant of it.
    pub fn with_descendants(&self, txid: Txid) -> HashSet<Txid> {
        Self::closure(txid, |t| self.children(t))
    }

    /// The tx and every mempool ancestor of it.
    pub fn with_ancestors(&self, txid: Txid) -> HashSet<Txid> {
        Self::closure(txid, |t| self.parents(t))
    }

    fn closure(start: Txid, next: impl Fn(&Txid) -> Vec<Txid>) -> HashSet<Txid> {
        let mut out = HashSet::new();
        let mut stack = vec![start];
        while let Some(t) = stack.pop() {
            if out.insert(t) {
                stack.extend(next(&t));
            }
        }
        out
    }

    /// An output as the mempool sees it: unspent in the chain and not spent in the mempool, or
    /// created by a mempool tx.
    pub fn coin(&self, utxo: &UtxoSet, o: &OutPoint) -> Option<Coin> {
        if self.spends.contains_key(o) {
            return None;
        }
        self.underlying_coin(utxo, o)
    }

    /// An output of the chain or of a mempool tx, whether or not a mempool tx spends it.
    fn underlying_coin(&self, utxo: &UtxoSet, o: &OutPoint) -> Option<Coin> {
        match self.entries.get(&o.txid) {
            Some(e) => {
                Some(Coin { out: e.tx.output.get(o.vout as usize)?.clone(), height: MEMPOOL_HEIGHT, coinbase: false })
            }
            None => utxo.coin(o).cloned(),
        }
    }

    /// AcceptToMemoryPool. With `test_only` nothing changes (testmempoolaccept). `max_fee_kvb`
    /// is sendrawtransaction's `maxfeerate` in sat/kvB (0 = no limit).
    pub fn accept(
        &mut self,
        tx: Transaction,
        utxo: &UtxoSet,
        tip_height: u64,
        now: u64,
        max_fee_kvb: u64,
        test_only: bool,
    ) -> Result<Accepted, Reject> {
        if tx.is_coinbase() {
            return Err(rejected("coinbase"));
        }
        super::utxo::check_transaction(&tx)?;
        check_standard(&tx)?;
        let txid = tx.compute_txid();
        if self.entries.contains_key(&txid) {
            return Err(Reject::AlreadyInMempool);
        }
        if (0..tx.output.len()).any(|v| utxo.coin(&OutPoint::new(txid, v as u32)).is_some()) {
            return Err(Reject::AlreadyInChain);
        }
        // Conflicts: mempool txs spending the same outputs (candidates for replacement).
        let direct: HashSet<Txid> =
            tx.input.iter().filter_map(|i| self.spends.get(&i.previous_output)).copied().collect();
        let mut evicted = HashSet::new();
        for c in &direct {
            evicted.extend(self.with_descendants(*c));
        }
        if tx.input.iter().any(|i| evicted.contains(&i.previous_output.txid)) {
            return Err(rejected("bad-txns-spends-conflicting-tx"));
        }
        let height = tip_height + 1;
        // Outputs spent by conflicting mempool txs count as unspent here: replacing those txs is
        // judged by the fee rules below.
        let (_, fee) = UtxoSet::check_spend(&tx, height, |o| self.underlying_coin(utxo, o))?;
        for i in &tx.input {
            if self.underlying_coin(utxo, &i.previous_output).is_some_and(|c| c.out.script_pubkey.is_p2tr()) {
                check_taproot_witness(&i.witness)?;
            }
        }
        let weight = tx.weight().to_wu();
        let vsize = Weight::from_wu(weight).to_vbytes_ceil();
        let min_fee = Amount::from_sat((vsize * self.min_relay_kvb).div_ceil(1000));
        if fee < min_fee {
            return Err(rejected(format!("min relay fee not met, {} < {}", fee.to_sat(), min_fee.to_sat())));
        }
        if max_fee_kvb > 0 && fee.to_sat() * 1000 / vsize.max(1) > max_fee_kvb {
            return Err(Reject::MaxFeeExceeded);
        }
        if !direct.is_empty() {
            self.check_replacement(&txid, fee, vsize, &direct, &evicted)?;
        }
        let accepted = Accepted { vsize, fee, replaced: evicted.iter().copied().collect() };
        if test_only {
            return Ok(accepted);
        }
        for t in &evicted {
            self.remove(t);
        }
        for i in &tx.input {
            self.spends.insert(i.previous_output, txid);
        }
        self.next_seq += 1;
        self.entries.insert(
            txid,
            MempoolEntry { tx, txid, fee, vsize, weight, time: now, height: tip_height, seq: self.next_seq },
        );
        Ok(accepted)
    }

    /// BIP125 rules 3, 4 and 6 (full RBF: no signalling needed).
    fn check_replacement(
        &self,
        txid: &Txid,
        fee: Amount,
        vsize: u64,
        direct: &HashSet<Txid>,
        evicted: &HashSet<Txid>,
    ) -> Result<(), Reject> {
        let new_rate = fee.to_sat() * 1000 / vsize.max(1);
        for c in direct {
            let old = &self.entries[c];
            if new_rate <= old.feerate_kvb() {
                return Err(rejected(format!(
                    "insufficient fee, rejecting replacement {txid}; new feerate {:.8} BTC/kvB <= old feerate {:.8} BTC/kvB",
                    btc_per_kvb(new_rate),
                    btc_per_kvb(old.feerate_kvb())
                )));
            }
        }
        let old_fees: Amount = evicted.iter().map(|t| self.entries[t].fee).sum();
        if fee < old_fees {
            return Err(rejected(format!(
                "insufficient fee, rejecting replacement {txid}, less fees than conflicting txs; {} < {}",
                fee.to_btc(),
                old_fees.to_btc()
            )));
        }
        let needed = Amount::from_sat(vsize * MIN_RELAY_SAT_PER_KVB / 1000);
        if fee - old_fees < needed {
            return Err(rejected(format!(
                "insufficient fee, rejecting replacement {txid}, not enough additional fees to relay; {} < {}",
                (fee - old_fees).to_btc(),
                needed.to_btc()
            )));
        }
        Ok(())
    }

    fn remove(&mut self, txid: &Txid) -> Option<MempoolEntry> {
        let e = self.entries.remove(txid)?;
        for i in &e.tx.input {
            if self.spends.get(&i.previous_output) == Some(txid) {
                self.spends.remove(&i.previous_output);
            }
        }
        Some(e)
    }

    /// Transactions for the next block, parents first, within the block weight limit.
    pub fn select(&self, max_weight: u64) -> (Vec<Transaction>, Amount) {
        let mut weight = 0;
        let mut fees = Amount::ZERO;
        let mut taken = HashSet::new();
        let mut txs = vec![];
        for e in self.ordered() {
            let parents_in = e.tx.input.iter().all(|i| {
                !self.entries.contains_key(&i.previous_output.txid) || taken.contains(&i.previous_output.txid)
            });
            if !parents_in || weight + e.weight > max_weight {
                continue;
            }
            weight += e.weight;
            fees += e.fee;
            taken.insert(e.txid);
            txs.push(e.tx.clone());
        }
        (txs, fees)
    }

    /// Follows a tip change: confirmed txs leave, txs that conflict with the new chain leave
    /// with their descendants, and txs of disconnected blocks come back if they are still valid.
    pub fn on_tip_change(
        &mut self,
        disconnected: Vec<Transaction>,
        connected: &[&bitcoin::Block],
        utxo: &UtxoSet,
        tip_height: u64,
        now: u64,
    ) {
        if disconnected.is_empty() {
            for block in connected {
                for tx in &block.txdata {
                    let id = tx.compute_txid();
                    self.remove(&id);
                    for i in &tx.input {
                        if let Some(conflict) = self.spends.get(&i.previous_output).copied() {
                            for t in self.with_descendants(conflict) {
                                self.remove(&t);
                            }
                        }
                    }
                }
            }
            return;
        }
        // A reorg: re-admit everything against the new chain, disconnected txs first (they are
        // older than what is in the mempool).
        let old: Vec<Transaction> = self.ordered().into_iter().map(|e| e.tx.clone()).collect();
        *self = Mempool { next_seq: self.next_seq, ..Default::default() };
        for tx in disconnected.into_iter().filter(|t| !t.is_coinbase()).chain(old) {
            let _ = self.accept(tx, utxo, tip_height, now, 0, false);
        }
    }
}
