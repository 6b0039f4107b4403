//! The HTTP side of bitcoind's JSON-RPC: basic auth (user/password, or a cookie file in the data
//! dir), JSON-RPC 1.0 requests, and bitcoind's reply shape. The methods are in `methods.rs`.

use super::methods::{module, Ctx};
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse, Server, ServerHandle};
use serde_json::{json, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, Service};

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
