//! Plain HTTP routes served beside JSON-RPC on the same port: `GET /metrics`, `GET /health`;
//! and the Origin policy for browsers: a request whose `Origin` is not in `rpc.cors_origins`
//! (nor this node's own origin, reached by a host name in `rpc.vhosts`) is refused with 403 (JSON-RPC and WebSocket upgrades alike), an allowed one gets CORS headers and
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
        // The node's own pages (the dashboard) call it from its own origin, which is only ours if
        // the Host names this node: a DNS-rebinding page has Origin == Host too (rpc.vhosts).
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
        let same_origin = |o: &str| {
            host.as_deref().is_some_and(|h| {
                o.strip_prefix("http://").or_else(|| o.strip_prefix("https://")) == Some(h) && self.cfg.host_allowed(h)
            })
        };
        if let Some(o) = &origin {
            if !o.to_str().is_ok_and(|o| same_origin(o) || self.cfg.origin_allowed(o)) {
                metrics::counter!("bss_rpc_refused_total", "reason" => "origin").increment(1);
                let body = format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{{\"code\":-32001,\"message\":\"origin {} is not allowed (rpc.cors_origins; for this node's own pages, rpc.vhosts)\"}}}}",
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

/// The chain-of-trust dashboard: one self-contained page (no CDN) that polls this node.
const DASHBOARD: &str = include_str!("dashboard.html");
