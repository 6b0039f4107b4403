//! Bounded work against a real node, played as an outsider would: txs that cost nothing, RPC
//! requests that ask for unbounded work, oversized input, browser origins, and a flood of
//! WebSocket subscriptions. Every one gets a clear error and the node keeps serving.

use crate::support::*;
use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use bss_actors::hvm::accounts::DevKey;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn key(hex_secret: &str) -> DevKey {
    let bytes: [u8; 32] = hex::decode(hex_secret).expect("hex").try_into().expect("32 bytes");
    DevKey::from_secret(bytes).expect("key")
}

fn transfer(k: &DevKey, nonce: u64, value: U256, data: usize) -> Bytes {
    k.sign_raw(TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 21_000 + 16 * data as u64,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000,
        to: TxKind::Call(Address::repeat_byte(0x42)),
        value,
        input: vec![1u8; data].into(),
        ..Default::default()
    })
}

fn send_err(node: &Node, raw: &Bytes) -> RpcError {
    node.try_rpc("eth_sendRawTransaction", json!([raw])).expect_err("the node accepted a tx it must refuse")
}

/// A raw HTTP POST with extra headers; returns (status, headers+body text).
fn post_with(addr: SocketAddr, headers: &str, body: &str) -> (u16, String) {
    post_as(addr, &addr.to_string(), headers, body)
}

/// A POST with the `Host` header `host` (a browser sends the name it resolved).
fn post_as(addr: SocketAddr, host: &str, headers: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

#[test]
fn outsiders_cannot_fill_the_pool_for_free_or_make_requests_unbounded() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = Node::start(dir.path(), "");
    node.wait_for_block(1);

    // A fresh key with no balance: gas × price + value wraps past 2^256. Refused, as geth words it.
    let broke = DevKey::from_seed(77);
    let wrapping = transfer(&broke, 0, U256::MAX, 0);
    let err = send_err(&node, &wrapping);
    assert!(err.message.starts_with("insufficient funds for gas * price + value"), "{err:?}");
    // A funded sender whose second tx overdraws what the first leaves.
    let dev1 = key(DEV1);
    let six_k = U256::from(6_000u64) * U256::from(10u64.pow(18));
    let first = transfer(&dev1, 0, six_k, 0);
    node.rpc("eth_sendRawTransaction", json!([first]));
    let err = send_err(&node, &transfer(&dev1, 1, six_k, 0));
    assert!(err.message.starts_with("insufficient funds for gas * price + value"), "{err:?}");
    // A 200 kB transaction (the limit is 128 KiB).
    let err = send_err(&node, &transfer(&key(DEV0), 0, U256::ZERO, 200_000));
    assert!(err.message.contains("oversized data"), "{err:?}");

    // eth_getLogs over earliest..2^64-1: a range that does not fit u64 + 1, refused as over the cap.
    let err = node
        .try_rpc("eth_getLogs", json!([{"fromBlock": "earliest", "toBlock": "0xffffffffffffffff"}]))
        .expect_err("an unbounded log range was served");
    assert_eq!(err.code, -32005, "{err:?}");
    assert!(err.message.contains("max block range"), "{err:?}");

    // An endless loop (JUMPDEST PUSH1 0 JUMP as initcode) asking for 2^64-1 gas: capped at 50M.
    let endless = json!([{"data": "0x5b600056", "gas": "0xffffffffffffffff"}, "latest"]);
    let err = node.try_rpc("eth_call", endless.clone()).expect_err("an endless loop returned");
    assert!(err.message.contains("halted") || err.message.contains("gas"), "{err:?}");
    let err = node.try_rpc("eth_estimateGas", endless).expect_err("an endless loop estimated");
    assert!(err.message.contains("gas required exceeds allowance (50000000)"), "{err:?}");

    // A 5,000-call batch (the cap is 1,000): one clear error, not 5,000 executions.
    let batch: Vec<Value> =
        (0..5_000).map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber", "params": []})).collect();
    let (_, text) = http(node.addr, "POST", "/", &Value::Array(batch).to_string()).expect("batch");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.to_lowercase().contains("batch")), "{v}");

    // A browser page from elsewhere is refused; a local one is served with CORS headers.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).to_string();
    let (status, text) = post_with(node.addr, "Origin: https://evil.example\r\n", &body);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("rpc.cors_origins"), "{text}");
    let (status, text) = post_with(node.addr, "Origin: http://localhost:3000\r\n", &body);
    assert_eq!(status, 200, "{text}");
    assert!(text.to_lowercase().contains("access-control-allow-origin: http://localhost:3000"), "{text}");
    // DNS rebinding: a page on rebind.example, resolved to this node, has Origin == Host. It is
    // not this node's own page (rpc.vhosts); the dashboard reached by 127.0.0.1 is.
    let port = node.addr.port();
    let rebind = format!("rebind.example:{port}");
    let (status, text) = post_as(node.addr, &rebind, &format!("Origin: http://{rebind}\r\n"), &body);
    assert_eq!(status, 403, "a rebinding page was served: {text}");
    assert!(text.contains("rpc.vhosts"), "{text}");
    let own = format!("127.0.0.1:{port}");
    let (status, text) = post_as(node.addr, &own, &format!("Origin: http://{own}\r\n"), &body);
    assert_eq!(status, 200, "the node's own page was refused: {text}");
    // A script sends no Origin: whatever its Host says, it is served.
    let (status, text) = post_as(node.addr, &rebind, "", &body);
    assert_eq!(status, 200, "{text}");
    // bss_* ids are quantities like eth_*'s: hex "0x0", 0 and "0" all name withdrawal 0 (this
    // node has no tunnel, so it answers that, not a parameter error); a word is a bad parameter.
    for id in [json!("0x0"), json!(0), json!("0")] {
        if let Err(e) = node.try_rpc("bss_getWithdrawal", json!([id.clone()])) {
            assert_ne!(e.code, -32602, "bss_getWithdrawal({id}): {e:?}");
        }
    }
    let err = node.try_rpc("bss_getWithdrawal", json!(["zero"])).expect_err("a word is not an id");
    assert_eq!(err.code, -32602, "{err:?}");
    let err = node.try_rpc("bss_keystones", json!(["ten"])).expect_err("a word is not a count");
    assert_eq!(err.code, -32602, "{err:?}");

    // bss_* methods take hex quantities, tags and decimals.
    for id in [json!("0x1"), json!(1), json!("1"), json!("latest"), json!("earliest")] {
        let c = node.rpc("bss_getCertificate", json!([id.clone()]));
        assert!(c["hash"].is_string(), "bss_getCertificate({id}) = {c}");
    }
    let err = node.try_rpc("bss_getCertificate", json!(["one"])).expect_err("a word is not a block number");
    assert_eq!(err.code, -32602, "{err:?}");

    // 2,000 subscriptions on one WebSocket (the cap is 256): the rest are refused, clearly.
    let mut ws = WsClient::connect(node.addr);
    let mut refused = None;
    for i in 0..2_000 {
        let reply = ws.call(&json!({"jsonrpc": "2.0", "id": i, "method": "eth_subscribe", "params": ["newHeads"]}));
        if let Some(e) = reply.get("error") {
            refused = Some((i, e.clone()));
            break;
        }
    }
    let (at, e) = refused.expect("2,000 subscriptions were all accepted");
    assert_eq!(at, 256, "refused at subscription {at}: {e}");
    assert!(e["message"].as_str().is_some_and(|m| m.to_lowercase().contains("subscription")), "{e}");

    // Still serving, still committing.
    let h = node.block_number();
    node.wait_for_block(h + 2);
}

