//! Rpc actor: Ethereum JSON-RPC (HTTP and WebSocket on one port), `bss_*` methods, and
//! `GET /metrics` (Prometheus) plus `GET /health` on the same port.
//!
//! The server runs on its own small tokio runtime so that decoding and sender recovery of
//! incoming transactions run in parallel and never on the consensus arbiter. The actor owns that
//! runtime; under its supervisor a crash of the actor rebuilds it and rebinds the port.

mod actor;
mod bss;
pub mod context;
mod eth;
pub mod format;
mod http_routes;
pub mod messages;
pub mod params;
mod subscriptions;

pub use actor::RpcActor;
pub use context::{NodeInfo, RpcContext};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcConfig {
    /// Where JSON-RPC, WebSocket, /metrics and /health listen.
    pub addr: SocketAddr,
    /// Largest block range one eth_getLogs may scan.
    pub max_logs_block_range: u64,
    /// Most logs one eth_getLogs may return.
    pub max_logs_results: usize,
    /// Priority fee suggested by eth_maxPriorityFeePerGas (wei).
    pub suggested_tip: u64,
    /// Largest request body, bytes.
    pub max_request_bytes: u32,
    pub max_connections: u32,
    /// Worker threads of the RPC runtime.
    pub threads: usize,
    /// Enables `bss_injectFault` (tests and chaos runs only).
    pub fault_injection: bool,
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
            threads: 2,
            fault_injection: false,
        }
    }
}
