//! The `eth_*`, `net_*` and `web3_*` methods.

use super::context::RpcContext;
use super::format::{self, qty, ReceiptContext};
use super::params::{
    internal, invalid_params, server_error, BlockId, CallObject, LogFilter, Quantity, EXECUTION_REVERTED,
    LIMIT_EXCEEDED,
};
use crate::hvm::call::{self, revert_reason, CallError, CallOutcome};
use crate::hvm::fees::next_base_fee;
use crate::hvm::StateSource;
use crate::mempool::AdmitError;
use alloy_primitives::{Address, Bytes, B256, U256};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::RpcModule;
use serde_json::{json, Value};
use std::sync::Arc;

type RpcResult = Result<Value, ErrorObjectOwned>;

fn reg_err(e: jsonrpsee::core::RegisterMethodError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

pub fn register(module: &mut RpcModule<RpcContext>) -> std::io::Result<()> {
    macro_rules! sync_method {
        ($name:literal, $f:expr) => {
            module
                .register_method($name, move |p: Params<'_>, c: &RpcContext, _| -> RpcResult {
                    metrics::counter!("bss_rpc_requests_total", "method" => $name).increment(1);
                    $f(p, c)
                })
                .map_err(reg_err)?;
        };
    }
    macro_rules! blocking_method {
        ($name:literal, $f:expr) => {
            module
                .register_blocking_method($name, move |p: Params<'_>, c: Arc<RpcContext>, _| -> RpcResult {
                    metrics::counter!("bss_rpc_requests_total", "method" => $name).increment(1);
                    $f(p, &c)
                })
                .map_err(reg_err)?;
        };
    }
    sync_method!("eth_chainId", |_, c: &RpcContext| Ok(json!(qty(c.spec.chain_id))));
    sync_method!("net_version", |_, c: &RpcContext| Ok(json!(c.spec.chain_id.to_string())));
    sync_method!("net_listening", |_, _| Ok(json!(true)));
    sync_method!("net_peerCount", |_, c: &RpcContext| Ok(json!(qty(c.node.operators.saturating_sub(1) as u64))));
    sync_method!("web3_clientVersion", |_, _| Ok(json!(format!(
        "bss/v{}/{}-{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    ))));
    sync_method!("web3_sha3", |p: Params<'_>, _| {
        let data: Bytes = p.one()?;
        Ok(json!(alloy_primitives::keccak256(&data)))
    });
    sync_method!("eth_syncing", |_, _| Ok(json!(false)));
    sync_method!("eth_mining", |_, _| Ok(json!(false)));
    sync_method!("eth_accounts", |_, _| Ok(json!([])));
    sync_method!("eth_blockNumber", |_, c: &RpcContext| Ok(json!(qty(c.head()?.number))));
    sync_method!("eth_gasPrice", |_, c: &RpcContext| {
        let h = c.head()?;
        let base = next_base_fee(h.base_fee, h.gas_used, h.gas_limit, c.spec.min_base_fee);
        Ok(json!(qty(u128::from(base) + u128::from(c.cfg.suggested_tip))))
    });
    sync_method!("eth_maxPriorityFeePerGas", |_, c: &RpcContext| Ok(json!(qty(c.cfg.suggested_tip))));
    sync_method!("eth_getBalance", |p: Params<'_>, c: &RpcContext| {
        let (addr, state) = account_params(&p, c)?;
        Ok(json!(state.account(&addr).map_err(internal)?.map(|a| a.balance).unwrap_or_default()))
    });
    sync_method!("eth_getCode", |p: Params<'_>, c: &RpcContext| {
        let (addr, state) = account_params(&p, c)?;
        let code = match state.account(&addr).map_err(internal)? {
            Some(a) => state.code(&a.code_hash).map_err(internal)?.unwrap_or_default(),
            None => Bytes::new(),
        };
        Ok(json!(code))
    });
    sync_method!("eth_getStorageAt", |p: Params<'_>, c: &RpcContext| {
        let mut seq = p.sequence();
        let addr: Address = seq.next()?;
        let slot: U256 = seq.next()?;
        let id: Option<BlockId> = seq.optional_next()?;
        let (state, _) = c.state_at(id.unwrap_or(BlockId::Latest))?;
        let v = state.storage(&addr, &slot).map_err(internal)?;
        Ok(json!(B256::from(v.to_be_bytes::<32>())))
    });
    module
        .register_async_method("eth_getTransactionCount", |p, c, _| async move {
            metrics::counter!("bss_rpc_requests_total", "method" => "eth_getTransactionCount").increment(1);
            let mut seq = p.sequence();
            let addr: Address = seq.next()?;
            let id: Option<BlockId> = seq.optional_next()?;
            let id = id.unwrap_or(BlockId::Latest);
            let (state, _) = c.state_at(if id == BlockId::Pending { BlockId::Latest } else { id })?;
            let committed = state.account(&addr).map_err(internal)?.map_or(0, |a| a.nonce);
            let nonce = if id == BlockId::Pending {
                let pooled = c.mempool.pending_nonce(addr).await.map_err(internal)?;
                pooled.unwrap_or(committed).max(committed)
            } else {
                committed
            };
            Ok::<Value, ErrorObjectOwned>(json!(qty(nonce)))
        })
        .map_err(reg_err)?;
    module
        .register_async_method("eth_sendRawTransaction", |p, c, _| async move {
            metrics::counter!("bss_rpc_requests_total", "method" => "eth_sendRawTransaction").increment(1);
            let raw: Bytes = p.one()?;
            send_raw(&c, &raw).await
        })
        .map_err(reg_err)?;
    blocking_method!("eth_call", |p: Params<'_>, c: &RpcContext| {
        let mut seq = p.sequence();
        let obj: CallObject = seq.next()?;
        let id: Option<BlockId> = seq.optional_next()?;
        let limits = c.call_limits();
        let _slot = c.heavy_slot("eth_call")?;
        let (state, head) = c.state_at(id.unwrap_or(BlockId::Latest))?;
        let req = obj.into_request()?;
        match call::call(&c.spec, &state, &head, &req, c.btc_at(&head).as_ref(), limits).map_err(call_error)? {
            CallOutcome::Success { output, .. } => Ok(json!(output)),
            CallOutcome::Revert { output, .. } => Err(reverted(&output)),
            CallOutcome::Halt { reason, .. } => Err(server_error(format!("execution halted: {reason}"))),
        }
    });
    blocking_method!("eth_estimateGas", |p: Params<'_>, c: &RpcContext| {
        let mut seq = p.sequence();
        let obj: CallObject = seq.next()?;
        let id: Option<BlockId> = seq.optional_next()?;
        let limits = c.call_limits();
        let _slot = c.heavy_slot("eth_estimateGas")?;
        let (state, head) = c.state_at(id.unwrap_or(BlockId::Latest))?;
        let req = obj.into_request()?;
        let gas =
            call::estimate_gas(&c.spec, &state, &head, &req, c.btc_at(&head).as_ref(), limits).map_err(call_error)?;
        Ok(json!(qty(gas)))
    });
    sync_method!("eth_getBlockByNumber", |p: Params<'_>, c: &RpcContext| {
        let mut seq = p.sequence();
        let id: BlockId = seq.next()?;
        let full: Option<bool> = seq.optional_next()?;
        block_json(c, c.resolve(id)?, full.unwrap_or(false))
    });
    sync_method!("eth_getBlockByHash", |p: Params<'_>, c: &RpcContext| {
        let mut seq = p.sequence();
        let hash: B256 = seq.next()?;
        let full: Option<bool> = seq.optional_next()?;
        block_json(c, c.resolve(BlockId::Hash(hash))?, full.unwrap_or(false))
    });
    sync_method!("eth_getBlockTransactionCountByNumber", |p: Params<'_>, c: &RpcContext| {
        let id: BlockId = p.one()?;
        tx_count(c, c.resolve(id)?)
    });
    sync_method!("eth_getBlockTransactionCountByHash", |p: Params<'_>, c: &RpcContext| {
        let hash: B256 = p.one()?;
        tx_count(c, c.resolve(BlockId::Hash(hash))?)
    });
    sync_method!("eth_getUncleCountByBlockNumber", |_, _| Ok(json!("0x0")));
    sync_method!("eth_getBlockReceipts", |p: Params<'_>, c: &RpcContext| {
        let id: BlockId = p.one()?;
        let Some(n) = c.resolve(id)? else {
            return Ok(Value::Null);
        };
        let Some(b) = c.block(n)? else {
            return Ok(Value::Null);
        };
        let decoded = b.decoded();
        let mut first_log = 0u64;
        let mut out = Vec::new();
        for (i, (tx, r)) in decoded.iter().zip(&b.receipts).enumerate() {
            out.push(format::receipt(&ReceiptContext {
                receipt: r,
                tx,
                pos: b.position(i as u64),
                first_log_index: first_log,
            }));
            first_log += r.logs.len() as u64;
        }
        Ok(Value::Array(out))
    });
    module
        .register_async_method("eth_getTransactionByHash", |p, c, _| async move {
            metrics::counter!("bss_rpc_requests_total", "method" => "eth_getTransactionByHash").increment(1);
            let hash: B256 = p.one()?;
            if let Some((b, idx)) = c.committed_tx(&hash)? {
                let tx = b.tx(idx as usize)?;
                return Ok::<Value, ErrorObjectOwned>(format::transaction(&tx, Some(b.position(idx))));
            }
            match c.mempool.get(hash).await.map_err(internal)? {
                Some(tx) => Ok(format::transaction(&tx, None)),
                None => Ok(Value::Null),
            }
        })
        .map_err(reg_err)?;
    sync_method!("eth_getTransactionByBlockNumberAndIndex", |p: Params<'_>, c: &RpcContext| {
        let mut seq = p.sequence();
        let id: BlockId = seq.next()?;
        let idx: Quantity = seq.next()?;
        tx_by_index(c, c.resolve(id)?, idx.0)
    });
    sync_method!("eth_getTransactionByBlockHashAndIndex", |p: Params<'_>, c: &RpcContext| {
        let mut seq = p.sequence();
        let hash: B256 = seq.next()?;
        let idx: Quantity = seq.next()?;
        tx_by_index(c, c.resolve(BlockId::Hash(hash))?, idx.0)
    });
    sync_method!("eth_getTransactionReceipt", |p: Params<'_>, c: &RpcContext| {
        let hash: B256 = p.one()?;
        let Some((b, idx)) = c.committed_tx(&hash)? else {
            return Ok(Value::Null);
        };
        let i = idx as usize;
        let tx = b.tx(i)?;
        let r = b.receipts.get(i).ok_or_else(|| internal("receipt missing"))?;
        let first_log = b.receipts[..i].iter().map(|r| r.logs.len() as u64).sum();
        Ok(format::receipt(&ReceiptContext { receipt: r, tx: &tx, pos: b.position(idx), first_log_index: first_log }))
    });
    blocking_method!("eth_getLogs", |p: Params<'_>, c: &RpcContext| {
        let filter: LogFilter = p.one()?;
        let deadline = c.call_limits().deadline;
        let _slot = c.heavy_slot("eth_getLogs")?;
        get_logs(c, &filter, deadline)
    });
    sync_method!("eth_feeHistory", |p: Params<'_>, c: &RpcContext| {
        let mut seq = p.sequence();
        let count: Quantity = seq.next()?;
        let newest: BlockId = seq.next()?;
        let percentiles: Option<Vec<f64>> = seq.optional_next()?;
        fee_history(c, count.0, newest, percentiles.unwrap_or_default())
    });
    Ok(())
}

