use crate::contract;
use crate::support::*;
use alloy_consensus::{SignableTransaction, TxEip1559, TxEip2930, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use bss_actors::hvm::accounts::DevKey;
use serde_json::{json, Value};

fn key(hex_secret: &str) -> DevKey {
    let bytes: [u8; 32] = hex::decode(hex_secret).expect("hex").try_into().expect("32 bytes");
    DevKey::from_secret(bytes).expect("key")
}

fn eip1559(nonce: u64, to: TxKind, input: Bytes, value: u64, gas: u64) -> TxEip1559 {
    TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000,
        to,
        value: U256::from(value),
        input,
        ..Default::default()
    }
}

fn send(node: &Node, raw: &Bytes) -> Result<String, RpcError> {
    node.try_rpc("eth_sendRawTransaction", json!([raw])).map(|v| v.as_str().expect("hash").to_string())
}

fn expect_err(res: Result<String, RpcError>, needle: &str) {
    match res {
        Ok(h) => panic!("expected an error containing {needle:?}, got tx {h}"),
        Err(e) => assert!(e.message.contains(needle), "expected {needle:?}, got {e:?}"),
    }
}

#[test]
fn deploy_call_logs_bad_txs_and_supervision() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = Node::start(dir.path(), "");
    let dev0 = key(DEV0);

    // Identity and liveness.
    assert_eq!(hex_u64(&node.rpc("eth_chainId", json!([]))), CHAIN_ID);
    assert_eq!(node.rpc("net_version", json!([])), json!(CHAIN_ID.to_string()));
    assert!(node.rpc("web3_clientVersion", json!([])).as_str().expect("version").starts_with("bss/"));
    node.wait_for_block(2);
    let bal = node.rpc("eth_getBalance", json!([dev0.address, "latest"]));
    assert_eq!(bal, json!(U256::from(10u128.pow(22))));

    // Deploy from raw bytecode (EIP-1559).
    let deploy = dev0.sign_raw(eip1559(0, TxKind::Create, contract::initcode(), 0, 200_000));
    let deploy_hash = send(&node, &deploy).expect("deploy accepted");
    let receipt = node.wait_for_receipt(&deploy_hash);
    assert_eq!(receipt["status"], json!("0x1"));
    let contract: Address = serde_json::from_value(receipt["contractAddress"].clone()).expect("contract address");
    let code = node.rpc("eth_getCode", json!([contract, "latest"]));
    assert_eq!(code, json!(Bytes::from(contract::runtime())));

    // Calls with a legacy EIP-155 tx and an EIP-2930 tx; each emits one log.
    let legacy = dev0.sign_raw(TxLegacy {
        chain_id: Some(CHAIN_ID),
        nonce: 1,
        gas_price: 20_000_000_000,
        gas_limit: 100_000,
        to: TxKind::Call(contract),
        input: contract::word(42),
        ..Default::default()
    });
    let h1 = send(&node, &legacy).expect("legacy accepted");
    let access = dev0.sign_raw(TxEip2930 {
        chain_id: CHAIN_ID,
        nonce: 2,
        gas_price: 20_000_000_000,
        gas_limit: 100_000,
        to: TxKind::Call(contract),
        input: contract::word(43),
        ..Default::default()
    });
    let h2 = send(&node, &access).expect("2930 accepted");
    let r1 = node.wait_for_receipt(&h1);
    let r2 = node.wait_for_receipt(&h2);
    assert_eq!((r1["status"].clone(), r2["status"].clone()), (json!("0x1"), json!("0x1")));
    assert_eq!(r1["type"], json!("0x0"));
    assert_eq!(r2["type"], json!("0x1"));
    assert_eq!(r2["logs"][0]["topics"][0], json!(contract::TOPIC), "receipt: {r2}");
    let read = node.rpc("eth_call", json!([{"to": contract}, "latest"]));
    assert_eq!(read, json!(contract::word(43)));
    let slot = node.rpc("eth_getStorageAt", json!([contract, "0x0", "latest"]));
    assert_eq!(slot, json!(contract::word(43)));

    // eth_getLogs: by address, by topic, a topic that matches nothing, and the range cap.
    let all = node.rpc("eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": "latest", "address": contract}]));
    assert_eq!(all.as_array().expect("logs").len(), 2);
    assert_eq!(all[0]["data"], json!(contract::word(42)));
    assert_eq!(all[1]["transactionHash"], json!(h2));
    let by_topic = node.rpc("eth_getLogs", json!([{"fromBlock": "0x0", "topics": [contract::TOPIC]}]));
    assert_eq!(by_topic.as_array().expect("logs").len(), 2);
    let none = node.rpc("eth_getLogs", json!([{"fromBlock": "0x0", "topics": [format!("0x{}", "00".repeat(32))]}]));
    assert_eq!(none, json!([]));
    let capped = node.try_rpc("eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": "0x2710"}]));
    let err = capped.expect_err("range cap");
    assert_eq!(err.code, -32005, "{err:?}");

    // A reverting call: failed receipt, and eth_call reports code 3.
    let revert = dev0.sign_raw(eip1559(3, TxKind::Call(contract), contract::word(0), 0, 100_000));
    let rh = send(&node, &revert).expect("revert tx accepted");
    assert_eq!(node.wait_for_receipt(&rh)["status"], json!("0x0"));
    let call_err = node.try_rpc("eth_call", json!([{"to": contract, "data": contract::word(0)}])).expect_err("revert");
    assert_eq!(call_err.code, 3, "{call_err:?}");
    let est =
        node.rpc("eth_estimateGas", json!([{"from": dev0.address, "to": Address::repeat_byte(7), "value": "0x1"}]));
    assert_eq!(hex_u64(&est), 21_000);

    // Every kind of bad transaction gets geth's message, and nothing is lost.
    let n = 4;
    let ok = dev0.sign_raw(eip1559(n, TxKind::Call(Address::repeat_byte(9)), Bytes::new(), 1, 21_000));
    let ok_hash = send(&node, &ok).expect("transfer accepted");
    expect_err(send(&node, &ok), "already known");
    node.wait_for_receipt(&ok_hash);
    expect_err(
        send(&node, &dev0.sign_raw(eip1559(0, TxKind::Call(Address::ZERO), Bytes::new(), 0, 21_000))),
        "nonce too low",
    );
    let pauper = DevKey::from_seed(99);
    expect_err(
        send(&node, &pauper.sign_raw(eip1559(0, TxKind::Call(Address::ZERO), Bytes::new(), 1, 21_000))),
        "insufficient funds for gas * price + value",
    );
    expect_err(
        send(&node, &dev0.sign_raw(eip1559(n + 1, TxKind::Call(Address::ZERO), Bytes::new(), 0, 20_000))),
        "intrinsic gas too low",
    );
    expect_err(
        send(&node, &dev0.sign_raw(eip1559(n + 1, TxKind::Call(Address::ZERO), Bytes::new(), 0, 40_000_000))),
        "exceeds block gas limit",
    );
    let mut wrong_chain = eip1559(n + 1, TxKind::Call(Address::ZERO), Bytes::new(), 0, 21_000);
    wrong_chain.chain_id = 1;
    expect_err(send(&node, &dev0.sign_raw(wrong_chain)), "invalid chain id");
    let mut cheap = eip1559(n + 1, TxKind::Call(Address::ZERO), Bytes::new(), 0, 21_000);
    cheap.max_fee_per_gas = 10;
    cheap.max_priority_fee_per_gas = 1;
    expect_err(send(&node, &dev0.sign_raw(cheap)), "max fee per gas less than block base fee");
    // A future nonce waits in the pool; replacing it needs a 10% bump.
    let future = eip1559(n + 5, TxKind::Call(Address::ZERO), Bytes::new(), 0, 21_000);
    send(&node, &dev0.sign_raw(future.clone())).expect("future nonce held");
    let mut bump = future.clone();
    bump.max_priority_fee_per_gas += 1;
    expect_err(send(&node, &dev0.sign_raw(bump)), "replacement transaction underpriced");
    let pending = node.rpc("eth_getTransactionCount", json!([dev0.address, "pending"]));
    assert_eq!(hex_u64(&pending), n + 1);
    // Invalid signature: r = 0 recovers nothing.
    let forged = alloy_consensus::TxEnvelope::from(
        eip1559(n + 1, TxKind::Call(Address::ZERO), Bytes::new(), 0, 21_000)
            .into_signed(alloy_primitives::Signature::new(U256::ZERO, U256::from(1), false)),
    );
    expect_err(send(&node, &Bytes::from(forged.encoded_2718())), "invalid sender");
    expect_err(send(&node, &Bytes::from(vec![0x02, 0xc0, 0x01])), "could not be decoded");
    let bad_hex = node.try_rpc("eth_sendRawTransaction", json!(["0xzz"])).expect_err("bad hex");
    assert_eq!(bad_hex.code, -32602);
    let bad_params = node.try_rpc("eth_getBalance", json!(["not-an-address"])).expect_err("bad params");
    assert_eq!(bad_params.code, -32602);
    let unknown = node.try_rpc("eth_doesNotExist", json!([])).expect_err("unknown method");
    assert_eq!(unknown.code, -32601);

    // Blocks, transactions, fee history, batches.
    let tx = node.rpc("eth_getTransactionByHash", json!([h1]));
    assert_eq!(tx["from"], json!(dev0.address));
    let block = node.rpc("eth_getBlockByHash", json!([r1["blockHash"], true]));
    assert_eq!(block["transactions"][0]["hash"], json!(h1));
    assert_eq!(node.rpc("eth_getBlockByNumber", json!(["earliest", false]))["number"], json!("0x0"));
    assert!(node.rpc("eth_getBlockByNumber", json!(["0xffffff", false])).is_null());
    let fh = node.rpc("eth_feeHistory", json!(["0x4", "latest", [50.0]]));
    assert_eq!(fh["baseFeePerGas"].as_array().expect("fees").len(), 5);
    let batch = format!(
        "[{},{}]",
        json!({"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}),
        json!({"jsonrpc":"2.0","id":2,"method":"eth_blockNumber","params":[]})
    );
    let (_, text) = http(node.addr, "POST", "/", &batch).expect("batch");
    let arr: Value = serde_json::from_str(&text).expect("batch json");
    assert_eq!(arr.as_array().expect("array").len(), 2);
    // Submissions in a batch are admitted together, but every call keeps its own answer and
    // place: out-of-order nonces both land, a read after them sees them, bad ones fail alone.
    let dev1 = key(DEV1);
    let (first, second) =
        (signed_transfer(&dev1, 0, Address::repeat_byte(5), 1), signed_transfer(&dev1, 1, Address::repeat_byte(5), 1));
    let call = |id: u64, method: &str, params: Value| json!({"jsonrpc":"2.0","id":id,"method":method,"params":params});
    let batch = json!([
        call(1, "eth_sendRawTransaction", json!([second])),
        call(2, "eth_sendRawTransaction", json!([first])),
        call(3, "eth_getTransactionCount", json!([dev1.address, "pending"])),
        call(4, "eth_sendRawTransaction", json!(["0x02c001"])),
        call(5, "eth_sendRawTransaction", json!([first])),
        call(6, "eth_chainId", json!([])),
    ]);
    let (_, text) = http(node.addr, "POST", "/", &batch.to_string()).expect("submission batch");
    let answers: Vec<Value> = serde_json::from_str(&text).expect("batch json");
    let ids: Vec<u64> = answers.iter().map(|a| a["id"].as_u64().expect("id")).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6], "{text}");
    let hash = |i: usize| answers[i]["result"].as_str().unwrap_or_else(|| panic!("answer {i} is no hash: {text}"));
    let (h_second, h_first) = (hash(0), hash(1));
    assert_eq!(answers[2]["result"], json!("0x2"), "{text}");
    assert!(answers[3]["error"]["message"].as_str().expect("error").contains("could not be decoded"), "{text}");
    assert!(answers[4]["error"]["message"].as_str().expect("error").contains("already known"), "{text}");
    assert_eq!(answers[5]["result"], json!(format!("{CHAIN_ID:#x}")), "{text}");
    node.wait_for_receipt(h_first);
    node.wait_for_receipt(h_second);

    // The dashboard page is served on the RPC port.
    let (status, page) = http(node.addr, "GET", "/dashboard", "").expect("dashboard");
    assert_eq!(status, 200);
    assert!(page.contains("bss operator") && page.contains("bss_nodeInfo"));
    let info = node.rpc("bss_nodeInfo", json!([]));
    assert_eq!(info["chainId"], json!(CHAIN_ID));
    assert_eq!(info["operators"], json!(1));

    // Metrics.
    let m = node.metrics();
    for name in [
        "bss_block_height",
        "bss_committed_txs_total",
        "bss_execution_seconds",
        "bss_rpc_requests_total",
        "bss_mempool_size",
        "bss_mempool_admission_group_size",
    ] {
        assert!(m.contains(name), "metric {name} missing from /metrics");
    }

    // Supervision: a panic in the RPC actor restarts it; the node keeps committing and serving.
    let before = node.block_number();
    assert_eq!(node.rpc("bss_injectFault", json!(["rpc", FAULT_TOKEN])), json!("injected"));
    wait_until("the RPC actor restart", std::time::Duration::from_secs(30), || {
        node.try_rpc("eth_blockNumber", json!([])).ok().map(|v| hex_u64(&v)).filter(|n| *n > before + 2)
    });
    let m = node.metrics();
    assert!(m.contains("bss_actor_restarts_total{actor=\"rpc\"} 1"), "restart not counted:\n{m}");
    assert!(m.contains("bss_actor_panics_total{actor=\"rpc\"} 1"), "panic not counted");
}

