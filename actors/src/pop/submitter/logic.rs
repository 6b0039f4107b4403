//! What the submitter decides each round: which keystones are due, landed, superfinal; what to
//! submit, bump or rebroadcast.

use super::pending::{PendingTx, PopStore};
use super::SubmitterConfig;
use crate::btc::{BitcoinSource, BtcView};
use crate::chain::CommittedBlock;
use crate::pop::finality::keystones;
use crate::pop::keystone::{CertifiedKeystone, Keystone};
use crate::pop::tx::PopWallet;
use bitcoin::Txid;
use bss_storage::StorageError;
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;
use tracing::{debug, info, warn};

pub(super) struct Due {
    keystone: Keystone,
    /// Best Bitcoin height when it became due (or when a reorg dropped its last sighting).
    since_btc: u64,
    committed_at: Instant,
    landed: bool,
}

pub(super) struct Submitter<S: BitcoinSource> {
    cfg: SubmitterConfig,
    wallet: Option<PopWallet>,
    source: S,
    pub(super) view: BtcView,
    pub(super) store: PopStore,
    pub(super) pending: BTreeMap<u64, PendingTx>,
    due: BTreeMap<u64, Due>,
    pub(super) last_best: Option<u64>,
    pub(super) metrics: super::metrics::PopMetrics,
    certs: crate::pop::attest::CertStore,
}

impl<S: BitcoinSource> Submitter<S> {
    pub(super) fn open(
        cfg: SubmitterConfig,
        wallet: Option<PopWallet>,
        source: S,
        view: BtcView,
        store: PopStore,
        certs: crate::pop::attest::CertStore,
    ) -> Result<Self, StorageError> {
        let pending = store.load()?;
        if let Some(w) = &wallet {
            info!(target: "pop", address = %w.address, pending = pending.len(), "keystone submitter ready");
        }
        let metrics = super::metrics::PopMetrics::register();
        Ok(Submitter {
            cfg,
            wallet,
            source,
            view,
            store,
            pending,
            due: BTreeMap::new(),
            last_best: None,
            metrics,
            certs,
        })
    }

    /// A committed block; true when it made a keystone due.
    pub(super) fn on_commit(&mut self, c: &CommittedBlock) -> bool {
        self.on_header(&c.header)
    }

    pub(super) fn on_header(&mut self, header: &bss_consensus::BlockHeader) -> bool {
        let n = header.number;
        if n == 0 || !n.is_multiple_of(self.cfg.keystone_interval) {
            return false;
        }
        let since_btc = self.view.current().best_height().unwrap_or(0);
        let keystone = Keystone::of(header, 0);
        self.due.insert(n, Due { keystone, since_btc, committed_at: Instant::now(), landed: false });
        true
    }

    /// One round over the current Bitcoin view.
    pub(super) fn tick(&mut self) -> Result<(), StorageError> {
        let view = self.view.current();
        let Some(best) = view.best_height() else { return Ok(()) };
        let new_block = self.last_best != Some(best);
        self.last_best = Some(best);
        let seen = keystones(&view, &self.cfg.keystones);
        let our_txids: HashSet<Txid> = self.pending.values().map(|p| p.txid).collect();
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
                        let ours = sightings.iter().any(|k| our_txids.contains(&k.sighting.txid));
                        info!(target: "pop", l2 = n, btc_height = sightings[0].sighting.height, ours, "keystone in Bitcoin");
                        if ours {
                            self.metrics.confirmed.increment(1);
                            if let Some(p) = self.pending.get(n) {
                                self.metrics.fees_sats.increment(p.fee);
                            }
                        }
                    }
                    if conf >= self.cfg.superfinality_confirmations {
                        let secs = due.committed_at.elapsed().as_secs_f64();
                        self.metrics.superfinality_seconds.record(secs);
                        self.metrics.superfinality_btc_blocks.record(best.saturating_sub(due.since_btc) as f64);
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
                view.coin(&p.input, best)
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
            let confirmed = view.tx(&p.txid, best).is_some();
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

    fn submit(&mut self, n: u64, best: u64) -> Result<(), StorageError> {
        let Some(wallet) = &self.wallet else { return Ok(()) };
        let Some(due) = self.due.get(&n) else { return Ok(()) };
        let view = self.view.current();
        let busy: HashSet<bitcoin::OutPoint> = self.pending.values().map(|p| p.input).collect();
        let coin =
            view.utxos(&wallet.script(), best).into_iter().filter(|(o, _)| !busy.contains(o)).max_by_key(|(_, v)| *v);
        let Some((input, value)) = coin else {
            warn!(target: "pop", l2 = n, address = %wallet.address, "no confirmed coins to pay for a keystone");
            self.metrics.unfunded.increment(1);
            return Ok(());
        };
        // The certificate of this node's own block (the attestation service checked it matches).
        let Some(cert) = self.certs.get(n)?.filter(|c| c.keystone == due.keystone) else {
            debug!(target: "pop", l2 = n, "keystone due but not yet certified");
            return Ok(());
        };
        let rate = self.fee_rate();
        match wallet.keystone_tx(input, value, &cert, rate) {
            Ok(tx) => {
                let vsize = tx.vsize();
                let p = PendingTx::version(n, input, value, &cert.encode(), tx, rate, best);
                // Persisted before it leaves the node.
                self.store.put(&p)?;
                info!(target: "pop", l2 = n, txid = %p.txid, vsize, sat_per_vb = rate, "submitting keystone");
                self.metrics.submitted.increment(1);
                self.metrics.last_tx_vsize.set(vsize as f64);
                self.broadcast(&p);
                self.pending.insert(n, p);
            }
            Err(e) => warn!(target: "pop", l2 = n, error = %e, "cannot build a keystone tx"),
        }
        Ok(())
    }

    fn bump(&mut self, old: PendingTx, best: u64) -> Result<(), StorageError> {
        let Some(wallet) = &self.wallet else { return Ok(()) };
        let rate = (old.fee_rate * 1.5).max(self.fee_rate()).min(self.cfg.fee_cap);
        let input = old.input;
        // A tx written before version 3 carries no certificate: it is only rebroadcast.
        let Ok(cert) = CertifiedKeystone::decode(&old.payload) else {
            self.broadcast(&old);
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
        match wallet.keystone_tx(input, old.value, &cert, rate) {
            Ok(tx) => {
                let p = PendingTx::version(old.l2_number, input, old.value, &old.payload, tx, rate, best);
                self.store.put(&p)?;
                info!(target: "pop", l2 = p.l2_number, txid = %p.txid, sat_per_vb = rate, "replacing an unconfirmed keystone tx (RBF)");
                self.metrics.rbf_bumps.increment(1);
                self.broadcast(&p);
                self.pending.insert(p.l2_number, p);
            }
            Err(e) => warn!(target: "pop", l2 = old.l2_number, error = %e, "cannot bump a keystone tx"),
        }
        Ok(())
    }

    fn broadcast(&self, p: &PendingTx) {
        match self.source.send_raw(&p.raw_hex()) {
            Ok(_) => {}
            Err(e) => warn!(target: "pop", l2 = p.l2_number, txid = %p.txid, error = %e, "broadcast failed"),
        }
    }
}
