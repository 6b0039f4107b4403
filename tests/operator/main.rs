//! What an operator meets, against `bss devnet` with no flags but its ports (4 operators,
//! embedded Bitcoin, PoP): the dashboard rendered by a real headless Chromium shows the same
//! Bitcoin tip and keystone as the RPC, Prometheus scrapes every operator with the shipped
//! config, `bss status` prints a one-screen summary, and nothing printed carries ANSI colours.
//!
//! Needs Debian's `chromium` and `prometheus` (`scripts/setup.sh` installs both).

#[path = "../support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

/// `bss devnet` as a child; stopped with SIGINT (it stops its operators), SIGKILL as a last resort.
struct Devnet {
    child: Child,
    dir: PathBuf,
    rpc: Vec<SocketAddr>,
    btc_port: u16,
}

impl Devnet {
    /// `bss devnet` with default flags but its ports (and `--nodes` when `nodes` is given).
    fn start(dir: &Path, nodes: Option<u16>) -> Devnet {
        Self::start_with(dir, nodes, &[])
    }

    /// Like `start`, with further `bss devnet` arguments.
    fn start_with(dir: &Path, nodes: Option<u16>, extra: &[&str]) -> Devnet {
        // Consecutive free ports for RPC and for p2p: probe a base that has them.
        let n = nodes.unwrap_or(4);
        let base = free_run(n);
        let p2p = free_run(n);
        let btc_port = free_port();
        let out = std::fs::File::create(dir.join("devnet.out")).expect("out");
        let child = Command::new(BSS)
            .args(["devnet", "--base-port", &base.to_string(), "--p2p-base-port", &p2p.to_string()])
            .args(["--btc-port", &btc_port.to_string(), "--btc-block-interval", "0s", "--data-dir"])
            .arg(dir.join("devnet"))
            .args(nodes.map(|n| vec!["--nodes".to_string(), n.to_string()]).unwrap_or_default())
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(out.try_clone().expect("clone")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn devnet");
        let rpc: Vec<SocketAddr> = (0..n).map(|i| format!("127.0.0.1:{}", base + i).parse().expect("addr")).collect();
        let d = Devnet { child, dir: dir.join("devnet"), rpc, btc_port };
        for a in &d.rpc {
            let a = *a;
            wait_until("every operator's RPC", Duration::from_secs(90), || {
                http(a, "GET", "/health", "").ok().filter(|(s, _)| *s == 200)
            });
        }
        d
    }

    fn call(&self, i: usize, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let (_, text) = http(self.rpc[i], "POST", "/", &body).expect("rpc");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }

    fn bitcoin(&self) -> bitcoincore_rpc::Client {
        let pass = std::fs::read_to_string(self.dir.join("bitcoin/rpc.password")).expect("password");
        bitcoincore_rpc::Client::new(
            &format!("http://127.0.0.1:{}", self.btc_port),
            bitcoincore_rpc::Auth::UserPass("bss".into(), pass.trim().into()),
        )
        .expect("client")
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium(args: &[&str], url: &str) -> String {
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=6000"])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (scripts/setup.sh installs it)");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn devnet_dashboard_prometheus_and_status() {
    let dir = tempfile::tempdir().expect("tmp");
    let net = Devnet::start(dir.path(), None);
    assert_eq!(net.call(0, "bss_nodeInfo", json!([]))["operators"], 4, "bss devnet defaults to 4 operators");

    // Bitcoin's clock: mine until a keystone is superfinal on operator 0, then stop, so the tip
    // the page renders and the tip the RPC reports are the same.
    let c = net.bitcoin();
    let burn = bitcoincore_rpc::bitcoin::Address::from_str("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
        .expect("address")
        .assume_checked();
    let keystone = wait_until("a superfinal keystone", Duration::from_secs(120), || {
        let ks = net.call(0, "bss_keystones", json!([8]));
        let done = ks["keystones"].as_array().and_then(|l| l.iter().find(|k| k["superfinal"] == true).cloned());
        if done.is_none() {
            // One Bitcoin block, then wait until the chain's view has taken it in (an event,
            // not a timer): Bitcoin moves one block per step of the L2.
            let _ = bitcoincore_rpc::RpcApi::generate_to_address(&c, 1, &burn);
            let best = bitcoincore_rpc::RpcApi::get_block_count(&c).unwrap_or(0);
            wait_until("the L2 view at the new Bitcoin block", Duration::from_secs(30), || {
                (net.call(0, "bss_btcTip", json!([]))["height"].as_u64() >= Some(best.saturating_sub(1))).then_some(())
            });
        }
        done
    });
    let best = bitcoincore_rpc::RpcApi::get_block_count(&c).expect("count");
    let tip = wait_until("the L2 view at the final Bitcoin tip", Duration::from_secs(30), || {
        let t = net.call(0, "bss_btcTip", json!([]));
        (t["height"] == best - 1).then_some(t)
    });

    // The dashboard in a real browser shows what the RPC says.
    let url = format!("http://{}/", net.rpc[0]);
    let dom = chromium(&["--dump-dom"], &url);
    let btc_height = tip["height"].as_u64().expect("height");
    assert!(dom.contains(&format!("id=\"btc-height\">{btc_height}<")), "Bitcoin tip {btc_height} not rendered:\n{dom}");
    assert!(dom.contains(tip["hash"].as_str().expect("hash")), "Bitcoin tip hash not rendered");
    assert!(dom.contains(keystone["btcTxid"].as_str().expect("txid")), "keystone {keystone} not rendered:\n{dom}");
    assert!(dom.contains("superfinal"), "no superfinal keystone shown");
    assert!(!dom.contains("src=\"http") && !dom.contains("href=\"http"), "the page loads something from elsewhere");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let shot_arg = format!("--screenshot={}", shot.display());
    chromium(&[&shot_arg, "--window-size=1280,1100"], &url);
    assert!(std::fs::metadata(&shot).map(|m| m.len() > 10_000).unwrap_or(false), "no screenshot at {}", shot.display());

    // `bss status`: one screen about operator 1.
    let out = Command::new(BSS).args(["status", "--rpc", &format!("http://{}", net.rpc[1])]).output().expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("operator 1 of 4"), "{text}");
    assert!(text.contains("bitcoin     regtest view #") && text.contains("superfinal  #"), "{text}");
    // The genesis hash every operator serves is the one `bss status` and the banner print, and
    // it commits to the rules `bss_genesis` serves.
    let genesis = net.call(1, "bss_genesis", json!([]));
    for i in 0..4 {
        assert_eq!(net.call(i, "bss_nodeInfo", json!([]))["genesis"], genesis["hash"], "operator {i}");
    }
    let hash = genesis["hash"].as_str().expect("hash");
    assert!(text.contains(&format!("genesis     {hash}")), "{text}");
    let banner = std::fs::read_to_string(dir.path().join("devnet.out")).expect("out");
    assert!(banner.contains(&format!("--genesis {hash}")), "{banner}");
    assert_eq!(genesis["rules"]["operators"].as_array().map(Vec::len), Some(4), "{genesis}");
    assert_eq!(genesis["rules"]["keystoneKeys"].as_array().map(Vec::len), Some(4), "{genesis}");

    // Prometheus, with the shipped config pointed at this devnet's ports.
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/prometheus.yml"))
        .expect("configs/prometheus.yml");
    let mut cfg = shipped.replace("scrape_interval: 5s", "scrape_interval: 1s");
    for (i, a) in net.rpc.iter().enumerate() {
        cfg = cfg.replace(&format!("127.0.0.1:{}", 8545 + i), &a.to_string());
    }
    std::fs::write(dir.path().join("prometheus.yml"), cfg).expect("write");
    let web = free_port();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (scripts/setup.sh installs it)");
    let web: SocketAddr = format!("127.0.0.1:{web}").parse().expect("addr");
    let series = wait_until("Prometheus holding bss_* series of every operator", Duration::from_secs(60), || {
        let (_, body) = http(web, "GET", "/api/v1/query?query=bss_block_height", "").ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let r = v["data"]["result"].as_array()?.clone();
        (r.len() == 4).then_some(r)
    });
    let _ = prom.kill();
    let _ = prom.wait();
    assert!(series.iter().all(|s| s["metric"]["job"] == "bss"), "{series:?}");

    // No colour codes anywhere a terminal is not.
    for log in
        ["devnet.out"].iter().map(|f| dir.path().join(f)).chain((0..4).map(|i| net.dir.join(format!("node{i}.log"))))
    {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!text.contains('\u{1b}'), "ANSI escape codes in {}", log.display());
    }
}

/// `bss devnet --nodes 1`: the terminal gets the banner, the node's logs go to its file.
#[test]
fn a_devnet_of_one_prints_only_its_banner() {
    let dir = tempfile::tempdir().expect("tmp");
    let net = Devnet::start(dir.path(), Some(1));
    let a = net.rpc[0];
    wait_until("a few blocks", Duration::from_secs(60), || {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).to_string();
        let (_, t) = http(a, "POST", "/", &body).ok()?;
        let n = u64::from_str_radix(
            serde_json::from_str::<Value>(&t).ok()?["result"].as_str()?.trim_start_matches("0x"),
            16,
        );
        (n.ok()? > 3).then_some(())
    });
    let out = std::fs::read_to_string(dir.path().join("devnet.out")).expect("out");
    assert!(out.contains("bss devnet — 1 operator(s)"), "{out}");
    for line in out.lines() {
        assert!(
            !line.contains(" INFO ") && !line.contains(" WARN ") && !line.contains('\u{1b}'),
            "a log line on the terminal: {line}"
        );
    }
    let log = std::fs::read_to_string(net.dir.join("node0.log")).expect("node log");
    assert!(log.contains(" INFO ") && !log.contains('\u{1b}'), "the node's log: {log}");
}

/// `bss devnet --byzantine 'I=censor:ADDR'` alone makes operator I a censor: it writes
/// `allow_byzantine = true` into that operator's config, and the node acknowledges the censored
/// sender's txs without ever committing them.
#[test]
fn devnet_byzantine_flag_makes_a_censor() {
    let dir = tempfile::tempdir().expect("tmp");
    let censored = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"; // dev account 1
    let net = Devnet::start_with(dir.path(), Some(1), &["--byzantine", &format!("0=censor:{censored}")]);
    let config = std::fs::read_to_string(net.dir.join("node0.toml")).expect("config");
    assert!(config.contains("allow_byzantine = true") && config.contains(censored), "{config}");
    // Dev account 1 (censored) and dev account 0 (not) each send one transfer.
    let send = |secret: &str| {
        let raw =
            bss_actors::hvm::accounts::DevKey::from_secret(hex::decode(secret).expect("hex").try_into().expect("32"))
                .expect("key")
                .sign_raw(alloy_consensus::TxEip1559 {
                    chain_id: 1337,
                    nonce: 0,
                    gas_limit: 21_000,
                    max_fee_per_gas: 20_000_000_000,
                    max_priority_fee_per_gas: 1,
                    to: alloy_primitives::TxKind::Call(alloy_primitives::Address::with_last_byte(1)),
                    value: alloy_primitives::U256::from(1),
                    ..Default::default()
                });
        net.call(0, "eth_sendRawTransaction", json!([raw]))
    };
    let censored_tx = send(DEV1);
    let free_tx = send(DEV0);
    let receipt = wait_until("the uncensored transfer", Duration::from_secs(60), || {
        Some(net.call(0, "eth_getTransactionReceipt", json!([free_tx]))).filter(|r| !r.is_null())
    });
    let at = hex_or(&receipt["blockNumber"]).expect("block");
    wait_until("five more blocks", Duration::from_secs(60), || {
        (hex_or(&net.call(0, "eth_blockNumber", json!([]))).unwrap_or(0) >= at + 5).then_some(())
    });
    assert!(net.call(0, "eth_getTransactionReceipt", json!([censored_tx])).is_null(), "the censor committed it");
    let log = std::fs::read_to_string(net.dir.join("node0.log")).expect("node log");
    assert!(log.contains("BYZANTINE TEST MODES ARE ON"), "no warning in the log");
}

/// Every metric the Grafana dashboard plots is one the node exports.
#[test]
fn the_grafana_dashboard_plots_metrics_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dash = std::fs::read_to_string(root.join("configs/grafana/bss.json")).expect("dashboard");
    let v: Value = serde_json::from_str(&dash).expect("valid JSON");
    assert!(v["panels"].as_array().is_some_and(|p| p.len() > 20));
    let mut source = String::new();
    for d in ["actors/src", "consensus", "storage/src", "btc/src", "hvm/src", "cluster/src"] {
        collect(&root.join(d), &mut source);
    }
    let mut names: Vec<String> = dash
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("bss_"))
        .map(|w| w.trim_end_matches("_bucket").to_string())
        .collect();
    names.sort();
    names.dedup();
    for n in names {
        assert!(source.contains(&format!("\"{n}\"")), "the dashboard plots {n}, which no code exports");
    }
}