fn account_params(p: &Params<'_>, c: &RpcContext) -> Result<(Address, crate::hvm::LayeredState), ErrorObjectOwned> {
    let mut seq = p.sequence();
    let addr: Address = seq.next()?;
    let id: Option<BlockId> = seq.optional_next()?;
    let (state, _) = c.state_at(id.unwrap_or(BlockId::Latest))?;
    Ok((addr, state))
}

fn reverted(output: &Bytes) -> ErrorObjectOwned {
    let msg = match revert_reason(output) {
        Some(r) => format!("execution reverted: {r}"),
        None => "execution reverted".to_string(),
    };
    ErrorObjectOwned::owned(EXECUTION_REVERTED, msg, Some(output.clone()))
}

fn call_error(e: CallError) -> ErrorObjectOwned {
    match e {
        CallError::State(s) => internal(s),
        CallError::Invalid(m) if m.starts_with("execution reverted") => {
            ErrorObjectOwned::owned(EXECUTION_REVERTED, m, None::<()>)
        }
        CallError::Invalid(m) => server_error(m),
        CallError::Timeout(_) => {
            metrics::counter!("bss_rpc_refused_total", "reason" => "timeout").increment(1);
            server_error(e.to_string())
        }
    }
}

async fn send_raw(c: &RpcContext, raw: &Bytes) -> RpcResult {
    match c.ingress.admit(raw.clone()).await {
        Ok((hash, _)) => {
            if let Some(n) = &c.network {
                n.gossip(raw.clone());
            }
            Ok(json!(hash))
        }
        // The Byzantine censor mode acknowledges and forgets (what a censoring operator does).
        Err(AdmitError::Censored(hash)) => Ok(json!(hash)),
        Err(AdmitError::Rejected(e)) => Err(server_error(e.to_string())),
        Err(e) => Err(internal(e)),
    }
}

