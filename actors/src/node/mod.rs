//! The node: opens storage, writes or checks genesis, and starts every part in order, each by
//! its own builder (`identity`, `storage`, `bitcoin`, `engines`, `rpc` here):
//!
//! ```text
//! storage service → Bitcoin watcher → executor service → mempool → chain service
//!   → engine (native driver or hotstuff-rs replica) + network + sync server → PoP submitter → RPC
//! ```
//!
//! What each part does when it fails is in `crate::supervision`; a fatal error anywhere ends
//! the process through `crate::fatal::stop` with exit code 2.

pub mod bitcoin;
pub mod byzantine;
pub mod config;
pub mod config_federation;
pub mod config_tunnel;
mod engines;
pub mod identity;
mod memory;
mod rpc;
mod storage;

use crate::chain::{ChainActor, ChainConfig, ChainHandle, ChainParts};
use crate::executor::ExecutorService;
use crate::hvm::Genesis;
use crate::mempool::{
    AdmissionGroups, Backpressure, GossipAdmission, GroupParts, MempoolActor, MempoolHandle, SenderStates, TxIngress,
};
use crate::network::NetworkHandle;
use actix::prelude::*;
use bss_storage::StorageError;
pub use config::{ConfigError, GenesisConfig, NodeConfig};
use identity::Identity;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rpc::FaultTargets;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("storage at {path}: {source}")]
    Storage { path: String, source: StorageError },
    #[error("{what} address {addr} is already in use (is another node running? change the config)")]
    PortInUse { what: &'static str, addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("the RPC server did not come up: {0}")]
    RpcStart(String),
    #[error("operator key: {0}")]
    OperatorKey(String),
    #[error("consensus engine {0:?} is unknown; known engines: native, hotstuff-rs")]
    UnknownEngine(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("proof-of-proof: {0}")]
    Pop(String),
    #[error("bitcoin: {0}")]
    Btc(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().ok()).clone()
}

/// What a started node exposes to its launcher and to tests.
#[derive(Clone)]
pub struct NodeHandle {
    pub rpc_addr: SocketAddr,
    pub p2p_addr: Option<SocketAddr>,
    pub operator_index: u16,
    pub operators: usize,
    pub chain: ChainHandle,
    pub mempool: MempoolHandle,
    /// Held for the node's life (it keeps the supervised RPC actor restartable).
    pub rpc: crate::rpc::messages::RpcHandle,
}

fn bind(what: &'static str, addr: SocketAddr) -> Result<std::net::TcpListener, NodeError> {
    std::net::TcpListener::bind(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => NodeError::PortInUse { what, addr },
        _ => NodeError::Listen { addr, source: e },
    })
}

