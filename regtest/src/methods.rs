//! bitcoind's JSON-RPC methods, with bitcoind's parameters, result shapes, error codes and
//! messages (Bitcoin Core 28).

use super::chain::{ChainError, Entry};
use super::json::{btc, script_pubkey_json, tx_json};
use super::mempool::{btc_per_kvb, Reject};
use super::node::{NodeState, RegtestHandle};
use bitcoin::consensus::encode;
use bitcoin::{Address, BlockHash, Network, OutPoint, ScriptBuf, Transaction, Txid};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::RpcModule;
use serde_json::{json, Value};
use std::str::FromStr;
use std::time::Instant;

const RPC_MISC_ERROR: i32 = -1;
const RPC_INVALID_ADDRESS_OR_KEY: i32 = -5;
const RPC_INVALID_PARAMETER: i32 = -8;
const RPC_DESERIALIZATION_ERROR: i32 = -22;
const RPC_VERIFY_ERROR: i32 = -25;
const RPC_VERIFY_REJECTED: i32 = -26;
const RPC_VERIFY_ALREADY_IN_CHAIN: i32 = -27;

/// bitcoind's default `maxfeerate` for sendrawtransaction / testmempoolaccept: 0.10 BTC/kvB.
const DEFAULT_MAX_FEE_KVB: u64 = 10_000_000;

type RpcResult = Result<Value, ErrorObjectOwned>;

fn err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, msg.into(), None::<()>)
}

pub struct Ctx {
    pub node: RegtestHandle,
    pub started: Instant,
}

impl Ctx {
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut NodeState) -> T + Send + 'static,
    ) -> Result<T, ErrorObjectOwned> {
        self.node.with(f).await.ok_or_else(|| err(RPC_MISC_ERROR, "node stopped"))
    }
}

/// Positional parameters, read in order.
struct Args {
    values: Vec<Value>,
}

impl Args {
    fn new(p: &Params<'_>) -> Result<Self, ErrorObjectOwned> {
        if p.as_str().is_none() {
            return Ok(Self { values: vec![] });
        }
        let values: Vec<Value> = p.parse().map_err(|_| err(RPC_INVALID_PARAMETER, "params must be an array"))?;
        Ok(Self { values })
    }

    fn get(&self, i: usize) -> Option<&Value> {
        self.values.get(i).filter(|v| !v.is_null())
    }

    fn required(&self, i: usize, name: &str) -> Result<&Value, ErrorObjectOwned> {
        self.get(i).ok_or_else(|| err(RPC_INVALID_PARAMETER, format!("Missing required parameter: {name}")))
    }

    fn string(&self, i: usize, name: &str) -> Result<String, ErrorObjectOwned> {
        self.required(i, name)?.as_str().map(str::to_string).ok_or_else(|| {
            err(-3, format!("JSON value of type {} is not of expected type string", kind(&self.values[i])))
        })
    }

    fn int(&self, i: usize, name: &str) -> Result<i64, ErrorObjectOwned> {
        self.required(i, name)?.as_i64().ok_or_else(|| {
            err(-3, format!("JSON value of type {} is not of expected type number", kind(&self.values[i])))
        })
    }

