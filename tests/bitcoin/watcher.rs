//! The BtcWatcher against the regtest node over bitcoincore-rpc: it follows the best chain, sees a
//! reorg made with invalidateblock (rolling its index back and forward), and survives the Bitcoin
//! node going away and coming back.

use crate::support::*;
use crate::wallet::{Key, Kind};
use crate::{coinbase_at, pay, Regtest};
use bitcoin::Amount;
use bitcoincore_rpc::RpcApi;
use bss_actors::btc::{watcher, CoreRpc, Credentials, IndexSink, WatcherConfig};
use std::time::Duration;

#[test]
fn watcher_follows_reorgs_and_outages() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let btc = Regtest::start(dir.path(), port);
    let c = btc.client("u", "p");
    let (miner, payee) = (Key::new(1, Kind::P2wpkh), Key::new(2, Kind::P2wpkh));
    c.generate_to_address(101, &miner.address()).expect("mine");
    let source =
        CoreRpc::new(&format!("http://{}", btc.addr), Credentials::UserPass("u".into(), "p".into())).expect("client");
    let cfg = WatcherConfig {
        poll_interval: Duration::from_millis(50),
        start_height: 0,
        max_backoff: Duration::from_millis(400),
        inbox: bss_actors::btc::inbox::InboxFilter::any(),
        keystones: None,
    };
    // The index lives in a node database, as in a node.
    let store = bss_storage::Store::open(dir.path().join("db"), false).expect("store");
    let (view, watcher) =
        watcher::spawn(source, cfg.clone(), IndexSink::Direct(store.clone()), store.reader()).expect("watcher");
    wait_until("the watcher at 101", Duration::from_secs(30), || {
        (view.current().best_height() == Some(101)).then_some(())
    });

    // A payment confirmed at 102; then a reorg from 101 that leaves it out.
    let cb = coinbase_at(&c, 1);
    let one = Amount::from_btc(1.0).expect("amount");
    let tx = miner.spend1(&cb, vec![pay(&payee, one), pay(&miner, cb.1.value - one - Amount::from_sat(500))]);
    let txid = c.send_raw_transaction(&tx).expect("send");
    let b102 = c.generate_to_address(1, &miner.address()).expect("mine")[0];
    wait_until("the watcher sees the payment", Duration::from_secs(30), || {
        let v = view.current();
        (v.tx(&txid, 102).is_some() && v.utxos(&payee.address().script_pubkey(), 102).len() == 1).then_some(())
    });
    c.invalidate_block(&b102).expect("invalidate");
    // The payment went back to the mempool; mine a longer branch without it.
    let fork = c
        .call::<serde_json::Value>("generateblock", &[miner.address().to_string().into(), serde_json::json!([])])
        .expect("empty block");
    let fork_102 = bitcoin::BlockHash::from_str_hex(fork["hash"].as_str().expect("hash"));
    c.call::<serde_json::Value>("generateblock", &[miner.address().to_string().into(), serde_json::json!([])])
        .expect("empty block");
    wait_until("the watcher on the new branch", Duration::from_secs(30), || {
        let v = view.current();
        (v.best_height() == Some(103) && v.hash_at(102) == Some(fork_102)).then_some(())
    });
    let v = view.current();
    assert!(v.tx(&txid, 103).is_none(), "the reorged-away payment left the index");
    assert!(v.utxos(&payee.address().script_pubkey(), 103).is_empty());
    assert!(v.coin(&cb.0, 103).is_some_and(|c| c.spent_at.is_none()), "the coinbase is unspent again");

    // The Bitcoin node goes away; the watcher keeps its view, then catches up when it returns.
    assert!(view.connected());
    drop(btc);
    wait_until("the watcher notices the outage", Duration::from_secs(30), || (!view.connected()).then_some(()));
    assert_eq!(view.current().best_height(), Some(103), "the view survives the outage");
    let btc = Regtest::start(dir.path(), port);
    btc.client("u", "p").generate_to_address(2, &miner.address()).expect("mine");
    wait_until("the watcher after the outage", Duration::from_secs(30), || {
        (view.connected() && view.current().best_height() == Some(105)).then_some(())
    });

    // A panic in the watcher: it is restarted from the view it published and goes on.
    let before = view.current();
    watcher.inject_panic();
    btc.client("u", "p").generate_to_address(1, &miner.address()).expect("mine");
    wait_until("the restarted watcher at 106", Duration::from_secs(30), || {
        (view.current().best_height() == Some(106)).then_some(())
    });
    assert_eq!(view.current().hash_at(105), before.hash_at(105), "it resumed on the same chain");

    // A restart resumes from the index on disk, even with the Bitcoin node down.
    let at_106 = view.current();
    drop((view, watcher));
    drop(btc);
    let source = CoreRpc::new(&format!("http://127.0.0.1:{port}"), Credentials::UserPass("u".into(), "p".into()))
        .expect("client");
    let (view, _watcher) =
        watcher::spawn(source, cfg, IndexSink::Direct(store.clone()), store.reader()).expect("again");
    let v = view.current();
    assert_eq!(v.best_height(), Some(106), "resumed from disk, not from the (down) Bitcoin node");
    assert_eq!(v.hash_at(102), Some(fork_102));
    assert!(v.tx(&txid, 106).is_none() && v.coin(&cb.0, 106).is_some_and(|c| c.spent_at.is_none()));
    assert_eq!(v.utxos(&miner.address().script_pubkey(), 106), at_106.utxos(&miner.address().script_pubkey(), 106));
}

trait FromHex {
    fn from_str_hex(s: &str) -> Self;
}

impl FromHex for bitcoin::BlockHash {
    fn from_str_hex(s: &str) -> Self {
        <bitcoin::BlockHash as std::str::FromStr>::from_str(s).expect("block hash")
    }
}
