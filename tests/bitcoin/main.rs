//! The embedded regtest node (crate `bss-regtest`, started in this process) driven through
//! bitcoincore-rpc, the client the BtcWatcher and PoP submitter use: mining, block and header
//! queries, reorgs by invalidateblock, errors with bitcoind's codes, authentication, and
//! persistence across a restart.

#[path = "../support/mod.rs"]
mod support;

use bitcoincore_rpc::{Auth, Client, Error, RpcApi};
use serde_json::Value;
use std::net::SocketAddr;

use std::str::FromStr;
use std::time::Duration;
use support::*;

/// The embedded regtest node, started in this test process (crate `bss-regtest`).
struct Regtest {
    /// Held: dropping it stops the node (a test may restart it on the same directory).
    _node: bss_regtest::Regtest,
    addr: SocketAddr,
}

impl Regtest {
    fn start(dir: &std::path::Path, port: u16) -> Regtest {
        let cfg = bss_regtest::RegtestConfig {
            data_dir: dir.to_path_buf(),
            bind: format!("127.0.0.1:{port}").parse().expect("addr"),
            user: "u".into(),
            password: "p".into(),
        };
        let node = bss_regtest::Regtest::start(cfg).expect("regtest");
        let r = Regtest { addr: node.addr(), _node: node };
        wait_until("the regtest RPC", Duration::from_secs(30), || r.client("u", "p").get_block_count().ok());
        r
    }

    /// A fresh regtest node in `dir/btc` on a free port.
    fn start_in(dir: &std::path::Path) -> Regtest {
        let btc_dir = dir.join("btc");
        std::fs::create_dir_all(&btc_dir).expect("dir");
        Regtest::start(&btc_dir, free_port())
    }

    fn client(&self, user: &str, pass: &str) -> Client {
        Client::new(&format!("http://{}", self.addr), Auth::UserPass(user.into(), pass.into())).expect("client")
    }
}

