//! Plain HTTP routes served beside JSON-RPC on the same port: `GET /metrics`, `GET /health`;
//! and the Origin policy for browsers: a request whose `Origin` is not in `rpc.cors_origins` is
//! refused with 403 (JSON-RPC and WebSocket upgrades alike), an allowed one gets CORS headers and
//! its preflight answered.

use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use metrics_exporter_prometheus::PrometheusHandle;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

#[derive(Clone)]
pub struct HttpRoutesLayer {
    pub metrics: Option<PrometheusHandle>,
    pub cfg: Arc<super::RpcConfig>,
}

impl<S> Layer<S> for HttpRoutesLayer {
    type Service = HttpRoutes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpRoutes { inner, metrics: self.metrics.clone(), cfg: self.cfg.clone() }
    }
}

#[derive(Clone)]
pub struct HttpRoutes<S> {
    inner: S,
    metrics: Option<PrometheusHandle>,
    cfg: Arc<super::RpcConfig>,
}

fn cors(res: &mut HttpResponse, origin: &http::HeaderValue) {
    let h = res.headers_mut();
    h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    h.insert(http::header::VARY, http::HeaderValue::from_static("origin"));
    h.insert(http::header::ACCESS_CONTROL_ALLOW_METHODS, http::HeaderValue::from_static("POST, GET, OPTIONS"));
    h.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, http::HeaderValue::from_static("content-type"));
}

fn text(status: u16, content_type: &'static str, body: String) -> HttpResponse {
    let mut res = HttpResponse::new(HttpBody::from(body));
    *res.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    res
}

impl<S, B> Service<HttpRequest<B>> for HttpRoutes<S>
where
    S: Service<HttpRequest<B>, Response = HttpResponse>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: HttpRequest<B>) -> Self::Future {
        let origin = req.headers().get(http::header::ORIGIN).cloned();
        if let Some(o) = &origin {
            if !o.to_str().is_ok_and(|o| self.cfg.origin_allowed(o)) {
                metrics::counter!("bss_rpc_refused_total", "reason" => "origin").increment(1);
                let body = format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{{\"code\":-32001,\"message\":\"origin {} is not allowed (rpc.cors_origins)\"}}}}",
                    o.to_str().unwrap_or("?").replace(['"', '\\'], "")
                );
                let res = text(403, "application/json", body);
                return Box::pin(async move { Ok(res) });
            }
            if req.method() == http::Method::OPTIONS {
                let mut res = text(204, "text/plain", String::new());
                cors(&mut res, o);
                return Box::pin(async move { Ok(res) });
            }
        }
        // WebSocket upgrades are GET / too: they belong to the JSON-RPC server.
        let upgrade = req.headers().contains_key(http::header::UPGRADE);
        if req.method() == http::Method::GET && !upgrade {
            match req.uri().path() {
                "/metrics" => {
                    let body = self.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
                    let res = text(200, "text/plain; version=0.0.4", body);
                    return Box::pin(async move { Ok(res) });
                }
                "/" | "/dashboard" => {
                    let res = text(200, "text/html; charset=utf-8", DASHBOARD.into());
                    return Box::pin(async move { Ok(res) });
                }
                "/health" => {
                    let res = text(200, "text/plain", "ok\n".into());
                    return Box::pin(async move { Ok(res) });
                }
                _ => {}
            }
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            if let Some(o) = &origin {
                cors(&mut res, o);
            }
            Ok(res)
        })
    }
}

/// A live status page: polls `bss_nodeInfo` and `eth_getBlockByNumber` on this same port.
const DASHBOARD: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>bss operator</title>
<style>body{font-family:sans-serif;margin:2em;color:#222}td{padding:.2em 1em}h1{font-size:1.3em}
.ok{color:#080}.bad{color:#b00}</style></head>
<body><h1>bss operator <span id="op"></span></h1>
<table>
<tr><td>chain id</td><td id="chain"></td></tr>
<tr><td>engine</td><td id="engine"></td></tr>
<tr><td>head</td><td id="head"></td></tr>
<tr><td>round</td><td id="round"></td></tr>
<tr><td>blocks/s (last 10 s)</td><td id="bps"></td></tr>
<tr><td>txs in last block</td><td id="txs"></td></tr>
<tr><td>connected operators</td><td id="peers"></td></tr>
<tr><td>mempool (pending / queued)</td><td id="pool"></td></tr>
</table>
<p><a href="/metrics">/metrics</a> · <a href="/health">/health</a></p>
<script>
const rpc = (method, params) => fetch("/", {method: "POST", headers: {"content-type": "application/json"},
  body: JSON.stringify({jsonrpc: "2.0", id: 1, method, params})}).then(r => r.json()).then(r => r.result);
const seen = [];
async function tick() {
  try {
    const i = await rpc("bss_nodeInfo", []);
    const b = await rpc("eth_getBlockByNumber", ["latest", false]);
    const set = (id, v) => document.getElementById(id).textContent = v;
    set("op", i.operatorIndex + " of " + i.operators);
    set("chain", i.chainId); set("engine", i.engine);
    set("head", i.head.number + "  " + i.head.hash); set("round", i.head.round);
    seen.push([Date.now(), i.head.number]); while (seen.length > 10) seen.shift();
    const dt = (seen[seen.length - 1][0] - seen[0][0]) / 1000;
    set("bps", dt > 0 ? ((seen[seen.length - 1][1] - seen[0][1]) / dt).toFixed(2) : "…");
    set("txs", b.transactions.length);
    const p = document.getElementById("peers");
    p.textContent = i.operators > 1 ? (i.peers.length + " / " + (i.operators - 1) + "  [" + i.peers.join(", ") + "]") : "federation of one";
    p.className = i.operators > 1 && i.peers.length < i.operators - 1 ? "bad" : "ok";
    set("pool", i.mempool.pending + " / " + i.mempool.queued);
  } catch (e) { document.getElementById("head").textContent = "unreachable: " + e; }
}
tick(); setInterval(tick, 1000);
</script></body></html>
"#;
