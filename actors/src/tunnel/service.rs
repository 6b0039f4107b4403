//! The tunnel service's logic: folds committed blocks into the withdrawal ledger, signs the open
//! batch's payout, keeps other operators' signatures that verify, and sends the payout to
//! bitcoind once it holds t of them.

use super::metrics::TunnelMetrics;
use super::{Sent, SigsFrom, TunnelStatus};
use crate::btc::deposit::TunnelRules;
use crate::btc::vault::CustodyKey;
use crate::btc::withdrawal::{self, Batch, Ledger, Request};
use crate::btc::{BitcoinSource, BtcView};
use crate::hvm::hbtc::{decode_withdrawal, HBTC_ADDRESS, TOTAL_SUPPLY_SLOT};
use crate::network::NetworkHandle;
use alloy_primitives::{Bytes, U256};
use bitcoin::ScriptBuf;
use bss_storage::{AuxBatch, AuxSpace, AuxWriter, StorageError, StoreReader};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// How often this operator re-sends its signatures and the assembled payout.
const RESEND: Duration = Duration::from_secs(2);
/// Committed blocks between two ledger checkpoints.
pub(super) const CHECKPOINT_EVERY: u64 = 128;
/// The checkpoint's key in `AuxSpace::TunnelLedger`.
const CHECKPOINT_KEY: &[u8] = b"ledger";

pub struct Tunnel<S> {
    pub(super) rules: TunnelRules,
    pub(super) reader: StoreReader,
    pub(super) writer: AuxWriter,
    /// The L2 number of the last checkpoint written or restored.
    pub(super) checkpointed: u64,
    pub(super) view: BtcView,
    pub(super) key: Option<CustodyKey>,
    pub(super) me: u16,
    pub(super) network: Option<NetworkHandle>,
    pub(super) bitcoind: Option<S>,
    pub(super) ledger: Ledger,
    /// Signatures of the open batch, by fee version, then operator index.
    pub(super) sigs: BTreeMap<u32, Vec<Option<Vec<[u8; 64]>>>>,
    /// Payouts sent to bitcoind.
    pub(super) sent: Sent,
    pub(super) last_resend: Option<Instant>,
    /// (head, Bitcoin tip, payouts sent) of the last status published.
    pub(super) published: Option<(u64, u64, Sent)>,
    /// The vault balance at a Bitcoin tip (height and block).
    pub(super) vault_sats: Option<((u64, Option<bitcoin::BlockHash>), u64)>,
    pub(super) status: watch::Sender<Arc<TunnelStatus>>,
    pub(super) metrics: TunnelMetrics,
    /// Byzantine `flood-tunnel-sigs`: junk messages per tick instead of its signatures.
    pub(super) flood: Option<usize>,
}

impl<S: BitcoinSource> Tunnel<S> {
    /// Forgets everything derived from the committed chain: the ledger restarts from its last
    /// checkpoint (or block 0) and the next rounds replay the blocks after it.
    pub fn reset(&mut self) -> Result<(), StorageError> {
        self.ledger = Ledger::default();
        self.checkpointed = 0;
        self.sigs.clear();
        self.last_resend = None;
        self.published = None;
        self.vault_sats = None;
        self.restore()
    }

    /// Loads the ledger checkpoint, if one is stored at or below the committed head.
    fn restore(&mut self) -> Result<(), StorageError> {
        let Some(raw) = self.reader.aux_snapshot().get(AuxSpace::TunnelLedger, CHECKPOINT_KEY)? else {
            return Ok(());
        };
        let head = self.reader.head_number()?.unwrap_or(0);
        let ledger: Ledger = bss_consensus::codec::decode(&raw).map_err(|e| StorageError::Corrupt {
            keyspace: "tunnel_ledger",
            reason: format!("checkpoint does not decode: {e}"),
        })?;
        if ledger.l2_head > head {
            warn!(target: "tunnel", checkpoint = ledger.l2_head, head, "ledger checkpoint is above the committed head; replaying from block 1");
            return Ok(());
        }
        info!(target: "tunnel", l2_block = ledger.l2_head, requests = ledger.requests.len(), "tunnel ledger restored from its checkpoint");
        self.checkpointed = ledger.l2_head;
        self.metrics.ledger_restored_l2.set(ledger.l2_head as f64);
        self.ledger = ledger;
        Ok(())
    }