fn block_json(c: &RpcContext, n: Option<u64>, full: bool) -> RpcResult {
    let Some(n) = n else { return Ok(Value::Null) };
    let Some(b) = c.block(n)? else {
        return Ok(Value::Null);
    };
    let decoded = if full { b.decoded() } else { vec![] };
    Ok(format::block(&b.header, &b.body, &b.receipts, c.spec.fee_recipient, full, &decoded))
}

fn tx_count(c: &RpcContext, n: Option<u64>) -> RpcResult {
    let Some(n) = n else { return Ok(Value::Null) };
    Ok(c.block(n)?.map_or(Value::Null, |b| json!(qty(b.body.transactions.len() as u64))))
}

fn tx_by_index(c: &RpcContext, n: Option<u64>, idx: u64) -> RpcResult {
    let Some(n) = n else { return Ok(Value::Null) };
    let Some(b) = c.block(n)? else {
        return Ok(Value::Null);
    };
    if idx as usize >= b.body.transactions.len() {
        return Ok(Value::Null);
    }
    let tx = b.tx(idx as usize)?;
    Ok(format::transaction(&tx, Some(b.position(idx))))
}

/// Most addresses, and most options per topic position, one log filter may name.
const MAX_FILTER_OPTIONS: usize = 1_000;

fn get_logs(c: &RpcContext, f: &LogFilter, deadline: std::time::Instant) -> RpcResult {
    if f.address.0.len() > MAX_FILTER_OPTIONS
        || f.topics.len() > 4
        || f.topics.iter().any(|t| t.0.as_ref().is_some_and(|o| o.len() > MAX_FILTER_OPTIONS))
    {
        return Err(invalid_params(format!(
            "log filter too large: at most {MAX_FILTER_OPTIONS} addresses, 4 topic positions and {MAX_FILTER_OPTIONS} options each"
        )));
    }
    let (from, to) = match f.block_hash {
        Some(h) => {
            if f.from_block.is_some() || f.to_block.is_some() {
                return Err(invalid_params("blockHash cannot be combined with fromBlock/toBlock"));
            }
            let n = c.resolve(BlockId::Hash(h))?.ok_or_else(|| server_error("unknown block"))?;
            (n, n)
        }
        None => {
            let head = c.head()?.number;
            let from = match f.from_block {
                Some(BlockId::Number(n)) => n,
                other => c.resolve(other.unwrap_or(BlockId::Latest))?.unwrap_or(head),
            };
            // The cap applies to the range asked for, even past the head.
            let to = match f.to_block {
                Some(BlockId::Number(n)) => n,
                other => c.resolve(other.unwrap_or(BlockId::Latest))?.unwrap_or(head),
            };
            (from, to)
        }
    };
    if from > to {
        return Err(invalid_params("invalid block range: fromBlock is after toBlock"));
    }
    // Checked: `earliest..0xffffffffffffffff` spans 2^64 blocks, one more than u64 holds.
    if (to - from).checked_add(1).is_none_or(|span| span > c.cfg.max_logs_block_range) {
        return Err(ErrorObjectOwned::owned(
            LIMIT_EXCEEDED,
            format!("query exceeds max block range {}", c.cfg.max_logs_block_range),
            None::<()>,
        ));
    }
    let mut out = Vec::new();
    let head = c.head()?.number;
    for n in from..=to.min(head) {
        if std::time::Instant::now() >= deadline {
            return Err(server_error(format!("query timeout exceeded ({:?}, rpc.call_timeout)", c.cfg.call_timeout)));
        }
        let Some(b) = c.block(n)? else { continue };
        let mut log_index = 0u64;
        for (i, r) in b.receipts.iter().enumerate() {
            for l in &r.logs {
                if matches_filter(l, f) {
                    if out.len() >= c.cfg.max_logs_results {
                        return Err(ErrorObjectOwned::owned(
                            LIMIT_EXCEEDED,
                            format!("query returned more than {} results", c.cfg.max_logs_results),
                            None::<()>,
                        ));
                    }
                    let tx_hash = b.body.tx_hashes.get(i).copied().unwrap_or_default();
                    out.push(format::log(l, b.position(i as u64), tx_hash, log_index));
                }
                log_index += 1;
            }
        }
    }
    Ok(Value::Array(out))
}

