//! The node: opens storage, writes or checks genesis, and starts the actors under their
//! supervision policy:
//!
//! * Rpc — supervised: a crash restarts it (rebinding its port) while the node keeps running.
//! * Executor — a `SyncArbiter` thread; a stopped executor is recreated from committed state.
//! * Mempool — its own arbiter thread.
//! * Network — redials peers with backoff; a bad peer only loses its connection.
//! * Consensus — not restarted: a storage or safety failure stops the whole node (exit code 2).
//! * Storage — a service thread; any write failure is fatal.

pub mod config;

use crate::consensus::{ConsensusActor, ConsensusConfig, ConsensusHandle, ConsensusParts};
use crate::executor::{ExecutorActor, ExecutorHandle};
use crate::hvm::lthash::LtHash;
use crate::hvm::Genesis;
use crate::mempool::{MempoolActor, MempoolHandle, TxIngress};
use crate::network::actor::NetworkParts;
use crate::network::{NetworkActor, NetworkHandle};
use crate::rpc::{NodeInfo, RpcActor, RpcContext};
use actix::prelude::*;
use bss_consensus::native::{head_qc, NativeConfig, NativeEngine};
use bss_consensus::{OperatorKey, OperatorSet, OperatorSigner};
use bss_storage::{StorageError, StorageService, Store};
pub use config::{ConfigError, GenesisConfig, NodeConfig};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
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
    pub consensus: ConsensusHandle,
    pub mempool: MempoolHandle,
    pub rpc: Addr<RpcActor>,
}

fn bind(what: &'static str, addr: SocketAddr) -> Result<std::net::TcpListener, NodeError> {
    std::net::TcpListener::bind(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => NodeError::PortInUse { what, addr },
        _ => NodeError::Listen { addr, source: e },
    })
}

fn operator_set(cfg: &NodeConfig, signer: &OperatorSigner) -> Result<(OperatorSet, Vec<String>), NodeError> {
    if cfg.operators.keys.is_empty() {
        return Ok((OperatorSet::new(vec![signer.public()]), vec![]));
    }
    let keys: Vec<OperatorKey> = cfg
        .operators
        .keys
        .iter()
        .map(|k| OperatorKey::from_hex(k).map_err(|e| NodeError::OperatorKey(e.to_string())))
        .collect::<Result<_, _>>()?;
    if keys.len() > 10 {
        return Err(
            ConfigError::Invalid(format!("{} operators configured; at most 10 are supported", keys.len())).into()
        );
    }
    if keys.len() > 1 && cfg.operators.addrs.len() != keys.len() {
        return Err(ConfigError::Invalid(format!(
            "[operators] has {} keys but {} addrs; give every operator's network address",
            keys.len(),
            cfg.operators.addrs.len()
        ))
        .into());
    }
    // Addresses are resolved when dialing (a peer's host name may not exist yet, e.g. in
    // containers); here they only have to look like host:port.
    for a in &cfg.operators.addrs {
        let ok = a.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Err(ConfigError::Invalid(format!("operator address {a:?} is not host:port")).into());
        }
    }
    Ok((OperatorSet::new(keys), cfg.operators.addrs.clone()))
}

