//! Byzantine operators in the real binary (`bss node --byzantine MODE`): with one of four
//! misbehaving on the wire, the three honest operators keep one chain and keep committing, and
//! the txs sent to them commit.

use crate::support::*;
use alloy_primitives::Address;
use bss_actors::hvm::accounts::{derive_accounts, DEV_MNEMONIC};
use serde_json::json;
use std::time::Duration;

const CONSENSUS: &str = "block_time = \"100ms\"\nbase_timeout = \"500ms\"\nmax_timeout = \"2s\"";

/// Operator 3 runs `mode`; the others must commit 15 blocks past the start on one chain, and a
/// tx sent to each honest operator commits.
fn honest_three_outlast(mode: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let fed = Federation::start_byzantine(dir.path(), 4, CONSENSUS, "", |_, _, _| None, &[(3, mode)]);
    let honest = [0, 1, 2];
    fed.wait_all_at_least(&honest, 2, Duration::from_secs(60));
    let key = derive_accounts(DEV_MNEMONIC, 1).expect("keys").remove(0);
    let mut hashes = vec![];
    for (nonce, i) in honest.iter().enumerate() {
        let raw = signed_transfer(&key, nonce as u64, Address::with_last_byte(9), 1);
        hashes.push(fed.nodes[*i].rpc("eth_sendRawTransaction", json!([raw])).as_str().expect("hash").to_string());
    }
    for h in &hashes {
        fed.nodes[0].wait_for_receipt(h);
    }
    let start = fed.nodes[0].block_number();
    fed.wait_all_at_least(&honest, start + 15, Duration::from_secs(120));
    fed.assert_same_chain(&honest, start + 15);
    let invalid: f64 =
        honest.iter().map(|i| metric(&fed.nodes[*i].metrics(), "bss_consensus_invalid_messages_total")).sum();
    let refused: f64 =
        honest.iter().map(|i| metric(&fed.nodes[*i].metrics(), "bss_consensus_refused_proposals_total")).sum();
    let equivocating: f64 = honest
        .iter()
        .map(|i| metric(&fed.nodes[*i].metrics(), "bss_consensus_dropped_messages_total{reason=\"equivocating_vote\"}"))
        .sum();
    eprintln!("{mode}: honest operators counted {invalid} invalid messages, refused {refused} proposals, dropped {equivocating} equivocating votes");
    match mode {
        "wrong-root" => assert!(refused > 0.0, "no wrong-root proposal was refused"),
        "forge-qc" => assert!(invalid > 0.0, "no forged QC was counted"),
        _ => {}
    }
}

#[test]
fn withhold_votes() {
    honest_three_outlast("withhold-votes");
}

#[test]
fn wrong_root() {
    honest_three_outlast("wrong-root");
}

#[test]
fn equivocate() {
    honest_three_outlast("equivocate");
}

#[test]
fn replay() {
    honest_three_outlast("replay");
}

#[test]
fn forge_qc() {
    honest_three_outlast("forge-qc");
}
