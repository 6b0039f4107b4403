//! The PopSubmitter: one per operator, on its own thread (its Bitcoin RPC calls block).
//!
//! Every `keystone_interval`-th committed block becomes a keystone. Submissions are staggered:
//! operator `(n / interval) mod N` goes first; operator at rank r after it steps in only if no
//! keystone for that block is in a Bitcoin block `r × stagger_blocks` blocks after it became due.
//! Its pending txs are persisted (fjall) before they are broadcast, so a restart never spends the
//! same coin twice; they are replaced with a higher fee (RBF) while unconfirmed, rebroadcast on
//! every new Bitcoin block (which also repairs a reorg that dropped them), and forgotten once the
//! keystone is superfinal. Without a key the same loop only measures finality.

use super::finality::keystones;
use super::keystone::Keystone;
use super::tx::PopWallet;
use crate::btc::{BitcoinSource, BtcView};
use crate::chain::CommittedBlock;
use bitcoin::consensus::encode;
use bitcoin::{OutPoint, Txid};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tracing::{info, warn};

#[derive(Clone, Debug)]
pub struct SubmitterConfig {
    /// Which keystones count (chain id, operators' keystone keys).
    pub keystones: super::finality::KeystoneRules,
    pub me: u16,
    pub operators: u16,
    pub keystone_interval: u64,
    pub superfinality_confirmations: u64,
    pub stagger_blocks: u64,
    pub bump_after_blocks: u64,
    pub fee_floor: f64,
    pub fee_cap: f64,
}

/// A keystone tx of ours, as persisted.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PendingTx {
    l2_number: u64,
    raw: String,
    txid: String,
    input: String,
    /// The input's value, sats.
    value: u64,
    /// This version's fee, sats, and rate, sat/vB.
    fee: u64,
    fee_rate: f64,
    /// Best Bitcoin height when this version was broadcast.
    broadcast_at: u64,
    /// The 52-byte keystone (every version carries the same one, on the same input).
    payload: Vec<u8>,
}

impl PendingTx {
    /// A version of this keystone's tx (the first, or an RBF replacement).
    fn version(
        l2_number: u64,
        input: OutPoint,
        value: u64,
        payload: &[u8],
        tx: &bitcoin::Transaction,
        fee_rate: f64,
        best: u64,
    ) -> Self {
        let paid_out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        Self {
            l2_number,
            raw: hex::encode(encode::serialize(tx)),
            txid: tx.compute_txid().to_string(),
            input: input.to_string(),
            value,
            fee: value.saturating_sub(paid_out),
            fee_rate,
            broadcast_at: best,
            payload: payload.to_vec(),
        }
    }
}

