//! The Bitcoin view inside a federation: every operator's watcher follows the same regtest node,
//! L2 headers carry its headers, and a contract reading the hVM precompiles gets the same bytes
//! from every operator (eth_call at each one's latest block: nodes keep only head state, and once
//! Bitcoin stops moving every new L2 block builds on the same BTC tip).

use crate::support::*;
use crate::wallet::{Key, Kind};
use crate::{coinbase_at, pay, Regtest};
use alloy_consensus::TxEip1559;
use alloy_primitives::{Bytes, TxKind, U256};
use bitcoin::Amount;
use bitcoincore_rpc::RpcApi;
use bss_actors::hvm::accounts::derive_accounts;
use bss_actors::hvm::bytecode::deploy_initcode;
use serde_json::json;
use std::time::Duration;

/// Forwards calldata[1..] to the precompile at address calldata[0] (STATICCALL) and returns
/// whatever it returned.
const PROXY: [u8; 27] = [
    0x5f, 0x5f, // retSize 0, retOffset 0
    0x60, 0x01, 0x36, 0x03, // argsSize = CALLDATASIZE - 1
    0x80, 0x60, 0x01, 0x5f, 0x37, // CALLDATACOPY(0, 1, argsSize)
    0x5f, // argsOffset 0
    0x5f, 0x35, 0x60, 0xf8, 0x1c, // address = calldata[0]
    0x5a, 0xfa, 0x50, // GAS STATICCALL POP
    0x3d, 0x5f, 0x5f, 0x3e, // RETURNDATACOPY(0, 0, RETURNDATASIZE)
    0x3d, 0x5f, 0xf3, // RETURN(0, RETURNDATASIZE)
];

fn call_at(node: &Node, proxy: &str, precompile: u8, input: &[u8]) -> Vec<u8> {
    let mut data = vec![precompile];
    data.extend_from_slice(input);
    let out = node.rpc("eth_call", json!([{ "to": proxy, "data": Bytes::from(data) }, "latest"]));
    hex::decode(out.as_str().expect("hex").trim_start_matches("0x")).expect("hex")
}