    fn opt_bool(&self, i: usize, default: bool) -> Result<bool, ErrorObjectOwned> {
        match self.get(i) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(err(-3, format!("JSON value of type {} is not of expected type bool", kind(v)))),
        }
    }

    /// A BTC/kvB fee rate, in sat/kvB.
    fn feerate(&self, i: usize, default: u64) -> Result<u64, ErrorObjectOwned> {
        match self.get(i) {
            None => Ok(default),
            Some(v) => {
                let f = v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
                let f = f.filter(|f| *f >= 0.0).ok_or_else(|| err(-3, "Amount out of range"))?;
                Ok((f * 100_000_000.0).round() as u64)
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn parse_hex_hash<T: FromStr>(s: &str, what: &str) -> Result<T, ErrorObjectOwned> {
    if s.len() != 64 {
        return Err(err(RPC_INVALID_PARAMETER, format!("{what} must be of length 64 (not {}, for '{s}')", s.len())));
    }
    T::from_str(s).map_err(|_| err(RPC_INVALID_PARAMETER, format!("{what} must be hexadecimal string (not '{s}')")))
}

fn decode_tx(hex_str: &str) -> Result<Transaction, ErrorObjectOwned> {
    hex::decode(hex_str)
        .ok()
        .and_then(|b| encode::deserialize::<Transaction>(&b).ok())
        .filter(|t| !t.input.is_empty())
        .ok_or_else(|| err(RPC_DESERIALIZATION_ERROR, "TX decode failed. Make sure the tx has at least one input."))
}

fn regtest_address(s: &str) -> Option<Address> {
    Address::from_str(s).ok().and_then(|a| a.require_network(Network::Regtest).ok())
}

fn chain_result(r: Result<(), ChainError>) -> RpcResult {
    match r {
        Ok(()) => Ok(Value::Null),
        Err(ChainError::NotFound) => Err(err(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")),
        Err(e) => Err(err(RPC_MISC_ERROR, e.to_string())),
    }
}

fn header_json(s: &NodeState, e: &Entry) -> Value {
    let h = &e.block.header;
    let hash = e.block.block_hash();
    let mut v = json!({
        "hash": hash.to_string(),
        "confirmations": s.chain.confirmations(&hash),
        "height": e.height,
        "version": h.version.to_consensus(),
        "versionHex": format!("{:08x}", h.version.to_consensus()),
        "merkleroot": h.merkle_root.to_string(),
        "time": h.time,
        "mediantime": h.time,
        "nonce": h.nonce,
        "bits": format!("{:08x}", h.bits.to_consensus()),
        "difficulty": h.difficulty_float(),
        "chainwork": hex::encode(e.chain_work.to_be_bytes()),
        "nTx": e.block.txdata.len(),
    });
    if e.height > 0 {
        v["previousblockhash"] = json!(h.prev_blockhash.to_string());
    }
    if s.chain.is_active(&hash) {
        if let Some(n) = s.chain.hash_at(e.height + 1) {
            v["nextblockhash"] = json!(n.to_string());
        }
    }
    v
}

fn block_json(s: &NodeState, e: &Entry, verbosity: u64) -> Value {
    let mut v = header_json(s, e);
    let (weight, total) = (e.block.weight().to_wu() as usize, e.block.total_size());
    v["size"] = json!(total);
    // Stripped size = (weight − total size) / 3, since weight = 3 × base + total.
    v["strippedsize"] = json!((weight - total) / 3);
    v["weight"] = json!(weight);
    v["tx"] = if verbosity >= 2 {
        e.block
            .txdata
            .iter()
            .map(|t| {
                let prev: Option<Vec<_>> = t.input.iter().map(|i| s.prevout(&i.previous_output)).collect();
                let mut j = tx_json(t, prev.as_deref());
                j["hex"] = json!(hex::encode(encode::serialize(t)));
                j
            })
            .collect()
    } else {
        json!(e.block.txdata.iter().map(|t| t.compute_txid().to_string()).collect::<Vec<_>>())
    };
    v
}

fn mempool_entry_json(s: &NodeState, txid: &Txid) -> Option<Value> {
    let e = s.mempool.get(txid)?;
    let ancestors = s.mempool.with_ancestors(*txid);
    let descendants = s.mempool.with_descendants(*txid);
    let sum = |set: &std::collections::HashSet<Txid>| {
        set.iter()
            .filter_map(|t| s.mempool.get(t))
            .fold((0u64, bitcoin::Amount::ZERO), |(v, f), e| (v + e.vsize, f + e.fee))
    };
    let (asize, afee) = sum(&ancestors);
    let (dsize, dfee) = sum(&descendants);
    Some(json!({
        "vsize": e.vsize,
        "weight": e.weight,
        "time": e.time,
        "height": e.height,
        "descendantcount": descendants.len(),
        "descendantsize": dsize,
        "ancestorcount": ancestors.len(),
        "ancestorsize": asize,
        "wtxid": e.tx.compute_wtxid().to_string(),
        "fees": { "base": btc(e.fee), "modified": btc(e.fee), "ancestor": btc(afee), "descendant": btc(dfee) },
        "depends": s.mempool.parents(txid).iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "spentby": s.mempool.children(txid).iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        // Full RBF (Core 28's default): every mempool tx can be replaced.
        "bip125-replaceable": true,
        "unbroadcast": false,
    }))
}

fn reject_error(r: Reject) -> ErrorObjectOwned {
    match r {
        Reject::AlreadyInChain => err(RPC_VERIFY_ALREADY_IN_CHAIN, r.to_string()),
        Reject::MissingInputs | Reject::MaxFeeExceeded => err(RPC_VERIFY_ERROR, r.to_string()),
        other => err(RPC_VERIFY_REJECTED, other.to_string()),
    }
}

pub fn module(ctx: Ctx) -> Result<RpcModule<Ctx>, jsonrpsee::core::RegisterMethodError> {
    let mut m = RpcModule::new(ctx);
    register_chain(&mut m)?;
    register_transactions(&mut m)?;
    register_mining(&mut m)?;
    m.register_method("uptime", |_, c, _| json!(c.started.elapsed().as_secs()))?;
    m.register_method("getnetworkinfo", |_, _, _| {
        json!({
            "version": 280000,
            "subversion": format!("/bss-regtest:{}/", env!("CARGO_PKG_VERSION")),
            "protocolversion": 70016,
            "localservices": "0000000000000409",
            "localrelay": true,
            "timeoffset": 0,
            "networkactive": true,
            "connections": 0,
            "networks": [],
            "relayfee": btc_per_kvb(super::mempool::MIN_RELAY_SAT_PER_KVB),
            "incrementalfee": btc_per_kvb(super::mempool::MIN_RELAY_SAT_PER_KVB),
            "localaddresses": [],
            "warnings": [],
        })
    })?;
    Ok(m)
}

fn register_chain(m: &mut RpcModule<Ctx>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_async_method("getblockcount", |_, c, _| async move { c.run(|s| json!(s.tip_height())).await })?;
    m.register_async_method("getbestblockhash", |_, c, _| async move {
        c.run(|s| json!(s.chain.tip().block.block_hash().to_string())).await
    })?;
    m.register_async_method("getblockchaininfo", |_, c, _| async move {
        c.run(|s| {
            let t = s.chain.tip();
            json!({
                "chain": "regtest",
                "blocks": t.height,
                "headers": t.height,
                "bestblockhash": t.block.block_hash().to_string(),
                "difficulty": t.block.header.difficulty_float(),
                "time": t.block.header.time,
                "mediantime": t.block.header.time,
                "verificationprogress": 1.0,
                "initialblockdownload": false,
                "chainwork": hex::encode(t.chain_work.to_be_bytes()),
                "size_on_disk": 0,
                "pruned": false,
                "warnings": [],
            })
        })
        .await
    })?;
    m.register_async_method("getblockhash", |p, c, _| async move {
        let h = Args::new(&p)?.int(0, "height")?;
        let hash = match u64::try_from(h) {
            Ok(h) => c.run(move |s| s.chain.hash_at(h)).await?,
            Err(_) => None,
        };
        hash.map(|h| json!(h.to_string())).ok_or_else(|| err(RPC_INVALID_PARAMETER, "Block height out of range"))
    })?;
    m.register_async_method("getblockheader", |p, c, _| async move {
        let a = Args::new(&p)?;
        let hash: BlockHash = parse_hex_hash(&a.string(0, "blockhash")?, "blockhash")?;
        let verbose = a.opt_bool(1, true)?;
        c.run(move |s| -> RpcResult {
            let e = s.chain.get(&hash).ok_or_else(|| err(RPC_INVALID_ADDRESS_OR_KEY, "Block not found"))?;
            Ok(if verbose { header_json(s, e) } else { json!(hex::encode(encode::serialize(&e.block.header))) })
        })
        .await?
    })?;
    m.register_async_method("getblock", |p, c, _| async move {
        let a = Args::new(&p)?;
        let hash: BlockHash = parse_hex_hash(&a.string(0, "blockhash")?, "blockhash")?;
        let verbosity = match a.get(1) {
            None => 1,
            Some(Value::Bool(b)) => u64::from(*b),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| err(-3, "verbosity must be a non-negative number"))?,
            Some(v) => return Err(err(-3, format!("JSON value of type {} is not of expected type number", kind(v)))),
        };
        c.run(move |s| -> RpcResult {
            let e = s.chain.get(&hash).ok_or_else(|| err(RPC_INVALID_ADDRESS_OR_KEY, "Block not found"))?;
            Ok(match verbosity {
                0 => json!(hex::encode(encode::serialize(&e.block))),
                v => block_json(s, e, v),
            })
        })
        .await?
    })?;
    m.register_async_method("invalidateblock", |p, c, _| async move {
        let hash: BlockHash = parse_hex_hash(&Args::new(&p)?.string(0, "blockhash")?, "blockhash")?;
        chain_result(c.run(move |s| s.invalidate(&hash)).await?)
    })?;
    m.register_async_method("reconsiderblock", |p, c, _| async move {
        let hash: BlockHash = parse_hex_hash(&Args::new(&p)?.string(0, "blockhash")?, "blockhash")?;
        chain_result(c.run(move |s| s.reconsider(&hash)).await?)
    })?;
    m.register_async_method("gettxout", |p, c, _| async move {
        let a = Args::new(&p)?;
        let txid: Txid = parse_hex_hash(&a.string(0, "txid")?, "txid")?;
        let vout = u32::try_from(a.int(1, "n")?).map_err(|_| err(RPC_INVALID_PARAMETER, "Invalid vout"))?;
        let include_mempool = a.opt_bool(2, true)?;
        c.run(move |s| {
            let Some((coin, conf)) = s.txout(&OutPoint::new(txid, vout), include_mempool) else { return Value::Null };
            json!({
                "bestblock": s.chain.tip().block.block_hash().to_string(),
                "confirmations": conf,
                "value": btc(coin.out.value),
                "scriptPubKey": script_pubkey_json(&coin.out.script_pubkey),
                "coinbase": coin.coinbase,
            })
        })
        .await
    })?;
    Ok(())
}

fn register_transactions(m: &mut RpcModule<Ctx>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_method("decoderawtransaction", |p, _, _| {
        let tx = decode_tx(&Args::new(&p)?.string(0, "hexstring")?)?;
        Ok::<Value, ErrorObjectOwned>(tx_json(&tx, None))
    })?;
    m.register_async_method("getrawtransaction", |p, c, _| async move {
        let a = Args::new(&p)?;
        let txid: Txid = parse_hex_hash(&a.string(0, "txid")?, "txid")?;
        let verbose = match a.get(1) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0) > 0,
            Some(v) => return Err(err(-3, format!("JSON value of type {} is not of expected type number", kind(v)))),
        };
        let in_block: Option<BlockHash> = match a.get(2) {
            Some(v) => Some(parse_hex_hash(v.as_str().unwrap_or_default(), "parameter 3")?),
            None => None,
        };
        c.run(move |s| -> RpcResult {
            let info = match in_block {
                Some(b) => {
                    let e = s.chain.get(&b).ok_or_else(|| err(RPC_INVALID_ADDRESS_OR_KEY, "Block hash not found"))?;
                    let tx = e.block.txdata.iter().find(|t| t.compute_txid() == txid).cloned().ok_or_else(|| {
                        err(
                            RPC_INVALID_ADDRESS_OR_KEY,
                            "No such transaction found in the provided block. Use gettransaction for wallet transactions.",
                        )
                    })?;
                    super::node::TxInfo {
                        tx,
                        block: Some((b, e.height, s.chain.confirmations(&b), e.block.header.time)),
                    }
                }
                None => s.transaction(&txid).ok_or_else(|| {
                    err(
                        RPC_INVALID_ADDRESS_OR_KEY,
                        "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
                    )
                })?,
            };
            let raw = hex::encode(encode::serialize(&info.tx));
            if !verbose {
                return Ok(json!(raw));
            }
            let mut v = tx_json(&info.tx, None);
            v["hex"] = json!(raw);
            if let Some((hash, _, conf, time)) = info.block {
                if in_block.is_some() {
                    v["in_active_chain"] = json!(s.chain.is_active(&hash));
                }
                v["blockhash"] = json!(hash.to_string());
                if conf > 0 {
                    v["confirmations"] = json!(conf);
                    v["time"] = json!(time);
                    v["blocktime"] = json!(time);
                } else {
                    v["confirmations"] = json!(0);
                }
            }
            Ok(v)
        })
        .await?
    })?;
    m.register_async_method("sendrawtransaction", |p, c, _| async move {
        let a = Args::new(&p)?;
        let tx = decode_tx(&a.string(0, "hexstring")?)?;
        let max_fee = a.feerate(1, DEFAULT_MAX_FEE_KVB)?;
        let txid = tx.compute_txid();
        match c.run(move |s| s.submit(tx, max_fee, false)).await? {
            // bitcoind answers a resubmission of a mempool tx with its txid.
            Ok(_) | Err(Reject::AlreadyInMempool) => Ok(json!(txid.to_string())),
            Err(r) => Err(reject_error(r)),
        }
    })?;
    m.register_async_method("testmempoolaccept", |p, c, _| async move {
        let a = Args::new(&p)?;
        let raw = a.required(0, "rawtxs")?.as_array().cloned().ok_or_else(|| err(-3, "rawtxs must be an array"))?;
        if raw.is_empty() || raw.len() > 25 {
            return Err(err(RPC_INVALID_PARAMETER, "Array must contain between 1 and 25 transactions."));
        }
        let txs = raw.iter().map(|v| decode_tx(v.as_str().unwrap_or_default())).collect::<Result<Vec<_>, _>>()?;
        let max_fee = a.feerate(1, DEFAULT_MAX_FEE_KVB)?;
        c.run(move |s| {
            let out: Vec<Value> = txs
                .into_iter()
                .map(|tx| {
                    let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
                    match s.submit(tx, max_fee, true) {
                        Ok(acc) => json!({
                            "txid": txid.to_string(),
                            "wtxid": wtxid.to_string(),
                            "allowed": true,
                            "vsize": acc.vsize,
                            "fees": {
                                "base": btc(acc.fee),
                                "effective-feerate": btc_per_kvb(acc.fee.to_sat() * 1000 / acc.vsize.max(1)),
                                "effective-includes": [wtxid.to_string()],
                            },
                        }),
                        Err(r) => {
                            let reason = match r {
                                Reject::MissingInputs => "missing-inputs".to_string(),
                                Reject::MaxFeeExceeded => "max-fee-exceeded".to_string(),
                                other => other.to_string(),
                            };
                            json!({ "txid": txid.to_string(), "wtxid": wtxid.to_string(), "allowed": false, "reject-reason": reason })
                        }
                    }
                })
                .collect();
            json!(out)
        })
        .await
    })?;
    // Not a bitcoind RPC (bitcoind takes `-minrelaytxfee` at start): the embedded regtest's way
    // to play a fee market in tests. Takes BTC/kvB, as bitcoind's fee rates are written.
    m.register_async_method("setminrelaytxfee", |p, c, _| async move {
        let a = Args::new(&p)?;
        let rate = a.feerate(0, super::mempool::MIN_RELAY_SAT_PER_KVB)?;
        if !(super::mempool::MIN_RELAY_SAT_PER_KVB..=10_000_000).contains(&rate) {
            return Err(err(-8, "minrelaytxfee must be between 0.00001 and 0.1 BTC/kvB"));
        }
        c.run(move |s| {
            s.mempool.min_relay_kvb = rate;
            json!(true)
        })
        .await
    })?;
    m.register_async_method("getmempoolinfo", |_, c, _| async move {
        c.run(|s| {
            let entries = s.mempool.ordered();
            json!({
                "loaded": true,
                "size": entries.len(),
                "bytes": entries.iter().map(|e| e.vsize).sum::<u64>(),
                "minrelaytxfee": btc_per_kvb(s.mempool.min_relay_kvb),
                "mempoolminfee": btc_per_kvb(s.mempool.min_relay_kvb),
                "incrementalrelayfee": btc_per_kvb(super::mempool::MIN_RELAY_SAT_PER_KVB),
                "fullrbf": true,
            })
        })
        .await
    })?;
    m.register_async_method("getrawmempool", |p, c, _| async move {
        let verbose = Args::new(&p)?.opt_bool(0, false)?;
        c.run(move |s| {
            let ids: Vec<Txid> = s.mempool.ordered().iter().map(|e| e.txid).collect();
            if verbose {
                let map: serde_json::Map<String, Value> =
                    ids.iter().filter_map(|t| Some((t.to_string(), mempool_entry_json(s, t)?))).collect();
                Value::Object(map)
            } else {
                json!(ids.iter().map(|t| t.to_string()).collect::<Vec<_>>())
            }
        })
        .await
    })?;
    m.register_async_method("getmempoolentry", |p, c, _| async move {
        let txid: Txid = parse_hex_hash(&Args::new(&p)?.string(0, "txid")?, "txid")?;
        c.run(move |s| mempool_entry_json(s, &txid))
            .await?
            .ok_or_else(|| err(RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool"))
    })?;
    m.register_async_method("estimatesmartfee", |p, c, _| async move {
        let a = Args::new(&p)?;
        let target = a.int(0, "conf_target")?;
        if !(1..=1008).contains(&target) {
            return Err(err(RPC_INVALID_PARAMETER, "Invalid conf_target, must be between 1 and 1008"));
        }
        if let Some(mode) = a.get(1) {
            let ok = mode
                .as_str()
                .is_some_and(|m| ["unset", "economical", "conservative"].contains(&m.to_ascii_lowercase().as_str()));
            if !ok {
                return Err(err(
                    RPC_INVALID_PARAMETER,
                    "Invalid estimate_mode parameter, must be one of: \"unset\", \"economical\", \"conservative\"",
                ));
            }
        }
        let target = target as u64;
        Ok(match c.run(move |s| s.estimate_fee(target)).await? {
            Some(rate) => json!({ "feerate": btc_per_kvb(rate), "blocks": target }),
            None => json!({ "errors": ["Insufficient data or no feerate found"], "blocks": 0 }),
        })
    })?;
    Ok(())
}

fn register_mining(m: &mut RpcModule<Ctx>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_async_method("generatetoaddress", |p, c, _| async move {
        let a = Args::new(&p)?;
        let n = a.int(0, "nblocks")?;
        let address = regtest_address(&a.string(1, "address")?)
            .ok_or_else(|| err(RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address"))?;
        let n = u64::try_from(n).map_err(|_| err(RPC_INVALID_PARAMETER, "nblocks must be non-negative"))?;
        let hashes = c.node.mine(n, address.script_pubkey()).await.map_err(|e| err(RPC_MISC_ERROR, e))?;
        Ok::<Value, ErrorObjectOwned>(json!(hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>()))
    })?;
    m.register_async_method("generateblock", |p, c, _| async move {
        let a = Args::new(&p)?;
        let output = a.string(0, "output")?;
        let script: ScriptBuf = regtest_address(&output)
            .map(|a| a.script_pubkey())
            .ok_or_else(|| err(RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address or descriptor"))?;
        let items = a
            .required(1, "transactions")?
            .as_array()
            .cloned()
            .ok_or_else(|| err(-3, "transactions must be an array"))?;
        let submit = a.opt_bool(2, true)?;
        c.run(move |s| -> RpcResult {
            let mut txs = vec![];
            for item in items {
                let text = item.as_str().unwrap_or_default();
                if let Ok(txid) = Txid::from_str(text) {
                    let e = s.mempool.get(&txid).ok_or_else(|| {
                        err(RPC_INVALID_ADDRESS_OR_KEY, format!("Transaction {txid} not in mempool."))
                    })?;
                    txs.push(e.tx.clone());
                } else {
                    let tx =
                        hex::decode(text).ok().and_then(|b| encode::deserialize::<Transaction>(&b).ok()).ok_or_else(
                            || {
                                err(
                            RPC_DESERIALIZATION_ERROR,
                            format!("Transaction decode failed for {text}. Make sure the tx has at least one input."),
                        )
                            },
                        )?;
                    txs.push(tx);
                }
            }
            if !submit {
                let block = s
                    .unsubmitted_block(&script, txs)
                    .map_err(|e| err(RPC_VERIFY_ERROR, format!("TestBlockValidity failed: {e}")))?;
                return Ok(
                    json!({ "hash": block.block_hash().to_string(), "hex": hex::encode(encode::serialize(&block)) }),
                );
            }
            let hash = s
                .mine_one(&script, Some(txs))
                .map_err(|e| err(RPC_VERIFY_ERROR, format!("TestBlockValidity failed: {e}")))?;
            Ok(json!({ "hash": hash.to_string() }))
        })
        .await?
    })?;
    Ok(())
}
