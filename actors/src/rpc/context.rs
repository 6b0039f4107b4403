//! What RPC handlers share: read access to storage, the mempool handle, chain parameters.

use super::format::TxPosition;
use super::params::{internal, server_error, BlockId};
use super::RpcConfig;
use crate::chain::ChainHandle;
use crate::hvm::{ChainSpec, LayeredState, SignedTx};
use crate::mempool::MempoolHandle;
use alloy_primitives::B256;
use bss_consensus::BlockHeader;
use bss_storage::{BlockBody, ReceiptRecord, StoreReader};
use jsonrpsee::types::ErrorObjectOwned;

pub struct NodeInfo {
    pub operator_index: u16,
    pub operators: usize,
    /// The operator set's public keys (hex), in index order.
    pub operator_keys: Vec<String>,
    pub engine: String,
    /// `consensus.inclusion_deadline`.
    pub inclusion_deadline: u64,
    /// `censorship.forced_confirmations`.
    pub forced_confirmations: u64,
    /// The rules and keys the genesis pins (`bss_genesis`).
    pub genesis_rules: std::sync::Arc<bss_consensus::GenesisRules>,
}

pub struct RpcContext {
    pub spec: ChainSpec,
    pub reader: StoreReader,
    pub mempool: MempoolHandle,
    pub ingress: crate::mempool::TxIngress,
    /// Where accepted transactions are gossiped (None for a federation of one).
    pub network: Option<crate::network::NetworkHandle>,
    pub chain: ChainHandle,
    pub cfg: RpcConfig,
    pub node: NodeInfo,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub faults: Option<super::messages::Faults>,
    /// The node's Bitcoin view (None when no bitcoind is configured).
    pub btc: Option<crate::btc::BtcLink>,
    /// The tunnel service's status (None: no tunnel or no Bitcoin view).
    pub tunnel: Option<tokio::sync::watch::Receiver<std::sync::Arc<crate::tunnel::TunnelStatus>>>,
    /// `pop.superfinality_confirmations` when Proof-of-Proof is configured.
    pub pop_confirmations: Option<u64>,
    /// Slots for eth_call, eth_estimateGas and eth_getLogs (`rpc.max_concurrent_calls`).
    pub heavy: std::sync::Arc<tokio::sync::Semaphore>,
}

/// A committed block read back from storage.
pub struct StoredBlock {
    pub header: BlockHeader,
    pub body: BlockBody,
    pub receipts: Vec<ReceiptRecord>,
}

impl StoredBlock {
    /// The block's transactions with the senders stored at commit: no signature recovery, so
    /// a 20,000-tx block costs an RPC worker decoding only.
    pub fn decoded(&self) -> Vec<SignedTx> {
        // Bodies were validated before commit; a tx that no longer decodes is storage corruption
        // and is skipped here rather than failing the whole response.
        self.body
            .transactions
            .iter()
            .zip(&self.body.senders)
            .filter_map(|(raw, sender)| SignedTx::decode_known_sender(raw, *sender).ok())
            .collect()
    }

    /// Transaction `i` with its stored sender.
    pub fn tx(&self, i: usize) -> Result<SignedTx, ErrorObjectOwned> {
        let (Some(raw), Some(sender)) = (self.body.transactions.get(i), self.body.senders.get(i)) else {
            return Err(internal("tx index out of range"));
        };
        SignedTx::decode_known_sender(raw, *sender).map_err(internal)
    }

    pub fn position(&self, index: u64) -> TxPosition {
        TxPosition {
            block_hash: self.header.hash(),
            block_number: self.header.number,
            index,
            base_fee: self.header.base_fee,
        }
    }
}

impl RpcContext {
    /// The budget of one eth_call / eth_estimateGas, starting now.
    pub fn call_limits(&self) -> crate::hvm::call::CallLimits {
        crate::hvm::call::CallLimits::new(self.cfg.call_gas_cap, self.cfg.call_timeout)
    }