fn collect(dir: &Path, out: &mut String) {
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
}

use std::str::FromStr;

/// The 4-operator docker-compose federation with its Bitcoin container, the whole round: build the
/// image, `compose up`, a tx sent through one container read from another, one container killed
/// while the rest go on, a keystone landing, and everything torn down. Opt-in (it builds the
/// release binary and an image, several minutes):
/// `cargo nextest run -p bss-cluster --test operator --run-ignored only -E 'test(compose)'`.
#[test]
#[ignore = "builds a release image; run with --run-ignored only"]
fn compose_federation_with_bitcoin_round_trip() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let compose = root.join("cluster/docker/docker-compose.yml");
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("run");
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(Command::new("bash").arg(root.join("cluster/docker/build.sh")));
    let project = ["-p", "bsscompose", "-f"];
    struct Down(Vec<String>);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = Command::new("docker-compose").args(&self.0).args(["down", "-v", "--remove-orphans"]).output();
        }
    }
    let down = Down(project.iter().map(|s| s.to_string()).chain([compose.display().to_string()]).collect());
    run(Command::new("docker-compose").args(&down.0).args(["up", "-d"]));
    let rpc: Vec<SocketAddr> = (0..4).map(|i| format!("127.0.0.1:{}", 8645 + i).parse().expect("addr")).collect();
    let call = |i: usize, method: &str, params: Value| -> Option<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let (_, text) = http(rpc[i], "POST", "/", &body).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v.get("result").cloned().filter(|r| !r.is_null())
    };
    wait_until("every container's RPC and a few blocks", Duration::from_secs(120), || {
        (0..4).all(|i| call(i, "eth_blockNumber", json!([])).is_some_and(|b| b != "0x0")).then_some(())
    });
    // A transfer through operator 0, read back from operator 2.
    let dev: [u8; 32] = hex::decode(DEV0).expect("hex").try_into().expect("32");
    let key = bss_actors::hvm::accounts::DevKey::from_secret(dev).expect("key");
    let raw = key.sign_raw(alloy_consensus::TxEip1559 {
        chain_id: 1337,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000,
        to: alloy_primitives::TxKind::Call(alloy_primitives::Address::repeat_byte(7)),
        value: alloy_primitives::U256::from(1),
        ..Default::default()
    });
    let hash = call(0, "eth_sendRawTransaction", json!([raw])).expect("sent");
    wait_until("the receipt on operator 2", Duration::from_secs(60), || {
        call(2, "eth_getTransactionReceipt", json!([hash])).filter(|r| r["status"] == "0x1")
    });
    // One container killed: the other three go on.
    run(Command::new("docker").args(["kill", "bss-node3"]));
    let h = |i: usize| call(i, "eth_blockNumber", json!([])).and_then(|v| hex_or(&v));
    let before = h(0).expect("height");
    wait_until("commits without operator 3", Duration::from_secs(60), || (h(1)? > before + 10).then_some(()));
    // A keystone lands in the Bitcoin container and makes blocks superfinal.
    wait_until("a superfinal keystone", Duration::from_secs(180), || {
        call(0, "bss_keystones", json!([4]))?["keystones"].as_array()?.iter().find(|k| k["superfinal"] == true).cloned()
    });
    drop(down);
}

fn hex_or(v: &Value) -> Option<u64> {
    v.as_str().and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
}