    /// Writes the ledger checkpoint every [`CHECKPOINT_EVERY`] committed blocks.
    fn checkpoint(&mut self) -> Result<(), StorageError> {
        if self.ledger.l2_head < self.checkpointed.saturating_add(CHECKPOINT_EVERY) {
            return Ok(());
        }
        let bytes = bss_consensus::codec::encode(&self.ledger).map_err(|e| StorageError::Corrupt {
            keyspace: "tunnel_ledger",
            reason: format!("encoding the ledger: {e}"),
        })?;
        let mut b = AuxBatch::new(false);
        b.put(AuxSpace::TunnelLedger, CHECKPOINT_KEY.to_vec(), bytes);
        self.writer.write_blocking(b)?;
        self.checkpointed = self.ledger.l2_head;
        self.metrics.ledger_checkpoints.increment(1);
        debug!(target: "tunnel", l2_block = self.checkpointed, "tunnel ledger checkpoint written");
        Ok(())
    }

    /// Applies the committed blocks the ledger has not seen, as far as the Bitcoin view allows
    /// (a block is applied only once the view holds its Bitcoin tip), each on its own Bitcoin
    /// view (the block its header names, a kept fork if a reorg took it off the best chain), so
    /// that every operator derives the same ledger whatever its watcher has seen since.
    pub fn catch_up(&mut self) -> Result<(), StorageError> {
        let head = self.reader.head_number()?.unwrap_or(0);
        let view = self.view.current();
        while self.ledger.l2_head < head {
            let n = self.ledger.l2_head + 1;
            let Some(header) = self.reader.header(n)? else { break };
            let tip = (header.btc.tip_hash != alloy_primitives::B256::ZERO).then_some(header.btc.tip_height);
            if tip.is_some_and(|t| view.best_height().is_none_or(|b| b < t)) {
                break;
            }
            let receipts = self.reader.receipts(n)?.unwrap_or_default();
            let requests: Vec<Request> = receipts
                .iter()
                .flat_map(|r| r.logs.iter())
                .filter_map(|l| decode_withdrawal(&l.address, &l.topics, &l.data))
                .map(|w| Request {
                    id: w.id,
                    from: w.from,
                    script: ScriptBuf::from_bytes(w.script),
                    sats: w.sats,
                    l2_block: n,
                })
                .collect();
            for r in &requests {
                info!(target: "tunnel", id = r.id, sats = r.sats, l2_block = n, "withdrawal requested");
            }
            let own = match (tip, crate::btc::attributes::tip_hash(&header.btc)) {
                (Some(t), Some(hash)) => view.as_of_tip(t, &hash),
                _ => Some(view.clone()),
            };
            let own = own.unwrap_or_else(|| {
                warn!(target: "tunnel", l2_block = n, "cannot rebuild the block's own Bitcoin view; applying it on the best view");
                self.metrics.ledger_fallback_views.increment(1);
                view.clone()
            });
            let open_before = self.ledger.batch.as_ref().map(|b| (b.seq, b.first, b.is_consolidation()));
            self.ledger.apply(n, tip, requests, &header.mints, &own, &self.rules);
            let open_now = self.ledger.batch.as_ref().map(|b| b.seq);
            if let Some((seq, first, consolidation)) = open_before.filter(|b| open_now != Some(b.0)) {
                let paid = self.ledger.paid.get(&first).cloned();
                info!(target: "tunnel", batch = seq, first, consolidation, txid = ?paid.as_ref().map(|p| p.txid), l2_block = n, "withdrawal batch paid");
                self.metrics.payouts_confirmed.increment(1);
                if consolidation {
                    self.metrics.consolidations_confirmed.increment(1);
                }
                self.sigs.clear();
                // Only the open batch's payout is of interest once a batch is paid.
                self.sent.retain(|b, _| *b > seq);
            }
            if let Some(b) = &self.ledger.batch {
                if open_before.map(|o| o.0) != Some(b.seq) {
                    info!(target: "tunnel", batch = b.seq, first = b.first, end = b.end, inputs = b.inputs.len(), consolidation = b.is_consolidation(), fee_budget = b.fee_budget, l2_block = n, "withdrawal batch opened");
                }
            }
        }
        self.checkpoint()
    }

