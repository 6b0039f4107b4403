//! The consensus engine the config names, with the network routed to it.

use super::identity::Identity;
use super::storage::Opened;
use super::{NodeConfig, NodeError};
use crate::chain::hotstuff_rs::HsChain;
use crate::chain::ChainHandle;
use crate::consensus::{ConsensusActor, ConsensusHandle, ConsensusParts};
use crate::mempool::GossipAdmission;
use crate::network::actor::NetworkParts;
use crate::network::{EngineRoute, NetworkActor, NetworkHandle, Routes};
use crate::sync_server::SyncServerHandle;
use actix::prelude::*;
use bss_consensus::native::{head_qc, NativeConfig, NativeEngine};
use bss_storage::StorageError;
use std::sync::Arc;

/// What either engine is started with.
pub struct EngineParts<'a> {
    pub cfg: &'a NodeConfig,
    /// The block sync server the network routes requests to.
    pub sync: SyncServerHandle,
    pub chain_id: u64,
    pub id: &'a Identity,
    pub opened: Opened,
    pub chain: ChainHandle,
    pub gossip: GossipAdmission,
    /// The operator port, bound early (None for a federation of one).
    pub listener: Option<std::net::TcpListener>,
    /// Where this operator's inclusion lists come from.
    pub mempool: crate::mempool::MempoolHandle,
    pub byzantine: super::byzantine::Byzantine,
    /// Where payout signatures go (None: no tunnel).
    pub tunnel: Option<crate::tunnel::TunnelInbox>,
    /// Where keystone signatures go (None: no Proof-of-Proof).
    pub keystones: Option<crate::pop::attest::AttestInbox>,
}

/// Starts the network on its own arbiter with `engine` as the consensus route.
fn start_network(p: &mut EngineParts<'_>, engine: EngineRoute) -> Result<Option<NetworkHandle>, NodeError> {
    let Some(listener) = p.listener.take() else { return Ok(None) };
    let routes = Routes {
        engine,
        sync: p.sync.clone(),
        gossip: p.gossip.clone(),
        tunnel: p.tunnel.clone(),
        keystones: p.keystones.clone(),
    };
    let parts = NetworkParts {
        cfg: p.cfg.network.clone(),
        chain_id: p.chain_id,
        me: p.id.index,
        signer: p.id.signer.clone(),
        operators: p.id.operators.clone(),
        addrs: p.id.addrs.clone(),
        listener,
        routes,
    };
    let addr = NetworkActor::start_in_arbiter(&Arbiter::new().handle(), move |_| NetworkActor::new(parts));
    Ok(Some(NetworkHandle::new(addr)))
}

/// `consensus.engine = "native"`: our HotStuff engine, driven by the consensus actor.
pub fn start_native(mut p: EngineParts<'_>) -> Result<Option<NetworkHandle>, NodeError> {
    let native_cfg = NativeConfig {
        chain_id: p.chain_id,
        operators: p.id.operators.clone(),
        genesis_hash: p.opened.genesis_hash,
        base_timeout: p.cfg.consensus.base_timeout,
        max_timeout: p.cfg.consensus.max_timeout,
        block_time: p.cfg.consensus.block_time,
        reputation_window: 2 * p.id.operators.len(),
    };
    let o = &p.opened;
    let history = o
        .reader
        .recent_proposers(NativeEngine::history_len(&native_cfg))
        .map_err(|source| NodeError::Storage { path: p.cfg.data_dir.display().to_string(), source })?;
    let qc = head_qc(p.chain_id, o.genesis_hash, &o.head, o.head_cert.clone());
    let engine = NativeEngine::new(
        native_cfg,
        p.id.signer.clone(),
        o.head.clone(),
        qc,
        o.safety.clone(),
        o.pending.clone(),
        history,
    )
    .ok_or_else(|| NodeError::OperatorKey("this node's key is not in the operator set".into()))?;
    // The driver's address exists before it runs, so the network can route to it.
    let ctx = Context::<ConsensusActor>::new();
    let network = start_network(&mut p, EngineRoute::Native(ConsensusHandle::new(ctx.address())))?;
    let parts = ConsensusParts {
        operator_index: p.id.index,
        chain: p.chain.clone(),
        storage: p.opened.storage.clone(),
        network: network.clone(),
        lists: crate::consensus::ListSource {
            mempool: p.mempool.clone(),
            chain_id: p.chain_id,
            deadline: p.cfg.consensus.inclusion_deadline,
            false_lists: p.byzantine.false_lists,
            list_file: p.byzantine.list_file.clone(),
        },
        misbehaviour: p.byzantine.wire.any().then(|| {
            crate::consensus::byzantine::Misbehaviour::new(
                p.byzantine.wire.clone(),
                p.id.signer.clone(),
                p.chain_id,
                p.id.index,
                p.id.operators.len() as u16,
            )
        }),
    };
    ctx.run(ConsensusActor::new(engine, parts));
    Ok(network)
}

/// `consensus.engine = "hotstuff-rs"`: the same node around a hotstuff-rs replica.
pub fn start_hotstuff_rs(mut p: EngineParts<'_>) -> Result<Option<NetworkHandle>, NodeError> {
    let (frames_tx, frames_rx) = bss_hotstuff_rs::frame_channel();
    let network = start_network(&mut p, EngineRoute::HotstuffRs(frames_tx.clone()))?;
    let kv = bss_hotstuff_rs::FjallKv::open(&p.cfg.data_dir).map_err(|e| NodeError::Storage {
        path: p.cfg.data_dir.join("hotstuff-rs").display().to_string(),
        source: StorageError::from(e),
    })?;
    let genesis = p
        .opened
        .reader
        .header(0)
        .ok()
        .flatten()
        .ok_or_else(|| NodeError::Unsupported("genesis header missing from storage".into()))?;
    let secret: [u8; 32] = hex::decode(p.id.signer.secret_hex())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| NodeError::OperatorKey("the operator key is not 32 bytes".into()))?;
    let cfg = bss_hotstuff_rs::HsConfig {
        chain_id: p.chain_id,
        me: p.id.index,
        secret,
        operator_keys: p.id.operators.keys.iter().map(|k| k.0).collect(),
        round_timeout: p.cfg.consensus.base_timeout,
        genesis,
    };
    let chain = Arc::new(HsChain { chain: p.chain.clone(), reader: p.opened.reader.clone() });
    let transport = network.clone().map(|n| Arc::new(n) as Arc<dyn bss_hotstuff_rs::Transport>);
    bss_hotstuff_rs::start(cfg, chain, kv, transport, (frames_tx, frames_rx))
        .map_err(|e| NodeError::Unsupported(e.to_string()))?;
    Ok(network)
}