/// Starts a node inside the current actix system.
pub async fn start(cfg: NodeConfig, genesis_cfg: GenesisConfig) -> Result<NodeHandle, NodeError> {
    let genesis: Genesis = genesis_cfg.to_genesis()?;
    let spec = genesis.spec.clone();
    let signer =
        OperatorSigner::from_hex(&cfg.operator_secret()?).map_err(|e| NodeError::OperatorKey(e.to_string()))?;
    let (operators, addrs) = operator_set(&cfg, &signer)?;
    let operator_index = operators
        .index_of(&signer.public())
        .ok_or_else(|| NodeError::OperatorKey("this node's key is not in [operators].keys".into()))?;
    match cfg.consensus.engine.as_str() {
        "native" => {}
        "hotstuff-rs" => {}
        other => return Err(NodeError::UnknownEngine(other.into())),
    }
    // Refuse busy ports before touching anything else.
    drop(bind("RPC", cfg.rpc.addr)?);
    let p2p_listener = if operators.len() > 1 { Some(bind("operator network", cfg.network.listen)?) } else { None };

    let db_path = cfg.data_dir.join("db");
    let storage_err = |source| NodeError::Storage { path: db_path.display().to_string(), source };
    std::fs::create_dir_all(&cfg.data_dir)?;
    let store = Store::open(&db_path, cfg.storage.fsync).map_err(storage_err)?;
    let (genesis_batch, _) = genesis.build();
    let genesis_hash = genesis_batch.block.hash();
    store.init_genesis(spec.chain_id, &genesis_batch).map_err(storage_err)?;
    let reader = store.reader();
    let head_number = reader.head_number().map_err(storage_err)?.unwrap_or(0);
    let missing = || storage_err(StorageError::Corrupt { keyspace: "headers", reason: "head header missing".into() });
    let head = reader.header(head_number).map_err(storage_err)?.ok_or_else(missing)?;
    let head_cert = reader.certificate(head_number).map_err(storage_err)?;
    let safety = reader.safety().map_err(storage_err)?.unwrap_or_default();
    let pending = reader.pending_blocks().map_err(storage_err)?;
    info!(target: "node", chain_id = spec.chain_id, head = head.number, operator = operator_index, operators = operators.len(), "storage opened");
    let storage = StorageService::spawn(store, 1024)?;

    let btc = match &cfg.btc {
        Some(b) => Some(start_btc_watcher(b, keystone_rules(spec.chain_id, cfg.pop.as_ref())?)?),
        None => None,
    };
    let executor = {
        let view = btc.as_ref().map(|l| l.view.clone());
        let (spec, reader, btc) = (spec.clone(), reader.clone(), btc.clone());
        let addr = SyncArbiter::start(1, move || {
            // (Re)created from committed state: uncommitted blocks are re-executed on demand.
            let n = reader.head_number().ok().flatten().unwrap_or(0);
            let head = reader.header(n).ok().flatten().unwrap_or_else(|| genesis_batch.block.header.clone());
            let acc =
                reader.state_accumulator().ok().flatten().and_then(|b| LtHash::from_bytes(&b)).unwrap_or_default();
            ExecutorActor::new(spec.clone(), reader.clone(), head, acc, btc.clone())
        });
        ExecutorHandle::new(addr, view)
    };
    let pool_cfg = cfg.mempool.clone();
    let mempool = MempoolHandle::new(MempoolActor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
        MempoolActor::new(pool_cfg)
    }));
    let ingress = TxIngress {
        spec: spec.clone(),
        reader: reader.clone(),
        mempool: mempool.clone(),
        journal: Some(storage.clone()),
    };
    let consensus_handle = ConsensusHandle::new(1024);

    let native_cfg = NativeConfig {
        chain_id: spec.chain_id,
        operators: operators.clone(),
        genesis_hash,
        base_timeout: cfg.consensus.base_timeout,
        max_timeout: cfg.consensus.max_timeout,
        block_time: cfg.consensus.block_time,
        reputation_window: 2 * operators.len(),
    };
    let history = reader.recent_proposers(NativeEngine::history_len(&native_cfg)).map_err(storage_err)?;
    let qc = head_qc(spec.chain_id, genesis_hash, &head, head_cert);
    let engine = NativeEngine::new(native_cfg, signer.clone(), head, qc, safety, pending, history)
        .ok_or_else(|| NodeError::OperatorKey("this node's key is not in the operator set".into()))?;
    let consensus_cfg = ConsensusConfig {
        operator_index,
        min_base_fee: spec.min_base_fee,
        max_block_txs: cfg.consensus.max_block_txs,
        max_clock_drift: cfg.consensus.max_clock_drift,
        btc: btc.clone().zip(cfg.btc.as_ref().map(|b| b.catch_up_wait)),
        guard: btc
            .clone()
            .zip(cfg.pop.as_ref())
            .map(|(link, pop)| crate::pop::ForkGuard::new(link, pop.superfinality_confirmations)),
    };
    if let (Some(link), Some(_)) = (&btc, &cfg.pop) {
        // The fork guard needs Bitcoin's keystones before the first block arrives.
        if !link.view.wait_connected(Duration::from_secs(30)).await {
            tracing::warn!(target: "node", "the Bitcoin node did not answer within 30s; starting without its keystones (the stored chain is checked once it does)");
        }
    }
    let p2p_addr = p2p_listener.as_ref().and_then(|l| l.local_addr().ok());
    let mut network: Option<NetworkHandle> = None;
    if cfg.consensus.engine == "hotstuff-rs" {
        network = start_hotstuff_rs(HsStart {
            cfg: &cfg,
            spec: &spec,
            operator_index,
            signer: signer.clone(),
            operators: operators.clone(),
            addrs: addrs.clone(),
            listener: p2p_listener,
            ingress: ingress.clone(),
            reader: reader.clone(),
            executor: executor.clone(),
            mempool: mempool.clone(),
            storage: storage.clone(),
            handle: consensus_handle.clone(),
            btc: btc.clone().zip(cfg.btc.as_ref().map(|b| b.catch_up_wait)),
            guard: consensus_cfg.guard.clone(),
        })?;
    } else {
        let (storage, executor, mempool, handle) =
            (storage.clone(), executor.clone(), mempool.clone(), consensus_handle.clone());
        let (ingress, reader, net_cfg, signer, operators) =
            (ingress.clone(), reader.clone(), cfg.network.clone(), signer.clone(), operators.clone());
        let guard_reader = reader.clone();
        let net_slot = &mut network;
        ConsensusActor::create(move |ctx| {
            let net = p2p_listener.map(|listener| {
                let addr = NetworkActor::new(NetworkParts {
                    cfg: net_cfg,
                    chain_id: spec.chain_id,
                    me: operator_index,
                    signer,
                    operators,
                    addrs,
                    listener,
                    consensus: Some(ctx.address().recipient()),
                    synced: Some(ctx.address().recipient()),
                    engine: None,
                    ingress,
                    reader,
                })
                .start();
                NetworkHandle::new(addr)
            });
            *net_slot = net.clone();
            ConsensusActor::new(
                engine,
                ConsensusParts {
                    cfg: consensus_cfg,
                    executor,
                    mempool,
                    storage,
                    handle,
                    network: net,
                    reader: Some(guard_reader),
                },
            )
        });
    }

    if let (Some(link), Some(pop), Some(b)) = (&btc, &cfg.pop, &cfg.btc) {
        let wallet = match pop.secret()? {
            Some(k) => {
                Some(crate::pop::tx::PopWallet::new(k, link.rules.network).map_err(|e| NodeError::Pop(e.to_string()))?)
            }
            None => None,
        };
        let source = crate::btc::CoreRpc::new(&b.rpc_url, b.credentials()?).map_err(|e| {
            ConfigError::Invalid(format!("btc.rpc_url {}: {e}", crate::btc::source::redact_url(&b.rpc_url)))
        })?;
        let sub_cfg = crate::pop::submitter::SubmitterConfig {
            keystones: link.keystones.clone(),
            me: operator_index,
            operators: operators.len() as u16,
            keystone_interval: pop.keystone_interval,
            superfinality_confirmations: pop.superfinality_confirmations,
            stagger_blocks: pop.stagger_blocks,
            bump_after_blocks: pop.bump_after_blocks,
            fee_floor: pop.fee_floor,
            fee_cap: pop.fee_cap,
        };
        let head = reader.head_number().map_err(storage_err)?.unwrap_or(0);
        let last_keystone = head - head % pop.keystone_interval;
        let recent = (0..4u64)
            .filter_map(|i| last_keystone.checked_sub(i * pop.keystone_interval).filter(|n| *n > 0))
            .filter_map(|n| reader.header(n).ok().flatten())
            .collect();
        crate::pop::submitter::spawn(
            sub_cfg,
            wallet,
            source,
            link.view.clone(),
            consensus_handle.subscribe(),
            &cfg.data_dir,
            recent,
        )
        .map_err(|e| NodeError::Pop(e.to_string()))?;
    }
    let metrics = metrics_handle();
    let rpc_cfg = cfg.rpc.clone();
    let pop_confirmations = cfg.pop.as_ref().map(|p| p.superfinality_confirmations);
    let engine_name = cfg.consensus.engine.clone();
    let n_operators = operators.len();
    let operator_keys = cfg.operators.keys.clone();
    readmit_journal(&reader, ingress.clone(), network.clone(), storage.clone()).map_err(storage_err)?;
    let (c, net) = (consensus_handle.clone(), network.clone());
    let factory = Arc::new(move |faults: Recipient<_>| RpcContext {
        spec: ingress.spec.clone(),
        reader: ingress.reader.clone(),
        mempool: ingress.mempool.clone(),
        ingress: ingress.clone(),
        network: net.clone(),
        consensus: c.clone(),
        cfg: rpc_cfg.clone(),
        node: NodeInfo {
            operator_index,
            operators: n_operators,
            operator_keys: operator_keys.clone(),
            engine: engine_name.clone(),
        },
        metrics: metrics.clone(),
        faults: rpc_cfg.fault_injection.then_some(faults),
        btc: btc.clone(),
        pop_confirmations,
        heavy: Arc::new(tokio::sync::Semaphore::new(rpc_cfg.max_concurrent_calls.max(1))),
    });
    let (bound, mut announced) = tokio::sync::watch::channel(None);
    let rpc = Supervisor::start(move |_| RpcActor::new(factory, bound));
    let rpc_addr = match tokio::time::timeout(Duration::from_secs(10), announced.wait_for(Option::is_some)).await {
        Ok(Ok(addr)) => (*addr).ok_or_else(|| NodeError::RpcStart("no address announced".into()))?,
        _ => return Err(NodeError::RpcStart("no listening address after 10s (see the log)".into())),
    };
    Ok(NodeHandle {
        rpc_addr,
        p2p_addr,
        operator_index,
        operators: n_operators,
        consensus: consensus_handle,
        mempool,
        rpc,
    })
}