struct Due {
    keystone: Keystone,
    /// Best Bitcoin height when it became due (or when a reorg dropped its last sighting).
    since_btc: u64,
    committed_at: Instant,
    landed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitterError {
    #[error("pop store: {0}")]
    Store(#[from] fjall::Error),
    #[error("pop store holds an unreadable entry: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

struct Store {
    db: Database,
    pending: Keyspace,
}

impl Store {
    fn open(dir: &Path) -> Result<Self, SubmitterError> {
        let db = Database::builder(dir.join("pop")).open()?;
        let pending = db.keyspace("pending", KeyspaceCreateOptions::default)?;
        Ok(Self { db, pending })
    }

    fn load(&self) -> Result<BTreeMap<u64, PendingTx>, SubmitterError> {
        let mut out = BTreeMap::new();
        for g in self.pending.iter() {
            let (_, v) = g.into_inner()?;
            let p: PendingTx = serde_json::from_slice(&v).map_err(|e| SubmitterError::Corrupt(e.to_string()))?;
            out.insert(p.l2_number, p);
        }
        Ok(out)
    }

    fn put(&self, p: &PendingTx) -> Result<(), SubmitterError> {
        let mut b = self.db.batch().durability(Some(PersistMode::SyncAll));
        b.insert(&self.pending, p.l2_number.to_be_bytes(), serde_json::to_vec(p).unwrap_or_default());
        b.commit()?;
        Ok(())
    }

    fn remove(&self, n: u64) -> Result<(), SubmitterError> {
        let mut b = self.db.batch().durability(Some(PersistMode::SyncAll));
        b.remove(&self.pending, n.to_be_bytes());
        b.commit()?;
        Ok(())
    }
}

/// Control of the submitter thread (fault injection for the supervision tests).
#[derive(Clone)]
pub struct SubmitterHandle {
    control: std::sync::mpsc::SyncSender<()>,
}

impl SubmitterHandle {
    /// Makes the submitter panic at its next round.
    pub fn inject_panic(&self) {
        let _ = self.control.try_send(());
    }
}

/// Starts the submitter thread. It stops when the commit stream closes.
///
/// Supervision: a panic restarts the loop after a backoff (`bss_actor_restarts_total{actor=
/// "pop_submitter"}`) with its pending txs reloaded from disk, so nothing is spent twice.
pub fn spawn(
    cfg: SubmitterConfig,
    wallet: Option<PopWallet>,
    source: impl BitcoinSource,
    view: BtcView,
    mut commits: broadcast::Receiver<CommittedBlock>,
    data_dir: &Path,
    recent: Vec<bss_consensus::BlockHeader>,
) -> Result<SubmitterHandle, SubmitterError> {
    let mut s = Submitter::open(cfg, wallet, source, view, data_dir)?;
    // Keystones committed before a restart are still owed (those already in Bitcoin are seen
    // as landed on the first round).
    for header in recent {
        s.on_header(&header);
    }
    let (control, faults) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new().name("pop-submitter".into()).spawn(move || {
        let mut first = true;
        crate::supervision::restart_on_panic("pop_submitter", Duration::from_millis(500), || {
            if !std::mem::take(&mut first) {
                match s.store.load() {
                    Ok(p) => s.pending = p,
                    Err(e) => crate::fatal::stop("pop", format!("reloading pending keystone txs: {e}")),
                }
            }
            s.run(&mut commits, &faults)
        })
    })?;
    Ok(SubmitterHandle { control })
}

struct Submitter<S: BitcoinSource> {
    cfg: SubmitterConfig,
    wallet: Option<PopWallet>,
    source: S,
    view: BtcView,
    store: Store,
    pending: BTreeMap<u64, PendingTx>,
    due: BTreeMap<u64, Due>,
    last_best: Option<u64>,
}

impl<S: BitcoinSource> Submitter<S> {
    fn open(
        cfg: SubmitterConfig,
        wallet: Option<PopWallet>,
        source: S,
        view: BtcView,
        data_dir: &Path,
    ) -> Result<Self, SubmitterError> {
        let store = Store::open(data_dir)?;
        let pending = store.load()?;
        if let Some(w) = &wallet {
            info!(target: "pop", address = %w.address, pending = pending.len(), "keystone submitter ready");
        }
        Ok(Submitter { cfg, wallet, source, view, store, pending, due: BTreeMap::new(), last_best: None })
    }

    fn run(&mut self, commits: &mut broadcast::Receiver<CommittedBlock>, faults: &std::sync::mpsc::Receiver<()>) {
        let mut last_view: Option<std::sync::Arc<crate::btc::BtcIndex>> = None;
        loop {
            if faults.try_recv().is_ok() {
                panic!("injected fault in the PoP submitter");
            }
            let due_before = self.due.len();
            loop {
                match commits.try_recv() {
                    Ok(c) => self.on_commit(&c),
                    Err(broadcast::error::TryRecvError::Empty) => break,
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        warn!(target: "pop", skipped = n, "missed committed blocks");
                    }
                    Err(broadcast::error::TryRecvError::Closed) => return,
                }
            }
            // Everything a round decides follows from a new keystone or a new Bitcoin view.
            let view = self.view.current();
            let moved = last_view.as_ref().is_none_or(|v| !std::sync::Arc::ptr_eq(v, &view));
            if moved || self.due.len() != due_before {
                last_view = Some(view);
                if let Err(e) = self.tick() {
                    // Failing to persist a pending tx could lead to spending a coin twice: stop.
                    crate::fatal::stop("pop", e);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn on_commit(&mut self, c: &CommittedBlock) {
        self.on_header(&c.header);
    }

    fn on_header(&mut self, header: &bss_consensus::BlockHeader) {
        let n = header.number;
        if n == 0 || !n.is_multiple_of(self.cfg.keystone_interval) {
            return;
        }
        let since_btc = self.view.current().best_height().unwrap_or(0);
        let keystone = Keystone::of(header);
        self.due.insert(n, Due { keystone, since_btc, committed_at: Instant::now(), landed: false });
    }

    fn tick(&mut self) -> Result<(), SubmitterError> {
        let view = self.view.current();
        let Some(best) = view.best_height() else { return Ok(()) };
        let new_block = self.last_best != Some(best);
        self.last_best = Some(best);
        let seen = keystones(&view, &self.cfg.keystones);
        let our_txids: HashSet<String> = self.pending.values().map(|p| p.txid.clone()).collect();
        let mut finished = vec![];
        for (n, due) in self.due.iter_mut() {
            let sightings: Vec<_> = seen
                .iter()
                .filter(|k| k.keystone.l2_number == *n && k.keystone.l2_hash == due.keystone.l2_hash)
                .collect();
            let deepest = sightings.iter().map(|k| k.confirmations).max();
            match deepest {
                Some(conf) => {
                    if !due.landed {
                        due.landed = true;
                        let ours = sightings.iter().any(|k| our_txids.contains(&k.sighting.txid.to_string()));
                        info!(target: "pop", l2 = n, btc_height = sightings[0].sighting.height, ours, "keystone in Bitcoin");
                        if ours {
                            metrics::counter!("bss_pop_keystones_confirmed_total").increment(1);
                            if let Some(p) = self.pending.get(n) {
                                metrics::counter!("bss_pop_fees_sats_total").increment(p.fee);
                            }
                        }
                    }
                    if conf >= self.cfg.superfinality_confirmations {
                        let secs = due.committed_at.elapsed().as_secs_f64();
                        metrics::histogram!("bss_pop_superfinality_seconds").record(secs);
                        metrics::histogram!("bss_pop_superfinality_btc_blocks")
                            .record(best.saturating_sub(due.since_btc) as f64);
                        info!(target: "pop", l2 = n, secs, btc_blocks = best.saturating_sub(due.since_btc), "superfinal");
                        finished.push(*n);
                    }
                }
                None if due.landed => {
                    // A reorg took its only sighting away: the stagger clock starts again.
                    warn!(target: "pop", l2 = n, "keystone no longer in Bitcoin's best chain (reorg); resubmitting");
                    due.landed = false;
                    due.since_btc = best;
                }
                None => {}
            }
        }
        for n in finished {
            self.due.remove(&n);
        }
        // A pending tx is done once its coin is spent (by it, or by a version that replaced it)
        // deep enough that no reorg will bring the coin back.
        let spent_deep: Vec<u64> = self
            .pending
            .values()
            .filter(|p| {
                OutPoint::from_str(&p.input)
                    .ok()
                    .and_then(|o| view.coin(&o, best))
                    .and_then(|c| c.spent_at)
                    .is_some_and(|h| best.saturating_sub(h) + 1 >= self.cfg.superfinality_confirmations)
            })
            .map(|p| p.l2_number)
            .collect();
        for n in spent_deep {
            self.pending.remove(&n);
            self.store.remove(n)?;
        }
        if self.wallet.is_none() {
            return Ok(());
        }
        // Submit what is ours to submit now.
        let to_submit: Vec<u64> = self
            .due
            .iter()
            .filter(|(n, d)| !d.landed && !self.pending.contains_key(n) && best >= d.since_btc + self.wait_blocks(**n))
            .map(|(n, _)| *n)
            .collect();
        for n in &to_submit {
            self.submit(*n, best)?;
        }
        // Keep ours alive: bump, or rebroadcast on each new Bitcoin block.
        let numbers: Vec<u64> = self.pending.keys().copied().filter(|n| !to_submit.contains(n)).collect();
        for n in numbers {
            let Some(p) = self.pending.get(&n).cloned() else { continue };
            let Ok(txid) = Txid::from_str(&p.txid) else { continue };
            let confirmed = view.tx(&txid, best).is_some();
            // Landed (or superfinal and no longer tracked): only keep it in the mempool.
            let landed = self.due.get(&n).is_none_or(|d| d.landed);
            if !confirmed && !landed && best >= p.broadcast_at + self.cfg.bump_after_blocks {
                self.bump(p, best)?;
            } else if !confirmed && new_block {
                self.broadcast(&p);
            }
        }
        Ok(())
    }

    /// Bitcoin blocks this operator waits for keystone `n` before stepping in.
    fn wait_blocks(&self, n: u64) -> u64 {
        let ops = u64::from(self.cfg.operators.max(1));
        let first = (n / self.cfg.keystone_interval) % ops;
        let rank = (u64::from(self.cfg.me) + ops - first) % ops;
        rank * self.cfg.stagger_blocks
    }

    fn fee_rate(&self) -> f64 {
        let estimate = match self.source.estimate_fee(2) {
            Ok(e) => e,
            Err(e) => {
                warn!(target: "pop", error = %e, "estimatesmartfee failed; using the fee floor");
                None
            }
        };
        estimate.unwrap_or(self.cfg.fee_floor).clamp(self.cfg.fee_floor, self.cfg.fee_cap)
    }

    fn submit(&mut self, n: u64, best: u64) -> Result<(), SubmitterError> {
        let Some(wallet) = &self.wallet else { return Ok(()) };
        let Some(due) = self.due.get(&n) else { return Ok(()) };
        let view = self.view.current();
        let busy: HashSet<String> = self.pending.values().map(|p| p.input.clone()).collect();
        let coin = view
            .utxos(&wallet.script(), best)
            .into_iter()
            .filter(|(o, _)| !busy.contains(&o.to_string()))
            .max_by_key(|(_, v)| *v);
        let Some((input, value)) = coin else {
            warn!(target: "pop", l2 = n, address = %wallet.address, "no confirmed coins to pay for a keystone");
            metrics::counter!("bss_pop_unfunded_total").increment(1);
            return Ok(());
        };
        let payload = due.keystone.encode();
        let rate = self.fee_rate();
        match wallet.keystone_tx(input, value, &payload, rate) {
            Ok(tx) => {
                let p = PendingTx::version(n, input, value, &payload, &tx, rate, best);
                // Persisted before it leaves the node.
                self.store.put(&p)?;
                info!(target: "pop", l2 = n, txid = %p.txid, vsize = tx.vsize(), sat_per_vb = rate, "submitting keystone");
                metrics::counter!("bss_pop_keystones_submitted_total").increment(1);
                metrics::gauge!("bss_pop_last_tx_vsize").set(tx.vsize() as f64);
                self.broadcast(&p);
                self.pending.insert(n, p);
            }
            Err(e) => warn!(target: "pop", l2 = n, error = %e, "cannot build a keystone tx"),
        }
        Ok(())
    }

    fn bump(&mut self, old: PendingTx, best: u64) -> Result<(), SubmitterError> {
        let Some(wallet) = &self.wallet else { return Ok(()) };
        let rate = (old.fee_rate * 1.5).max(self.fee_rate()).min(self.cfg.fee_cap);
        let (Ok(input), Ok(payload)) =
            (OutPoint::from_str(&old.input), <[u8; super::keystone::LEN]>::try_from(old.payload.as_slice()))
        else {
            return Ok(());
        };
        if rate <= old.fee_rate {
            // At the cap: keep the tx and rebroadcast it.
            let p = PendingTx { broadcast_at: best, ..old };
            self.store.put(&p)?;
            self.broadcast(&p);
            self.pending.insert(p.l2_number, p);
            return Ok(());
        }
        match wallet.keystone_tx(input, old.value, &payload, rate) {
            Ok(tx) => {
                let p = PendingTx::version(old.l2_number, input, old.value, &payload, &tx, rate, best);
                self.store.put(&p)?;
                info!(target: "pop", l2 = p.l2_number, txid = %p.txid, sat_per_vb = rate, "replacing an unconfirmed keystone tx (RBF)");
                metrics::counter!("bss_pop_rbf_bumps_total").increment(1);
                self.broadcast(&p);
                self.pending.insert(p.l2_number, p);
            }
            Err(e) => warn!(target: "pop", l2 = old.l2_number, error = %e, "cannot bump a keystone tx"),
        }
        Ok(())
    }

    fn broadcast(&self, p: &PendingTx) {
        match self.source.send_raw(&p.raw) {
            Ok(_) => {}
            Err(e) => warn!(target: "pop", l2 = p.l2_number, txid = %p.txid, error = %e, "broadcast failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btc::source::SourceError;
    use crate::btc::testkit::{mine_chain, mine_on};
    use bitcoin::{Amount, Block, BlockHash, Transaction, TxOut};
    use std::sync::mpsc;

    /// A Bitcoin node that accepts every broadcast and never mines it.
    struct Blackhole(mpsc::Sender<Transaction>);

    impl BitcoinSource for Blackhole {
        fn block_count(&self) -> Result<u64, SourceError> {
            Err(SourceError::Rpc("unused".into()))
        }
        fn block_hash(&self, _: u64) -> Result<BlockHash, SourceError> {
            Err(SourceError::Rpc("unused".into()))
        }
        fn block(&self, _: &BlockHash) -> Result<Block, SourceError> {
            Err(SourceError::Rpc("unused".into()))
        }
        fn send_raw(&self, hex_tx: &str) -> Result<String, SourceError> {
            let tx: Transaction = encode::deserialize(&hex::decode(hex_tx).unwrap_or_default())
                .map_err(|e| SourceError::Decode(e.to_string()))?;
            let _ = self.0.send(tx);
            Ok(String::new())
        }
        fn estimate_fee(&self, _: u16) -> Result<Option<f64>, SourceError> {
            Ok(None)
        }
    }

    fn cfg() -> SubmitterConfig {
        SubmitterConfig {
            keystones: crate::pop::finality::KeystoneRules::new(7, vec![wallet().public_key()]),
            me: 0,
            operators: 4,
            keystone_interval: 5,
            superfinality_confirmations: 3,
            stagger_blocks: 2,
            bump_after_blocks: 2,
            fee_floor: 2.0,
            fee_cap: 4.0,
        }
    }

    fn header(n: u64) -> bss_consensus::BlockHeader {
        bss_consensus::BlockHeader {
            chain_id: 7,
            number: n,
            parent_hash: alloy_primitives::B256::ZERO,
            round: n,
            proposer: 0,
            timestamp_ms: 0,
            transactions_root: alloy_primitives::B256::ZERO,
            receipts_root: alloy_primitives::B256::ZERO,
            state_root: alloy_primitives::B256::ZERO,
            gas_used: 0,
            gas_limit: 1,
            base_fee: 1,
            btc: Default::default(),
            anchors: vec![],
        }
    }

    fn wallet() -> PopWallet {
        PopWallet::new([9; 32], bitcoin::Network::Regtest).expect("wallet")
    }

    #[test]
    fn unconfirmed_keystones_are_bumped_and_a_restart_never_spends_twice() {
        let dir = tempfile::tempdir().expect("tmp");
        // A chain where the wallet owns two coins.
        let mut blocks = mine_chain(None, 3, 1);
        let mut funding = mine_on(&blocks[2], vec![], 1);
        funding.txdata[0].output = vec![TxOut { value: Amount::from_sat(50_000), script_pubkey: wallet().script() }; 2];
        blocks.push(funding);
        let mut index = crate::btc::testkit::TestIndex::of(&blocks);
        let (view, publish) = BtcView::fixed(index.view());
        let (sent, seen) = mpsc::channel();
        let mut s =
            Submitter::open(cfg(), Some(wallet()), Blackhole(sent.clone()), view.clone(), dir.path()).expect("open");
        s.on_header(&header(20)); // (20 / 5) % 4 == 0: operator 0 goes first
        s.tick().expect("tick");
        let first = seen.try_recv().expect("submitted at once");
        assert!(seen.try_recv().is_err(), "broadcast once");
        assert_eq!(first.output[0].script_pubkey.len(), 54, "52-byte OP_RETURN");
        let input = first.input[0].previous_output;
        // Two Bitcoin blocks without it: replaced with a higher fee on the same coin.
        for _ in 0..2 {
            let next = mine_on(blocks.last().expect("tip"), vec![], 2);
            index.connect(&next);
            blocks.push(next);
        }
        publish.send_replace(std::sync::Arc::new(index.view()));
        s.tick().expect("tick");
        let bumped = seen.try_recv().expect("bumped");
        assert_eq!(bumped.input[0].previous_output, input, "RBF spends the same coin");
        assert!(bumped.output[1].value < first.output[1].value, "a higher fee");
        // A restart loads the pending tx: the keystone is not paid again from the other coin.
        drop(s);
        let mut again = Submitter::open(cfg(), Some(wallet()), Blackhole(sent), view, dir.path()).expect("reopen");
        again.on_header(&header(20));
        again.last_best = Some(index.view().best_height().unwrap_or(0));
        again.tick().expect("tick");
        while let Ok(tx) = seen.try_recv() {
            assert_eq!(tx.input[0].previous_output, input, "after a restart, only the pending tx is rebroadcast");
        }
    }
}
