//! Test support: start real `bss` node processes on free loopback ports and talk JSON-RPC to them.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BSS: &str = env!("CARGO_BIN_EXE_bss");
/// The fault-injection secret the harness writes into every node's `[rpc]` (`bss_injectFault`).
pub const FAULT_TOKEN: &str = "test-harness-fault-token";
pub const CHAIN_ID: u64 = 31337;
/// Secret of dev account 0 of the "test … junk" mnemonic.
pub const DEV0: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const DEV1: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/// A loopback port for a node to bind, free of the bind-then-drop race: see [`free_run`].
pub fn free_port() -> u16 {
    free_run(1)
}

/// The first of `n` consecutive loopback ports reserved for this test process. They are taken
/// below the kernel's ephemeral range (32768+), so no outgoing connection can land on them
/// before a node binds them, and each is held with a file lock for the life of this process, so
/// no other test process (nextest runs each test in its own) is handed the same port.
pub fn free_run(n: u16) -> u16 {
    free_runs(n, &[0])
}

/// A base port `b` with `b + offset .. b + offset + n` reserved for every offset (`bss devnet`,
/// `bss bench` and `bss chaos` put RPC at `--base-port` and the operator network 1000 above).
pub fn free_runs(n: u16, offsets: &[u16]) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join("bss-test-ports");
    std::fs::create_dir_all(&dir).expect("port lock dir");
    let start = std::process::id().wrapping_mul(7919);
    let n = u32::from(n.max(1));
    for _ in 0..COUNT {
        let base = FIRST + start.wrapping_add(NEXT.fetch_add(n, Ordering::Relaxed)) % COUNT;
        let ports = offsets.iter().flat_map(|o| (base + u32::from(*o)..base + u32::from(*o) + n).map(|p| p as u16));
        let mut held = Vec::new();
        for port in ports {
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(port.to_string()))
                .ok()
                .filter(|f| f.try_lock().is_ok());
            match lock {
                Some(f) if TcpListener::bind(("127.0.0.1", port)).is_ok() => held.push(f),
                _ => break,
            }
        }
        if held.len() == n as usize * offsets.len() {
            // Held until this process exits (each lock goes with its file descriptor).
            held.into_iter().for_each(std::mem::forget);
            return base as u16;
        }
    }
    panic!("no free loopback ports from {FIRST}")
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
    /// Extra `bss node` arguments (e.g. `--byzantine MODE`).
    pub args: Vec<String>,
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
                 [consensus]\nblock_time = \"100ms\"\n\n[storage]\nfsync = false\n\n[rpc]\naddr = \"{addr}\"\nfault_injection = true\nfault_injection_token = \"{FAULT_TOKEN}\"\n{extra}"
            ),
        )
        .expect("write config");
        Node::launch(dir, config, addr)
    }

    /// Starts `bss node --config <config>` whose RPC listens on `addr`.
    pub fn launch(dir: &Path, config: PathBuf, addr: SocketAddr) -> Node {
        let mut node = Node { dir: dir.to_path_buf(), config, addr, args: vec![], child: None };
        node.spawn();
        node
    }

    pub fn spawn(&mut self) {
        let name = self.config.file_stem().and_then(|s| s.to_str()).unwrap_or("node").to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .expect("log");
        let child = Command::new(BSS)
            .args(["node", "--config"])
            .arg(&self.config)
            .args(&self.args)
            .env("RUST_LOG", "info,fjall=warn,lsm_tree=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn bss");
        self.child = Some(child);
        let addr = self.addr;
        // With [pop] a node opens its RPC only after its watcher's first round with the Bitcoin
        // node (up to 30 s), which a loaded CI machine can stretch; past the deadline, the
        // node's own log says why.
        let deadline = Instant::now() + Duration::from_secs(90);
        while http(addr, "GET", "/health", "").ok().filter(|(s, _)| *s == 200).is_none() {
            if Instant::now() > deadline || self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some()) {
                let log = std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "{name}'s RPC at {addr} never came up; its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Resident memory of the process, KiB (Linux `/proc`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid().expect("running"))).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// Waits for the process to exit by itself (up to `timeout`); its exit code and log.
    pub fn wait_exit(&mut self, timeout: Duration) -> (Option<i32>, String) {
        let child = self.child.as_mut().expect("running");
        let status = wait_until("the node to exit", timeout, || child.try_wait().ok().flatten());
        self.child = None;
        let name = self.config.file_stem().and_then(|s| s.to_str()).unwrap_or("node").to_string();
        (status.code(), std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default())
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

/// A federation of `bss node` processes on loopback, configured like `bss devnet` does.
pub struct Federation {
    pub nodes: Vec<Node>,
}

impl Federation {
    /// `consensus` is appended after `[consensus]` in every config (further sections may follow);
    /// `{i}` in it becomes the operator's index.
    pub fn start(dir: &Path, n: usize, consensus: &str) -> Federation {
        Self::start_with_links(dir, n, consensus, |_, _, _| None)
    }

    /// Like `start`; `link(from, to, listen)` may give the address operator `from` dials to reach
    /// operator `to` (listening on `listen`), e.g. a proxy in between.
    pub fn start_with_links(
        dir: &Path,
        n: usize,
        consensus: &str,
        link: impl Fn(usize, usize, SocketAddr) -> Option<SocketAddr>,
    ) -> Federation {
        Self::start_full(dir, n, consensus, "", link)
    }

    /// Like `start_with_links`; `network` is appended to every `[network]` section.
    pub fn start_full(
        dir: &Path,
        n: usize,
        consensus: &str,
        network: &str,
        link: impl Fn(usize, usize, SocketAddr) -> Option<SocketAddr>,
    ) -> Federation {
        Self::start_byzantine(dir, n, consensus, network, link, &[])
    }

    /// Like `start_full`; operator `i` of each `(i, mode)` runs `bss node --byzantine mode`
    /// with `allow_byzantine = true` in its config.
    pub fn start_byzantine(
        dir: &Path,
        n: usize,
        consensus: &str,
        network: &str,
        link: impl Fn(usize, usize, SocketAddr) -> Option<SocketAddr>,
        byzantine: &[(usize, &str)],
    ) -> Federation {
        let signers: Vec<bss_consensus::OperatorSigner> =
            (0..n).map(|i| bss_consensus::OperatorSigner::from_bytes([i as u8 + 1; 32])).collect();
        let keys: Vec<String> = signers.iter().map(|s| format!("\"{}\"", s.public().to_hex())).collect();
        let rpc: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let p2p: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let listen: Vec<SocketAddr> = p2p.iter().map(|p| format!("127.0.0.1:{p}").parse().expect("addr")).collect();
        // A test may write its own genesis first (e.g. with a `[genesis.tunnel]`); the operator
        // set and the rules go into it.
        let genesis = dir.join("genesis.toml");
        let mut text =
            std::fs::read_to_string(&genesis).unwrap_or_else(|_| format!("[genesis]\nchain_id = {CHAIN_ID}\n"));
        if !text.contains("[genesis.federation]") {
            text.push_str(&genesis_federation(
                &keys,
                &format!("[consensus]\n{consensus}"),
                &format!("[network]\n{network}"),
            ));
        }
        std::fs::write(&genesis, text).expect("genesis");
        let mut nodes = Vec::new();
        for i in 0..n {
            let addrs: Vec<String> =
                (0..n).map(|j| format!("\"{}\"", link(i, j, listen[j]).unwrap_or(listen[j]))).collect();
            let config = dir.join(format!("node{i}.toml"));
            std::fs::write(
                &config,
                format!(
                    "data_dir = \"node{i}\"\ngenesis_file = \"genesis.toml\"\noperator_key = \"{}\"\n{}\
                     [operators]\naddrs = [{}]\n[consensus]\n{}\n\
                     [storage]\nfsync = false\n[rpc]\naddr = \"127.0.0.1:{}\"\nfault_injection = true\nfault_injection_token = \"{FAULT_TOKEN}\"\n\
                     [network]\nlisten = \"127.0.0.1:{}\"\n{network}\n",
                    signers[i].secret_hex(),
                    if byzantine.iter().any(|(b, _)| *b == i) { "allow_byzantine = true\n" } else { "" },
                    addrs.join(", "),
                    consensus.replace("{i}", &i.to_string()),
                    rpc[i],
                    p2p[i],
                ),
            )
            .expect("config");
            let addr: SocketAddr = format!("127.0.0.1:{}", rpc[i]).parse().expect("addr");
            let mut node = Node { dir: dir.to_path_buf(), config, addr, args: vec![], child: None };
            for (_, mode) in byzantine.iter().filter(|(b, _)| *b == i) {
                node.args.extend(["--byzantine".to_string(), mode.to_string()]);
            }
            node.spawn();
            nodes.push(node);
        }
        Federation { nodes }
    }

    /// Heights of the nodes that are running.
    pub fn heights(&self, which: &[usize]) -> Vec<u64> {
        which.iter().map(|i| self.nodes[*i].block_number()).collect()
    }

    pub fn wait_all_at_least(&self, which: &[usize], h: u64, timeout: Duration) {
        wait_until(&format!("nodes {which:?} at height {h}"), timeout, || {
            which
                .iter()
                .all(|i| self.nodes[*i].try_rpc("eth_blockNumber", json!([])).ok().is_some_and(|v| hex_u64(&v) >= h))
                .then_some(())
        });
    }

    /// Every listed node has the same block hash at every height up to `h`.
    pub fn assert_same_chain(&self, which: &[usize], h: u64) {
        for n in 1..=h {
            let hashes: Vec<Value> = which
                .iter()
                .map(|i| self.nodes[*i].rpc("eth_getBlockByNumber", json!([format!("{n:#x}"), false]))["hash"].clone())
                .collect();
            assert!(hashes.windows(2).all(|w| w[0] == w[1]), "different blocks at height {n}: {hashes:?}");
        }
    }
}

/// The rules a node-config template sets, by (section, key) and the name the genesis gives them.
const GENESIS_RULES: [(&str, &str, &str); 7] = [
    ("pop", "keystone_keys", "keystone_keys"),
    ("pop", "keystone_interval", "keystone_interval"),
    ("pop", "superfinality_confirmations", "superfinality_confirmations"),
    ("btc", "confirmations_lag", "confirmations_lag"),
    ("btc", "start_height", "btc_start_height"),
    ("btc", "network", "btc_network"),
    ("censorship", "forced_confirmations", "forced_confirmations"),
];

/// The `[genesis.federation]` table of a test federation: its operator keys, and every rule of
/// the chain that the node-config templates set. Those stay in each node's config too, which
/// then must agree with the genesis (the node refuses it otherwise).
fn genesis_federation(keys: &[String], consensus: &str, network: &str) -> String {
    let mut out = format!("\n[genesis.federation]\noperators = [{}]\n", keys.join(", "));
    for template in [consensus, network] {
        let table: toml::Table = toml::from_str(template).expect("a node-config template is TOML");
        for (section, key, name) in GENESIS_RULES {
            if let Some(v) = table.get(section).and_then(|t| t.get(key)) {
                out.push_str(&format!("{name} = {v}\n"));
            }
        }
    }
    out
}

/// The genesis hash of the chain whose `genesis.toml` is in `dir` (what `--genesis` pins),
/// computed from the file.
pub fn genesis_hash(dir: &Path) -> String {
    #[derive(serde::Deserialize)]
    struct File {
        genesis: bss_actors::node::GenesisConfig,
    }
    let text = std::fs::read_to_string(dir.join("genesis.toml")).expect("genesis.toml");
    let g: File = toml::from_str(&text).expect("genesis");
    g.genesis.to_genesis().expect("genesis builds").build().0.block.hash().to_string()
}

/// Reads one counter or gauge from a /metrics text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Operator `i`'s operator-network address, from the config `Federation::start` wrote.
pub fn p2p_addr(dir: &Path, i: usize) -> SocketAddr {
    let text = std::fs::read_to_string(dir.join(format!("node{i}.toml"))).expect("config");
    let line = text.lines().skip_while(|l| *l != "[network]").find(|l| l.starts_with("listen")).expect("listen");
    line.split('"').nth(1).expect("addr").parse().expect("socket addr")
}

/// The signers and operator set `Federation::start` configures for `n` operators.
pub fn federation_keys(n: u8) -> (Vec<bss_consensus::OperatorSigner>, bss_consensus::OperatorSet) {
    let signers: Vec<bss_consensus::OperatorSigner> =
        (1..=n).map(|i| bss_consensus::OperatorSigner::from_bytes([i; 32])).collect();
    let set = bss_consensus::OperatorSet::new(signers.iter().map(|s| s.public()).collect());
    (signers, set)
}

/// Plays a Byzantine operator: dials operator `to` at `addr` with operator `as_operator`'s
/// genuine key over Noise and sends `frames` (encoded wire messages), then holds the link up to
/// `linger` so they are read before it hangs up.
pub fn send_as_operator(addr: SocketAddr, as_operator: u16, to: u16, frames: &[Vec<u8>], linger: Duration) {
    use bss_actors::network::noise::{self, LocalIdentity, SecureWriter};
    let (signers, set) = federation_keys(4);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let me = LocalIdentity::generate(CHAIN_ID, as_operator, &signers[as_operator as usize]).expect("id");
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("dial");
        let link = noise::initiate(&mut s, &me, &set, to).await.expect("a genuine operator key");
        let mut w = SecureWriter::new(&mut s, link.transport.clone());
        for f in frames {
            w.send(f).await.expect("send");
        }
        let mut b = [0u8; 1];
        let _ = tokio::time::timeout(linger, tokio::io::AsyncReadExt::read(&mut s, &mut b)).await;
    });
}

/// A signed EIP-1559 transfer of `value` wei from `key` to `to` on the test chain (21,000 gas,
/// 20 gwei fee cap): what most tests send.
pub fn signed_transfer(
    key: &bss_actors::hvm::accounts::DevKey,
    nonce: u64,
    to: alloy_primitives::Address,
    value: u64,
) -> alloy_primitives::Bytes {
    key.sign_raw(alloy_consensus::TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1,
        to: alloy_primitives::TxKind::Call(to),
        value: alloy_primitives::U256::from(value),
        ..Default::default()
    })
}

