//! The keystone attestation service (a thread, like the tunnel service): when a keystone block
//! commits, this operator signs its statement with its operator (ed25519) key and sends the
//! signature to every other operator; it keeps the others' signatures that verify, and once a
//! quorum (2f+1) signed the statement of its own committed block it stores the certificate
//! (`AuxSpace::KeystoneCerts`, durably) and publishes its number. The PoP submitter posts it;
//! `bss_keystoneCertificate` serves it to anyone (a `bss pop-miner`).
//!
//! Signatures travel as [`KeystoneSigFrom`] with a `want` flag: an operator still collecting
//! re-sends its own signature every [`RESEND`] with `want` set, and whoever has signed that
//! number answers with its own, so an operator that was down catches up without a new message
//! type. Signing a committed block's statement cannot equivocate (one committed block per
//! number), so nothing needs persisting before it is signed; the certificate is persisted before
//! it is published.
//!
//! Inbound signatures sit in one bounded queue per operator: a peer that floods fills only its
//! own (drops counted in `bss_pop_attestations_dropped_total`).

mod collect;
mod metrics;

use crate::network::peer_inbox::{peer_channel, PeerInbox, PeerMailbox};
use crate::network::NetworkHandle;
use crate::pop::keystone::{CertifiedKeystone, Keystone};
use bss_consensus::{OperatorSet, OperatorSigner};
use bss_storage::{AuxBatch, AuxSpace, AuxWriter, StorageError, StoreReader};
pub use collect::{Collector, Outcome, Refused, WINDOW};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// How often the service looks at the committed chain.
const TICK: Duration = Duration::from_millis(100);
/// How often an operator still collecting re-sends its signature.
pub const RESEND: Duration = Duration::from_secs(2);
/// Signatures queued per operator before new ones are dropped.
const PER_PEER: usize = 64;

/// One operator's signature over a keystone statement (`from` is the authenticated sender).
#[derive(Clone, Debug)]
pub struct KeystoneSigFrom {
    pub from: u16,
    pub statement: Vec<u8>,
    pub sig: [u8; 64],
    /// The sender is still collecting for this number: answer with your own signature.
    pub want: bool,
}

/// Where the network delivers keystone signatures: one bounded queue per operator.
pub type AttestInbox = PeerInbox<KeystoneSigFrom>;

/// The receiving half, handed to [`spawn`].
pub type AttestMailbox = PeerMailbox<KeystoneSigFrom>;

pub fn channel(operators: usize) -> (AttestInbox, AttestMailbox) {
    peer_channel(operators, PER_PEER, metrics::AttestMetrics::register().dropped)
}

/// The certificates this node assembled, in its database.
#[derive(Clone)]
pub struct CertStore {
    pub reader: StoreReader,
}

impl CertStore {
    pub fn get(&self, n: u64) -> Result<Option<CertifiedKeystone>, StorageError> {
        let raw = self.reader.aux_snapshot().get(AuxSpace::KeystoneCerts, &n.to_be_bytes())?;
        raw.map(|r| {
            CertifiedKeystone::decode(&r)
                .map_err(|e| StorageError::Corrupt { keyspace: "keystone_certs", reason: e.to_string() })
        })
        .transpose()
    }

    /// The highest certified number.
    pub fn latest(&self) -> Result<Option<u64>, StorageError> {
        let all = self.reader.aux_snapshot().prefix(AuxSpace::KeystoneCerts, &[], usize::MAX)?;
        Ok(all.last().and_then(|(k, _)| k.as_slice().try_into().ok().map(u64::from_be_bytes)))
    }
}

pub struct AttestParts {
    pub chain_id: u64,
    pub keystone_interval: u64,
    pub me: u16,
    pub signer: OperatorSigner,
    pub operators: OperatorSet,
    pub reader: StoreReader,
    pub writer: AuxWriter,
    pub network: Option<NetworkHandle>,
    pub mailbox: AttestMailbox,
}

/// Control of the attestation thread (fault injection for the supervision tests).
pub type AttestHandle = crate::supervision::FaultSwitch;

/// Starts the service; the receiver follows the highest certified keystone number.
///
/// Supervision: a panic restarts the loop after a backoff
/// (`bss_actor_restarts_total{actor="pop_attest"}`); what it collects is idempotent (one slot per
/// operator and number), and certificates are on disk, so it goes on where it was.
pub fn spawn(p: AttestParts) -> std::io::Result<(watch::Receiver<u64>, AttestHandle)> {
    let store = CertStore { reader: p.reader.clone() };
    let latest = match store.latest() {
        Ok(l) => l.unwrap_or(0),
        Err(e) => crate::fatal::stop("pop", format!("reading keystone certificates: {e}")),
    };
    let (certified, rx) = watch::channel(latest);
    let mut s = Service {
        collector: Collector::new(p.chain_id as u32, p.keystone_interval, p.me, p.signer, p.operators),
        interval: p.keystone_interval.max(1),
        reader: p.reader,
        writer: p.writer,
        store,
        network: p.network,
        signed_to: 0,
        done: Default::default(),
        low: 0,
        last_resend: Instant::now(),
        answered: HashMap::new(),
        certified,
        metrics: metrics::AttestMetrics::register(),
    };
    let mut mailbox = p.mailbox;
    let (control, faults) = crate::supervision::FaultSwitch::new();
    std::thread::Builder::new().name("pop-attest".into()).spawn(move || {
        crate::supervision::restart_on_panic("pop_attest", Duration::from_millis(500), || {
            run(&mut s, &mut mailbox, &faults)
        })
    })?;
    Ok((rx, control))
}

