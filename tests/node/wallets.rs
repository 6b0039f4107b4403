//! Wallet libraries unchanged against a real node: web3.py over HTTP and a WebSocket
//! `eth_subscribe("newHeads")` (tests/wallets/web3py_check.py). web3.py is installed from PyPI
//! into the target dir on first run if the machine does not have it.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python_path() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wallet-py")
}

fn has_web3(path: &Path) -> bool {
    Command::new("python3")
        .args(["-c", "import web3, websockets"])
        .env("PYTHONPATH", path)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn web3py_and_websocket_work_unchanged() {
    let py = python_path();
    if !has_web3(&py) {
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&py)
            .arg("web3")
            .output()
            .expect("run pip");
        assert!(out.status.success(), "pip install web3 failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
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
