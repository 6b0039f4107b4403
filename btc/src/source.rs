//! What the watcher needs from a Bitcoin node, behind a small trait so that the client library
//! is one file (bitcoincore-rpc 0.19 today; its successor corepc-client later). Only raw calls
//! whose answers every bitcoind version shapes the same way are used: counts, hashes, raw hex.

use bitcoin::consensus::encode;
use bitcoin::{Block, BlockHash};
use bitcoincore_rpc::{Auth, Client, RpcApi};
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("bitcoin RPC: {0}")]
    Rpc(String),
    #[error("bitcoin RPC returned something unexpected: {0}")]
    Decode(String),
}

/// Blocking access to a Bitcoin node (called from the watcher's own thread).
pub trait BitcoinSource: Send + 'static {
    fn block_count(&self) -> Result<u64, SourceError>;
    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError>;
    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError>;
    /// Broadcasts a raw transaction; returns its txid as bitcoind prints it.
    fn send_raw(&self, tx_hex: &str) -> Result<String, SourceError>;
    /// `estimatesmartfee`: sat/vB, or `None` when the node has no estimate.
    fn estimate_fee(&self, target: u16) -> Result<Option<f64>, SourceError>;
}

/// How to log in to bitcoind.
#[derive(Clone, Debug)]
pub enum Credentials {
    UserPass(String, String),
    CookieFile(PathBuf),
    None,
}

pub struct CoreRpc {
    client: Client,
}

impl CoreRpc {
    pub fn new(url: &str, creds: Credentials) -> Result<Self, SourceError> {
        let auth = match creds {
            Credentials::UserPass(u, p) => Auth::UserPass(u, p),
            Credentials::CookieFile(p) => Auth::CookieFile(p),
            Credentials::None => Auth::None,
        };
        let client = Client::new(url, auth).map_err(|e| SourceError::Rpc(e.to_string()))?;
        Ok(Self { client })
    }

    fn call<T: serde::de::DeserializeOwned>(&self, method: &str, args: &[serde_json::Value]) -> Result<T, SourceError> {
        self.client.call(method, args).map_err(|e| SourceError::Rpc(e.to_string()))
    }
}

impl BitcoinSource for CoreRpc {
    fn block_count(&self) -> Result<u64, SourceError> {
        self.call("getblockcount", &[])
    }

    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError> {
        let s: String = self.call("getblockhash", &[height.into()])?;
        BlockHash::from_str(&s).map_err(|e| SourceError::Decode(e.to_string()))
    }

    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        let raw: String = self.call("getblock", &[hash.to_string().into(), 0.into()])?;
        let bytes = hex::decode(&raw).map_err(|e| SourceError::Decode(e.to_string()))?;
        let block: Block = encode::deserialize(&bytes).map_err(|e| SourceError::Decode(e.to_string()))?;
        if block.block_hash() != *hash {
            return Err(SourceError::Decode(format!("asked for block {hash}, got {}", block.block_hash())));
        }
        Ok(block)
    }

    fn send_raw(&self, tx_hex: &str) -> Result<String, SourceError> {
        self.call("sendrawtransaction", &[tx_hex.into()])
    }

    fn estimate_fee(&self, target: u16) -> Result<Option<f64>, SourceError> {
        let v: serde_json::Value = self.call("estimatesmartfee", &[target.into()])?;
        // BTC per 1000 vB → sat/vB.
        Ok(v.get("feerate").and_then(serde_json::Value::as_f64).map(|btc_kvb| btc_kvb * 100_000_000.0 / 1000.0))
    }
}

/// `scheme://user:pass@host` → `scheme://user:***@host`, for anything logged or printed.
pub fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, rest)), Some((_, host))) if rest.contains('@') => {
            let user = rest.split_once([':', '@']).map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod redaction {
    #[test]
    fn passwords_never_survive() {
        assert_eq!(super::redact_url("http://bss:s3cret@127.0.0.1:18443"), "http://bss:***@127.0.0.1:18443");
        assert_eq!(super::redact_url("http://127.0.0.1:18443"), "http://127.0.0.1:18443");
        assert!(!super::redact_url("https://u:p@ss@host:1").contains("p@ss"));
    }
}
