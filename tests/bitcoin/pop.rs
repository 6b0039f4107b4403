//! Proof-of-Proof in a 4-operator federation on the embedded regtest node: keystones land and
//! blocks become superfinal, another operator takes over when the first submitter is killed, a
//! reorg that drops a keystone leads to resubmission with finality recomputed, `bss verify`
//! passes and fails where it should, and the fork guard refuses a forged chain signed by a
//! quorum of stolen keys.

use crate::support::*;
use crate::Regtest;
use bitcoin::Address;
use bitcoincore_rpc::{Client, RpcApi};
use bss_actors::pop::tx::PopWallet;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub const INTERVAL: u64 = 5;
pub const SUPERFINAL: u64 = 3;

/// A secret key file, private to its owner (the node refuses others).
pub fn write_key(path: &Path, hex: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, hex).expect("key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// Writes each operator's keystone key and funds it: 3 coinbases each, then 100 blocks.
pub fn fund_operators(dir: &Path, c: &Client) -> Vec<Address> {
    let burn = PopWallet::new([0x77; 32], bitcoin::Network::Regtest).expect("wallet").address;
    let mut addrs = vec![];
    for i in 0..4u8 {
        let secret = [0x50 + i; 32];
        std::fs::create_dir_all(dir.join(format!("node{i}"))).expect("dir");
        write_key(&dir.join(format!("node{i}/pop.key")), &hex::encode(secret));
        let addr = PopWallet::new(secret, bitcoin::Network::Regtest).expect("wallet").address;
        c.generate_to_address(3, &addr).expect("fund");
        addrs.push(addr);
    }
    c.generate_to_address(100, &burn).expect("mature");
    addrs
}

/// The operators' keystone keys, as `[pop] keystone_keys` lists them.
pub fn keystone_keys() -> String {
    (0..4u8)
        .map(|i| {
            let w = PopWallet::new([0x50 + i; 32], bitcoin::Network::Regtest).expect("wallet");
            format!("\"{}\"", w.public_key())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn pop_config(btc: SocketAddr) -> String {
    format!(
        "{}[pop]\nkeystone_interval = {INTERVAL}\n\
         superfinality_confirmations = {SUPERFINAL}\nstagger_blocks = 2\nbtc_key_file = \"node{{i}}/pop.key\"\n\
         keystone_keys = [{}]\n",
        crate::btc_section(btc),
        keystone_keys()
    )
}

/// `[pop]` with no operator submitters: the operators sign keystones, PoP miners post them.
pub fn pop_config_without_submitters(btc: SocketAddr) -> String {
    format!(
        "{}[pop]\nkeystone_interval = {INTERVAL}\nsuperfinality_confirmations = {SUPERFINAL}\nkeystone_keys = [{}]\n",
        crate::btc_section(btc),
        keystone_keys()
    )
}

/// A `bss pop-miner` process, killed when dropped.
pub struct PopMiner(std::process::Child);

impl Drop for PopMiner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `bss pop-miner` with the key `secret` against operator `rpc`; it logs to `name.log`.
pub fn start_pop_miner(dir: &Path, name: &str, secret: [u8; 32], rpc: &str, btc: SocketAddr) -> PopMiner {
    let key = dir.join(format!("{name}.key"));
    write_key(&key, &hex::encode(secret));
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
    let child = Command::new(BSS)
        .args(["pop-miner", "--rpc", rpc, "--btc-rpc", &format!("http://u:p@{btc}"), "--poll", "200ms"])
        .arg("--key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("bss pop-miner");
    PopMiner(child)
}

pub fn finality(node: &Node, n: u64) -> Value {
    node.rpc("bss_getFinality", json!([n]))
}

/// Mines one block at a time (the test is Bitcoin's clock) until `done` holds.
pub fn mine_until<T>(c: &Client, what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    let burn = PopWallet::new([0x77; 32], bitcoin::Network::Regtest).expect("wallet").address;
    let mut mined = 0u64;
    wait_until(what, Duration::from_secs(120), || {
        if let Some(t) = done() {
            return Some(t);
        }
        // Bitcoin's clock: about one block per 100 ms of polling.
        mined += 1;
        if mined.is_multiple_of(4) {
            let _ = c.generate_to_address(1, &burn);
        }
        None
    })
}

fn verify(number: u64, rpc: &str, btc: SocketAddr) -> (bool, String) {
    verify_with(number, rpc, btc, &[])
}

fn verify_with(number: u64, rpc: &str, btc: SocketAddr, extra: &[&str]) -> (bool, String) {
    let out = Command::new(BSS)
        .args(["verify", "block", &number.to_string(), "--rpc", rpc, "--btc-rpc", &format!("http://u:p@{btc}")])
        .args(extra)
        .output()
        .expect("bss verify");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Which operator's key paid for a keystone tx (its change goes back to the submitter).
fn submitter_of(c: &Client, txid: &str, addrs: &[Address]) -> Option<usize> {
    let tx = c.get_raw_transaction(&txid.parse().ok()?, None).ok()?;
    addrs.iter().position(|a| tx.output.iter().any(|o| o.script_pubkey == a.script_pubkey()))
}

#[test]
fn keystones_superfinality_takeover_reorg_and_verify() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let (btc_dir, port) = (dir.path().join("btc"), btc.addr.port());
    let c = btc.client("u", "p");
    let addrs = fund_operators(dir.path(), &c);
    let mut fed = Federation::start(dir.path(), 4, &pop_config(btc.addr));
    let rpc0 = format!("http://{}", fed.nodes[0].addr);

    // Keystones land; blocks become superfinal; `finalized` follows.
    let k = mine_until(&c, "block 5 superfinal on every operator", || {
        let f: Vec<Value> = (0..4).map(|i| finality(&fed.nodes[i], 5)).collect();
        f.iter().all(|f| f["superfinal"] == true).then(|| f[0]["keystone"].clone())
    });
    assert_eq!(k["l2Number"], 5);
    let info =
        c.get_raw_transaction_info(&k["btcTxid"].as_str().expect("txid").parse().expect("txid"), None).expect("tx");
    assert_eq!(info.vsize, 197, "keystone tx: P2TR keystone-leaf input carrying a 3-of-4 certificate, P2TR change");
    let finalized = fed.nodes[1].rpc("eth_getBlockByNumber", json!(["finalized", false]));
    assert!(hex_u64(&finalized["number"]) >= 5);
    let submitted: f64 = (0..4).map(|i| metric(&fed.nodes[i].metrics(), "bss_pop_keystones_submitted_total")).sum();
    assert!(submitted >= 1.0, "a keystone was submitted");

    // bss verify: passes on a superfinal block; fails on a tampered certificate.
    let (ok, out) = verify(3, &rpc0, btc.addr);
    assert!(ok, "verify failed:\n{out}");
    assert!(out.contains("merkle proof") && out.contains("commit certificate"), "{out}");
    let proxy = tampering_proxy(fed.nodes[0].addr);
    let (ok, out) = verify(3, &format!("http://{proxy}"), btc.addr);
    assert!(!ok && out.contains("FAIL") && out.contains("commit certificate"), "a tampered certificate passed:\n{out}");

    // `--genesis` pins the operator and keystone keys with one value, computed here from the
    // genesis file, not asked of the node. A wrong pin fails; so does a node that serves its
    // operator set (or any rule) other than its genesis commits to.
    let pin = genesis_hash(dir.path());
    let (ok, out) = verify_with(3, &rpc0, btc.addr, &["--genesis", &pin]);
    assert!(ok && out.contains("pins 4 operators, 4 keystone keys"), "verify --genesis failed:\n{out}");
    let other = format!("0x{}", "07".repeat(32));
    let (ok, out) = verify_with(3, &rpc0, btc.addr, &["--genesis", &other]);
    assert!(!ok && out.contains("not to the pinned genesis"), "a wrong pin passed:\n{out}");
    let liar = rpc_proxy(fed.nodes[0].addr, |req, reply| {
        if req["method"] == "bss_genesis" {
            if let Some(k) = reply.pointer_mut("/result/rules/operators/0") {
                *k = json!(format!("0x{}", "ab".repeat(32)));
            }
        }
    });
    let (ok, out) = verify_with(3, &format!("http://{liar}"), btc.addr, &["--genesis", &pin]);
    assert!(!ok && out.contains("misreports its rules"), "a node lying about its operators passed:\n{out}");

    // Supervision: a panicking Bitcoin watcher (operator 1), PoP submitter (operator 2) and
    // keystone attestation service (operator 3) are restarted and go on; the rest of this test
    // runs on them.
    assert_eq!(fed.nodes[1].rpc("bss_injectFault", json!(["btc_watcher", FAULT_TOKEN])), json!("injected"));
    assert_eq!(fed.nodes[2].rpc("bss_injectFault", json!(["pop_submitter", FAULT_TOKEN])), json!("injected"));
    assert_eq!(fed.nodes[3].rpc("bss_injectFault", json!(["pop_attest", FAULT_TOKEN])), json!("injected"));
    let certified_before = metric(&fed.nodes[3].metrics(), "bss_pop_certificates_total");
    mine_until(&c, "the three restarts counted, and operator 3 certifying again", || {
        let watcher = metric(&fed.nodes[1].metrics(), "bss_actor_restarts_total{actor=\"btc_watcher\"}");
        let submitter = metric(&fed.nodes[2].metrics(), "bss_actor_restarts_total{actor=\"pop_submitter\"}");
        let m3 = fed.nodes[3].metrics();
        let attest = metric(&m3, "bss_actor_restarts_total{actor=\"pop_attest\"}");
        let certifying = metric(&m3, "bss_pop_certificates_total") > certified_before;
        (watcher == 1.0 && submitter == 1.0 && attest == 1.0 && certifying).then_some(())
    });

    // The first submitter is killed: the next operator steps in for its keystones.
    fed.nodes[0].kill();
    let head = fed.nodes[1].block_number();
    let after = mine_until(&c, "a keystone owed by operator 0 submitted by another operator", || {
        let n = fed.nodes[1].block_number();
        (head..=n).filter(|k| k.is_multiple_of(INTERVAL) && (k / INTERVAL).is_multiple_of(4) && *k > head).find_map(
            |k| {
                let f = finality(&fed.nodes[1], k);
                let ks = &f["keystone"];
                (ks["l2Number"] == k).then(|| (k, ks["btcTxid"].as_str().unwrap_or_default().to_string()))
            },
        )
    });
    let by = submitter_of(&c, &after.1, &addrs).expect("submitter");
    assert_ne!(by, 0, "keystone {} was paid by operator 0, which is dead", after.0);

    // A reorg drops a keystone before it is superfinal: finality is recomputed, the keystone is
    // resubmitted (the restarted Bitcoin node has forgotten its mempool), and lands again.
    let (kn, dropped_block) = mine_until(&c, "a fresh keystone with one confirmation", || {
        let n = fed.nodes[1].block_number();
        let last = n - n % INTERVAL;
        (0..6).filter_map(|j| last.checked_sub(j * INTERVAL)).filter(|k| *k > 0).find_map(|k| {
            let f = finality(&fed.nodes[1], k);
            let ks = &f["keystone"];
            (ks["l2Number"] == k && ks["confirmations"] == 1)
                .then(|| (k, ks["btcBlockHash"].as_str().unwrap_or_default().to_string()))
        })
    });
    c.invalidate_block(&dropped_block.parse().expect("hash")).expect("invalidate");
    let (ok, out) = verify(kn, &format!("http://{}", fed.nodes[1].addr), btc.addr);
    assert!(!ok, "verify passed on a keystone that was reorged away:\n{out}");
    drop(c);
    drop(btc);
    let btc = Regtest::start(&btc_dir, port);
    let c = btc.client("u", "p");
    wait_until("finality recomputed after the reorg", Duration::from_secs(30), || {
        let f = finality(&fed.nodes[1], kn);
        (f["keystone"]["btcBlockHash"] != dropped_block.as_str()).then_some(())
    });
    mine_until(&c, "the keystone resubmitted and superfinal again", || {
        let f = finality(&fed.nodes[1], kn);
        (f["superfinal"] == true && f["keystone"]["btcBlockHash"] != dropped_block.as_str()).then_some(())
    });
    let (ok, out) = verify(kn, &format!("http://{}", fed.nodes[1].addr), btc.addr);
    assert!(ok, "verify after resubmission:\n{out}");
    fed.nodes.clear();
}

/// An RPC proxy that flips one bit of every commit certificate signature it relays.
fn tampering_proxy(node: SocketAddr) -> SocketAddr {
    rpc_proxy(node, |_, reply| flip_certificate(reply))
}

#[test]
fn fork_guard_refuses_a_forged_chain_signed_by_stolen_keys() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    fund_operators(dir.path(), &c);
    let mut fed = Federation::start(dir.path(), 4, &pop_config(btc.addr));
    // Operator 3 goes offline early.
    fed.nodes[3].wait_for_block(2);
    fed.nodes[3].kill();
    // The honest three carry on until a block well past operator 3's head is superfinal.
    let pinned = 4 * INTERVAL;
    mine_until(&c, "the honest chain superfinal past operator 3's head", || {
        (finality(&fed.nodes[0], pinned)["superfinal"] == true).then_some(())
    });
    let honest = fed.nodes[0].rpc("eth_getBlockByNumber", json!([format!("{pinned:#x}"), false]))["hash"].clone();
    // Thieves with the keys of operators 0, 1 and 2 (a quorum) build another chain from
    // operator 3's data, on the same addresses, without Bitcoin.
    for i in 0..3 {
        fed.nodes[i].kill();
    }
    let mut evil = vec![];
    for i in 0..3 {
        copy_dir(&dir.path().join("node3"), &dir.path().join(format!("evil{i}")));
        let _ = std::fs::remove_dir_all(dir.path().join(format!("evil{i}/pop")));
        let text = std::fs::read_to_string(dir.path().join(format!("node{i}.toml"))).expect("config");
        let (before, rest) = text.split_once("[btc]").expect("btc section");
        let after = &rest[rest.find("[storage]").expect("storage section")..];
        let forged =
            format!("{before}{after}").replace(&format!("data_dir = \"node{i}\""), &format!("data_dir = \"evil{i}\""));
        let path = dir.path().join(format!("evil{i}.toml"));
        std::fs::write(&path, forged).expect("write");
        evil.push(Node::launch(dir.path(), path, fed.nodes[i].addr));
    }
    wait_until("the forged chain past the pinned block", Duration::from_secs(60), || {
        (evil[0].block_number() > pinned + 5).then_some(())
    });
    let forged = evil[0].rpc("eth_getBlockByNumber", json!([format!("{pinned:#x}"), false]))["hash"].clone();
    assert_ne!(forged, honest, "the thieves' block differs from the anchored one");
    // Operator 3 comes back: its peers serve the forged chain, signed by a quorum.
    fed.nodes[3].spawn();
    let log = dir.path().join("node3.log");
    wait_until("operator 3 refuses the forged chain", Duration::from_secs(60), || {
        std::fs::read_to_string(&log).ok().filter(|l| l.contains("conflicts with a superfinal keystone")).map(|_| ())
    });
    assert!(fed.nodes[3].block_number() < pinned, "operator 3 committed past the pin: {}", fed.nodes[3].block_number());
    assert_eq!(metric(&fed.nodes[3].metrics(), "bss_consensus_halted"), 1.0);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}