/// Starts a node inside the current actix system.
pub async fn start(cfg: NodeConfig, genesis_cfg: GenesisConfig) -> Result<NodeHandle, NodeError> {
    // Before any part registers its metrics (see `crate::telemetry`).
    let metrics = metrics_handle();
    let genesis: Genesis = genesis_cfg.to_genesis()?;
    let genesis_rules = genesis_cfg.rules()?;
    let spec = genesis.spec.clone();
    let id = Identity::from_config(&cfg)?;
    let byzantine = byzantine::Byzantine::parse(&cfg.byzantine, cfg.allow_byzantine)?;
    if byzantine.wire.any() && cfg.consensus.engine != "native" {
        return Err(NodeError::Unsupported(format!(
            "byzantine modes {:?} act on the native engine's messages; this node runs {}",
            cfg.byzantine, cfg.consensus.engine
        )));
    }
    if byzantine.is_active() {
        tracing::warn!(target: "node", modes = ?cfg.byzantine, "BYZANTINE TEST MODES ARE ON: this operator breaks the protocol on purpose");
    }
    if !matches!(cfg.consensus.engine.as_str(), "native" | "hotstuff-rs") {
        return Err(NodeError::UnknownEngine(cfg.consensus.engine.clone()));
    }
    // Refuse busy ports before touching anything else.
    drop(bind("RPC", cfg.rpc.addr)?);
    let listener = if id.operators.len() > 1 { Some(bind("operator network", cfg.network.listen)?) } else { None };
    let p2p_addr = listener.as_ref().and_then(|l| l.local_addr().ok());

    let opened = storage::open(&cfg, &genesis)?;
    // A large genesis (millions of accounts) is built, hashed and written once at start: hand
    // the memory that took back to the system instead of carrying it for the node's life.
    drop(genesis);
    memory::release_freed();
    memory::release_periodically(memory::RELEASE_EVERY)?;
    let (reader, storage) = (opened.reader.clone(), opened.storage.clone());
    info!(target: "node", operator = id.index, operators = id.operators.len(), engine = %cfg.consensus.engine, "starting");

    let tunnel = match &genesis_cfg.tunnel {
        Some(t) => {
            if t.custody_keys.len() != id.operators.len() {
                return Err(ConfigError::Invalid(format!(
                    "genesis.tunnel.custody_keys lists {} keys for {} operators",
                    t.custody_keys.len(),
                    id.operators.len()
                ))
                .into());
            }
            Some((t.rules(spec.chain_id)?, cfg.tunnel.custody_key(t, usize::from(id.index))?))
        }
        None => None,
    };
    let (btc, watcher) = match &cfg.btc {
        Some(b) => {
            let rules = crate::pop::finality::KeystoneRules::new(spec.chain_id, id.operators.clone());
            let tunnel_rules = tunnel.as_ref().map(|(r, _)| r.clone());
            let (link, handle) = bitcoin::start_watcher(
                b,
                rules,
                &storage,
                &reader,
                cfg.censorship.forced_confirmations,
                tunnel_rules,
                spec.chain_id,
            )?;
            (Some(link), Some(handle))
        }
        None => (None, None),
    };
    let executor = ExecutorService::spawn(spec.clone(), reader.clone(), btc.clone(), 64, byzantine.btc_rewind)?;
    let pool_cfg = cfg.mempool.clone();
    let journal = storage.clone();
    let mempool = MempoolHandle::new(MempoolActor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
        MempoolActor::new(pool_cfg).with_journal(
            journal,
            crate::mempool::GENERATION_MIN,
            crate::mempool::GENERATION_MIN_BYTES,
        )
    }));
    let ingress = TxIngress {
        spec: spec.clone(),
        reader: reader.clone(),
        mempool: mempool.clone(),
        journal: Some(storage.clone()),
        censored: byzantine.censored.clone(),
        groups: AdmissionGroups::start(GroupParts {
            mempool: mempool.clone(),
            journal: Some(storage.clone()),
            states: sender_states(reader.clone()),
            backpressure: Backpressure { backlog: cfg.mempool.admission_backlog, max_wait: cfg.mempool.admission_wait },
        }),
    };

    let guard = btc
        .clone()
        .zip(cfg.pop.as_ref())
        .map(|(l, pop)| crate::pop::ForkGuard::new(l, pop.superfinality_confirmations));
    if let (Some(link), Some(_)) = (&btc, &cfg.pop) {
        // The fork guard needs Bitcoin's keystones before the first block arrives.
        if !link.view.wait_connected(Duration::from_secs(30)).await {
            tracing::warn!(target: "node", "the Bitcoin node did not answer within 30s; starting without its keystones (the stored chain is checked once it does)");
        }
    }
    let chain = ChainActor::start(ChainParts {
        cfg: ChainConfig {
            operator_index: id.index,
            min_base_fee: spec.min_base_fee,
            max_block_txs: cfg.consensus.max_block_txs,
            max_clock_drift: cfg.consensus.max_clock_drift,
            btc: btc.clone().zip(cfg.btc.as_ref().map(|b| b.catch_up_wait)),
            guard,
            censored: byzantine.censored.clone(),
            skip_mints: byzantine.skip_mints,
            clock_skew_ms: byzantine.clock_skew_ms,
        },
        executor: executor.clone(),
        mempool: mempool.clone(),
        storage: storage.clone(),
        reader: reader.clone(),
        head: opened.head.clone(),
    });

    // The tunnel's inbox is drawn into the network's routes; its service starts once the
    // network is up (it sends signatures over it).
    let (tunnel_inbox, tunnel_mailbox) = match &tunnel {
        Some(_) => {
            let (i, m) = crate::tunnel::channel(id.operators.len());
            (Some(i), Some(m))
        }
        None => (None, None),
    };
    // Keystone attestations likewise (with Proof-of-Proof configured).
    let (attest_inbox, attest_mailbox) = match &cfg.pop {
        Some(_) => {
            let (i, m) = crate::pop::attest::channel(id.operators.len());
            (Some(i), Some(m))
        }
        None => (None, None),
    };
    let sync = crate::sync_server::SyncServer::spawn(
        opened.reader.clone(),
        cfg.network.sync_batch,
        cfg.network.max_frame_bytes / 2,
    )?;
    let engine_parts = engines::EngineParts {
        cfg: &cfg,
        sync: sync.clone(),
        chain_id: spec.chain_id,
        id: &id,
        opened,
        chain: chain.clone(),
        gossip: GossipAdmission::start(ingress.clone()),
        listener,
        mempool: mempool.clone(),
        byzantine: byzantine.clone(),
        tunnel: tunnel_inbox,
        keystones: attest_inbox,
    };
    let network = match cfg.consensus.engine.as_str() {
        "hotstuff-rs" => engines::start_hotstuff_rs(engine_parts)?,
        _ => engines::start_native(engine_parts)?,
    };

    let (certified, pop_attest) = match (&cfg.pop, attest_mailbox) {
        (Some(pop), Some(mailbox)) => crate::pop::attest::spawn(crate::pop::attest::AttestParts {
            chain_id: spec.chain_id,
            keystone_interval: pop.keystone_interval,
            me: id.index,
            signer: id.signer.clone(),
            operators: id.operators.clone(),
            reader: reader.clone(),
            writer: bss_storage::AuxWriter::Service(storage.clone()),
            network: network.clone(),
            mailbox,
        })
        .map(|(c, h)| (Some(c), Some(h)))
        .map_err(|e| NodeError::Pop(format!("cannot start the keystone attestation service: {e}")))?,
        _ => (None, None),
    };
    let submitter = match (&btc, &cfg.pop, &cfg.btc, &certified) {
        (Some(link), Some(pop), Some(b), Some(certified)) => Some(bitcoin::start_pop(bitcoin::PopParts {
            certified: certified.clone(),
            link,
            pop,
            btc: b,
            me: id.index,
            operators: id.operators.len() as u16,
            chain: &chain,
            storage: &storage,
            reader: &reader,
            data_dir: &cfg.data_dir,
        })?),
        _ => None,
    };
    let (tunnel_status, tunnel_handle) = match (tunnel, tunnel_mailbox, &btc, &cfg.btc) {
        (Some((rules, key)), Some(mailbox), Some(link), Some(b)) => {
            let (status, handle) = crate::tunnel::spawn(crate::tunnel::TunnelParts {
                rules,
                reader: reader.clone(),
                writer: bss_storage::AuxWriter::Service(storage.clone()),
                view: link.view.clone(),
                key,
                me: id.index,
                network: network.clone(),
                bitcoind: Some(bitcoin::bitcoind(b)?),
                mailbox,
                flood: byzantine.flood_tunnel_sigs,
            })
            .map_err(|e| NodeError::Btc(format!("cannot start the tunnel service: {e}")))?;
            (Some(status), Some(handle))
        }
        (Some(_), ..) => {
            tracing::warn!(target: "node", "genesis sets up a tunnel but this node has no [btc]: it neither mints nor pays out");
            (None, None)
        }
        _ => (None, None),
    };
    readmit_journal(&reader, ingress.clone(), network.clone(), storage.clone(), mempool.clone())
        .map_err(|source| NodeError::Storage { path: cfg.data_dir.display().to_string(), source })?;

    let parts = rpc::RpcParts::new(rpc::RpcDeps {
        cfg: &cfg,
        genesis_rules,
        id: &id,
        ingress,
        network: network.clone(),
        chain: chain.clone(),
        metrics,
        btc,
        tunnel: tunnel_status,
        faults: FaultTargets {
            executor,
            mempool: mempool.clone(),
            btc_watcher: watcher,
            pop_submitter: submitter,
            pop_attest,
            tunnel: tunnel_handle,
            sync_server: sync,
        },
    });
    let (rpc, rpc_addr) = rpc::start(parts).await?;
    Ok(NodeHandle { rpc_addr, p2p_addr, operator_index: id.index, operators: id.operators.len(), chain, mempool, rpc })
}

