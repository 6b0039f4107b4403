//! Starts the supervised RPC actor and waits for its listening address.

use super::identity::Identity;
use super::{NodeConfig, NodeError};
use crate::btc::{BtcLink, WatcherHandle};
use crate::chain::ChainHandle;
use crate::executor::ExecutorHandle;
use crate::mempool::{MempoolHandle, TxIngress};
use crate::network::NetworkHandle;
use crate::pop::submitter::SubmitterHandle;
use crate::rpc::messages::{Faults, RpcHandle};
use crate::rpc::NodeInfo;
use crate::rpc::{RpcActor, RpcContext};
use actix::prelude::*;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What the RPC handlers are built from.
pub struct RpcDeps<'a> {
    pub cfg: &'a NodeConfig,
    pub genesis_rules: bss_consensus::GenesisRules,
    pub id: &'a Identity,
    pub ingress: TxIngress,
    pub network: Option<NetworkHandle>,
    pub chain: ChainHandle,
    pub metrics: Option<PrometheusHandle>,
    pub btc: Option<BtcLink>,
    /// The tunnel service's status (None: no tunnel or no Bitcoin view).
    pub tunnel: Option<tokio::sync::watch::Receiver<Arc<crate::tunnel::TunnelStatus>>>,
    pub faults: FaultTargets,
}

/// What `bss_injectFault` reaches besides the RPC actor itself.
pub struct FaultTargets {
    pub executor: ExecutorHandle,
    pub mempool: MempoolHandle,
    pub btc_watcher: Option<WatcherHandle>,
    pub pop_submitter: Option<SubmitterHandle>,
    pub pop_attest: Option<crate::pop::attest::AttestHandle>,
    pub tunnel: Option<crate::tunnel::TunnelHandle>,
    pub sync_server: crate::sync_server::SyncServerHandle,
}

/// Everything the RPC handlers share, but the fault targets (added per restart).
pub struct RpcParts {
    pub context: Box<dyn Fn() -> RpcContext + Send + Sync>,
    /// With `rpc.fault_injection`: what `bss_injectFault` reaches, but the RPC actor itself.
    pub faults: Option<Box<dyn Fn(Recipient<crate::rpc::messages::InjectFault>) -> Faults + Send + Sync>>,
}

impl RpcParts {
    pub fn new(d: RpcDeps<'_>) -> Self {
        let RpcDeps { cfg, genesis_rules, id, ingress, network, chain, metrics, btc, tunnel, faults } = d;
        let rpc_cfg = cfg.rpc.clone();
        let pop_confirmations = cfg.pop.as_ref().map(|p| p.superfinality_confirmations);
        let (index, operators) = (id.index, id.operators.len());
        let (keys, engine) = (cfg.operators.keys.clone(), cfg.consensus.engine.clone());
        let (inclusion_deadline, forced_confirmations) =
            (cfg.consensus.inclusion_deadline, cfg.censorship.forced_confirmations);
        let genesis_rules = Arc::new(genesis_rules);
        let heavy = Arc::new(tokio::sync::Semaphore::new(rpc_cfg.max_concurrent_calls.max(1)));
        let context = Box::new(move || RpcContext {
            spec: ingress.spec.clone(),
            reader: ingress.reader.clone(),
            mempool: ingress.mempool.clone(),
            ingress: ingress.clone(),
            network: network.clone(),
            chain: chain.clone(),
            cfg: rpc_cfg.clone(),
            node: NodeInfo {
                operator_index: index,
                operators,
                operator_keys: keys.clone(),
                engine: engine.clone(),
                inclusion_deadline,
                forced_confirmations,
                genesis_rules: genesis_rules.clone(),
            },
            metrics: metrics.clone(),
            faults: None,
            btc: btc.clone(),
            tunnel: tunnel.clone(),
            pop_confirmations,
            heavy: heavy.clone(),
        });
        let faults = cfg.rpc.fault_injection.then(|| {
            Box::new(move |rpc| Faults {
                rpc,
                executor: faults.executor.clone(),
                mempool: faults.mempool.clone(),
                btc_watcher: faults.btc_watcher.clone(),
                pop_submitter: faults.pop_submitter.clone(),
                pop_attest: faults.pop_attest.clone(),
                tunnel: faults.tunnel.clone(),
                sync_server: faults.sync_server.clone(),
            }) as Box<dyn Fn(_) -> Faults + Send + Sync>
        });
        Self { context, faults }
    }
}

pub async fn start(p: RpcParts) -> Result<(RpcHandle, SocketAddr), NodeError> {
    let RpcParts { context, faults } = p;
    let factory = Arc::new(move |rpc: Recipient<_>| {
        let mut c = context();
        c.faults = faults.as_ref().map(|f| f(rpc));
        c
    });
    let (bound, mut announced) = tokio::sync::watch::channel(None);
    let handle = RpcHandle::new(Supervisor::start(move |_| RpcActor::new(factory, bound)));
    let addr = match tokio::time::timeout(Duration::from_secs(10), announced.wait_for(Option::is_some)).await {
        Ok(Ok(addr)) => *addr,
        _ => return Err(NodeError::RpcStart("no listening address after 10s (see the log)".into())),
    };
    Ok((handle, addr.ok_or_else(|| NodeError::RpcStart("no address announced".into()))?))
}
