//! bitcoind's JSON-RPC surface for the methods implemented so far, with bitcoind's shapes,
//! error codes and HTTP basic auth (user/password, or a cookie file in the data dir).

use super::chain::ChainError;
use super::node::{BlockInfo, RegtestHandle};
use bitcoin::consensus::encode;
use bitcoin::{Address, BlockHash, Network};
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse, Server, ServerHandle};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::RpcModule;
use serde_json::{json, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};

/// bitcoind's error codes.
const RPC_MISC_ERROR: i32 = -1;
const RPC_INVALID_ADDRESS_OR_KEY: i32 = -5;
const RPC_INVALID_PARAMETER: i32 = -8;

fn err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, msg.into(), None::<()>)
}

pub struct Ctx {
    pub node: RegtestHandle,
    pub started: Instant,
}

fn parse_hash(p: &Params<'_>) -> Result<BlockHash, ErrorObjectOwned> {
    let s: String = p.sequence().next()?;
    BlockHash::from_str(&s)
        .map_err(|_| err(RPC_INVALID_PARAMETER, format!("blockhash must be of length 64 (not {}, for '{s}')", s.len())))
}

/// bitcoind's answer to invalidateblock / reconsiderblock.
fn chain_result(r: Result<(), ChainError>) -> Result<Value, ErrorObjectOwned> {
    match r {
        Ok(()) => Ok(Value::Null),
        Err(ChainError::NotFound) => Err(err(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")),
        Err(e) => Err(err(RPC_MISC_ERROR, e.to_string())),
    }
}

fn header_json(i: &BlockInfo) -> Value {
    let h = &i.block.header;
    let mut v = json!({
        "hash": i.block.block_hash().to_string(),
        "confirmations": i.confirmations,
        "height": i.height,
        "version": h.version.to_consensus(),
        "versionHex": format!("{:08x}", h.version.to_consensus()),
        "merkleroot": h.merkle_root.to_string(),
        "time": h.time,
        "mediantime": h.time,
        "nonce": h.nonce,
        "bits": format!("{:08x}", h.bits.to_consensus()),
        "difficulty": h.difficulty_float(),
        "chainwork": i.chain_work,
        "nTx": i.block.txdata.len(),
    });
    if i.height > 0 {
        v["previousblockhash"] = json!(h.prev_blockhash.to_string());
    }
    if let Some(n) = i.next {
        v["nextblockhash"] = json!(n.to_string());
    }
    v
}

pub fn module(ctx: Ctx) -> Result<RpcModule<Ctx>, jsonrpsee::core::RegisterMethodError> {
    let mut m = RpcModule::new(ctx);
    m.register_async_method("getblockcount", |_, c, _| async move {
        let t = c.node.tip().await.ok_or_else(|| err(RPC_MISC_ERROR, "node stopped"))?;
        Ok::<Value, ErrorObjectOwned>(json!(t.height))
    })?;
    m.register_async_method("getbestblockhash", |_, c, _| async move {
        let t = c.node.tip().await.ok_or_else(|| err(RPC_MISC_ERROR, "node stopped"))?;
        Ok::<Value, ErrorObjectOwned>(json!(t.hash.to_string()))
    })?;
    m.register_async_method("getblockchaininfo", |_, c, _| async move {
        let t = c.node.tip().await.ok_or_else(|| err(RPC_MISC_ERROR, "node stopped"))?;
        Ok::<Value, ErrorObjectOwned>(json!({
            "chain": "regtest",
            "blocks": t.height,
            "headers": t.height,
            "bestblockhash": t.hash.to_string(),
            "difficulty": 4.656542373906925e-10,
            "time": t.time,
            "mediantime": t.time,
            "verificationprogress": 1.0,
            "initialblockdownload": false,
            "chainwork": t.chain_work,
            "size_on_disk": 0,
            "pruned": false,
            "warnings": [],
        }))
    })?;
    m.register_async_method("getblockhash", |p, c, _| async move {
        let h: i64 = p.one()?;
        let hash = match u64::try_from(h) {
            Ok(h) => c.node.hash_at(h).await,
            Err(_) => None,
        };
        hash.map(|h| json!(h.to_string())).ok_or_else(|| err(RPC_INVALID_PARAMETER, "Block height out of range"))
    })?;
    m.register_async_method("getblockheader", |p, c, _| async move {
        let hash = parse_hash(&p)?;
        let verbose = {
            let mut s = p.sequence();
            let _: String = s.next()?;
            s.optional_next::<bool>()?.unwrap_or(true)
        };
        let info = c.node.block(hash).await.ok_or_else(|| err(RPC_INVALID_ADDRESS_OR_KEY, "Block not found"))?;
        Ok::<Value, ErrorObjectOwned>(if verbose {
            header_json(&info)
        } else {
            json!(hex::encode(encode::serialize(&info.block.header)))
        })
    })?;
    m.register_async_method("getblock", |p, c, _| async move {
        let hash = parse_hash(&p)?;
        let verbosity = {
            let mut s = p.sequence();
            let _: String = s.next()?;
            match s.optional_next::<Value>()? {
                None => 1,
                Some(Value::Bool(b)) => u8::from(b),
                Some(Value::Number(n)) => n.as_u64().unwrap_or(1) as u8,
                Some(_) => return Err(err(RPC_INVALID_PARAMETER, "verbosity must be a number")),
            }
        };
        let info = c.node.block(hash).await.ok_or_else(|| err(RPC_INVALID_ADDRESS_OR_KEY, "Block not found"))?;
        match verbosity {
            0 => Ok(json!(hex::encode(encode::serialize(&info.block)))),
            1 => {
                let mut v = header_json(&info);
                v["size"] = json!(info.block.total_size());
                // Stripped size = (weight − total size) / 3, since weight = 3 × base + total.
                let (weight, total) = (info.block.weight().to_wu() as usize, info.block.total_size());
                v["strippedsize"] = json!((weight - total) / 3);
                v["weight"] = json!(info.block.weight().to_wu());
                v["tx"] = json!(info.block.txdata.iter().map(|t| t.compute_txid().to_string()).collect::<Vec<_>>());
                Ok(v)
            }
            _ => Err(err(RPC_INVALID_PARAMETER, "verbosity 2 is not supported by this node yet")),
        }
    })?;
    m.register_async_method("generatetoaddress", |p, c, _| async move {
        let mut s = p.sequence();
        let n: i64 = s.next()?;
        let addr: String = s.next()?;
        let address = Address::from_str(&addr)
            .ok()
            .and_then(|a| a.require_network(Network::Regtest).ok())
            .ok_or_else(|| err(RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address"))?;
        let n = u64::try_from(n).map_err(|_| err(RPC_INVALID_PARAMETER, "nblocks must be non-negative"))?;
        let hashes = c.node.mine(n, address.script_pubkey()).await.map_err(|e| err(RPC_MISC_ERROR, e))?;
        Ok::<Value, ErrorObjectOwned>(json!(hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>()))
    })?;
    m.register_async_method("invalidateblock", |p, c, _| async move {
        chain_result(c.node.invalidate(parse_hash(&p)?).await)
    })?;
    m.register_async_method("reconsiderblock", |p, c, _| async move {
        chain_result(c.node.reconsider(parse_hash(&p)?).await)
    })?;
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
            "relayfee": 0.00001,
            "incrementalfee": 0.00001,
            "localaddresses": [],
            "warnings": [],
        })
    })?;
    Ok(m)
}