#[test]
fn bad_configs_fail_with_clear_messages() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BSS).args(args).output().expect("run bss");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (ok, err) = run(&["node", "--config", "/nonexistent/bss.toml"]);
    assert!(!ok && err.contains("cannot read /nonexistent/bss.toml"), "{err}");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "data_dir = \"d\"\noperator_key = \"00\"\n[genesis]\nchain_id = 1\nbogus = 2\n")
        .expect("write");
    let (ok, err) = run(&["node", "--config", cfg.to_str().expect("path")]);
    assert!(!ok && err.contains("unknown field `bogus`"), "{err}");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"d\"\noperator_key = \"{}\"\n[genesis]\nchain_id = 1\n[consensus]\nengine = \"pbft\"\n",
            "11".repeat(32)
        ),
    )
    .expect("write");
    let (ok, err) = run(&["node", "--config", cfg.to_str().expect("path")]);
    assert!(!ok && err.contains("consensus engine \"pbft\" is unknown"), "{err}");
    // A Byzantine test mode without `allow_byzantine = true`, and an unknown mode with it.
    let honest = format!("data_dir = \"d\"\noperator_key = \"{}\"\n[genesis]\nchain_id = 1\n", "11".repeat(32));
    // Fault injection without its secret.
    std::fs::write(&cfg, format!("{honest}[rpc]\nfault_injection = true\n")).expect("write");
    let (ok, err) = run(&["node", "--config", cfg.to_str().expect("path")]);
    assert!(!ok && err.contains("rpc.fault_injection_token"), "{err}");
    std::fs::write(&cfg, &honest).expect("write");
    let censor = "censor:0x0000000000000000000000000000000000000001";
    let (ok, err) = run(&["node", "--config", cfg.to_str().expect("path"), "--byzantine", censor]);
    assert!(!ok && err.contains("allow_byzantine = true"), "{err}");
    std::fs::write(&cfg, format!("allow_byzantine = true\n{honest}")).expect("write");
    let (ok, err) = run(&["node", "--config", cfg.to_str().expect("path"), "--byzantine", "lie-a-lot"]);
    assert!(!ok && err.contains("unknown byzantine mode \"lie-a-lot\""), "{err}");
    // A world-readable key file: refused before anything starts, with the fix in the message.
    let key = dir.path().join("operator.key");
    std::fs::write(&key, "11".repeat(32)).expect("key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    std::fs::write(&cfg, "data_dir = \"d\"\noperator_key_file = \"operator.key\"\n[genesis]\nchain_id = 1\n")
        .expect("write");
    let (ok, err) = run(&["node", "--config", cfg.to_str().expect("path")]);
    assert!(!ok && err.contains("readable by group or others") && err.contains("chmod 600"), "{err}");
    assert!(err.contains("operator.key"), "{err}");

    // A port in use, and a data dir of another chain.
    let node = Node::start(dir.path(), "");
    let busy = dir.path().join("busy.toml");
    std::fs::write(
        &busy,
        format!(
            "data_dir = \"other\"\noperator_key = \"{}\"\n[genesis]\nchain_id = 1\n[rpc]\naddr = \"{}\"\n",
            "11".repeat(32),
            node.addr
        ),
    )
    .expect("write");
    let (ok, err) = run(&["node", "--config", busy.to_str().expect("path")]);
    assert!(!ok && err.contains("already in use"), "{err}");
    drop(node);
    let other_chain = dir.path().join("chain.toml");
    std::fs::write(
        &other_chain,
        format!(
            "data_dir = \"data\"\noperator_key = \"{}\"\n[genesis]\nchain_id = 5\n[rpc]\naddr = \"127.0.0.1:{}\"\n",
            "11".repeat(32),
            free_port()
        ),
    )
    .expect("write");
    let (ok, err) = run(&["node", "--config", other_chain.to_str().expect("path")]);
    assert!(!ok && err.contains("belongs to chain 31337"), "{err}");
    // The same chain id with one rule changed is another genesis: its data dir is refused.
    std::fs::write(
        &other_chain,
        format!(
            "data_dir = \"data\"\noperator_key = \"{}\"\n[genesis]\nchain_id = {CHAIN_ID}\n\
             [genesis.federation]\nforced_confirmations = 7\n[rpc]\naddr = \"127.0.0.1:{}\"\n",
            "11".repeat(32),
            free_port()
        ),
    )
    .expect("write");
    let (ok, err) = run(&["node", "--config", other_chain.to_str().expect("path")]);
    assert!(!ok && err.contains("differs from the configured genesis"), "{err}");
    // A node config repeating a rule of the genesis with another value: refused, both named.
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"d\"\noperator_key = \"{}\"\n[genesis]\nchain_id = 1\n[genesis.federation]\n\
             confirmations_lag = 2\n[btc]\nconfirmations_lag = 1\n",
            "11".repeat(32)
        ),
    )
    .expect("write");
    let (ok, err) = run(&["node", "--config", cfg.to_str().expect("path")]);
    assert!(!ok && err.contains("btc.confirmations_lag = 1 disagrees with the genesis"), "{err}");
    // A custody threshold below 2f+1 without the flag.
    let custody: Vec<String> = (1..=4u8)
        .map(|i| bss_actors::btc::vault::CustodyKey::new([i; 32]).expect("key").public().to_string())
        .collect();
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"d\"\noperator_key = \"{}\"\n[genesis]\nchain_id = 1\n[genesis.tunnel]\n\
             custody_keys = {custody:?}\nthreshold = 2\n",
            "11".repeat(32)
        ),
    )
    .expect("write");
    let (ok, err) = run(&["node", "--config", cfg.to_str().expect("path")]);
    assert!(!ok && err.contains("below 2f+1") && err.contains("allow_weak_threshold"), "{err}");
}
