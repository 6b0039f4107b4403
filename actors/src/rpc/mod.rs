//! Rpc actor: Ethereum JSON-RPC (HTTP and WebSocket on one port), `bss_*` methods, and
//! `GET /metrics` (Prometheus) plus `GET /health` on the same port.
//!
//! The server runs on its own small tokio runtime so that decoding and sender recovery of
//! incoming transactions run in parallel and never on the consensus arbiter. The actor owns that
//! runtime; under its supervisor a crash of the actor rebuilds it and rebinds the port.

mod actor;
mod batch;
mod bss;
mod censorship;
pub mod context;
mod eth;
pub mod format;
mod http_routes;
mod keystones;
pub mod messages;
pub mod params;
mod subscriptions;
mod tunnel;

pub use actor::RpcActor;
pub use context::{NodeInfo, RpcContext};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// `[rpc]`. Every limit below answers with a JSON-RPC error (or HTTP 403/413 before JSON-RPC)
/// that names it; README's Configuration section lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcConfig {
    /// Where JSON-RPC, WebSocket, /metrics and /health listen. Default 127.0.0.1:8545.
    pub addr: SocketAddr,
    /// Largest block range one eth_getLogs may scan. Default 10,000.
    pub max_logs_block_range: u64,
    /// Most logs one eth_getLogs may return. Default 10,000.
    pub max_logs_results: usize,
    /// Priority fee suggested by eth_maxPriorityFeePerGas (wei). Default 1 gwei / 1000.
    pub suggested_tip: u64,
    /// Largest request body, bytes (HTTP 413 above). Default 10 MiB.
    pub max_request_bytes: u32,
    /// Most open connections (HTTP and WebSocket). Default 1,000.
    pub max_connections: u32,
    /// Most calls in one JSON-RPC batch. Default 1,000 (geth's).
    pub max_batch_requests: u32,
    /// Most subscriptions one WebSocket connection may hold. Default 256.
    pub max_subscriptions_per_connection: u32,
    /// Gas one eth_call / eth_estimateGas execution gets at most. Default 50,000,000 (geth's).
    pub call_gas_cap: u64,
    /// Wall-clock budget of one eth_call, eth_estimateGas or eth_getLogs. Default 5s (geth's).
    #[serde(with = "humantime_serde")]
    pub call_timeout: std::time::Duration,
    /// eth_call, eth_estimateGas and eth_getLogs running at once; more wait up to
    /// `call_timeout` for a slot. Default 4.
    pub max_concurrent_calls: usize,
    /// Browser origins allowed to call (the `Origin` header; a request without one, from a
    /// script or a wallet backend, is always allowed). `"*"` allows any. Entries are
    /// `scheme://host` (any port) or `scheme://host:port`. Default: localhost only.
    pub cors_origins: Vec<String>,
    /// Host names a browser page may reach this node by (the `Host` header, port stripped), as
    /// geth's `--http.vhosts`: a page whose `Origin` equals its `Host` is served as the node's
    /// own only for these, so a DNS-rebinding page (`rebind.example` resolving to 127.0.0.1) is
    /// refused. `"*"` allows any. The listen address's own IP is always allowed. Requests
    /// without an `Origin` (scripts, wallets' backends, Prometheus) are not browsers' and are not
    /// checked. Default: localhost only.
    pub vhosts: Vec<String>,
    /// Worker threads of the RPC runtime. Default 2.
    pub threads: usize,
    /// Enables `bss_injectFault` (tests and chaos runs only).
    pub fault_injection: bool,
    /// The secret `bss_injectFault(target, token)` must be called with (at least 16
    /// characters; required with `fault_injection`). The test harness holds it, so neither any
    /// RPC client nor a page in a browser can stop the node. A secret rather than a cargo
    /// feature: the tests exercise the very binary operators run.
    pub fault_injection_token: String,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8545)),
            max_logs_block_range: 10_000,
            max_logs_results: 10_000,
            suggested_tip: 1_000_000,
            max_request_bytes: 10 * 1024 * 1024,
            max_connections: 1_000,
            max_batch_requests: 1_000,
            max_subscriptions_per_connection: 256,
            call_gas_cap: 50_000_000,
            call_timeout: std::time::Duration::from_secs(5),
            max_concurrent_calls: 4,
            cors_origins: ["http://localhost", "http://127.0.0.1", "http://[::1]", "https://localhost"]
                .map(String::from)
                .to_vec(),
            vhosts: ["localhost", "127.0.0.1", "[::1]"].map(String::from).to_vec(),
            threads: 2,
            fault_injection: false,
            fault_injection_token: String::new(),
        }
    }
}

impl RpcConfig {
    /// Whether `token` is the fault-injection secret (constant time in its length).
    pub fn fault_token_matches(&self, token: &str) -> bool {
        let (a, b) = (self.fault_injection_token.as_bytes(), token.as_bytes());
        a.len() >= 16 && a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Whether `host` (a `Host` header, with or without its port) names this node for browsers.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split_once(']').map_or(host, |(ip, _)| &host[..ip.len() + 2]),
            None => match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => host,
            },
        };
        let own = self.addr.ip();
        let own = (!own.is_unspecified()).then(|| match own {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        });
        self.vhosts.iter().any(|v| v == "*" || v.eq_ignore_ascii_case(name)) || own.as_deref() == Some(name)
    }

    /// Whether a browser page from `origin` may call this node.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.cors_origins.iter().any(|allowed| {
            allowed == "*"
                || allowed == origin
                || origin.strip_prefix(allowed.as_str()).is_some_and(|port| {
                    port.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                })
        })
    }
}