/// What sits in front of the JSON-RPC service to make it answer like bitcoind: HTTP basic auth
/// (401 with an empty body when it fails), requests in JSON-RPC 1.0 style accepted, and replies
/// that always carry both `result` and `error` (bitcoind's shape, which 1.0 clients index).
#[derive(Clone)]
pub struct BitcoindCompat {
    pub expected_auth: String,
}

impl<S> Layer<S> for BitcoindCompat {
    type Service = CompatService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CompatService { inner, expected: self.expected_auth.clone() }
    }
}

#[derive(Clone)]
pub struct CompatService<S> {
    inner: S,
    expected: String,
}

fn status(code: http::StatusCode, body: String) -> HttpResponse {
    let mut res = HttpResponse::new(HttpBody::from(body));
    *res.status_mut() = code;
    res
}

/// Sets `"jsonrpc": "2.0"` on every request object (1.0 clients send "1.0" or nothing).
fn upgrade_request(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.insert("jsonrpc".into(), json!("2.0"));
        }
        Value::Array(a) => a.iter_mut().for_each(upgrade_request),
        _ => {}
    }
}

/// Adds the missing one of `result` / `error`, as bitcoind always returns both.
fn bitcoind_reply(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.entry("result").or_insert(Value::Null);
            o.entry("error").or_insert(Value::Null);
        }
        Value::Array(a) => a.iter_mut().for_each(bitcoind_reply),
        _ => {}
    }
}

impl<S> Service<HttpRequest<HttpBody>> for CompatService<S>
where
    S: Service<HttpRequest<HttpBody>, Response = HttpResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: HttpRequest<HttpBody>) -> Self::Future {
        let authorized = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == self.expected);
        if !authorized {
            let mut res = status(http::StatusCode::UNAUTHORIZED, String::new());
            res.headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Basic realm=\"jsonrpc\""));
            return Box::pin(async move { Ok(res) });
        }
        let mut inner = self.inner.clone();
        Box::pin(async move {
            use http_body_util::BodyExt;
            let (mut parts, body) = req.into_parts();
            // The body is rewritten: its length header no longer applies. bitcoind does not insist
            // on a content type; the server underneath does.
            parts.headers.remove(http::header::CONTENT_LENGTH);
            parts.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
            let bytes = match body.collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return Ok(status(http::StatusCode::BAD_REQUEST, String::new())),
            };
            let body = match serde_json::from_slice::<Value>(&bytes) {
                Ok(mut v) => {
                    upgrade_request(&mut v);
                    v.to_string()
                }
                // Let the server produce its own parse error.
                Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
            };
            let res = inner.call(HttpRequest::from_parts(parts, HttpBody::from(body))).await?;
            let (mut parts, body) = res.into_parts();
            parts.headers.remove(http::header::CONTENT_LENGTH);
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let out = match serde_json::from_slice::<Value>(&bytes) {
                Ok(mut v) => {
                    bitcoind_reply(&mut v);
                    v.to_string()
                }
                Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
            };
            Ok(HttpResponse::from_parts(parts, HttpBody::from(out)))
        })
    }
}

pub async fn serve(
    addr: SocketAddr,
    user: &str,
    password: &str,
    ctx: Ctx,
) -> std::io::Result<(ServerHandle, SocketAddr)> {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let module = module(ctx).map_err(|e| std::io::Error::other(e.to_string()))?;
    let server = Server::builder()
        .set_http_middleware(
            tower::ServiceBuilder::new().layer(BitcoindCompat { expected_auth: format!("Basic {token}") }),
        )
        .build(addr)
        .await?;
    let bound = server.local_addr()?;
    Ok((server.start(module), bound))
}
