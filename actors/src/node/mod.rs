//! The node: opens storage, writes or checks genesis, and starts the actors under their
//! supervision policy:
//!
//! * Rpc — supervised: a crash restarts it (rebinding its port) while the node keeps running.
//! * Executor — a `SyncArbiter` thread; a stopped executor is recreated from committed state.
//! * Mempool — its own arbiter thread.
//! * Consensus — not restarted: a storage or safety failure stops the whole node (exit code 2).
//! * Storage — a service thread; any write failure is fatal.

pub mod config;

use crate::consensus::{ConsensusActor, ConsensusConfig, ConsensusHandle};
use crate::executor::{ExecutorActor, ExecutorHandle};
use crate::hvm::lthash::LtHash;
use crate::hvm::Genesis;
use crate::mempool::{MempoolActor, MempoolHandle};
use crate::rpc::messages::LocalAddr;
use crate::rpc::{NodeInfo, RpcActor, RpcContext};
use actix::prelude::*;
use bss_consensus::solo::SoloEngine;
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
    #[error("RPC address {0} is already in use (is another node running? change rpc.addr)")]
    PortInUse(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the RPC server did not come up: {0}")]
    RpcStart(String),
    #[error("operator key: {0}")]
    OperatorKey(String),
    #[error("consensus engine {0:?} is unknown; known engines: native, hotstuff-rs")]
    UnknownEngine(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .clone()
}

/// What a started node exposes to its launcher and to tests.
#[derive(Clone)]
pub struct NodeHandle {
    pub rpc_addr: SocketAddr,
    pub operator_index: u16,
    pub consensus: ConsensusHandle,
    pub mempool: MempoolHandle,
    pub rpc: Addr<RpcActor>,
}

/// Starts a node inside the current actix system.
pub async fn start(cfg: NodeConfig, genesis_cfg: GenesisConfig) -> Result<NodeHandle, NodeError> {
    let genesis: Genesis = genesis_cfg.to_genesis()?;
    let spec = genesis.spec.clone();
    let signer = OperatorSigner::from_hex(&cfg.operator_secret()?)
        .map_err(|e| NodeError::OperatorKey(e.to_string()))?;
    let keys: Vec<OperatorKey> = if cfg.operators.keys.is_empty() {
        vec![signer.public()]
    } else {
        cfg.operators
            .keys
            .iter()
            .map(|k| OperatorKey::from_hex(k).map_err(|e| NodeError::OperatorKey(e.to_string())))
            .collect::<Result<_, _>>()?
    };
    let operators = OperatorSet::new(keys);
    let operator_index = operators.index_of(&signer.public()).ok_or_else(|| {
        NodeError::OperatorKey("this node's key is not in [operators].keys".into())
    })?;
    match cfg.consensus.engine.as_str() {
        "native" | "hotstuff-rs" => {}
        other => return Err(NodeError::UnknownEngine(other.into())),
    }
    if operators.len() > 1 {
        return Err(NodeError::Unsupported(format!(
            "{} operators configured: multi-operator federations need the BFT engines, which this build does not have yet; run with one operator",
            operators.len()
        )));
    }
    // Refuse a busy port before touching anything else.
    match std::net::TcpListener::bind(cfg.rpc.addr) {
        Ok(l) => drop(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(NodeError::PortInUse(cfg.rpc.addr))
        }
        Err(e) => {
            return Err(NodeError::Listen {
                addr: cfg.rpc.addr,
                source: e,
            })
        }
    }

    let db_path = cfg.data_dir.join("db");
    let storage_err = |source| NodeError::Storage {
        path: db_path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&cfg.data_dir)?;
    let store = Store::open(&db_path, cfg.storage.fsync).map_err(storage_err)?;
    let (genesis_batch, _) = genesis.build();
    store
        .init_genesis(spec.chain_id, &genesis_batch)
        .map_err(storage_err)?;
    let reader = store.reader();
    let head_number = reader.head_number().map_err(storage_err)?.unwrap_or(0);
    let head = reader
        .header(head_number)
        .map_err(storage_err)?
        .ok_or_else(|| {
            storage_err(StorageError::Corrupt {
                keyspace: "headers",
                reason: "head header missing".into(),
            })
        })?;
    let safety = reader.safety().map_err(storage_err)?.unwrap_or_default();
    info!(target: "node", chain_id = spec.chain_id, head = head.number, operator = operator_index, "storage opened");
    let storage = StorageService::spawn(store, 1024)?;

    let executor = {
        let (spec, reader) = (spec.clone(), reader.clone());
        let addr = SyncArbiter::start(1, move || {
            // (Re)created from committed state: its uncommitted layers are rebuilt by re-execution.
            let n = reader.head_number().ok().flatten().unwrap_or(0);
            let head = reader
                .header(n)
                .ok()
                .flatten()
                .unwrap_or_else(|| genesis_batch.block.header.clone());
            let acc = reader
                .state_accumulator()
                .ok()
                .flatten()
                .and_then(|b| LtHash::from_bytes(&b))
                .unwrap_or_default();
            ExecutorActor::new(spec.clone(), reader.clone(), head, acc)
        });
        ExecutorHandle::new(addr)
    };
    let pool_cfg = cfg.mempool.clone();
    let mempool = MempoolHandle::new(MempoolActor::start_in_arbiter(
        &Arbiter::new().handle(),
        move |_| MempoolActor::new(pool_cfg),
    ));
    let consensus_handle = ConsensusHandle::new(1024);
    let engine = SoloEngine::new(signer, head, safety, cfg.consensus.block_time);
    let consensus_cfg = ConsensusConfig {
        operator_index,
        min_base_fee: spec.min_base_fee,
        max_block_txs: cfg.consensus.max_block_txs,
    };
    ConsensusActor::new(
        engine,
        consensus_cfg,
        executor,
        mempool.clone(),
        storage,
        consensus_handle.clone(),
    )
    .start();

    let metrics = metrics_handle();
    let rpc_cfg = cfg.rpc.clone();
    let engine_name = cfg.consensus.engine.clone();
    let (m, c) = (mempool.clone(), consensus_handle.clone());
    let factory = Arc::new(move |faults: Recipient<_>| RpcContext {
        spec: spec.clone(),
        reader: reader.clone(),
        mempool: m.clone(),
        consensus: c.clone(),
        cfg: rpc_cfg.clone(),
        node: NodeInfo {
            operator_index,
            operators: operators.len(),
            engine: engine_name.clone(),
        },
        metrics: metrics.clone(),
        faults: rpc_cfg.fault_injection.then_some(faults),
    });
    let rpc = Supervisor::start(move |_| RpcActor::new(factory));
    let rpc_addr = wait_for_rpc(&rpc).await?;
    Ok(NodeHandle {
        rpc_addr,
        operator_index,
        consensus: consensus_handle,
        mempool,
        rpc,
    })
}

async fn wait_for_rpc(rpc: &Addr<RpcActor>) -> Result<SocketAddr, NodeError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        match rpc.send(LocalAddr).await {
            Ok(Some(addr)) => return Ok(addr),
            Ok(None) | Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    Err(NodeError::RpcStart(
        "no listening address after 10s (see the log)".into(),
    ))
}