    /// Signs, shares and sends the open batch's payout.
    pub fn work(&mut self) {
        let Some(batch) = self.ledger.batch.clone() else { return };
        if let (Some(n), Some(net)) = (self.flood, &self.network) {
            // Cheap to refuse (a batch that does not exist), and many of them.
            for i in 0..n {
                net.send_tunnel_sigs(batch.seq + 1_000_000 + i as u64, 0, vec![Bytes::from(vec![0u8; 64])]);
            }
            return;
        }
        let top = withdrawal::version_at(&batch, self.ledger.btc_tip, &self.rules);
        let n = self.rules.vault.keys().len();
        let resend = self.last_resend.is_none_or(|t| t.elapsed() >= RESEND);
        for version in 0..=top {
            let tx = match withdrawal::payout_tx(&self.ledger, &batch, &self.rules, version) {
                Ok(tx) => tx,
                Err(e) => crate::fatal::stop("tunnel", format!("building the payout of batch {}: {e}", batch.first)),
            };
            let slot = self.sigs.entry(version).or_insert_with(|| vec![None; n]);
            if let (Some(key), Some(mine)) = (&self.key, slot.get_mut(usize::from(self.me))) {
                if mine.is_none() {
                    match withdrawal::sign(key, &tx, &batch, &self.rules) {
                        Ok(s) => *mine = Some(s),
                        Err(e) => crate::fatal::stop("tunnel", format!("signing payout {}: {e}", tx.compute_txid())),
                    }
                    debug!(target: "tunnel", first = batch.first, version, txid = %tx.compute_txid(), "signed payout");
                }
                if resend {
                    if let (Some(net), Some(s)) = (&self.network, mine.as_ref()) {
                        net.send_tunnel_sigs(batch.seq, version, s.iter().map(|s| Bytes::copy_from_slice(s)).collect());
                    }
                }
            }
        }
        // The highest version with t signatures goes to bitcoind (again every RESEND).
        let ready = (0..=top).rev().find(|v| {
            self.sigs.get(v).is_some_and(|s| s.iter().filter(|x| x.is_some()).count() >= self.rules.vault.threshold())
        });
        if let Some(version) = ready {
            let already = self.sent.get(&batch.seq).is_some_and(|(v, _)| *v >= version);
            if !already || resend {
                self.send_payout(&batch, version);
            }
        }
        if resend {
            self.last_resend = Some(Instant::now());
        }
    }

    fn send_payout(&mut self, batch: &Batch, version: u32) {
        let Some(sigs) = self.sigs.get(&version) else { return };
        let tx = match withdrawal::payout_tx(&self.ledger, batch, &self.rules, version)
            .and_then(|tx| withdrawal::finalize(tx, batch, &self.rules, sigs))
        {
            Ok(tx) => tx,
            Err(e) => {
                warn!(target: "tunnel", first = batch.first, version, error = %e, "cannot complete the payout");
                return;
            }
        };
        let txid = tx.compute_txid();
        let Some(bitcoind) = &self.bitcoind else { return };
        let first_time = self.sent.get(&batch.seq).is_none_or(|(v, _)| *v < version);
        match bitcoind.send_raw(&bitcoin::consensus::encode::serialize_hex(&tx)) {
            Ok(_) => {
                if first_time {
                    info!(target: "tunnel", batch = batch.seq, first = batch.first, end = batch.end, version, %txid, "payout broadcast");
                    self.metrics.payouts_broadcast.increment(1);
                }
            }
            // Already there, or a higher version is: nothing to do. Anything else is logged;
            // the next resend tries again.
            Err(e) => debug!(target: "tunnel", %txid, error = %e, "bitcoind did not take the payout"),
        }
        self.sent.insert(batch.seq, (version, txid));
    }

