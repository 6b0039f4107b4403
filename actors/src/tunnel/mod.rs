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
use crate::network::NetworkHandle;
use alloy_primitives::Bytes;
use bitcoin::Txid;
use bss_storage::StoreReader;
use service::Tunnel;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often the service looks at the committed chain.
const TICK: Duration = Duration::from_millis(200);
/// Signature messages queued from the network before new ones are dropped.
const INBOX: usize = 256;

/// Payout signatures another operator sent (`from` is the authenticated sender).
#[derive(Clone, Debug)]
pub struct SigsFrom {
    pub from: u16,
    pub first: u64,
    pub version: u32,
    pub sigs: Vec<Bytes>,
}

/// Payouts this operator sent: batch first id → (fee version, txid).
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

/// Where the network delivers payout signatures (bounded; overflow is counted and dropped, the
/// sender re-sends).
#[derive(Clone)]
pub struct TunnelInbox {
    tx: mpsc::Sender<SigsFrom>,
    dropped: ::metrics::Counter,
}

impl TunnelInbox {
    pub fn deliver(&self, m: SigsFrom) {
        if self.tx.try_send(m).is_err() {
            self.dropped.increment(1);
        }
    }
}

/// The receiving half, handed to [`spawn`] once the network is up.
pub struct TunnelMailbox(mpsc::Receiver<SigsFrom>);

/// The inbox the network routes to, and the mailbox the service reads.
pub fn channel() -> (TunnelInbox, TunnelMailbox) {
    let (tx, rx) = mpsc::channel(INBOX);
    let dropped = metrics::TunnelMetrics::register().sigs_dropped_busy;
    (TunnelInbox { tx, dropped }, TunnelMailbox(rx))
}

pub struct TunnelParts<S> {
    pub rules: TunnelRules,
    pub reader: StoreReader,
    pub view: BtcView,
    pub key: Option<CustodyKey>,
    pub me: u16,
    pub network: Option<NetworkHandle>,
    pub bitcoind: Option<S>,
    pub mailbox: TunnelMailbox,
}

/// Starts the service; the receiver follows its status.
pub fn spawn<S: BitcoinSource>(p: TunnelParts<S>) -> std::io::Result<watch::Receiver<Arc<TunnelStatus>>> {
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
    };
    let mut mailbox = p.mailbox.0;
    std::thread::Builder::new().name("tunnel".into()).spawn(move || loop {
        if let Err(e) = t.catch_up().and_then(|_| t.publish()) {
            crate::fatal::stop("tunnel", format!("reading committed blocks: {e}"));
        }
        t.work();
        let deadline = std::time::Instant::now() + TICK;
        loop {
            match mailbox.try_recv() {
                Ok(m) => t.on_sigs(m),
                // Empty, or no network (a federation of one): wait out the tick.
                Err(_) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(20)));
                }
            }
        }
    })?;
    Ok(rx)
}
