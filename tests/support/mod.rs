//! Test support: start real `bss` node processes on free loopback ports and talk JSON-RPC to them.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BSS: &str = env!("CARGO_BIN_EXE_bss");
pub const CHAIN_ID: u64 = 31337;
/// Secret of dev account 0 of the "test … junk" mnemonic.
pub const DEV0: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const DEV1: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Polls `f` until it returns Some, failing the test after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A JSON-RPC error as returned by the node.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

pub struct Node {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl Node {
    /// Writes a one-operator config in `dir` (extra TOML appended) and starts the node.
    pub fn start(dir: &Path, extra: &str) -> Node {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let key = "4242424242424242424242424242424242424242424242424242424242424242";
        let config = dir.join("node.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"data\"\noperator_key = \"{key}\"\n\n[genesis]\nchain_id = {CHAIN_ID}\n\n\
                 [consensus]\nblock_time = \"100ms\"\n\n[storage]\nfsync = false\n\n[rpc]\naddr = \"{addr}\"\nfault_injection = true\n{extra}"
            ),
        )
        .expect("write config");
        let mut node = Node { dir: dir.to_path_buf(), config, addr, child: None };
        node.spawn();
        node
    }

    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join(format!("node-{}.log", std::process::id()))).expect("log");
        let child = Command::new(BSS)
            .args(["node", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info,fjall=warn,lsm_tree=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn bss");
        self.child = Some(child);
        let addr = self.addr;
        wait_until("the node's RPC", Duration::from_secs(30), || {
            http(addr, "GET", "/health", "").ok().filter(|(s, _)| *s == 200)
        });
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill");
            c.wait().expect("wait");
        }
    }

    pub fn try_rpc(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let (_, text) = http(self.addr, "POST", "/", &body)
            .map_err(|e| RpcError { code: -1, message: format!("transport: {e}") })?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| RpcError { code: -2, message: format!("bad response {text:?}: {e}") })?;
        if let Some(err) = v.get("error") {
            return Err(RpcError {
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or_default().to_string(),
            });
        }
        Ok(v["result"].clone())
    }

    pub fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params).unwrap_or_else(|e| panic!("{method} failed: {e:?}"))
    }

    pub fn block_number(&self) -> u64 {
        hex_u64(&self.rpc("eth_blockNumber", json!([])))
    }

    pub fn wait_for_block(&self, n: u64) {
        wait_until(&format!("block {n}"), Duration::from_secs(30), || (self.block_number() >= n).then_some(()));
    }

    pub fn wait_for_receipt(&self, hash: &str) -> Value {
        wait_until(&format!("receipt of {hash}"), Duration::from_secs(30), || {
            let r = self.rpc("eth_getTransactionReceipt", json!([hash]));
            (!r.is_null()).then_some(r)
        })
    }

    pub fn metrics(&self) -> String {
        http(self.addr, "GET", "/metrics", "").expect("metrics").1
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn hex_u64(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub fn hex_u128(v: &Value) -> u128 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}"));
    u128::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s}: {e}"))
}