struct HsStart<'a> {
    cfg: &'a NodeConfig,
    spec: &'a crate::hvm::ChainSpec,
    operator_index: u16,
    signer: bss_consensus::OperatorSigner,
    operators: bss_consensus::OperatorSet,
    addrs: Vec<String>,
    listener: Option<std::net::TcpListener>,
    ingress: TxIngress,
    reader: bss_storage::StoreReader,
    executor: ExecutorHandle,
    mempool: MempoolHandle,
    storage: bss_storage::StorageHandle,
    handle: ConsensusHandle,
    btc: Option<(crate::btc::BtcLink, Duration)>,
    guard: Option<crate::pop::ForkGuard>,
}

/// `consensus.engine = "hotstuff-rs"`: the same node around a hotstuff-rs replica.
fn start_hotstuff_rs(p: HsStart<'_>) -> Result<Option<NetworkHandle>, NodeError> {
    use crate::hotstuff::{app::AppConfig, driver, kv::FjallKv, net::HsNetwork};
    let (frames_tx, frames_rx) = crossbeam_channel::bounded(65_536);
    let net = p.listener.map(|listener| {
        NetworkHandle::new(
            NetworkActor::new(NetworkParts {
                cfg: p.cfg.network.clone(),
                chain_id: p.spec.chain_id,
                me: p.operator_index,
                signer: p.signer.clone(),
                operators: p.operators.clone(),
                addrs: p.addrs,
                listener,
                consensus: None,
                synced: None,
                engine: Some(frames_tx.clone()),
                ingress: p.ingress,
                reader: p.reader.clone(),
            })
            .start(),
        )
    });
    let keys = p
        .operators
        .keys
        .iter()
        .map(|k| hotstuff_rs::types::crypto_primitives::VerifyingKey::from_bytes(&k.0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NodeError::OperatorKey(format!("an operator key is not a valid ed25519 key: {e}")))?;
    let kv = FjallKv::open(&p.cfg.data_dir).map_err(|e| NodeError::Storage {
        path: p.cfg.data_dir.join("hotstuff-rs").display().to_string(),
        source: StorageError::from(e),
    })?;
    let genesis = p
        .reader
        .header(0)
        .ok()
        .flatten()
        .ok_or_else(|| NodeError::Unsupported("genesis header missing from storage".into()))?;
    driver::start(driver::DriverParts {
        app: AppConfig {
            operator_index: p.operator_index,
            min_base_fee: p.spec.min_base_fee,
            max_block_txs: p.cfg.consensus.max_block_txs,
            max_clock_drift: p.cfg.consensus.max_clock_drift,
            btc: p.btc,
        },
        chain_id: p.spec.chain_id,
        signer: p.signer,
        operator_keys: keys.clone(),
        round_timeout: p.cfg.consensus.base_timeout,
        kv,
        network: HsNetwork::new(net.clone(), p.operator_index, keys, frames_rx, frames_tx),
        executor: p.executor,
        mempool: p.mempool,
        storage: p.storage,
        reader: p.reader,
        genesis,
        handle: p.handle,
        guard: p.guard,
    })
    .map_err(NodeError::Unsupported)?;
    Ok(net)
}

/// Which keystones count: those spending a coin of a key in `[pop] keystone_keys`.
fn keystone_rules(
    chain_id: u64,
    pop: Option<&crate::node::config::PopSection>,
) -> Result<crate::pop::finality::KeystoneRules, NodeError> {
    let keys = pop.map(|p| p.keystone_keys()).transpose()?.unwrap_or_default();
    if keys.is_empty() {
        tracing::warn!(target: "node", "no [pop] keystone_keys: no keystone in Bitcoin counts for anchors or superfinality");
    }
    Ok(crate::pop::finality::KeystoneRules::new(chain_id, keys))
}

/// Starts the BtcWatcher thread on the configured bitcoind.
fn start_btc_watcher(
    b: &crate::node::config::BtcSection,
    keystones: crate::pop::finality::KeystoneRules,
) -> Result<crate::btc::BtcLink, NodeError> {
    let network = b.network()?;
    let source = crate::btc::CoreRpc::new(&b.rpc_url, b.credentials()?).map_err(|e| {
        ConfigError::Invalid(format!("btc.rpc_url {}: {e}", crate::btc::source::redact_url(&b.rpc_url)))
    })?;
    let view = crate::btc::watcher::spawn(
        source,
        crate::btc::WatcherConfig {
            poll_interval: b.poll_interval,
            start_height: b.start_height,
            max_backoff: Duration::from_secs(30),
        },
    )?;
    info!(target: "node", url = %crate::btc::source::redact_url(&b.rpc_url), network = %network, lag = b.confirmations_lag, "watching Bitcoin");
    let rules = crate::btc::BtcRules { network, confirmations_lag: b.confirmations_lag, start_height: b.start_height };
    Ok(crate::btc::BtcLink { view, rules, keystones })
}

/// Transactions acknowledged before a restart come back into the mempool (and are gossiped
/// again); those that can no longer be included are forgotten.
fn readmit_journal(
    reader: &bss_storage::StoreReader,
    ingress: TxIngress,
    network: Option<NetworkHandle>,
    storage: bss_storage::StorageHandle,
) -> Result<(), StorageError> {
    let txs = reader.journaled_txs()?;
    if txs.is_empty() {
        return Ok(());
    }
    info!(target: "node", count = txs.len(), "re-admitting journaled transactions");
    actix::spawn(async move {
        let mut stale = Vec::new();
        for raw in txs {
            match ingress.admit(raw.clone()).await {
                Ok(_) => {
                    if let Some(n) = &network {
                        n.gossip(raw);
                    }
                }
                Err(_) => stale.push(alloy_primitives::keccak256(&raw)),
            }
        }
        storage.unjournal(stale);
    });
    Ok(())
}