    /// Keeps another operator's signatures if they verify over the open batch's payout.
    pub fn on_sigs(&mut self, m: SigsFrom) {
        let Some(batch) = self.ledger.batch.clone() else { return self.metrics.sigs_refused.increment(1) };
        let from = usize::from(m.from);
        if m.batch != batch.seq
            || m.version > withdrawal::max_version(&self.rules)
            || from >= self.rules.vault.keys().len()
        {
            return self.metrics.sigs_refused.increment(1);
        }
        let Ok(sigs) = m.sigs.iter().map(|s| <[u8; 64]>::try_from(s.as_ref())).collect::<Result<Vec<_>, _>>() else {
            return self.metrics.sigs_refused.increment(1);
        };
        let checked = withdrawal::payout_tx(&self.ledger, &batch, &self.rules, m.version)
            .and_then(|tx| withdrawal::check_signatures(&tx, &batch, &self.rules, from, &sigs));
        if let Err(e) = checked {
            debug!(target: "tunnel", from, batch = m.batch, version = m.version, error = %e, "refused payout signatures");
            return self.metrics.sigs_refused.increment(1);
        }
        let n = self.rules.vault.keys().len();
        self.sigs.entry(m.version).or_insert_with(|| vec![None; n])[from] = Some(sigs);
        self.metrics.sigs_accepted.increment(1);
    }

    /// Publishes the status RPC reads and updates the invariant metrics, when the committed
    /// head or what this operator sent moved (the vault's coins are summed once per Bitcoin tip).
    pub fn publish(&mut self) -> Result<(), StorageError> {
        let mark = (self.ledger.l2_head, self.ledger.btc_tip, self.sent.clone());
        if self.published.as_ref() == Some(&mark) {
            return Ok(());
        }
        let tip = self.ledger.btc_tip;
        let current = self.view.current();
        // The balance as of the Bitcoin block the ledger's head builds on: after a reorg deeper
        // than the lag that block may be off the best chain, and the best chain at the same
        // height may already hold a payout the ledger has not seen (a false alarm, found by the
        // chaos sample's btc_deep_reorg under load).
        let head_tip = self.reader.header(self.ledger.l2_head)?.and_then(|h| crate::btc::attributes::tip_hash(&h.btc));
        let view = match head_tip.filter(|_| tip > 0) {
            Some(hash) => current.as_of_tip(tip, &hash).unwrap_or_else(|| current.clone()),
            None => current.clone(),
        };
        let at = (tip, view.hash_at(tip));
        let vault_sats = match &self.vault_sats {
            Some((cached, sats)) if *cached == at => *sats,
            _ => {
                let coins = view.utxos(&self.rules.vault.script_pubkey(), tip);
                let sats = coins.iter().map(|(_, v)| *v).fold(0, u64::saturating_add);
                self.vault_sats = Some((at, sats));
                sats
            }
        };
        let supply = self.reader.storage(&HBTC_ADDRESS, &U256::from(TOTAL_SUPPLY_SLOT))?;
        let supply = u64::try_from(supply).unwrap_or(u64::MAX);
        let pending = self.ledger.pending_sats();
        let holds = supply.saturating_add(pending) <= vault_sats;
        let m = &self.metrics;
        m.vault_sats.set(vault_sats as f64);
        m.hbtc_supply_sats.set(supply as f64);
        m.pending_withdrawal_sats.set(pending as f64);
        m.invariant_ok.set(if holds { 1.0 } else { 0.0 });
        let prev = self.status.borrow().clone();
        if !holds && prev.invariant_holds {
            m.invariant_violations.increment(1);
            warn!(target: "tunnel", supply, pending, vault_sats, "TUNNEL INVARIANT VIOLATED: hBTC supply + burned-but-unpaid exceeds the vault balance");
        }
        let status = TunnelStatus {
            ledger: self.ledger.clone(),
            sent: self.sent.clone(),
            vault_sats,
            hbtc_supply: supply,
            invariant_holds: holds,
        };
        self.status.send_replace(Arc::new(status));
        self.published = Some(mark);
        Ok(())
    }
}
