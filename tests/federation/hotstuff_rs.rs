//! The `hotstuff-rs` engine (the hotstuff_rs crate, 0.4) behind the same node: four operators
//! commit blocks with transactions, every RPC serves the same chain, and an operator whose data
//! is wiped catches up from genesis through hotstuff-rs's block sync (which needs our
//! `block_data` workaround to carry any payload at all).

use crate::support::*;
use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, TxKind, U256};
use bss_actors::hvm::accounts::{derive_accounts, DEV_MNEMONIC};
use serde_json::json;
use std::time::Duration;

#[test]
fn hotstuff_rs_federation_commits_agrees_and_syncs_a_wiped_operator() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut fed = Federation::start(dir.path(), 4, "engine = \"hotstuff-rs\"\nbase_timeout = \"1s\"");
    let all = [0, 1, 2, 3];
    fed.wait_all_at_least(&all, 5, Duration::from_secs(60));
    let info = fed.nodes[0].rpc("bss_nodeInfo", json!([]));
    assert_eq!(info["engine"], "hotstuff-rs");

    let key = derive_accounts(DEV_MNEMONIC, 1).expect("keys").remove(0);
    let sink = Address::with_last_byte(0x55);
    let mut hashes = vec![];
    for nonce in 0..5 {
        let raw = key.sign_raw(TxEip1559 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 20_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(sink),
            value: U256::from(1),
            ..Default::default()
        });
        let h = fed.nodes[(nonce % 4) as usize].rpc("eth_sendRawTransaction", json!([raw]));
        hashes.push(h.as_str().expect("hash").to_string());
    }
    for h in &hashes {
        assert_eq!(fed.nodes[3].wait_for_receipt(h)["status"], json!("0x1"));
    }
    let h = fed.heights(&all).into_iter().min().unwrap_or(0);
    fed.assert_same_chain(&all, h);
    assert_eq!(fed.nodes[2].rpc("eth_getBalance", json!([sink, "latest"])), json!(U256::from(5)));
    // Stored certificates are hotstuff-rs's own quorum certificates: `bss verify` checks them.
    let cert = fed.nodes[1].rpc("bss_getCertificate", json!([3]));
    assert!(cert["certificate"]["hotstuffRs"]["signatures"].is_array(), "{cert}");
    verify_commit(&fed.nodes[1], 3);

    // Operator 3 loses its disk and comes back: hotstuff-rs block sync brings the whole chain.
    fed.nodes[3].kill();
    std::fs::remove_dir_all(dir.path().join("node3")).expect("wipe");
    let target = fed.heights(&[0, 1, 2]).into_iter().max().unwrap_or(0);
    fed.nodes[3].spawn();
    fed.wait_all_at_least(&all, target + 3, Duration::from_secs(120));
    let h = fed.heights(&all).into_iter().min().unwrap_or(0);
    fed.assert_same_chain(&all, h);
    for h in &hashes {
        assert_eq!(fed.nodes[3].wait_for_receipt(h)["status"], json!("0x1"), "{h} on the synced operator");
    }
    // Blocks that came by hotstuff-rs block sync carry verifiable certificates too.
    verify_commit(&fed.nodes[3], 4);
}

/// `bss verify block N --rpc` (no Bitcoin): the certificate checks out against the operator set.
fn verify_commit(node: &Node, n: u64) {
    let out = std::process::Command::new(BSS)
        .args(["verify", "block", &n.to_string(), "--rpc", &format!("http://{}", node.addr)])
        .env_remove("BSS_BTC_RPC")
        .output()
        .expect("run bss verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "verify failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("hotstuff-rs certificate") && stdout.contains("the block is committed"), "{stdout}");
}