fn run(s: &mut Service, mailbox: &mut AttestMailbox, faults: &crate::supervision::FaultTrigger) {
    loop {
        faults.check("pop_attest");
        if let Err(e) = s.follow() {
            crate::fatal::stop("pop", format!("keystone attestations: {e}"));
        }
        let deadline = Instant::now() + TICK;
        loop {
            let got = mailbox.round(|m| {
                if let Err(e) = s.on_sig(m) {
                    crate::fatal::stop("pop", format!("storing a keystone certificate: {e}"));
                }
            });
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if !got {
                std::thread::sleep(left.min(Duration::from_millis(10)));
            }
        }
    }
}

struct Service {
    collector: Collector,
    interval: u64,
    reader: StoreReader,
    writer: AuxWriter,
    store: CertStore,
    network: Option<NetworkHandle>,
    /// Keystone numbers up to this one are signed (or were certified before a restart).
    signed_to: u64,
    /// Numbers within the window that hold a stored certificate (so a peer's signature for one
    /// costs no database read).
    done: std::collections::BTreeSet<u64>,
    /// The window's lowest number (older certificates are looked up in the store).
    low: u64,
    last_resend: Instant,
    /// When this node last answered an operator's `want` for a number.
    answered: HashMap<(u16, u64), Instant>,
    certified: watch::Sender<u64>,
    metrics: metrics::AttestMetrics,
}

impl Service {
    /// Signs the keystone blocks committed since the last look, re-sends what is still
    /// collecting.
    fn follow(&mut self) -> Result<(), StorageError> {
        let head = self.reader.head_number()?.unwrap_or(0);
        self.collector.set_head(head);
        let low = head.saturating_sub(WINDOW * self.interval);
        self.done = self.done.split_off(&low);
        self.low = low;
        let mut n = (self.signed_to.max(low) / self.interval + 1) * self.interval;
        while n <= head {
            if self.store.get(n)?.is_some() {
                self.done.insert(n);
            } else if let Some(header) = self.reader.header(n)? {
                let k = Keystone::of(&header, 0);
                let sig = self.collector.sign(k);
                debug!(target: "pop", l2 = n, "signed a keystone statement");
                self.metrics.signed.increment(1);
                self.send(None, &k, sig, true);
                self.try_certify(n)?;
            }
            self.signed_to = n;
            n += self.interval;
        }
        if self.last_resend.elapsed() >= RESEND {
            self.last_resend = Instant::now();
            self.answered.retain(|_, t| t.elapsed() < RESEND * 4);
            for n in self.collector.collecting() {
                if let Some((k, sig)) = self.collector.own(n) {
                    self.send(None, &k, sig, true);
                }
            }
        }
        Ok(())
    }

    fn on_sig(&mut self, m: KeystoneSigFrom) -> Result<(), StorageError> {
        if let Ok(k) = Keystone::from_statement(&m.statement) {
            let n = k.l2_number;
            if self.done.contains(&n) || (n < self.low && self.store.get(n)?.is_some()) {
                // Already certified here: only help a peer still collecting.
                if m.want && k.l2_number.is_multiple_of(self.interval) {
                    self.answer(m.from, k.l2_number)?;
                }
                return Ok(());
            }
        }
        let outcome = self.collector.receive(m.from, &m.statement, &m.sig);
        match outcome {
            Outcome::Refused(why) => {
                self.metrics.refused(why).increment(1);
                if why == Refused::Conflicting {
                    warn!(target: "pop", operator = m.from, "an operator signed a keystone statement that conflicts with this node's committed block");
                }
                return Ok(());
            }
            Outcome::Kept => self.metrics.received.increment(1),
            Outcome::Known => {}
        }
        let Ok(k) = Keystone::from_statement(&m.statement) else { return Ok(()) };
        let n = k.l2_number;
        if m.want {
            self.answer(m.from, n)?;
        }
        if outcome == Outcome::Kept {
            self.try_certify(n)?;
        }
        Ok(())
    }

    /// Sends this node's signature for `n` to an operator still collecting (at most once per
    /// [`RESEND`] per operator and number).
    fn answer(&mut self, to: u16, n: u64) -> Result<(), StorageError> {
        if self.answered.get(&(to, n)).is_some_and(|t| t.elapsed() < RESEND) {
            return Ok(());
        }
        let own = match self.collector.own(n) {
            Some(o) => Some(o),
            // Certified and forgotten: the stored certificate holds this node's signature.
            None => self.store.get(n)?.and_then(|c| {
                let i = c.signers.iter().position(|s| *s == self.collector.me)?;
                Some((c.keystone, c.signatures[i]))
            }),
        };
        if let Some((k, sig)) = own {
            self.answered.insert((to, n), Instant::now());
            self.send(Some(to), &k, sig, false);
        }
        Ok(())
    }

    fn try_certify(&mut self, n: u64) -> Result<(), StorageError> {
        let Some(cert) = self.collector.certificate(n) else { return Ok(()) };
        let mut b = AuxBatch::new(true);
        b.put(AuxSpace::KeystoneCerts, n.to_be_bytes(), cert.encode());
        self.writer.write_blocking(b)?;
        info!(target: "pop", l2 = n, hash = %cert.keystone.l2_hash, signers = ?cert.signers, "keystone certificate assembled");
        self.metrics.certified.increment(1);
        // Keep answering others from the store; stop collecting.
        self.collector.forget(n);
        self.done.insert(n);
        self.certified.send_if_modified(|l| {
            let newer = n > *l;
            *l = (*l).max(n);
            newer
        });
        Ok(())
    }

    fn send(&self, to: Option<u16>, k: &Keystone, sig: [u8; 64], want: bool) {
        let Some(net) = &self.network else { return };
        net.send_keystone_sig(to, k.statement().to_vec(), sig, want);
    }
}
