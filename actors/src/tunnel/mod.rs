//! The tunnel service (a thread, like the PoP submitter): follows committed blocks into the
//! withdrawal ledger (`bss_btc::withdrawal`), signs each payout with this operator's custody key,
//! gathers the other operators' signatures over the operator network and sends the payout to
//! bitcoind once it holds t of them. It publishes its status (ledger, vault balance, hBTC
//! supply, the invariant) for RPC and metrics.

mod metrics;
mod service;

use crate::btc::deposit::TunnelRules;
use crate::btc::vault::CustodyKey;
use crate::btc::withdrawal::Ledger;
use crate::btc::{BitcoinSource, BtcView};
use crate::network::peer_inbox::{peer_channel, PeerInbox, PeerMailbox};
use crate::network::NetworkHandle;
use alloy_primitives::Bytes;
use bitcoin::Txid;
use bss_storage::StoreReader;
use service::Tunnel;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the service looks at the committed chain.
const TICK: Duration = Duration::from_millis(200);
/// Signature messages queued per operator before its new ones are dropped: each operator has
/// its own queue, so one that floods (cheap-to-refuse signatures for a wrong batch, say) fills
/// only its own and the others' re-sends still arrive.
const PER_OPERATOR: usize = 32;
/// Junk signature messages a `flood-tunnel-sigs` operator sends per tick.
const FLOOD: usize = 500;

/// Payout signatures another operator sent (`from` is the authenticated sender).
#[derive(Clone, Debug)]
pub struct SigsFrom {
    pub from: u16,
    /// The batch's number ([`crate::btc::withdrawal::Batch::seq`]).
    pub batch: u64,
    pub version: u32,
    pub sigs: Vec<Bytes>,
}

/// Payouts this operator sent: batch number → (fee version, txid).
pub type Sent = BTreeMap<u64, (u32, Txid)>;

/// What RPC and dashboards read.
#[derive(Clone, Debug)]
pub struct TunnelStatus {
    pub ledger: Ledger,
    pub sent: Sent,
    /// Vault balance in the agreed Bitcoin view (the ledger's Bitcoin tip), sats.
    pub vault_sats: u64,
    pub hbtc_supply: u64,
    /// hBTC supply + burned-but-unpaid ≤ vault balance.
    pub invariant_holds: bool,
}

/// Where the network delivers payout signatures: one bounded queue per operator (overflow is
/// counted and dropped; the sender re-sends).
pub type TunnelInbox = PeerInbox<SigsFrom>;

/// The receiving half, handed to [`spawn`] once the network is up.
pub type TunnelMailbox = PeerMailbox<SigsFrom>;

/// The inbox the network routes to, and the mailbox the service reads, for `operators`.
pub fn channel(operators: usize) -> (TunnelInbox, TunnelMailbox) {
    peer_channel(operators, PER_OPERATOR, metrics::TunnelMetrics::register().sigs_dropped_busy)
}

pub struct TunnelParts<S> {
    pub rules: TunnelRules,
    pub reader: StoreReader,
    pub writer: bss_storage::AuxWriter,
    pub view: BtcView,
    pub key: Option<CustodyKey>,
    pub me: u16,
    pub network: Option<NetworkHandle>,
    pub bitcoind: Option<S>,
    pub mailbox: TunnelMailbox,
    /// Byzantine test mode `flood-tunnel-sigs`: instead of its signatures, this operator sends
    /// [`FLOOD`] signature messages for a batch that does not exist every tick.
    pub flood: bool,
}

/// Starts the service; the receiver follows its status. Supervision: a panic restarts it after a
/// backoff (`bss_actor_restarts_total{actor="tunnel"}`) with its ledger replayed from the
/// committed chain.
pub fn spawn<S: BitcoinSource>(
    p: TunnelParts<S>,
) -> std::io::Result<(watch::Receiver<Arc<TunnelStatus>>, TunnelHandle)> {
    let initial = TunnelStatus {
        ledger: Ledger::default(),
        sent: BTreeMap::new(),
        vault_sats: 0,
        hbtc_supply: 0,
        invariant_holds: true,
    };
    let (status, rx) = watch::channel(Arc::new(initial));
    let mut t = Tunnel {
        rules: p.rules,
        reader: p.reader,
        writer: p.writer,
        checkpointed: 0,
        view: p.view,
        key: p.key,
        me: p.me,
        network: p.network,
        bitcoind: p.bitcoind,
        ledger: Ledger::default(),
        sigs: BTreeMap::new(),
        sent: BTreeMap::new(),
        last_resend: None,
        published: None,
        vault_sats: None,
        status,
        metrics: metrics::TunnelMetrics::register(),
        flood: p.flood.then_some(FLOOD),
    };
    let mut mailbox = p.mailbox;
    let (control, faults) = crate::supervision::FaultSwitch::new();
    std::thread::Builder::new().name("tunnel".into()).spawn(move || {
        crate::supervision::restart_on_panic("tunnel", Duration::from_millis(500), || {
            // At a start, and after a panic (which may have left the ledger half-applied): the
            // ledger restarts from its checkpoint and replays the committed blocks after it
            // (what was sent to bitcoind stays known).
            if let Err(e) = t.reset() {
                crate::fatal::stop("tunnel", format!("reading the ledger checkpoint: {e}"));
            }
            run(&mut t, &mut mailbox, &faults)
        })
    })?;
    Ok((rx, control))
}

/// Control of the tunnel thread (fault injection for the supervision tests).
pub type TunnelHandle = crate::supervision::FaultSwitch;

fn run<S: BitcoinSource>(t: &mut Tunnel<S>, mailbox: &mut TunnelMailbox, faults: &crate::supervision::FaultTrigger) {
    loop {
        faults.check("tunnel");
        if let Err(e) = t.catch_up().and_then(|_| t.publish()) {
            crate::fatal::stop("tunnel", format!("reading committed blocks: {e}"));
        }
        t.work();
        let deadline = std::time::Instant::now() + TICK;
        loop {
            // One message from each operator's queue in turn: a flooder gets its share, no more.
            let got = mailbox.round(|m| t.on_sigs(m));
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            // Empty, or no network (a federation of one): wait out the tick.
            if !got {
                std::thread::sleep(left.min(Duration::from_millis(20)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigs(from: u16, first: u64) -> SigsFrom {
        SigsFrom { from, batch: first, version: 0, sigs: vec![Bytes::from(vec![0u8; 64])] }
    }

    /// An operator that floods fills only its own queue: another operator's signatures, sent
    /// after a thousand of the flooder's, are still delivered.
    #[test]
    fn a_flood_from_one_operator_leaves_room_for_the_others() {
        let (inbox, mut mailbox) = channel(4);
        for i in 0..1_000 {
            inbox.deliver(1, sigs(1, 1_000_000 + i));
        }
        inbox.deliver(0, sigs(0, 7));
        inbox.deliver(9, sigs(9, 7)); // no such operator: dropped, not a panic
        let honest = mailbox.0[0].try_recv().expect("operator 0's signatures got in");
        assert_eq!((honest.from, honest.batch), (0, 7));
        let mut flood = 0;
        while mailbox.0[1].try_recv().is_ok() {
            flood += 1;
        }
        assert_eq!(flood, PER_OPERATOR, "the flooder keeps exactly its own queue's worth");
    }
}
