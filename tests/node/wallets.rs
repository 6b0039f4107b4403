//! Wallet libraries unchanged against a real node: web3.py over HTTP and a WebSocket
//! `eth_subscribe("newHeads")` (tests/wallets/web3py_check.py). web3.py is installed from PyPI
//! into the target dir on first run if the machine does not have it ([`web3_pythonpath`]).

use crate::support::*;
use std::path::Path;
use std::process::Command;

#[test]
fn web3py_and_websocket_work_unchanged() {
    let py = web3_pythonpath();
    let dir = tempfile::tempdir().expect("tmp");
    let node = Node::start(dir.path(), "");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/wallets/web3py_check.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", node.addr))
        .env("PYTHONPATH", &py)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "web3.py check failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("web3.py and websocket: all checks passed"), "{stdout}");
}
