use super::batch::GroupedSubmissions;
use super::context::RpcContext;
use super::http_routes::HttpRoutesLayer;
use super::messages::InjectFault;
use actix::prelude::*;
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{BatchRequestConfig, Server, ServerConfig, ServerHandle};
use jsonrpsee::RpcModule;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

/// Builds the shared handler context; called again on every restart.
pub type ContextFactory = Arc<dyn Fn(Recipient<InjectFault>) -> RpcContext + Send + Sync>;

pub struct RpcActor {
    factory: ContextFactory,
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<ServerHandle>,
    /// Announces the bound address (None while down), so starters wait on an event.
    bound: tokio::sync::watch::Sender<Option<SocketAddr>>,
}

impl RpcActor {
    pub fn new(factory: ContextFactory, bound: tokio::sync::watch::Sender<Option<SocketAddr>>) -> Self {
        Self { factory, runtime: None, server: None, bound }
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = s.stop();
        }
        if let Some(rt) = self.runtime.take() {
            // Never block the arbiter: the runtime winds down on its own threads.
            rt.shutdown_background();
        }
        self.bound.send_replace(None);
    }
}

/// The largest JSON-RPC response (a batch's answers together).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

async fn serve(ctx: RpcContext) -> std::io::Result<(ServerHandle, SocketAddr)> {
    let cfg = ctx.cfg.clone();
    let metrics = ctx.metrics.clone();
    let mut module = RpcModule::new(ctx);
    super::eth::register(&mut module)?;
    super::bss::register(&mut module)?;
    super::censorship::register(&mut module)?;
    super::tunnel::register(&mut module)?;
    super::keystones::register(&mut module)?;
    super::subscriptions::register(&mut module)?;
    let server_cfg = ServerConfig::builder()
        .max_request_body_size(cfg.max_request_bytes)
        .max_response_body_size(MAX_RESPONSE_BYTES as u32)
        .max_connections(cfg.max_connections)
        .max_subscriptions_per_connection(cfg.max_subscriptions_per_connection)
        .set_batch_request_config(BatchRequestConfig::Limit(cfg.max_batch_requests))
        .build();
    // A restarted actor may race the old listener's close: retry briefly on AddrInUse.
    let mut attempt = 0;
    let server = loop {
        let builder = Server::builder()
            .set_config(server_cfg.clone())
            .set_http_middleware(
                tower::ServiceBuilder::new()
                    .layer(HttpRoutesLayer { metrics: metrics.clone(), cfg: Arc::new(cfg.clone()) }),
            )
            .set_rpc_middleware(
                RpcServiceBuilder::new()
                    .layer_fn(|inner| GroupedSubmissions { inner, max_response_bytes: MAX_RESPONSE_BYTES }),
            );
        match builder.build(cfg.addr).await {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let addr = server.local_addr()?;
    Ok((server.start(module), addr))
}

impl Actor for RpcActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let context = (self.factory)(ctx.address().recipient());
        let threads = context.cfg.threads.max(1);
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("bss-rpc")
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                error!(target: "rpc", error = %e, "cannot build the RPC runtime");
                ctx.stop();
                return;
            }
        };
        let task = runtime.spawn(serve(context));
        self.runtime = Some(runtime);
        ctx.wait(async move { task.await.map_err(|e| std::io::Error::other(e.to_string()))? }.into_actor(self).map(
            |res, act, ctx| match res {
                Ok((handle, addr)) => {
                    info!(target: "rpc", %addr, "JSON-RPC listening (HTTP + WS, /metrics, /health)");
                    act.server = Some(handle);
                    act.bound.send_replace(Some(addr));
                }
                Err(e) => {
                    error!(target: "rpc", error = %e, "RPC server failed to start");
                    metrics::counter!("bss_rpc_start_failures_total").increment(1);
                    ctx.stop();
                }
            },
        ));
        // Watch the server: if it stops by itself, stop the actor so the supervisor restarts it.
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            if act.server.as_ref().is_some_and(|s| s.is_stopped()) {
                warn!(target: "rpc", "RPC server stopped unexpectedly; restarting");
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.shutdown();
    }
}

impl Supervised for RpcActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        metrics::counter!("bss_actor_restarts_total", "actor" => "rpc").increment(1);
        warn!(target: "rpc", "restarting the RPC actor");
        self.shutdown();
    }
}

impl Handler<InjectFault> for RpcActor {
    type Result = ();

    fn handle(&mut self, _: InjectFault, ctx: &mut Self::Context) {
        crate::supervision::guarded("rpc", ctx, |_| panic!("injected fault in the RPC actor"));
    }
}