/// The `[consensus]` tail and `[btc]` section every operator of a Bitcoin test gets.
fn btc_section(btc: SocketAddr) -> String {
    format!(
        "block_time = \"100ms\"\n[btc]\nrpc_url = \"http://{btc}\"\nrpc_user = \"u\"\nrpc_password = \"p\"\n\
         confirmations_lag = 1\npoll_interval = \"100ms\"\n"
    )
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

mod censorship;
mod hvm;
mod pop;
mod trust;
mod tunnel;
mod vault;
mod wallet;
mod watcher;

use bitcoin::{Amount, OutPoint, TxOut};
use wallet::{op_return, Key, Kind};

fn rpc_message(e: Error) -> (i32, String) {
    match e {
        Error::JsonRpc(bitcoincore_rpc::jsonrpc::Error::Rpc(r)) => (r.code, r.message),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

/// The coinbase output of the block at `height`, as a spendable (outpoint, output) pair.
fn coinbase_at(c: &Client, height: u64) -> (OutPoint, TxOut) {
    let block = c.get_block(&c.get_block_hash(height).expect("hash")).expect("block");
    let cb = &block.txdata[0];
    (OutPoint::new(cb.compute_txid(), 0), cb.output[0].clone())
}

fn pay(key: &Key, amount: Amount) -> TxOut {
    TxOut { value: amount, script_pubkey: key.address().script_pubkey() }
}

/// A keystone tx (version 3: the certificate in a tapscript witness) is standard and confirms;
/// the same tx with one witness item over 80 bytes is valid by consensus (the leaf drops its data)
/// but refused by policy, as Bitcoin Core refuses it (`MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE`).
#[test]
fn keystone_txs_are_standard_and_oversized_witness_items_are_not() {
    use bss_actors::pop::keystone::{CertifiedKeystone, Keystone};
    use bss_actors::pop::tx::PopWallet;
    let dir = tempfile::tempdir().expect("tmp");
    let node = Regtest::start(dir.path(), free_port());
    let c = node.client("u", "p");
    let w = PopWallet::new([0x42; 32], bitcoin::Network::Regtest).expect("wallet");
    c.generate_to_address(1, &w.address).expect("fund");
    c.generate_to_address(100, &Key::new(9, Kind::P2wpkh).address()).expect("mature");
    let coin = coinbase_at(&c, 1);
    let (signers, _) = federation_keys(4);
    let k = Keystone {
        chain_id: 7,
        epoch: 0,
        l2_number: 5,
        btc_ref_height: 1,
        l2_hash: alloy_primitives::B256::repeat_byte(1),
    };
    let cert = CertifiedKeystone {
        keystone: k,
        signers: vec![0, 1, 2],
        signatures: signers[..3].iter().map(|s| s.sign(&k.statement())).collect(),
    };
    let tx = w.keystone_tx(coin.0, coin.1.value.to_sat(), &cert, 2.0).expect("tx");
    let mut items: Vec<Vec<u8>> = tx.input[0].witness.iter().map(|i| i.to_vec()).collect();
    items[1].resize(81, 0);
    let mut oversized = tx.clone();
    oversized.input[0].witness = bitcoin::Witness::from_slice(&items);
    let check = c.test_mempool_accept(&[&oversized]).expect("testmempoolaccept");
    assert_eq!(check[0].reject_reason.as_deref(), Some("bad-witness-nonstandard"));
    let check = c.test_mempool_accept(&[&tx]).expect("testmempoolaccept");
    assert!(check[0].allowed, "{:?}", check[0].reject_reason);
    let txid = c.send_raw_transaction(&tx).expect("a keystone tx is standard");
    c.generate_to_address(1, &Key::new(9, Kind::P2wpkh).address()).expect("mine");
    assert!(c.get_raw_transaction_info(&txid, None).expect("tx").confirmations.unwrap_or(0) >= 1);
}

#[test]
fn mempool_checks_signatures_spends_and_fees() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = Regtest::start(dir.path(), free_port());
    let c = node.client("u", "p");
    let (segwit, taproot, legacy) = (Key::new(1, Kind::P2wpkh), Key::new(2, Kind::P2tr), Key::new(3, Kind::P2pkh));
    for k in [&segwit, &taproot, &legacy] {
        c.generate_to_address(1, &k.address()).expect("mine");
    }
    let (cb_segwit, cb_taproot, cb_legacy) = (coinbase_at(&c, 1), coinbase_at(&c, 2), coinbase_at(&c, 3));
    let fifty = Amount::from_btc(50.0).expect("amount");
    assert_eq!(cb_segwit.1.value, fifty);

    // A coinbase spent before 100 confirmations.
    let early = segwit.spend1(&cb_segwit, vec![pay(&taproot, Amount::from_btc(49.0).expect("amount"))]);
    let (code, msg) = rpc_message(c.send_raw_transaction(&early).expect_err("immature"));
    assert_eq!((code, msg.as_str()), (-26, "bad-txns-premature-spend-of-coinbase"));
    let burn = Key::new(9, Kind::P2wpkh).address();
    c.generate_to_address(100, &burn).expect("mature");

    // P2WPKH: accepted, in the mempool with its fee, outputs visible through gettxout.
    let fee = Amount::from_sat(1_000);
    let to_taproot = Amount::from_btc(1.0).expect("amount");
    let tx1 = segwit.spend1(&cb_segwit, vec![pay(&taproot, to_taproot), pay(&segwit, fifty - to_taproot - fee)]);
    let check = c.test_mempool_accept(&[&tx1]).expect("testmempoolaccept");
    assert!(check[0].allowed, "{:?}", check[0].reject_reason);
    assert_eq!(check[0].fees.as_ref().expect("fees").base, fee);
    let txid1 = c.send_raw_transaction(&tx1).expect("send p2wpkh");
    assert_eq!(txid1, tx1.compute_txid());
    assert_eq!(c.send_raw_transaction(&tx1).expect("resubmitting is harmless"), txid1);
    assert_eq!(c.get_raw_mempool().expect("mempool"), vec![txid1]);
    let entry = c.get_mempool_entry(&txid1).expect("entry");
    assert_eq!((entry.fees.base, entry.vsize), (fee, tx1.vsize() as u64));
    assert!(c.get_tx_out(&cb_segwit.0.txid, 0, Some(true)).expect("gettxout").is_none(), "spent in the mempool");
    assert!(c.get_tx_out(&cb_segwit.0.txid, 0, Some(false)).expect("gettxout").is_some(), "unspent in the chain");
    let out = c.get_tx_out(&txid1, 0, Some(true)).expect("gettxout").expect("mempool output");
    assert_eq!((out.value, out.confirmations), (to_taproot, 0));
    let decoded = c.decode_raw_transaction(&tx1, None).expect("decode");
    assert_eq!((decoded.txid, decoded.vsize as usize), (txid1, tx1.vsize()));

    // Double spend: a conflicting tx paying less is refused; paying enough more replaces (RBF).
    let cheap = segwit.spend1(&cb_segwit, vec![pay(&segwit, fifty - Amount::from_sat(500))]);
    let (code, msg) = rpc_message(c.send_raw_transaction(&cheap).expect_err("double spend"));
    assert_eq!(code, -26);
    assert!(msg.starts_with("insufficient fee, rejecting replacement"), "{msg}");
    let bump = segwit.spend1(&cb_segwit, vec![pay(&segwit, fifty - Amount::from_sat(3_000))]);
    let bump_id = c.send_raw_transaction(&bump).expect("replacement");
    assert_eq!(c.get_raw_mempool().expect("mempool"), vec![bump_id], "the replaced tx left the mempool");

    // A bad signature (one byte of the P2PKH signature flipped) is refused.
    let mut forged = legacy.spend1(&cb_legacy, vec![pay(&legacy, fifty - fee)]);
    let mut script = forged.input[0].script_sig.to_bytes();
    script[10] ^= 1;
    forged.input[0].script_sig = script.into();
    let (code, msg) = rpc_message(c.send_raw_transaction(&forged).expect_err("bad signature"));
    assert_eq!(code, -26);
    assert!(msg.starts_with("mandatory-script-verify-flag-failed"), "{msg}");
    // The honest P2PKH spend and a P2TR key-path spend with an 80-byte OP_RETURN are accepted.
    let legacy_tx = legacy.spend1(&cb_legacy, vec![pay(&legacy, fifty - fee)]);
    c.send_raw_transaction(&legacy_tx).expect("p2pkh");
    let too_big = taproot.spend1(&cb_taproot, vec![op_return(&[7; 81]), pay(&taproot, fifty - fee)]);
    let (code, msg) = rpc_message(c.send_raw_transaction(&too_big).expect_err("81-byte OP_RETURN"));
    assert_eq!((code, msg.as_str()), (-26, "scriptpubkey"));
    let taproot_tx = taproot.spend1(&cb_taproot, vec![op_return(&[7; 80]), pay(&taproot, fifty - fee)]);
    c.send_raw_transaction(&taproot_tx).expect("p2tr key path with an 80-byte OP_RETURN");

    // Fee below the min relay fee; inputs that do not exist; malformed hex.
    let zero_fee = segwit.spend(&[(OutPoint::new(bump_id, 0), bump.output[0].clone())], vec![bump.output[0].clone()]);
    let (code, msg) = rpc_message(c.send_raw_transaction(&zero_fee).expect_err("no fee"));
    assert_eq!(code, -26);
    assert!(msg.starts_with("min relay fee not met, 0 <"), "{msg}");
    let ghost = OutPoint::new(bitcoin::Txid::from_str(&"ab".repeat(32)).expect("txid"), 0);
    let missing = segwit.spend(&[(ghost, pay(&segwit, fifty))], vec![pay(&segwit, Amount::from_btc(1.0).expect("a"))]);
    assert_eq!(
        rpc_message(c.send_raw_transaction(&missing).expect_err("missing")),
        (-25, "bad-txns-inputs-missingorspent".into())
    );
    let check = c.test_mempool_accept(&[&missing]).expect("testmempoolaccept");
    assert_eq!(check[0].reject_reason.as_deref(), Some("missing-inputs"));
    assert_eq!(rpc_code(c.call::<Value>("sendrawtransaction", &["00zz".into()]).expect_err("hex")), -22);

    // Unknown things, bitcoind's way.
    let nobody = bitcoin::Txid::from_str(&"cd".repeat(32)).expect("txid");
    assert_eq!(rpc_code(c.get_mempool_entry(&nobody).expect_err("not in mempool")), -5);
    assert_eq!(rpc_code(c.get_raw_transaction_info(&nobody, None).expect_err("unknown tx")), -5);
    assert!(c.get_tx_out(&nobody, 0, None).expect("gettxout").is_none());
    assert_eq!(rpc_code(c.call::<Value>("getrawtransaction", &["xyz".into()]).expect_err("bad txid")), -8);
    let net: Value = c.call("getnetworkinfo", &[]).expect("getnetworkinfo");
    assert_eq!(net["relayfee"], 0.00001);
    assert!(c.call::<u64>("uptime", &[]).is_ok());

    // Mining takes the mempool; the coinbase collects the fees; the txs are indexed.
    let mempool_before: std::collections::HashSet<_> = c.get_raw_mempool().expect("mempool").into_iter().collect();
    assert_eq!(mempool_before.len(), 3);
    let mined = c.generate_to_address(1, &burn).expect("mine")[0];
    assert!(c.get_raw_mempool().expect("mempool").is_empty());
    let block = c.get_block(&mined).expect("block");
    let fees: Amount = Amount::from_sat(3_000) + fee + fee;
    assert_eq!(block.txdata[0].output[0].value, fifty + fees, "subsidy + fees at height 104");
    let info = c.get_raw_transaction_info(&bump_id, None).expect("getrawtransaction");
    assert_eq!((info.blockhash, info.confirmations), (Some(mined), Some(1)));
    let v2: Value = c.call("getblock", &[mined.to_string().into(), 2.into()]).expect("verbosity 2");
    let bump_json = v2["tx"].as_array().expect("txs").iter().find(|t| t["txid"] == bump_id.to_string()).expect("tx");
    assert_eq!(bump_json["fee"], 0.00003);
    let (code, _) = rpc_message(c.send_raw_transaction(&legacy_tx).expect_err("confirmed"));
    assert_eq!(code, -27);
    let estimate = c.estimate_smart_fee(2, None).expect("estimatesmartfee");
    assert!(estimate.fee_rate.expect("a fee rate after blocks with txs") >= Amount::from_sat(1_000));
    assert_eq!(rpc_code(c.call::<Value>("estimatesmartfee", &[0.into()]).expect_err("target 0")), -8);

    // generateblock with a raw tx; with an unknown txid.
    let spend_change = segwit
        .spend(&[(OutPoint::new(bump_id, 0), bump.output[0].clone())], vec![pay(&segwit, bump.output[0].value - fee)]);
    let raw = hex::encode(bitcoin::consensus::encode::serialize(&spend_change));
    let made: Value =
        c.call("generateblock", &[burn.to_string().into(), serde_json::json!([raw])]).expect("generateblock");
    let made_hash = bitcoin::BlockHash::from_str(made["hash"].as_str().expect("hash")).expect("hash");
    assert_eq!(c.get_best_block_hash().expect("best"), made_hash);
    let unknown = serde_json::json!(["cd".repeat(32)]);
    assert_eq!(
        rpc_code(c.call::<Value>("generateblock", &[burn.to_string().into(), unknown]).expect_err("unknown")),
        -5
    );

    // A reorg puts the disconnected txs back into the mempool.
    c.invalidate_block(&made_hash).expect("invalidate");
    assert_eq!(c.get_raw_mempool().expect("mempool"), vec![spend_change.compute_txid()]);
    assert!(c.get_raw_transaction_info(&spend_change.compute_txid(), None).expect("tx").blockhash.is_none());
}
