//! The embedded Bitcoin regtest node as a library: a real regtest chain (consensus encoding, PoW,
//! UTXO set, script verification by libbitcoinconsensus), a mempool, and bitcoind's RPC surface.
//! `bss btc-regtest` runs it as a process; tests start it in-process with [`Regtest::start`].
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod chain;
pub mod json;
pub mod mempool;
pub mod methods;
pub mod node;
pub mod rpc;
pub mod utxo;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where and how a regtest node serves.
#[derive(Clone, Debug)]
pub struct RegtestConfig {
    pub data_dir: PathBuf,
    pub bind: SocketAddr,
    pub user: String,
    pub password: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegtestError {
    #[error("regtest chain store: {0}")]
    Node(#[from] node::NodeError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start the regtest runtime: {0}")]
    Runtime(std::io::Error),
}

/// A regtest node running in this process on a runtime of its own. Dropping it stops the RPC
/// server and releases the chain's files (a test may start another on the same directory).
pub struct Regtest {
    addr: SocketAddr,
    server: Option<jsonrpsee::server::ServerHandle>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Regtest {
    pub fn start(cfg: RegtestConfig) -> Result<Self, RegtestError> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(RegtestError::Runtime)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bss-regtest")
            .enable_all()
            .build()
            .map_err(RegtestError::Runtime)?;
        let (server, addr) = runtime.block_on(async {
            let node = node::RegtestHandle::start(&cfg.data_dir)?;
            let ctx = methods::Ctx { node, started: Instant::now() };
            let (server, addr) = rpc::serve(cfg.bind, &cfg.user, &cfg.password, ctx)
                .await
                .map_err(|source| RegtestError::Listen { addr: cfg.bind, source })?;
            Ok::<_, RegtestError>((server, addr))
        })?;
        Ok(Self { addr, server: Some(server), runtime: Some(runtime) })
    }

    /// Where its RPC listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Regtest {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = s.stop();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}
