//! The node's Bitcoin side: the watcher (with `[btc]`) and the PoP submitter (with `[pop]`).

use super::config::{BtcSection, PopSection};
use super::{ConfigError, NodeError};
use crate::btc::{BtcLink, BtcRules, CoreRpc, IndexSink, WatcherConfig, WatcherHandle};
use crate::chain::ChainHandle;
use crate::pop::finality::KeystoneRules;
use crate::pop::submitter::{PopStore, SubmitterConfig, SubmitterHandle, SubmitterParts};
use bss_storage::{AuxWriter, StorageHandle, StoreReader};
use std::path::Path;
use std::time::Duration;
use tracing::info;

pub(super) fn bitcoind(b: &BtcSection) -> Result<CoreRpc, NodeError> {
    CoreRpc::new(&b.rpc_url, b.credentials()?).map_err(|e| {
        ConfigError::Invalid(format!("btc.rpc_url {}: {e}", crate::btc::source::redact_url(&b.rpc_url))).into()
    })
}

/// Starts the BtcWatcher thread on the configured bitcoind.
pub fn start_watcher(
    b: &BtcSection,
    keystones: KeystoneRules,
    storage: &StorageHandle,
    reader: &StoreReader,
    forced_confirmations: u64,
    tunnel: Option<crate::btc::deposit::TunnelRules>,
    chain_id: u64,
) -> Result<(BtcLink, WatcherHandle), NodeError> {
    let network = b.network()?;
    let (view, handle) = crate::btc::watcher::spawn(
        bitcoind(b)?,
        WatcherConfig {
            poll_interval: b.poll_interval,
            start_height: b.start_height,
            max_backoff: Duration::from_secs(30),
            inbox: crate::btc::inbox::InboxFilter {
                chain_id: u32::try_from(chain_id).ok(),
                decodes: Some(|raw| crate::hvm::SignedTx::decode(raw).is_ok()),
            },
            keystones: Some(keystones.clone()),
        },
        IndexSink::Service(storage.clone()),
        reader.clone(),
    )
    .map_err(|e| NodeError::Btc(e.to_string()))?;
    info!(target: "node", url = %crate::btc::source::redact_url(&b.rpc_url), network = %network, lag = b.confirmations_lag, "watching Bitcoin");
    let rules = BtcRules {
        network,
        confirmations_lag: b.confirmations_lag,
        start_height: b.start_height,
        forced_confirmations,
        stale_slack: b.stale_view_slack,
    };
    if let Some(t) = &tunnel {
        info!(target: "node", vault = %t.vault.address(network), threshold = t.vault.threshold(), "tunnel vault");
    }
    Ok((BtcLink { view, rules, keystones, tunnel }, handle))
}

/// What the PoP submitter is started with.
pub struct PopParts<'a> {
    /// The attestation service's highest certified keystone number.
    pub certified: tokio::sync::watch::Receiver<u64>,
    pub link: &'a BtcLink,
    pub pop: &'a PopSection,
    pub btc: &'a BtcSection,
    pub me: u16,
    pub operators: u16,
    pub chain: &'a ChainHandle,
    pub storage: &'a StorageHandle,
    pub reader: &'a StoreReader,
    pub data_dir: &'a Path,
}

/// Starts the PoP submitter (it measures finality even without a key).
pub fn start_pop(p: PopParts<'_>) -> Result<SubmitterHandle, NodeError> {
    let wallet = match p.pop.secret()? {
        Some(k) => {
            Some(crate::pop::tx::PopWallet::new(k, p.link.rules.network).map_err(|e| NodeError::Pop(e.to_string()))?)
        }
        None => None,
    };
    let cfg = SubmitterConfig {
        keystones: p.link.keystones.clone(),
        me: p.me,
        operators: p.operators,
        keystone_interval: p.pop.keystone_interval,
        superfinality_confirmations: p.pop.superfinality_confirmations,
        stagger_blocks: p.pop.stagger_blocks,
        bump_after_blocks: p.pop.bump_after_blocks,
        fee_floor: p.pop.fee_floor,
        fee_cap: p.pop.fee_cap,
    };
    let storage_err = |source| NodeError::Storage { path: p.data_dir.display().to_string(), source };
    let head = p.reader.head_number().map_err(storage_err)?.unwrap_or(0);
    let interval = p.pop.keystone_interval;
    let last_keystone = head - head % interval;
    let recent = (0..4u64)
        .filter_map(|i| last_keystone.checked_sub(i * interval).filter(|n| *n > 0))
        .filter_map(|n| p.reader.header(n).ok().flatten())
        .collect();
    let store = PopStore { writer: AuxWriter::Service(p.storage.clone()), reader: p.reader.clone() };
    let certs = crate::pop::attest::CertStore { reader: p.reader.clone() };
    crate::pop::submitter::spawn(SubmitterParts {
        cfg,
        wallet,
        source: bitcoind(p.btc)?,
        view: p.link.view.clone(),
        commits: p.chain.subscribe(),
        store,
        recent,
        certs,
        certified: p.certified,
    })
    .map_err(|e| NodeError::Pop(e.to_string()))
}
