//! Attacks anyone can play from outside the federation, against real processes:
//! - keystone-shaped OP_RETURNs posted to Bitcoin by a key that is not an operator's, for L2
//!   numbers just ahead of the chain, must not pin, halt or finalize anything;
//! - a restart while the Bitcoin view lags must not turn into a state-root mismatch.

use crate::pop::{finality, fund_operators, mine_until, pop_config, INTERVAL};
use crate::support::*;
use crate::Regtest;
use alloy_primitives::B256;
use bitcoin::OutPoint;
use bitcoincore_rpc::RpcApi;
use bss_actors::pop::tx::PopWallet;
use bss_actors::pop::Keystone;
use std::time::Duration;

#[test]
fn keystones_from_a_non_operator_key_are_ignored_and_the_chain_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("btc")).expect("dir");
    let btc = Regtest::start(&dir.path().join("btc"), free_port());
    let c = btc.client("u", "p");
    // The outsider has Bitcoin of its own: a mature coinbase on a key no config lists.
    let outsider = PopWallet::new([0x99; 32], bitcoin::Network::Regtest).expect("wallet");
    let funded = c.generate_to_address(1, &outsider.address).expect("fund outsider");
    fund_operators(dir.path(), &c);
    let coinbase = c.get_block(&funded[0]).expect("block").txdata[0].clone();
    let (coin, value) = (OutPoint::new(coinbase.compute_txid(), 0), coinbase.output[0].value.to_sat());

    let fed = Federation::start(dir.path(), 4, &pop_config(btc.addr));
    fed.wait_all_at_least(&[0, 1, 2, 3], 3, Duration::from_secs(60));
    // Two forged keystones (the attack that halted all four operators at block 38): same shape,
    // size and fee as real ones, for L2 numbers well ahead, with hashes the chain will never have.
    let head = fed.nodes[0].block_number();
    let targets = [head + 40 - head % INTERVAL, head + 45 - head % INTERVAL];
    let first = outsider.keystone_tx(coin, value, &forged(targets[0]), 2.0).expect("forged keystone tx");
    let change = OutPoint::new(first.compute_txid(), 1);
    let second = outsider
        .keystone_tx(change, first.output[1].value.to_sat(), &forged(targets[1]), 2.0)
        .expect("second forged keystone tx");
    c.send_raw_transaction(&first).expect("post the first");
    c.send_raw_transaction(&second).expect("post the second");
    // Bury them deep enough that they would be superfinal if they counted.
    let burn = PopWallet::new([0x77; 32], bitcoin::Network::Regtest).expect("wallet").address;
    c.generate_to_address(8, &burn).expect("mine");
    wait_until("the forged keystones ignored", Duration::from_secs(30), || {
        let m = fed.nodes[0].metrics();
        (metric(&m, "bss_pop_keystones_ignored{reason=\"not_operator\"}") >= 2.0).then_some(())
    });

    // The federation commits past both numbers, and real keystones make them superfinal.
    let past = targets[1] + 10;
    mine_until(&c, "the chain superfinal past the forged numbers", || {
        (0..4).all(|i| targets.iter().all(|n| finality(&fed.nodes[i], *n)["superfinal"] == true)).then_some(())
    });
    fed.wait_all_at_least(&[0, 1, 2, 3], past, Duration::from_secs(60));
    fed.assert_same_chain(&[0, 1, 2, 3], past);
    for n in targets {
        let f = finality(&fed.nodes[1], n);
        let block = fed.nodes[1].rpc("eth_getBlockByNumber", serde_json::json!([format!("{n:#x}"), false]));
        assert!(f["keystone"]["l2Number"].as_u64().is_some_and(|k| k >= n), "{f}");
        assert_ne!(f["keystone"]["btcTxid"].as_str(), Some(first.compute_txid().to_string().as_str()));
        assert_ne!(f["keystone"]["btcTxid"].as_str(), Some(second.compute_txid().to_string().as_str()));
        assert!(block["hash"].is_string());
    }
    for i in 0..4 {
        assert_eq!(metric(&fed.nodes[i].metrics(), "bss_consensus_halted"), 0.0, "operator {i} halted");
    }
}

/// A version-2 keystone for block `n` of this chain with a hash no block has.
fn forged(n: u64) -> [u8; bss_actors::pop::keystone::LEN] {
    Keystone { chain_id: CHAIN_ID as u32, l2_number: n, btc_ref_height: 1, l2_hash: B256::repeat_byte(0x66) }.encode()
}
