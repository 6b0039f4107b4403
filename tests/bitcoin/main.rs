//! The embedded regtest node (`bss btc-regtest`) driven through bitcoincore-rpc, the client the
//! BtcWatcher will use: mining, block and header queries, reorgs by invalidateblock, errors with
//! bitcoind's codes, authentication, and persistence across a restart.

#[path = "../support/mod.rs"]
mod support;

use bitcoincore_rpc::{Auth, Client, Error, RpcApi};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;
use support::*;

struct Regtest {
    child: Child,
    addr: SocketAddr,
}

impl Regtest {
    fn start(dir: &std::path::Path, port: u16) -> Regtest {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let child = Command::new(BSS)
            .args(["btc-regtest", "--rpc-user", "u", "--rpc-password", "p", "--block-interval", "0s"])
            .args(["--rpc-bind", &addr.to_string(), "--data-dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn btc-regtest");
        let r = Regtest { child, addr };
        wait_until("the regtest RPC", Duration::from_secs(30), || r.client("u", "p").get_block_count().ok());
        r
    }

    fn client(&self, user: &str, pass: &str) -> Client {
        Client::new(&format!("http://{}", self.addr), Auth::UserPass(user.into(), pass.into())).expect("client")
    }
}

impl Drop for Regtest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rpc_code(e: Error) -> i32 {
    match e {
        Error::JsonRpc(bitcoincore_rpc::jsonrpc::Error::Rpc(r)) => r.code,
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

#[test]
fn regtest_chain_through_bitcoincore_rpc() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let node = Regtest::start(dir.path(), port);
    let c = node.client("u", "p");
    assert_eq!(c.get_block_count().expect("count"), 0);
    let genesis = c.get_block_hash(0).expect("genesis");
    assert_eq!(genesis.to_string(), "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206");

    let addr = bitcoincore_rpc::bitcoin::Address::from_str("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
        .expect("address")
        .assume_checked();
    let mined = c.generate_to_address(5, &addr).expect("generate");
    assert_eq!(mined.len(), 5);
    assert_eq!(c.get_block_count().expect("count"), 5);
    assert_eq!(c.get_best_block_hash().expect("best"), mined[4]);
    let block = c.get_block(&mined[2]).expect("raw block");
    assert_eq!(block.block_hash(), mined[2]);
    assert!(block.check_merkle_root());
    block.header.validate_pow(block.header.target()).expect("real proof of work");
    assert_eq!(block.txdata[0].output[0].script_pubkey, addr.script_pubkey());
    let header = c.get_block_header_info(&mined[2]).expect("header info");
    assert_eq!((header.height, header.confirmations), (3, 3));
    assert_eq!(header.next_block_hash, Some(mined[3]));
    let info: Value = c.call("getblockchaininfo", &[]).expect("chain info");
    assert_eq!(info["chain"], "regtest");
    assert_eq!(info["blocks"], 5);

    // Reorg: invalidate block 3, mine a longer competing branch, reconsider.
    c.invalidate_block(&mined[2]).expect("invalidate");
    assert_eq!(c.get_block_count().expect("count"), 2);
    let fork = c.generate_to_address(4, &addr).expect("fork");
    assert_eq!(c.get_block_count().expect("count"), 6);
    assert_eq!(c.get_block_header_info(&mined[2]).expect("header").confirmations, -1);
    c.reconsider_block(&mined[2]).expect("reconsider");
    // The fork (6 blocks) has more work than the old branch (5): it stays active.
    assert_eq!(c.get_best_block_hash().expect("best"), fork[3]);

    // bitcoind's error codes.
    assert_eq!(rpc_code(c.get_block_hash(999).expect_err("out of range")), -8);
    let unknown = bitcoincore_rpc::bitcoin::BlockHash::from_str(&"11".repeat(32)).expect("hash");
    assert_eq!(rpc_code(c.get_block(&unknown).expect_err("unknown block")), -5);
    assert_eq!(rpc_code(c.call::<Value>("nosuchmethod", &[]).expect_err("unknown method")), -32601);
    assert!(node.client("u", "wrong").get_block_count().is_err(), "a wrong password must be refused");
    // A JSON-RPC 1.0 request without a content type, as older clients send it: bitcoind's shape.
    let body = r#"{"jsonrpc":"1.0","id":"x","method":"getblockcount","params":[]}"#;
    let mut s = std::net::TcpStream::connect(node.addr).expect("connect");
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dTpw\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    std::io::Write::write_all(&mut s, req.as_bytes()).expect("write");
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut s, &mut reply).expect("read");
    assert!(reply.contains(r#""result":6"#) && reply.contains(r#""error":null"#), "{reply}");
    let (status, _) = http(node.addr, "POST", "/", body).expect("raw request");
    assert_eq!(status, 401, "a request without credentials must be refused");

    // Persistence: a restart keeps the chain and the active branch.
    let best = c.get_best_block_hash().expect("best");
    drop(node);
    let node = Regtest::start(dir.path(), port);
    let c = node.client("u", "p");
    assert_eq!(c.get_block_count().expect("count"), 6);
    assert_eq!(c.get_best_block_hash().expect("best"), best);
}
