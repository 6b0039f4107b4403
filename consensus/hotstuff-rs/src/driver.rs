//! Starts a hotstuff-rs replica on our App, Network and KVStore, and hands its commits to the
//! chain service: for every committed hotstuff-rs block, the L2 blocks it carries (and any
//! uncommitted L2 ancestors hotstuff-rs committed without an event, as it does while syncing)
//! go to [`Chain::commit`] in order, each with its quorum certificate mapped into ours.
//!
//! Workarounds for hotstuff-rs 0.4:
//! - `max_view_time` is read with `as_secs()`, so anything under one second becomes zero and
//!   every view times out at once: we never give it less than one second.
//! - Dropping a `Replica` joins its threads and can block for many seconds: the replica lives on
//!   a thread of its own and is dropped there, never on an actor's thread.

use super::app::{l2_block, BssApp};
use super::certificate::certificate_for;
use super::kv::FjallKv;
use super::net::{FrameReceiver, FrameSender, HsNetwork, Transport};
use super::Chain;
use bss_consensus::{Block, BlockHeader};
use hotstuff_rs::block_tree::pluggables::{KVGet, KVStore};
use hotstuff_rs::replica::{Configuration, Replica, ReplicaSpec};
use hotstuff_rs::types::crypto_primitives::{SigningKey, VerifyingKey};
use hotstuff_rs::types::data_types::{BufferSize, ChainID, CryptoHash, EpochLength, Power};
use hotstuff_rs::types::update_sets::AppStateUpdates;
use hotstuff_rs::types::validator_set::{ValidatorSet, ValidatorSetState};
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("an operator key is not a valid ed25519 key: {0}")]
    BadKey(String),
    #[error("cannot start the replica's thread: {0}")]
    Thread(std::io::Error),
}

/// What the replica is started with.
pub struct HsConfig {
    pub chain_id: u64,
    pub me: u16,
    /// This operator's ed25519 secret (the same key its links authenticate with).
    pub secret: [u8; 32],
    /// Operator public keys by index.
    pub operator_keys: Vec<[u8; 32]>,
    pub round_timeout: Duration,
    /// Our L2 genesis header: the parent of the first hotstuff-rs block.
    pub genesis: BlockHeader,
}

/// A running replica (it stops with the process).
pub struct HsReplica {
    pub view_time: Duration,
}

/// hotstuff-rs's `max_view_time`: at least one second (see the module note).
pub fn view_time(round_timeout: Duration) -> Duration {
    round_timeout.max(Duration::from_secs(1))
}

/// Starts the replica; returns once it runs.
pub fn start(
    cfg: HsConfig,
    chain: Arc<dyn Chain>,
    kv: FjallKv,
    transport: Option<Arc<dyn Transport>>,
    frames: (FrameSender, FrameReceiver),
) -> Result<HsReplica, StartError> {
    let keys = cfg
        .operator_keys
        .iter()
        .map(VerifyingKey::from_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError::BadKey(e.to_string()))?;
    let mut validators = ValidatorSet::new();
    for k in &keys {
        validators.put(k, Power::new(1));
    }
    if kv.is_empty() {
        Replica::initialize(
            kv.clone(),
            AppStateUpdates::new(),
            ValidatorSetState::new(validators.clone(), validators, None, true),
        );
        info!(target: "hotstuff-rs", "block tree initialised");
    }
    let view_time = view_time(cfg.round_timeout);
    let config = Configuration::builder()
        .me(SigningKey::from_bytes(&cfg.secret))
        .chain_id(ChainID::new(cfg.chain_id))
        .block_sync_request_limit(64)
        .block_sync_server_advertise_time(Duration::from_secs(1))
        .block_sync_response_timeout(Duration::from_secs(3))
        .block_sync_blacklist_expiry_time(Duration::from_secs(10))
        .block_sync_trigger_min_view_difference(2)
        .block_sync_trigger_timeout(view_time * 3)
        .progress_msg_buffer_capacity(BufferSize::new(64 * 1024 * 1024))
        .epoch_length(EpochLength::new(50))
        .max_view_time(view_time)
        .log_events(false)
        .build();
    let (loopback, inbound) = frames;
    let network = HsNetwork::new(transport, cfg.me, keys, inbound, loopback);
    let app = BssApp { chain: chain.clone(), genesis: cfg.genesis };
    let committer = Committer { kv: kv.clone(), chain_id: cfg.chain_id, chain };
    let replica = ReplicaSpec::builder()
        .app(app)
        .network(network)
        .kv_store(kv)
        .configuration(config)
        .on_commit_block(move |e: &hotstuff_rs::events::CommitBlockEvent| committer.committed(&e.block))
        .build()
        .start();
    info!(target: "hotstuff-rs", view_time_ms = view_time.as_millis() as u64, "hotstuff-rs replica started");
    // The replica lives (and is eventually dropped) on its own thread.
    std::thread::Builder::new()
        .name("hotstuff-rs-replica".into())
        .spawn(move || {
            let _replica = replica;
            loop {
                std::thread::park();
            }
        })
        .map_err(StartError::Thread)?;
    Ok(HsReplica { view_time })
}

/// Turns hotstuff-rs commit events into chain-service commits.
struct Committer {
    kv: FjallKv,
    chain_id: u64,
    chain: Arc<dyn Chain>,
}

impl Committer {
    fn committed(&self, hs: &CryptoHash) {
        let snapshot = self.kv.snapshot();
        match self.chain_to(&snapshot, hs) {
            Ok(blocks) => {
                for (block, hs_hash) in blocks {
                    let certificate = match certificate_for(&snapshot, &hs_hash, self.chain_id, &block.hash()) {
                        Ok(c) => c,
                        Err(e) => {
                            // A committed block always has its QC in the tree; if it is not
                            // there the store is broken.
                            bss_storage::fatal::stop("hotstuff-rs", format!("committed block {hs_hash}: {e}"))
                        }
                    };
                    self.chain.commit(block, certificate);
                }
            }
            Err(e) => {
                error!(target: "hotstuff-rs", block = %hs, error = %e, "a committed block cannot be read back");
                bss_storage::fatal::stop("hotstuff-rs", format!("committed block {hs}: {e}"))
            }
        }
    }

    /// The L2 blocks in `hs` and its uncommitted ancestors, oldest first, with their hotstuff-rs
    /// block hashes. hotstuff-rs does not announce every commit (blocks committed while it syncs
    /// come without an event).
    fn chain_to(&self, snapshot: &impl KVGet, hs: &CryptoHash) -> Result<Vec<(Block, CryptoHash)>, String> {
        let head = self.chain.committed_height();
        let mut chain = vec![];
        let mut cursor = *hs;
        loop {
            let data =
                snapshot.block_data(&cursor).map_err(|e| format!("{e:?}"))?.ok_or("committed block has no data")?;
            let justify = snapshot.block_justify(&cursor).map_err(|e| format!("{e:?}"))?;
            let block = l2_block(&data).ok_or("committed block carries no L2 block")?;
            if block.number() <= head {
                break;
            }
            chain.push((block, cursor));
            if justify.block.bytes() == [0u8; 32] {
                break;
            }
            cursor = justify.block;
        }
        if chain.len() > 1 {
            warn!(target: "hotstuff-rs", blocks = chain.len(), "committing L2 blocks hotstuff-rs committed without an event");
        }
        chain.reverse();
        Ok(chain)
    }
}
