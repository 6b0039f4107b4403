//! n4f1: four operators, up to one (then two) down; the sync servers a restarted operator
//! syncs from panic on its first request and are restarted.

use crate::support::*;
use alloy_primitives::{Address, U256};
use bss_actors::hvm::accounts::{derive_accounts, DevKey, DEV_MNEMONIC};
use serde_json::json;
use std::time::Duration;

const CONSENSUS: &str = "block_time = \"100ms\"\nbase_timeout = \"500ms\"\nmax_timeout = \"3s\"";

fn transfer(key: &DevKey, nonce: u64, to: Address) -> alloy_primitives::Bytes {
    signed_transfer(key, nonce, to, 1)
}

#[test]
fn one_down_keeps_committing_and_a_restarted_operator_catches_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut fed = Federation::start(dir.path(), 4, CONSENSUS);
    let all = [0, 1, 2, 3];
    fed.wait_all_at_least(&all, 3, Duration::from_secs(60));

    // Transactions sent to every operator reach the leader through gossip.
    let keys = derive_accounts(DEV_MNEMONIC, 4).expect("keys");
    let sink = Address::with_last_byte(0x77);
    let mut hashes = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        for nonce in 0..5 {
            let h = fed.nodes[i].rpc("eth_sendRawTransaction", json!([transfer(k, nonce, sink)]));
            hashes.push(h.as_str().expect("hash").to_string());
        }
    }

    // SIGKILL operator 2: the other three keep committing.
    fed.nodes[2].kill();
    let live = [0, 1, 3];
    let h0 = fed.heights(&live).into_iter().max().unwrap_or(0);
    fed.wait_all_at_least(&live, h0 + 10, Duration::from_secs(90));

    // Supervision: the sync servers of the three live operators panic at the next request they
    // get; each is restarted and operator 2 asks again.
    for i in live {
        assert_eq!(fed.nodes[i].rpc("bss_injectFault", json!(["sync_server", FAULT_TOKEN])), json!("injected"));
    }
    // Restart it: it catches up through block sync and votes again, and the transactions it
    // acknowledged (journaled before the ack) come back even if it died before gossiping them.
    fed.nodes[2].spawn();
    let target = fed.heights(&live).into_iter().max().unwrap_or(0) + 5;
    fed.wait_all_at_least(&all, target, Duration::from_secs(90));
    let votes_before = metric(&fed.nodes[2].metrics(), "bss_consensus_votes_sent_total");
    wait_until("operator 2 voting again", Duration::from_secs(60), || {
        (metric(&fed.nodes[2].metrics(), "bss_consensus_votes_sent_total") > votes_before + 3.0).then_some(())
    });
    let restarts: f64 =
        live.iter().map(|i| metric(&fed.nodes[*i].metrics(), "bss_actor_restarts_total{actor=\"sync_server\"}")).sum();
    assert!(restarts >= 1.0, "no sync server panicked and came back (restarts {restarts})");
    // Every operator serves the same chain, and every acknowledged tx is committed once.
    let h = fed.heights(&all).into_iter().min().unwrap_or(0);
    fed.assert_same_chain(&all, h);
    for h in &hashes {
        let r = fed.nodes[2].wait_for_receipt(h);
        assert_eq!(r["status"], json!("0x1"), "{h} on the restarted operator");
    }
    assert_eq!(fed.nodes[1].rpc("eth_getBalance", json!([sink, "latest"])), json!(U256::from(20)));
    // Exactly once: each sender's nonce is 5 and the sink got exactly 20 wei.
    for (i, k) in keys.iter().enumerate() {
        let nonce = hex_u64(&fed.nodes[(i + 1) % 4].rpc("eth_getTransactionCount", json!([k.address, "latest"])));
        assert_eq!(nonce, 5, "sender {i}");
    }
}

#[test]
fn two_down_stops_commits_without_conflict_and_one_back_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut fed = Federation::start(dir.path(), 4, CONSENSUS);
    fed.wait_all_at_least(&[0, 1, 2, 3], 5, Duration::from_secs(60));
    fed.nodes[1].kill();
    fed.nodes[3].kill();
    let live = [0, 2];
    // No quorum: the live operators' round timers keep firing without progress. Once each has
    // fired twice, certificates formed before the kill have landed; after two more firings,
    // nothing may have committed without a quorum.
    let fired = |fed: &Federation| -> Vec<f64> {
        live.iter().map(|i| metric(&fed.nodes[*i].metrics(), "bss_consensus_round_timer_fired_total")).collect()
    };
    let wait_fired = |fed: &Federation, n: f64, what: &str| {
        let start = fired(fed);
        wait_until(what, Duration::from_secs(60), || {
            fired(fed).iter().zip(&start).all(|(now, then)| *now >= then + n).then_some(())
        });
    };
    wait_fired(&fed, 2.0, "in-flight certificates to settle");
    let settled = fed.heights(&live);
    wait_fired(&fed, 2.0, "two more round timeouts without a quorum");
    assert_eq!(fed.heights(&live), settled, "committed without a quorum");
    let top = settled.iter().copied().min().unwrap_or(0);
    fed.assert_same_chain(&live, top);
    // One back: quorum again, commits resume.
    fed.nodes[1].spawn();
    let live = [0, 1, 2];
    let max = settled.iter().copied().max().unwrap_or(0);
    fed.wait_all_at_least(&live, max + 5, Duration::from_secs(120));
    let h = fed.heights(&live).into_iter().min().unwrap_or(0);
    fed.assert_same_chain(&live, h);
}