fn matches_filter(l: &bss_storage::LogRecord, f: &LogFilter) -> bool {
    if !f.address.0.is_empty() && !f.address.0.contains(&l.address) {
        return false;
    }
    for (i, want) in f.topics.iter().enumerate() {
        if let Some(options) = &want.0 {
            match l.topics.get(i) {
                Some(t) if options.contains(t) => {}
                _ => return false,
            }
        }
    }
    true
}

fn fee_history(c: &RpcContext, count: u64, newest: BlockId, percentiles: Vec<f64>) -> RpcResult {
    if count == 0 {
        return Ok(json!({ "oldestBlock": "0x0", "baseFeePerGas": [], "gasUsedRatio": [] }));
    }
    if percentiles.len() > 100
        || percentiles.windows(2).any(|w| w[0] > w[1])
        || percentiles.iter().any(|p| !(0.0..=100.0).contains(p))
    {
        return Err(invalid_params("reward percentiles must be ascending values in [0, 100]"));
    }
    let newest = c.resolve(newest)?.ok_or_else(|| server_error("header not found"))?;
    let count = count.min(1024).min(newest + 1);
    let oldest = newest + 1 - count;
    let mut base_fees = Vec::new();
    let mut ratios = Vec::new();
    let mut rewards = Vec::new();
    let mut last = None;
    for n in oldest..=newest {
        let b = c.block(n)?.ok_or_else(|| internal("missing block"))?;
        base_fees.push(json!(qty(b.header.base_fee)));
        ratios.push(json!(b.header.gas_used as f64 / b.header.gas_limit.max(1) as f64));
        if !percentiles.is_empty() {
            let mut tips: Vec<(u128, u64)> = b
                .receipts
                .iter()
                .map(|r| (r.effective_gas_price.saturating_sub(u128::from(b.header.base_fee)), r.gas_used))
                .collect();
            tips.sort();
            let total: u64 = tips.iter().map(|t| t.1).sum();
            let row: Vec<Value> = percentiles
                .iter()
                .map(|p| {
                    let threshold = (total as f64 * p / 100.0) as u64;
                    let mut acc = 0u64;
                    let tip = tips.iter().find(|(_, g)| {
                        acc += g;
                        acc >= threshold
                    });
                    json!(qty(tip.or(tips.last()).map_or(0, |t| t.0)))
                })
                .collect();
            rewards.push(Value::Array(row));
        }
        last = Some(b.header);
    }
    if let Some(h) = last {
        base_fees.push(json!(qty(next_base_fee(h.base_fee, h.gas_used, h.gas_limit, c.spec.min_base_fee))));
    }
    let mut out = json!({ "oldestBlock": qty(oldest), "baseFeePerGas": base_fees, "gasUsedRatio": ratios });
    if !percentiles.is_empty() {
        out["reward"] = Value::Array(rewards);
    }
    Ok(out)
}
