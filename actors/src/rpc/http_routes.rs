//! Plain HTTP routes served beside JSON-RPC on the same port: `GET /metrics`, `GET /health`.

use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use metrics_exporter_prometheus::PrometheusHandle;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, Service};

#[derive(Clone)]
pub struct HttpRoutesLayer {
    pub metrics: Option<PrometheusHandle>,
}

impl<S> Layer<S> for HttpRoutesLayer {
    type Service = HttpRoutes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpRoutes { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub struct HttpRoutes<S> {
    inner: S,
    metrics: Option<PrometheusHandle>,
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
        if req.method() == http::Method::GET {
            match req.uri().path() {
                "/metrics" => {
                    let body = self.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
                    let res = text(200, "text/plain; version=0.0.4", body);
                    return Box::pin(async move { Ok(res) });
                }
                "/health" => {
                    let res = text(200, "text/plain", "ok\n".into());
                    return Box::pin(async move { Ok(res) });
                }
                _ => {}
            }
        }
        Box::pin(self.inner.call(req))
    }
}