#[test]
fn federation_agrees_on_the_bitcoin_view_and_the_hvm_precompiles() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    let (miner, payee) = (Key::new(1, Kind::P2wpkh), Key::new(5, Kind::P2tr));
    c.generate_to_address(101, &miner.address()).expect("mine");
    let cb = coinbase_at(&c, 1);
    let fifty = Amount::from_btc(50.0).expect("amount");
    let one = Amount::from_btc(1.0).expect("amount");
    let tx = miner.spend1(&cb, vec![pay(&payee, one), pay(&miner, fifty - one - Amount::from_sat(1_000))]);
    let txid = c.send_raw_transaction(&tx).expect("send");
    c.generate_to_address(3, &miner.address()).expect("mine"); // tx at 102, best 104

    let btc_section = crate::btc_section(btc.addr);
    let fed = Federation::start(dir.path(), 4, &btc_section);
    let all = [0, 1, 2, 3];
    // Lag 1 behind best 104: the chain's view reaches 103, six headers per L2 block at most.
    wait_until("every operator's L2 head at BTC tip 103", Duration::from_secs(60), || {
        all.iter().all(|i| fed.nodes[*i].rpc("bss_btcTip", json!([]))["height"] == 103).then_some(())
    });
    let header = fed.nodes[0].rpc("bss_btcHeader", json!([103]));
    assert_eq!(header["hash"], c.get_block_hash(103).expect("hash").to_string());

    let dev = derive_accounts(bss_actors::hvm::accounts::DEV_MNEMONIC, 1).expect("keys").remove(0);
    let deploy = dev.sign_raw(TxEip1559 {
        chain_id: CHAIN_ID,
        nonce: 0,
        gas_limit: 200_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000,
        to: TxKind::Create,
        value: U256::ZERO,
        input: deploy_initcode(&PROXY),
        ..Default::default()
    });
    let hash = fed.nodes[0].rpc("eth_sendRawTransaction", json!([deploy]));
    let receipt = fed.nodes[0].wait_for_receipt(hash.as_str().expect("hash"));
    let proxy = receipt["contractAddress"].as_str().expect("address").to_string();
    let at = hex_u64(&receipt["blockNumber"]);
    fed.wait_all_at_least(&all, at, Duration::from_secs(30));

    let payee_addr = payee.address().to_string();
    let txid_display = hex::decode(txid.to_string()).expect("hex");
    let mut tx_query = txid_display.clone();
    tx_query.extend_from_slice(&[0x60, 0, 0, 0]); // containing block + version
    let queries: Vec<(u8, Vec<u8>)> = vec![
        (0x40, payee_addr.as_bytes().to_vec()),
        (0x41, [payee_addr.as_bytes(), &[0, 0, 0, 0]].concat()),
        (0x42, tx_query),
        (0x43, txid_display.clone()),
        (0x44, vec![]),
        (0x45, 101u32.to_be_bytes().to_vec()),
        (0x46, payee_addr.as_bytes().to_vec()),
        (0x40, b"too short".to_vec()),
        // Input 0 (scriptSig up to 8 bytes), output 0 (script up to 64), witness 0 of input 0.
        (0x47, [&txid_display[..], &0u16.to_be_bytes(), &8u16.to_be_bytes()].concat()),
        (0x48, [&txid_display[..], &0u16.to_be_bytes(), &64u16.to_be_bytes()].concat()),
        (0x49, [&txid_display[..], &0u16.to_be_bytes(), &0u16.to_be_bytes(), &200u16.to_be_bytes()].concat()),
    ];
    for i in all {
        let tip = fed.nodes[i].rpc("bss_btcTip", json!([]));
        assert_eq!(tip["height"], 103, "operator {i}'s head builds on BTC tip 103");
    }
    let answers: Vec<Vec<Vec<u8>>> =
        all.iter().map(|i| queries.iter().map(|(p, q)| call_at(&fed.nodes[*i], &proxy, *p, q)).collect()).collect();
    for (i, a) in answers.iter().enumerate().skip(1) {
        assert_eq!(a, &answers[0], "operator {i} computed different precompile results");
    }
    let a = &answers[0];
    assert_eq!(a[0], one.to_sat().to_be_bytes().to_vec(), "btcBalAddr");
    let mut utxo = vec![1u8];
    utxo.extend_from_slice(&txid_display);
    utxo.extend_from_slice(&0u16.to_be_bytes());
    utxo.extend_from_slice(&one.to_sat().to_be_bytes());
    assert_eq!(a[1], utxo, "btcUtxosAddrList");
    let block_102 = hex::decode(c.get_block_hash(102).expect("hash").to_string()).expect("hex");
    assert_eq!(a[2], [block_102, 2u32.to_be_bytes().to_vec()].concat(), "btcTxByTxid");
    assert_eq!(a[3], 2u32.to_be_bytes().to_vec(), "btcTxConfirmations: tip 103, tx at 102");
    assert_eq!(a[4].len(), 116, "btcLastHeader");
    assert_eq!(a[4][..4], 103u32.to_be_bytes());
    assert_eq!(a[4][4..36], hex::decode(c.get_block_hash(103).expect("hash").to_string()).expect("hex")[..]);
    assert_eq!(a[5][4..36], hex::decode(c.get_block_hash(101).expect("hash").to_string()).expect("hex")[..]);
    assert_eq!(a[6], payee.address().script_pubkey().to_bytes(), "btcAddrToScript");
    assert!(a[7].is_empty(), "invalid input: empty output, not a revert");
    let spent = &tx.input[0];
    let input0 = [
        &(spent.witness.len() as u16).to_be_bytes()[..],
        &cb.1.value.to_sat().to_be_bytes(),
        &hex::decode(spent.previous_output.txid.to_string()).expect("hex"),
        &(spent.previous_output.vout as u16).to_be_bytes(),
        &0u16.to_be_bytes(), // segwit: empty scriptSig
        &spent.sequence.0.to_be_bytes(),
    ]
    .concat();
    assert_eq!(a[8], input0, "btcInputByTxid");
    let script = payee.address().script_pubkey().to_bytes();
    let output0 = [&one.to_sat().to_be_bytes()[..], &(script.len() as u16).to_be_bytes(), &script, &[0]].concat();
    assert_eq!(a[9], output0, "btcOutputByTxid (unspent)");
    let w0 = spent.witness.nth(0).expect("witness");
    assert_eq!(a[10], [&(w0.len() as u16).to_be_bytes()[..], w0].concat(), "btcTxGetInputWitness");
    let metrics = fed.nodes[1].metrics();
    assert!(metric(&metrics, "bss_btc_tip_height") >= 103.0, "the watcher's tip is exported");
}