/// Senders' committed nonces and balances, from the store.
fn sender_states(reader: bss_storage::StoreReader) -> SenderStates {
    std::sync::Arc::new(move |a| crate::mempool::sender_state(&reader, a).map_err(|e| e.to_string()))
}

/// Transactions acknowledged before a restart come back into the mempool (and are gossiped
/// again); those that can no longer be included are forgotten. The mempool starts journal
/// generations only once this is done.
fn readmit_journal(
    reader: &bss_storage::StoreReader,
    ingress: TxIngress,
    network: Option<NetworkHandle>,
    storage: bss_storage::StorageHandle,
    mempool: MempoolHandle,
) -> Result<(), StorageError> {
    let txs = reader.journaled_txs()?;
    if txs.is_empty() {
        mempool.journal_readmitted();
        return Ok(());
    }
    info!(target: "node", count = txs.len(), "re-admitting journaled transactions");
    actix::spawn(async move {
        let mut stale = Vec::new();
        for tx in txs {
            match ingress.admit(tx.raw.clone()).await {
                Ok(_) => {
                    if let Some(n) = &network {
                        n.gossip(tx.raw);
                    }
                }
                Err(_) => stale.extend(tx.keys),
            }
        }
        storage.unjournal(stale);
        mempool.journal_readmitted();
    });
    Ok(())
}
