//! The `hotstuff-rs` engine: the hotstuff_rs crate (parallelchain-io, 0.4) driven behind our node,
//! with its `App` over our executor, its `Network` over our authenticated operator transport and
//! its `KVStore` over fjall. Each known 0.4 defect is worked around where it lives (see each file).

pub mod app;
pub mod driver;
pub mod kv;
pub mod net;
