//! Starts a hotstuff-rs replica on our App, Network and KVStore, and turns its commits into ours:
//! the committed L2 block is executed (or taken from the executor's pending layers), written in
//! one storage batch, made the executor's base, and announced like a native commit.
//!
//! Workarounds for hotstuff-rs 0.4:
//! - `max_view_time` is read with `as_secs()`, so anything under one second becomes zero and
//!   every view times out at once: we never give it less than one second.
//! - Dropping a `Replica` joins its threads and can block for many seconds: the replica lives on
//!   a thread of its own and is dropped there, never on an actor's thread.

use super::app::{l2_block, AppConfig, BssApp};
use super::kv::FjallKv;
use super::net::HsNetwork;
use crate::consensus::{announce_commit, ConsensusHandle};
use crate::executor::ExecutorHandle;
use crate::mempool::MempoolHandle;
use bss_consensus::{BlockHeader, Certificate, OperatorSigner};
use bss_storage::{StorageHandle, StoreReader};
use futures::executor::block_on;
use hotstuff_rs::block_tree::pluggables::KVStore;
use hotstuff_rs::replica::{Configuration, Replica, ReplicaSpec};
use hotstuff_rs::types::crypto_primitives::{SigningKey, VerifyingKey};
use hotstuff_rs::types::data_types::{BufferSize, ChainID, CryptoHash, EpochLength, Power};
use hotstuff_rs::types::update_sets::AppStateUpdates;
use hotstuff_rs::types::validator_set::{ValidatorSet, ValidatorSetState};
use std::time::Duration;
use tracing::{error, info};

pub struct DriverParts {
    pub app: AppConfig,
    pub chain_id: u64,
    pub signer: OperatorSigner,
    pub operator_keys: Vec<VerifyingKey>,
    pub round_timeout: Duration,
    pub kv: FjallKv,
    pub network: HsNetwork,
    pub executor: ExecutorHandle,
    pub mempool: MempoolHandle,
    pub storage: StorageHandle,
    pub reader: StoreReader,
    pub genesis: BlockHeader,
    pub handle: ConsensusHandle,
    /// Refuses blocks that conflict with superfinal keystones (with `[pop]`).
    pub guard: Option<crate::pop::ForkGuard>,
}

/// hotstuff-rs's `max_view_time`: at least one second (see the module note).
pub fn view_time(round_timeout: Duration) -> Duration {
    round_timeout.max(Duration::from_secs(1))
}

/// Starts the replica and its committer; returns once both run.
pub fn start(p: DriverParts) -> Result<(), String> {
    let mut validators = ValidatorSet::new();
    for k in &p.operator_keys {
        validators.put(k, Power::new(1));
    }
    if p.kv.is_empty() {
        Replica::initialize(
            p.kv.clone(),
            AppStateUpdates::new(),
            ValidatorSetState::new(validators.clone(), validators, None, true),
        );
        info!(target: "hotstuff-rs", "block tree initialised");
    }
    let secret: [u8; 32] = hex::decode(p.signer.secret_hex())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the operator key is not 32 bytes")?;
    let view_time = view_time(p.round_timeout);
    let config = Configuration::builder()
        .me(SigningKey::from_bytes(&secret))
        .chain_id(ChainID::new(p.chain_id))
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
    let (commits_tx, commits_rx) = crossbeam_channel::unbounded::<CryptoHash>();
    let app = BssApp {
        cfg: p.app,
        executor: p.executor.clone(),
        mempool: p.mempool.clone(),
        reader: p.reader.clone(),
        genesis: p.genesis,
    };
    let kv = p.kv.clone();
    let replica = ReplicaSpec::builder()
        .app(app)
        .network(p.network)
        .kv_store(p.kv)
        .configuration(config)
        .on_commit_block(move |e: &hotstuff_rs::events::CommitBlockEvent| {
            let _ = commits_tx.send(e.block);
        })
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
        .map_err(|e| e.to_string())?;
    let committer = Committer {
        kv,
        chain_id: p.chain_id,
        executor: p.executor,
        mempool: p.mempool,
        storage: p.storage,
        reader: p.reader,
        handle: p.handle,
        guard: p.guard,
    };
    std::thread::Builder::new()
        .name("hotstuff-rs-commits".into())
        .spawn(move || committer.run(commits_rx))
        .map_err(|e| e.to_string())?;
    Ok(())
}

enum CommitError {
    /// The fork guard refused the chain.
    Refused(String),
    Failed(String),
}

impl From<String> for CommitError {
    fn from(e: String) -> Self {
        CommitError::Failed(e)
    }
}

impl From<&str> for CommitError {
    fn from(e: &str) -> Self {
        CommitError::Failed(e.into())
    }
}

struct Committer {
    kv: FjallKv,
    chain_id: u64,
    executor: ExecutorHandle,
    mempool: MempoolHandle,
    storage: StorageHandle,
    reader: StoreReader,
    handle: ConsensusHandle,
    guard: Option<crate::pop::ForkGuard>,
}

impl Committer {
    fn run(mut self, commits: crossbeam_channel::Receiver<CryptoHash>) {
        while let Ok(hs) = commits.recv() {
            match self.commit(&hs) {
                Ok(()) => {}
                Err(CommitError::Refused(why)) => {
                    error!(target: "hotstuff-rs", reason = %why, "fork guard: refusing the chain; no further blocks are stored (the node keeps serving reads)");
                    metrics::gauge!("bss_consensus_halted").set(1.0);
                    return;
                }
                Err(CommitError::Failed(e)) => {
                    // A committed block we cannot store: the node must not go on without it.
                    error!(target: "hotstuff-rs", block = %hs, error = %e, "fatal: committing failed; stopping the node");
                    std::process::exit(2);
                }
            }
        }
    }

    /// Commits the L2 block in `hs` and every uncommitted L2 ancestor before it: hotstuff-rs
    /// does not announce every commit (blocks committed while it syncs come without an event).
    fn commit(&mut self, hs: &CryptoHash) -> Result<(), CommitError> {
        use hotstuff_rs::block_tree::pluggables::KVGet;
        let snapshot = self.kv.snapshot();
        let head = self.reader.head_number().map_err(|e| e.to_string())?.unwrap_or(0);
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
            let parent_is_genesis = justify.block.bytes() == [0u8; 32];
            chain.push((block, justify.view.int()));
            if parent_is_genesis {
                break;
            }
            cursor = justify.block;
        }
        if let Some(guard) = &mut self.guard {
            let headers: Vec<&BlockHeader> = chain.iter().map(|(b, _)| &b.header).collect();
            guard.check(&headers).map_err(CommitError::Refused)?;
        }
        for (block, view) in chain.into_iter().rev() {
            let hash = block.hash();
            // hotstuff-rs keeps its own quorum certificates (in its block tree); ours records
            // the commit without signatures of our vote format.
            let certificate =
                Certificate { chain_id: self.chain_id, round: view, block_hash: hash, signatures: vec![] };
            let executed = block_on(self.executor.execute_certified(block)).map_err(|e| e.to_string())?;
            block_on(self.storage.commit(executed.commit_batch(certificate, None)))
                .map_err(|e| format!("storage: {e}"))?;
            block_on(self.executor.committed(hash)).map_err(|e| e.to_string())?;
            announce_commit(&executed, &self.mempool, &self.handle);
        }
        Ok(())
    }
}