    /// Waits (from a blocking RPC worker) up to `call_timeout` for one of the
    /// `max_concurrent_calls` slots; a clear error when none frees up.
    pub fn heavy_slot(&self, method: &str) -> Result<tokio::sync::OwnedSemaphorePermit, ErrorObjectOwned> {
        let wait = tokio::time::timeout(self.cfg.call_timeout, self.heavy.clone().acquire_owned());
        match tokio::runtime::Handle::current().block_on(wait) {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                metrics::counter!("bss_rpc_refused_total", "reason" => "busy").increment(1);
                Err(ErrorObjectOwned::owned(
                    super::params::LIMIT_EXCEEDED,
                    format!(
                        "{method}: all {} slots for eth_call, eth_estimateGas and eth_getLogs stayed busy for {:?} (rpc.max_concurrent_calls)",
                        self.cfg.max_concurrent_calls, self.cfg.call_timeout
                    ),
                    None::<()>,
                ))
            }
        }
    }

    /// The Bitcoin view as of `head`'s BTC tip, for the hVM precompiles in eth_call.
    pub fn btc_at(&self, head: &BlockHeader) -> Option<crate::hvm::btc_precompiles::BtcAt> {
        self.btc.as_ref().and_then(|l| crate::hvm::btc_precompiles::btc_at(l, &head.btc))
    }

    /// Finality as Bitcoin says it now (None without `[pop]`).
    pub fn finality(&self) -> Option<crate::pop::finality::FinalityView> {
        let (link, threshold) = (self.btc.as_ref()?, self.pop_confirmations?);
        let committed = |n: u64| self.reader.header(n).ok().flatten().map(|h| h.hash());
        Some(crate::pop::finality::FinalityView::compute(&link.view.current(), &link.keystones, threshold, committed))
    }

    pub fn head(&self) -> Result<BlockHeader, ErrorObjectOwned> {
        let n = self.reader.head_number().map_err(internal)?.ok_or_else(|| internal("no head block"))?;
        self.reader.header(n).map_err(internal)?.ok_or_else(|| internal("head header missing"))
    }

    /// Resolves a block id to a committed block number (None: no such block).
    pub fn resolve(&self, id: BlockId) -> Result<Option<u64>, ErrorObjectOwned> {
        let head = self.reader.head_number().map_err(internal)?.unwrap_or(0);
        Ok(match id {
            // Every committed block is BFT-final (`safe`); `finalized` is the highest block
            // anchored in Bitcoin deeply enough (superfinal), or the head without `[pop]`.
            BlockId::Latest | BlockId::Pending | BlockId::Safe => Some(head),
            BlockId::Finalized => match self.finality() {
                Some(f) => Some(f.superfinal.unwrap_or(0).min(head)),
                None => Some(head),
            },
            BlockId::Earliest => Some(0),
            BlockId::Number(n) => (n <= head).then_some(n),
            BlockId::Hash(h) => self.reader.number_by_hash(&h).map_err(internal)?,
        })
    }

    pub fn block(&self, number: u64) -> Result<Option<StoredBlock>, ErrorObjectOwned> {
        let Some(header) = self.reader.header(number).map_err(internal)? else {
            return Ok(None);
        };
        let body = self.reader.body(number).map_err(internal)?.unwrap_or(BlockBody {
            transactions: vec![],
            tx_hashes: vec![],
            senders: vec![],
        });
        let receipts = self.reader.receipts(number).map_err(internal)?.unwrap_or_default();
        Ok(Some(StoredBlock { header, body, receipts }))
    }

    /// Committed state for reads. The node keeps the latest state only: older blocks are refused
    /// as geth refuses state it has pruned.
    pub fn state_at(&self, id: BlockId) -> Result<(LayeredState, BlockHeader), ErrorObjectOwned> {
        let head = self.head()?;
        let n = self.resolve(id)?.ok_or_else(|| server_error("header not found"))?;
        if n != head.number {
            return Err(server_error(format!(
                "historical state for block {n} is not available (this node keeps the state at head {} only)",
                head.number
            )));
        }
        Ok((LayeredState { base: self.reader.clone(), layers: vec![] }, head))
    }

    /// A committed transaction with its block.
    pub fn committed_tx(&self, hash: &B256) -> Result<Option<(StoredBlock, u64)>, ErrorObjectOwned> {
        let Some((number, index)) = self.reader.tx_location(hash).map_err(internal)? else {
            return Ok(None);
        };
        Ok(self.block(number)?.map(|b| (b, u64::from(index))))
    }
}