/// A JSON-RPC proxy in front of `upstream` (an operator or a Bitcoin node: request headers such
/// as Authorization are passed on) that lets `tamper` rewrite each reply, seeing its request.
pub fn rpc_proxy(upstream: SocketAddr, tamper: impl Fn(&Value, &mut Value) + Send + Sync + 'static) -> SocketAddr {
    use std::io::{BufRead, BufReader};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    let tamper = std::sync::Arc::new(tamper);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let tamper = tamper.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut w = conn;
                loop {
                    let (mut len, mut auth, mut line) = (0usize, None, String::new());
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim().is_empty() {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if lower.starts_with("authorization:") {
                            auth = Some(line.trim().to_string());
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let Ok(mut up) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else { return };
                    let _ = up.set_read_timeout(Some(Duration::from_secs(30)));
                    let head = format!(
                        "POST / HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n",
                        auth.map(|a| format!("{a}\r\n")).unwrap_or_default(),
                        body.len()
                    );
                    let mut reply = Vec::new();
                    if up
                        .write_all(head.as_bytes())
                        .and_then(|_| up.write_all(&body))
                        .and_then(|_| up.read_to_end(&mut reply))
                        .is_err()
                    {
                        return;
                    }
                    let text = String::from_utf8_lossy(&reply).to_string();
                    let reply_body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let mut v: Value = serde_json::from_str(&reply_body).unwrap_or(Value::Null);
                    tamper(&request, &mut v);
                    let out = v.to_string();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        out.len()
                    );
                    if w.write_all(head.as_bytes()).and_then(|_| w.write_all(out.as_bytes())).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Flips one bit of the first commit certificate signature in a `bss_getCertificate` reply.
pub fn flip_certificate(reply: &mut Value) {
    if let Some(sig) = reply.pointer_mut("/result/certificate/signatures/0/signature") {
        let s = sig.as_str().unwrap_or_default().to_string();
        let flipped = format!("{}{}", if s.starts_with('0') { "1" } else { "0" }, &s[1..]);
        *sig = json!(flipped);
    }
}

/// A PYTHONPATH with web3.py (and websockets): installed from PyPI into the target dir on first
/// use if the machine does not have it.
pub fn web3_pythonpath() -> PathBuf {
    let py = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wallet-py");
    let has = |path: &Path| {
        Command::new("python3")
            .args(["-c", "import web3, websockets"])
            .env("PYTHONPATH", path)
            .status()
            .is_ok_and(|s| s.success())
    };
    // Test processes run in parallel: one installs while the others wait on the lock.
    std::fs::create_dir_all(env!("CARGO_TARGET_TMPDIR")).expect("target tmpdir");
    let lock = std::fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("wallet-py.lock")).expect("lock file");
    lock.lock().expect("lock");
    if !has(&py) {
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&py)
            .arg("web3")
            .output()
            .expect("run pip");
        assert!(out.status.success(), "pip install web3 failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    py
}
