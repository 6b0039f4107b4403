//! Each supervision policy with a panic injected into the running node (`bss_injectFault`,
//! only with `rpc.fault_injection`): the executor restarts with its state reloaded and the
//! chain goes on; a dead mempool stops the node with the documented exit code. (The RPC actor's
//! restart is in `rpc_end_to_end`; the Bitcoin watcher's and PoP submitter's in the bitcoin
//! theme.)

use crate::support::*;
use alloy_primitives::Address;
use bss_actors::hvm::accounts::{derive_accounts, DEV_MNEMONIC};
use serde_json::json;
use std::time::Duration;

fn transfer(nonce: u64) -> alloy_primitives::Bytes {
    let sender = derive_accounts(DEV_MNEMONIC, 1).expect("keys").remove(0);
    signed_transfer(&sender, nonce, Address::with_last_byte(0x77), 5)
}

#[test]
fn an_executor_panic_fails_one_request_and_the_executor_comes_back_with_committed_state() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = Node::start(dir.path(), "");
    let first = node.rpc("eth_sendRawTransaction", json!([transfer(0)]));
    node.wait_for_receipt(first.as_str().expect("hash"));
    let before = node.block_number();
    assert_eq!(node.rpc("bss_injectFault", json!(["executor", FAULT_TOKEN])), json!("injected"));
    wait_until("the executor restart to be counted", Duration::from_secs(30), || {
        node.metrics().contains("bss_actor_restarts_total{actor=\"executor\"} 1").then_some(())
    });
    // The chain goes on from the committed state: a transfer with the next nonce commits.
    let second = node.rpc("eth_sendRawTransaction", json!([transfer(1)]));
    let receipt = node.wait_for_receipt(second.as_str().expect("hash"));
    assert_eq!(receipt["status"], json!("0x1"));
    assert!(node.block_number() > before + 1);
    let balance = node.rpc("eth_getBalance", json!([format!("{:#x}", Address::with_last_byte(0x77)), "latest"]));
    assert_eq!(hex_u128(&balance), 10, "both transfers, each once");
}

/// `docker stop` and service managers send SIGTERM: the node stops cleanly (exit code 0), and a
/// restart serves the committed chain.
#[test]
fn sigterm_stops_the_node_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut node = Node::start(dir.path(), "");
    node.wait_for_block(2);
    let pid = node.pid().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let (code, log) = node.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "SIGTERM is a clean stop; log:\n{log}");
    assert!(log.contains("SIGTERM") && log.contains("shutting down"), "{log}");
    node.spawn();
    assert!(node.block_number() >= 2);
}

#[test]
fn a_mempool_panic_stops_the_node_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut node = Node::start(dir.path(), "");
    node.wait_for_block(2);
    assert_eq!(node.rpc("bss_injectFault", json!(["mempool", FAULT_TOKEN])), json!("injected"));
    let (code, log) = node.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(2), "a node without its mempool must stop loudly; log:\n{log}");
    assert!(log.contains("fatal error in mempool"), "the reason is in the log:\n{log}");
    // Nothing was lost: a restart serves the committed chain.
    node.spawn();
    assert!(node.block_number() >= 2);
}

#[test]
fn fault_injection_names_its_targets_and_refuses_parts_that_do_not_run() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = Node::start(dir.path(), "");
    let e = node.try_rpc("bss_injectFault", json!(["consensus", FAULT_TOKEN])).expect_err("unknown target");
    assert!(e.message.contains("known: rpc, executor, mempool"), "{}", e.message);
    let e = node.try_rpc("bss_injectFault", json!(["btc_watcher", FAULT_TOKEN])).expect_err("no watcher without [btc]");
    assert!(e.message.contains("[btc] is not set"), "{}", e.message);
    // Without the harness's secret nobody can stop the node: a wrong token, or none.
    let e = node.try_rpc("bss_injectFault", json!(["mempool", "not-the-token-at-all"])).expect_err("wrong token");
    assert!(e.message.contains("wrong token"), "{}", e.message);
    assert!(node.try_rpc("bss_injectFault", json!(["mempool"])).is_err(), "no token");
    assert!(node.try_rpc("eth_blockNumber", json!([])).is_ok(), "the node is still up");
}
