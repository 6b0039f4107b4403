//! The PopSubmitter: one per operator, on its own thread (its Bitcoin RPC calls block).
//!
//! Every `keystone_interval`-th committed block becomes a keystone, posted once the attestation
//! service holds its certificate (version 3: the tx carries the federation's signatures, so the
//! key that pays for it decides nothing about whether it counts). Submissions are staggered:
//! operator `(n / interval) mod N` goes first; operator at rank r after it steps in only if no
//! keystone for that block is in a Bitcoin block `r × stagger_blocks` blocks after it became due.
//! Its pending txs are persisted (durably, through the storage service) before they are
//! broadcast, so a restart never spends the same coin twice; they are replaced with a higher fee
//! (RBF) while unconfirmed, rebroadcast on every new Bitcoin block (which also repairs a reorg
//! that dropped them), and forgotten once the keystone is superfinal. Without a key the same
//! loop only measures finality.
//!
//! Event-driven: it wakes when a committed block makes a keystone due or the watcher publishes
//! a new Bitcoin view, never on a timer. Supervision: a panic restarts the loop after a backoff
//! (`bss_actor_restarts_total{actor="pop_submitter"}`) with its pending txs reloaded from disk.

mod logic;
mod metrics;
mod pending;
#[cfg(test)]
mod tests;

use crate::btc::{BitcoinSource, BtcView};
use crate::chain::CommittedBlock;
use crate::pop::tx::PopWallet;
use bss_storage::StorageError;
use logic::Submitter;
pub use pending::{PendingTx, PopStore};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tracing::warn;

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

#[derive(Debug, thiserror::Error)]
pub enum SubmitterError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Control of the submitter thread (fault injection for the supervision tests).
#[derive(Clone)]
pub struct SubmitterHandle {
    control: mpsc::Sender<()>,
}

impl SubmitterHandle {
    /// Makes the submitter panic at its next wake-up (it is woken for it).
    pub fn inject_panic(&self) {
        let _ = self.control.try_send(());
    }
}

/// What the submitter is started with.
pub struct SubmitterParts<S> {
    pub cfg: SubmitterConfig,
    pub wallet: Option<PopWallet>,
    pub source: S,
    pub view: BtcView,
    pub commits: broadcast::Receiver<CommittedBlock>,
    pub store: PopStore,
    /// Keystone blocks committed before a restart (still owed unless already in Bitcoin).
    pub recent: Vec<bss_consensus::BlockHeader>,
    /// The certificates the attestation service stores, and its highest certified number.
    pub certs: crate::pop::attest::CertStore,
    pub certified: tokio::sync::watch::Receiver<u64>,
}

/// Starts the submitter thread. It stops when the commit stream closes.
pub fn spawn<S: BitcoinSource>(p: SubmitterParts<S>) -> Result<SubmitterHandle, SubmitterError> {
    let SubmitterParts { cfg, wallet, source, view, mut commits, store, recent, certs, mut certified } = p;
    let mut s = Submitter::open(cfg, wallet, source, view, store, certs)?;
    for header in recent {
        s.on_header(&header);
    }
    let (control, mut faults) = mpsc::channel(1);
    std::thread::Builder::new().name("pop-submitter".into()).spawn(move || {
        let mut first = true;
        crate::supervision::restart_on_panic("pop_submitter", Duration::from_millis(500), || {
            if !std::mem::take(&mut first) {
                match s.store.load() {
                    Ok(p) => s.pending = p,
                    Err(e) => crate::fatal::stop("pop", format!("reloading pending keystone txs: {e}")),
                }
            }
            run(&mut s, &mut commits, &mut certified, &mut faults)
        })
    })?;
    Ok(SubmitterHandle { control })
}

/// Waits for what can change a decision — a keystone falling due, a new Bitcoin view — and
/// runs a round after each. Rounds run outside the event loop's runtime: they make blocking
/// calls (bitcoind, the storage service).
fn run<S: BitcoinSource>(
    s: &mut Submitter<S>,
    commits: &mut broadcast::Receiver<CommittedBlock>,
    certified: &mut tokio::sync::watch::Receiver<u64>,
    faults: &mut mpsc::Receiver<()>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => crate::fatal::stop("pop", format!("cannot build the submitter's event loop: {e}")),
    };
    let mut view = s.view.clone();
    loop {
        // Failing to persist a pending tx could lead to spending a coin twice: stop.
        if let Err(e) = s.tick() {
            crate::fatal::stop("pop", e);
        }
        match rt.block_on(next_event(s, commits, certified, &mut view, faults)) {
            Event::Wake => s.metrics.rounds.increment(1),
            Event::Stop => return,
            Event::Fault => panic!("injected fault in the PoP submitter"),
        }
    }
}

enum Event {
    Wake,
    Stop,
    Fault,
}

async fn next_event<S: BitcoinSource>(
    s: &mut Submitter<S>,
    commits: &mut broadcast::Receiver<CommittedBlock>,
    certified: &mut tokio::sync::watch::Receiver<u64>,
    view: &mut BtcView,
    faults: &mut mpsc::Receiver<()>,
) -> Event {
    loop {
        tokio::select! {
            c = commits.recv() => match c {
                Ok(c) if s.on_commit(&c) => return Event::Wake,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(target: "pop", skipped = n, "missed committed blocks");
                }
                Err(broadcast::error::RecvError::Closed) => return Event::Stop,
            },
            alive = view.changed() => return if alive { Event::Wake } else { Event::Stop },
            // A certificate was assembled: its keystone can be posted now.
            Ok(()) = certified.changed() => return Event::Wake,
            Some(()) = faults.recv() => return Event::Fault,
        }
    }
}