/// The wall-clock budget alone stops a call that the gas cap would not: with the cap lifted, an
/// endless loop is aborted at `call_timeout`.
#[test]
fn a_call_past_its_deadline_is_aborted() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = Node::start(dir.path(), "call_timeout = \"300ms\"\ncall_gas_cap = 9223372036854775807\n");
    node.wait_for_block(1);
    let err = node
        .try_rpc("eth_call", json!([{"data": "0x5b600056", "gas": "0xffffffffffffffff"}, "latest"]))
        .expect_err("an endless loop returned");
    assert!(err.message.contains("execution aborted (timeout"), "{err:?}");
    assert!(metric(&node.metrics(), "bss_rpc_refused_total{reason=\"timeout\"}") >= 1.0);
    let h = node.block_number();
    node.wait_for_block(h + 2);
}

/// The smallest WebSocket client that can talk JSON-RPC: masked text frames out, text frames in.
struct WsClient {
    s: TcpStream,
}

impl WsClient {
    fn connect(addr: SocketAddr) -> WsClient {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let req = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).expect("upgrade");
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).expect("handshake");
            head.push(b[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        WsClient { s }
    }

    fn send(&mut self, text: &str) {
        let data = text.as_bytes();
        let mut frame = vec![0x81u8];
        match data.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65_536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [1u8, 2, 3, 4];
        frame.extend_from_slice(&mask);
        frame.extend(data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.s.write_all(&frame).expect("ws write");
    }

    fn recv(&mut self) -> String {
        let mut h = [0u8; 2];
        self.s.read_exact(&mut h).expect("ws read");
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                self.s.read_exact(&mut l).expect("len");
                u16::from_be_bytes(l) as usize
            }
            127 => {
                let mut l = [0u8; 8];
                self.s.read_exact(&mut l).expect("len");
                u64::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut body = vec![0u8; len];
        self.s.read_exact(&mut body).expect("body");
        String::from_utf8_lossy(&body).into_owned()
    }

    /// Sends a request and returns the reply with its id (notifications in between are skipped).
    fn call(&mut self, req: &Value) -> Value {
        self.send(&req.to_string());
        loop {
            let v: Value = serde_json::from_str(&self.recv()).expect("json");
            if v.get("id") == req.get("id") {
                return v;
            }
        }
    }
}

/// A million-account genesis is built and written once, at the first start: the node must not
/// keep the memory that took (it kept ~235 MiB resident at idle before it reopened the fresh
/// store and returned freed memory). Waits on the resident size with a deadline, and reads a
/// filler account back after a restart.
#[test]
fn a_large_genesis_leaves_no_resident_memory_behind() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\noperator_key = \"{}\"\n\n[genesis]\nchain_id = {CHAIN_ID}\nfiller_accounts = 1000000\n\n\
             [storage]\nfsync = false\n\n[rpc]\naddr = \"{addr}\"\n",
            "42".repeat(32)
        ),
    )
    .expect("config");
    let filler = bss_actors::hvm::chain::filler_address(999_999);
    let mut node = Node::launch(dir.path(), config, addr);
    for start in ["first start (genesis written)", "restart (genesis checked)"] {
        let balance = node.rpc("eth_getBalance", json!([filler, "latest"]));
        assert_eq!(hex_u128(&balance), 1, "{start}: the last filler account holds 1 wei");
        // The allocation alone is ~200 MB while it is built; at idle the node holds a fraction.
        let limit_kib = 120 * 1024;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let rss = node.rss_kib();
            if rss < limit_kib {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{start}: resident memory still {} MiB after 60 s (limit 120 MiB)",
                rss / 1024
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        node.kill();
        node.spawn();
    }
}
