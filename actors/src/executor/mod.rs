//! Executor service: the hVM on a thread of its own, so execution never blocks an actix arbiter.
//!
//! It holds no uncommitted blocks: the chain service (`crate::chain`) owns those and passes the
//! executed ancestors of a block as state layers with every request. The only state here is the
//! committed head, read from storage. That makes the supervision policy simple and real: a panic
//! inside revm or the precompiles fails the request that caused it (`ExecutorError::Crashed`),
//! the thread reloads its state from storage and serves the next request
//! (`bss_actor_restarts_total{actor="executor"}`).

mod hvm_runner;
mod messages;
mod metrics;
mod service;
#[cfg(test)]
mod tests;

pub use hvm_runner::Executor;
pub use messages::{ExecutorError, ExecutorHandle};
pub use service::ExecutorService;
