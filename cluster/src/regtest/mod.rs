//! The embedded Bitcoin regtest node: a real regtest chain (consensus encoding, PoW, UTXO set,
//! script verification by libbitcoinconsensus), a mempool, and bitcoind's RPC surface.

pub mod chain;
pub mod cmd;
pub mod json;
pub mod mempool;
pub mod methods;
pub mod node;
pub mod rpc;
pub mod utxo;
