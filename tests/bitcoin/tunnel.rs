//! The BTC tunnel with real processes on the embedded regtest (whose mempool checks every spend
//! with Bitcoin Core's verifier): a deposit built with the `bitcoin` crate mints hBTC on all
//! four operators at `deposit_confirmations`; payments without a valid OP_RETURN or below the
//! minimum stay unattributed; a withdrawal is paid by three of four custody keys while the
//! fourth operator is killed as the batch opens, exactly once, with `sats − fee` to the script.
//! The invariant (hBTC supply + burned-but-unpaid ≤ vault balance) is checked after every step.

use crate::support::*;
use crate::wallet::{Key, Kind};
use crate::{coinbase_at, pay, Regtest};
use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use bitcoin::{Amount, TxOut};
use bitcoincore_rpc::{Client, RpcApi};
use bss_actors::btc::deposit::deposit_output;
use bss_actors::btc::vault::{CustodyKey, Vault};
use bss_actors::hvm::accounts::{derive_accounts, DevKey, DEV_MNEMONIC};
use bss_actors::hvm::hbtc::{balance_of_calldata, withdraw_calldata, HBTC_ADDRESS};
use serde_json::{json, Value};
use std::time::Duration;

const CONFIRMATIONS: u64 = 3;
const MIN_WITHDRAWAL: u64 = 20_000;
const FEE: u64 = 2_000;

fn custody(i: usize) -> CustodyKey {
    CustodyKey::new([0x30 + i as u8; 32]).expect("custody key")
}

/// A federation of four with a tunnel: genesis lists the custody keys, each operator its own.
pub(crate) fn start(dir: &std::path::Path, btc: std::net::SocketAddr) -> (Federation, Vault) {
    start_with(dir, btc, &[])
}

/// As [`start`], with Byzantine test modes on some operators.
pub(crate) fn start_with(
    dir: &std::path::Path,
    btc: std::net::SocketAddr,
    byzantine: &[(usize, &str)],
) -> (Federation, Vault) {
    start_on(dir, &crate::btc_section(btc), byzantine)
}

/// As [`start_with`], on a given base config (the `[consensus]` tail and what follows).
fn start_on(dir: &std::path::Path, base: &str, byzantine: &[(usize, &str)]) -> (Federation, Vault) {
    start_genesis(dir, base, byzantine, "")
}

/// As [`start_on`], with more `[genesis.tunnel]` lines.
fn start_genesis(dir: &std::path::Path, base: &str, byzantine: &[(usize, &str)], tunnel: &str) -> (Federation, Vault) {
    let keys: Vec<String> = (0..4).map(|i| custody(i).public().to_string()).collect();
    std::fs::write(
        dir.join("genesis.toml"),
        format!(
            "[genesis]\nchain_id = {CHAIN_ID}\n[genesis.tunnel]\ncustody_keys = {keys:?}\n\
             deposit_confirmations = {CONFIRMATIONS}\nmin_withdrawal_sats = {MIN_WITHDRAWAL}\nwithdrawal_fee_sats = {FEE}\n{tunnel}"
        ),
    )
    .expect("genesis");
    // Operator i's custody secret is the byte 0x3i repeated ("{i}" is what the template fills).
    let config = format!("{base}[tunnel]\ncustody_key = \"{}\"\n", "3{i}".repeat(32));
    let fed = Federation::start_byzantine(dir, 4, &config, "", |_, _, _| None, byzantine);
    let vault = Vault::new((0..4).map(|i| custody(i).public()).collect(), 3).expect("vault");
    (fed, vault)
}

/// Mines one block and waits until every running operator's L2 view reaches best − lag (1).
pub(crate) fn mine_and_follow(c: &Client, fed: &Federation, running: &[usize]) {
    mine_and_follow_lag(c, fed, running, 1)
}

/// Mines one block and waits until every running operator's L2 view reaches best − `lag`.
fn mine_and_follow_lag(c: &Client, fed: &Federation, running: &[usize], lag: u64) {
    let miner = Key::new(3, Kind::P2wpkh).address();
    c.generate_to_address(1, &miner).expect("mine");
    let best = c.get_block_count().expect("count");
    wait_until("the L2 view at the Bitcoin tip", Duration::from_secs(60), || {
        running
            .iter()
            .all(|i| fed.nodes[*i].rpc("bss_btcTip", json!([]))["height"].as_u64() >= Some(best - lag))
            .then_some(())
    });
}

/// Fee of the txs these tests build.
const TEST_FEE: u64 = 3_000;

/// A tx spending the coinbase at height `h` (the miner's) to `outs`, change back to the miner.
fn coinbase_spend(c: &Client, miner: &Key, h: u64, mut outs: Vec<TxOut>) -> bitcoin::Transaction {
    let cb = coinbase_at(c, h);
    let change = cb.1.value - outs.iter().map(|o| o.value).sum::<Amount>() - Amount::from_sat(TEST_FEE);
    outs.push(pay(miner, change));
    miner.spend1(&cb, outs)
}

/// The vault output and deposit OP_RETURN of a deposit of `sats` for `to`.
fn deposit_outputs(vault: &Vault, sats: u64, to: &Address) -> Vec<TxOut> {
    vec![
        TxOut { value: Amount::from_sat(sats), script_pubkey: vault.script_pubkey() },
        deposit_output(CHAIN_ID as u32, to),
    ]
}

fn hbtc_balance(node: &Node, who: Address) -> u64 {
    let out = node.rpc("eth_call", json!([{"to": HBTC_ADDRESS, "data": balance_of_calldata(&who)}, "latest"]));
    hex_u64(&out)
}

fn assert_invariant(node: &Node) -> Value {
    let info = node.rpc("bss_tunnelInfo", json!([]));
    let supply = info["hbtcSupply"].as_u64().expect("supply");
    let pending = info["pendingWithdrawalSats"].as_u64().expect("pending");
    let vault = info["vaultBalanceSats"].as_u64().expect("vault");
    assert!(supply + pending <= vault, "tunnel invariant broken: {info}");
    assert_eq!(info["invariantHolds"], json!(true), "{info}");
    info
}

fn withdraw(key: &DevKey, nonce: u64, script: &[u8], sats: u64) -> Bytes {
    key.sign_raw(TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 300_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(HBTC_ADDRESS),
        value: U256::ZERO,
        input: withdraw_calldata(script, sats),
        ..Default::default()
    })
}

#[test]
fn deposits_mint_everywhere_and_three_of_four_pay_a_withdrawal_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    let miner = Key::new(7, Kind::P2wpkh);
    c.generate_to_address(3, &miner.address()).expect("mine");
    c.generate_to_address(100, &Key::new(3, Kind::P2wpkh).address()).expect("mature");
    let (fed, vault) = start(dir.path(), btc.addr);
    let all = [0usize, 1, 2, 3];
    fed.wait_all_at_least(&all, 2, Duration::from_secs(60));
    let info = fed.nodes[0].rpc("bss_tunnelInfo", json!([]));
    assert_eq!(info["vaultAddress"], json!(vault.address(bitcoin::Network::Regtest).to_string()));
    assert_eq!((info["threshold"].clone(), info["operators"].clone()), (json!(3), json!(4)));

    // A deposit, a payment without OP_RETURN and one below the minimum, built with `bitcoin`.
    let alice = derive_accounts(DEV_MNEMONIC, 2).expect("keys").remove(1);
    let to_vault = |sats: u64| TxOut { value: Amount::from_sat(sats), script_pubkey: vault.script_pubkey() };
    let spend = |h: u64, outs: Vec<TxOut>| c.send_raw_transaction(&coinbase_spend(&c, &miner, h, outs)).expect("send");
    let deposit = spend(1, deposit_outputs(&vault, 150_000, &alice.address));
    let stray = spend(2, vec![to_vault(40_000)]);
    let small = spend(3, deposit_outputs(&vault, 5_000, &alice.address));
    mine_and_follow(&c, &fed, &all);
    let seen = fed.nodes[1].rpc("bss_getDeposit", json!([deposit.to_string()]));
    assert_eq!(seen["status"], json!("seen"), "{seen}");
    let mut mined = 1;
    let minted_at = loop {
        let d = fed.nodes[2].rpc("bss_getDeposit", json!([deposit.to_string()]));
        if d["status"] == json!("minted") {
            break d["l2Block"].as_u64().expect("block");
        }
        assert!(mined <= CONFIRMATIONS + 2, "not minted after {mined} Bitcoin blocks: {d}");
        mine_and_follow(&c, &fed, &all);
        mined += 1;
    };
    for node in &fed.nodes {
        let d = wait_until("the mint on every operator", Duration::from_secs(30), || {
            let d = node.rpc("bss_getDeposit", json!([deposit.to_string()]));
            (d["status"] == json!("minted")).then_some(d)
        });
        assert_eq!(
            (d["status"].clone(), d["l2Block"].clone(), d["sats"].clone()),
            (json!("minted"), json!(minted_at), json!(150_000))
        );
        assert_eq!(d["recipient"], json!(alice.address));
        assert_eq!(hbtc_balance(node, alice.address), 150_000);
        let s = node.rpc("bss_getDeposit", json!([stray.to_string()]));
        assert_eq!(s["status"], json!("unattributed"), "{s}");
        assert!(s["reason"].as_str().is_some_and(|r| r.contains("no OP_RETURN")), "{s}");
        let m = node.rpc("bss_getDeposit", json!([small.to_string()]));
        assert_eq!(m["status"], json!("unattributed"), "{m}");
        let info = assert_invariant(node);
        assert_eq!(info["vaultBalanceSats"], json!(195_000));
    }
    fed.assert_same_chain(&all, minted_at);

    // Wallet code with the stock ERC-20 ABI: web3.py reads, transfers, approves, and indexes logs.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/wallets/hbtc_erc20_check.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", fed.nodes[0].addr))
        .arg(format!("0x{}", alice.secret_hex()))
        .env("PYTHONPATH", web3_pythonpath())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "hBTC with web3.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let alice_left = 150_000 - 5_234;

    // Withdraw 30,000 sats to a P2WPKH script; kill operator 3 once the burn is committed.
    let payee = Key::new(11, Kind::P2wpkh).address().script_pubkey();
    let nonce = hex_u64(&fed.nodes[0].rpc("eth_getTransactionCount", json!([alice.address, "pending"])));
    let hash = fed.nodes[0].rpc("eth_sendRawTransaction", json!([withdraw(&alice, nonce, payee.as_bytes(), 30_000)]));
    let receipt = fed.nodes[0].wait_for_receipt(hash.as_str().expect("hash"));
    assert_eq!(receipt["status"], json!("0x1"), "{receipt}");
    assert_eq!(hbtc_balance(&fed.nodes[0], alice.address), alice_left - 30_000);
    let mut fed = fed;
    fed.nodes[3].kill();
    let up = [0usize, 1, 2];
    let requested = wait_until("the tunnel to see the burn", Duration::from_secs(30), || {
        Some(fed.nodes[0].rpc("bss_getWithdrawal", json!([0]))).filter(|w| !w.is_null())
    });
    assert!(matches!(requested["status"].as_str(), Some("requested" | "signing" | "broadcast")), "{requested}");
    let mut blocks = 0;
    let paid = loop {
        mine_and_follow(&c, &fed, &up);
        blocks += 1;
        let w = fed.nodes[1].rpc("bss_getWithdrawal", json!([0]));
        if w["status"] == json!("paid") {
            break w;
        }
        assert!(blocks <= 8, "withdrawal not paid after {blocks} Bitcoin blocks: {w}");
    };
    eprintln!(
        "withdrawal paid: {blocks} Bitcoin blocks from the burn to the payout in the agreed view (operator 3 down)"
    );
    eprintln!(
        "deposit minted: {mined} Bitcoin blocks from the deposit to the mint (deposit_confirmations {CONFIRMATIONS})"
    );
    let payout: bitcoin::Txid = paid["payoutTxid"].as_str().expect("txid").parse().expect("txid");
    let tx = c.get_raw_transaction(&payout, None).expect("payout tx");
    let to_payee: Vec<u64> = tx.output.iter().filter(|o| o.script_pubkey == payee).map(|o| o.value.to_sat()).collect();
    assert_eq!(to_payee, vec![30_000 - FEE], "the script receives exactly sats - withdrawal fee");
    for i in up {
        wait_until("the payout in every running operator's ledger", Duration::from_secs(30), || {
            let info = assert_invariant(&fed.nodes[i]);
            (info["pendingWithdrawalSats"] == json!(0)).then_some(())
        });
    }

    // Operator 3 comes back, agrees, and nothing is paid twice.
    fed.nodes[3].spawn();
    mine_and_follow(&c, &fed, &all);
    wait_until("operator 3 to see the payout", Duration::from_secs(60), || {
        let w = fed.nodes[3].try_rpc("bss_getWithdrawal", json!([0])).ok()?;
        (w["status"] == json!("paid")).then_some(w)
    });
    assert_eq!(fed.nodes[3].rpc("bss_getWithdrawal", json!([0]))["payoutTxid"], paid["payoutTxid"]);
    for _ in 0..3 {
        mine_and_follow(&c, &fed, &all);
    }
    let best = c.get_block_count().expect("count");
    let mut payouts = 0;
    for h in 1..=best {
        let block = c.get_block(&c.get_block_hash(h).expect("hash")).expect("block");
        payouts += block.txdata.iter().flat_map(|t| &t.output).filter(|o| o.script_pubkey == payee).count();
    }
    assert_eq!(payouts, 1, "withdrawal 0 paid {payouts} times");
    assert_invariant(&fed.nodes[3]);
}

/// Signature starvation: operator 1 runs `flood-tunnel-sigs` (instead of its payout signatures
/// it floods the others with signature messages for a batch that does not exist). Each
/// operator's inbox has its own bounded queue, so the other three's signatures still meet and
/// the withdrawal is paid; the flood is dropped and counted. Operator 2's tunnel thread is made to
/// panic first: it is restarted, replays its ledger, and its signature still counts.
#[test]
fn a_flooding_operator_does_not_starve_the_payout_signatures() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    let miner = Key::new(7, Kind::P2wpkh);
    c.generate_to_address(1, &miner.address()).expect("mine");
    c.generate_to_address(100, &Key::new(3, Kind::P2wpkh).address()).expect("mature");
    let (fed, vault) = start_with(dir.path(), btc.addr, &[(1, "flood-tunnel-sigs")]);
    let all = [0usize, 1, 2, 3];
    fed.wait_all_at_least(&all, 2, Duration::from_secs(60));
    let alice = derive_accounts(DEV_MNEMONIC, 2).expect("keys").remove(1);
    let deposit = c
        .send_raw_transaction(&coinbase_spend(&c, &miner, 1, deposit_outputs(&vault, 150_000, &alice.address)))
        .expect("deposit");
    let mut mined = 0;
    while fed.nodes[0].rpc("bss_getDeposit", json!([deposit.to_string()]))["status"] != json!("minted") {
        assert!(mined <= CONFIRMATIONS + 3, "not minted after {mined} Bitcoin blocks");
        mine_and_follow(&c, &fed, &all);
        mined += 1;
    }
    // Supervision: operator 2's tunnel thread panics and is restarted with its ledger replayed;
    // the payout below needs its signature (operator 1 floods instead of signing).
    assert_eq!(fed.nodes[2].rpc("bss_injectFault", json!(["tunnel", FAULT_TOKEN])), json!("injected"));
    wait_until("operator 2's tunnel restarted", Duration::from_secs(30), || {
        (metric(&fed.nodes[2].metrics(), "bss_actor_restarts_total{actor=\"tunnel\"}") == 1.0).then_some(())
    });
    let payee = Key::new(11, Kind::P2wpkh).address().script_pubkey();
    let hash = fed.nodes[0].rpc("eth_sendRawTransaction", json!([withdraw(&alice, 0, payee.as_bytes(), 30_000)]));
    let receipt = fed.nodes[0].wait_for_receipt(hash.as_str().expect("hash"));
    assert_eq!(receipt["status"], json!("0x1"), "{receipt}");
    let mut blocks = 0;
    loop {
        mine_and_follow(&c, &fed, &all);
        blocks += 1;
        if fed.nodes[0].rpc("bss_getWithdrawal", json!([0]))["status"] == json!("paid") {
            break;
        }
        assert!(blocks <= 12, "withdrawal not paid after {blocks} Bitcoin blocks under the flood");
    }
    let dropped: f64 =
        [0usize, 2, 3].iter().map(|i| metric(&fed.nodes[*i].metrics(), "bss_tunnel_signatures_dropped_total")).sum();
    let refused: f64 =
        [0usize, 2, 3].iter().map(|i| metric(&fed.nodes[*i].metrics(), "bss_tunnel_signatures_refused_total")).sum();
    assert!(dropped > 0.0, "the flood was not dropped (or not counted)");
    assert!(refused > 0.0, "the flood's junk was not refused (or not counted)");
    eprintln!("paid after {blocks} Bitcoin blocks; flood: {dropped} dropped, {refused} refused");
}

/// Operator 0 runs `skip-mints` (its proposals leave due mints out): every deposit is still
/// minted exactly once, never in a block of operator 0 (had replicas accepted its block, the
/// deposit's due height would have passed unminted). Then two Bitcoin reorgs within the
/// watcher lag (2 here): one takes a deposit out of Bitcoin before it is due (replaced by a
/// conflicting spend, it never mints), one, shallower than the confirmation depth, replaces the
/// two blocks above a minted deposit (the mint stays, once, and the chain goes on).
#[test]
fn a_leader_skipping_mints_is_refused_and_reorgs_neither_orphan_nor_repeat_a_mint() {
    const LAG: u64 = 2;
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    let miner = Key::new(7, Kind::P2wpkh);
    c.generate_to_address(8, &miner.address()).expect("mine");
    c.generate_to_address(100, &Key::new(3, Kind::P2wpkh).address()).expect("mature");
    let base = crate::btc_section(btc.addr).replace("confirmations_lag = 1", &format!("confirmations_lag = {LAG}"));
    let (fed, vault) = start_on(dir.path(), &base, &[(0, "skip-mints")]);
    let all = [0usize, 1, 2, 3];
    let follow = || mine_and_follow_lag(&c, &fed, &all, LAG);
    fed.wait_all_at_least(&all, 2, Duration::from_secs(60));
    let bob = Address::repeat_byte(0xb0);
    let deposit_tx = |h: u64, sats: u64, to: Address| coinbase_spend(&c, &miner, h, deposit_outputs(&vault, sats, &to));

    // Four deposits, each in its own Bitcoin block: four moments at which a mint falls due.
    let mut deposits = vec![];
    for h in 1..=4u64 {
        let tx = deposit_tx(h, 20_000 * h, bob);
        deposits.push(c.send_raw_transaction(&tx).expect("deposit"));
        follow();
    }
    for _ in 0..CONFIRMATIONS + LAG {
        follow();
    }
    let mut last_mint = 0;
    for d in &deposits {
        let got = wait_until("the deposit to mint", Duration::from_secs(30), || {
            let v = fed.nodes[1].rpc("bss_getDeposit", json!([d.to_string()]));
            (v["status"] == json!("minted")).then_some(v)
        });
        let n = got["l2Block"].as_u64().expect("block");
        let block = fed.nodes[2].rpc("eth_getBlockByNumber", json!([format!("{n:#x}"), false]));
        assert_ne!(hex_u64(&block["bssProposer"]), 0, "a skip-mints leader's block minted?");
        last_mint = last_mint.max(n);
    }
    let total: u64 = (1..=4).map(|h| 20_000 * h).sum();
    for node in &fed.nodes {
        node.wait_for_block(last_mint);
        assert_eq!(hbtc_balance(node, bob), total);
        assert_invariant(node);
    }
    let refused: f64 = (1..4).map(|i| metric(&fed.nodes[i].metrics(), "bss_consensus_refused_proposals_total")).sum();
    eprintln!("honest operators refused {refused} proposals (operator 0 leading when a mint was due)");

    // Reorg 1: a deposit two blocks deep (seen by every watcher, not yet in the L2 view) is
    // replaced by a conflicting spend: it leaves Bitcoin and never mints.
    let carol = Address::repeat_byte(0xca);
    let doomed = c.send_raw_transaction(&deposit_tx(5, 60_000, carol)).expect("deposit");
    follow();
    let doomed_block = c.get_best_block_hash().expect("best");
    follow();
    wait_until("every watcher to see the deposit", Duration::from_secs(30), || {
        all.iter()
            .all(|i| fed.nodes[*i].rpc("bss_getDeposit", json!([doomed.to_string()]))["status"] == json!("seen"))
            .then_some(())
    });
    c.invalidate_block(&doomed_block).expect("invalidate");
    let cb = coinbase_at(&c, 5);
    let conflict = miner.spend1(&cb, vec![pay(&miner, cb.1.value - Amount::from_sat(20_000))]);
    c.send_raw_transaction(&conflict).expect("the conflicting spend replaces the deposit");
    for _ in 0..CONFIRMATIONS + LAG + 2 {
        follow();
    }
    for node in &fed.nodes {
        assert_eq!(node.rpc("bss_getDeposit", json!([doomed.to_string()])), Value::Null, "the deposit left Bitcoin");
        assert_eq!(hbtc_balance(node, carol), 0);
        assert_invariant(node);
    }

    // Reorg 2: a deposit minted at its third confirmation; the two blocks on top of the
    // Bitcoin chain are replaced (shallower than the confirmation depth): the mint stays.
    let dave = Address::repeat_byte(0xda);
    let again = c.send_raw_transaction(&deposit_tx(6, 70_000, dave)).expect("deposit");
    follow();
    let deposit_height = c.get_block_count().expect("count");
    let minted = loop {
        follow();
        let d = fed.nodes[0].rpc("bss_getDeposit", json!([again.to_string()]));
        if d["status"] == json!("minted") {
            break d;
        }
        assert!(c.get_block_count().expect("count") < deposit_height + CONFIRMATIONS + LAG + 2, "not minted: {d}");
    };
    let best = c.get_block_count().expect("count");
    c.invalidate_block(&c.get_block_hash(best - 1).expect("hash")).expect("invalidate");
    let head_before = fed.nodes[0].block_number();
    for _ in 0..CONFIRMATIONS + LAG {
        follow();
    }
    fed.wait_all_at_least(&all, head_before + 5, Duration::from_secs(60));
    for node in &fed.nodes {
        let d = wait_until("the mint on every operator", Duration::from_secs(30), || {
            let d = node.rpc("bss_getDeposit", json!([again.to_string()]));
            (d["status"] == json!("minted")).then_some(d)
        });
        assert_eq!((d["status"].clone(), d["l2Block"].clone()), (json!("minted"), minted["l2Block"].clone()), "{d}");
        assert_eq!(hbtc_balance(node, dave), 70_000, "minted once");
        let info = assert_invariant(node);
        assert_eq!(info["hbtcSupply"].as_u64().expect("supply"), total + 70_000);
    }
    fed.assert_same_chain(&all, head_before + 5);
}

fn verify(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(BSS).arg("verify").args(args).output().expect("bss verify");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A federation with no operator submitters is anchored by PoP miners alone: two `bss
/// pop-miner`s post the same keystone (it counts once), blocks become superfinal, and `bss
/// verify deposit` and `bss verify withdrawal` pass on a deposit and a withdrawal whose blocks
/// are superfinal, and fail (naming the link) when any one link is tampered with: the Bitcoin
/// block, the custody keys, the minting block, its certificate, its keystone, the burn's
/// receipts.
#[test]
fn pop_miners_anchor_and_verify_walks_the_chain_of_trust_and_fails_on_any_tampered_link() {
    use crate::pop::{finality, mine_until, pop_config_without_submitters, start_pop_miner};
    use bss_actors::pop::tx::PopWallet;
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    let miner = Key::new(7, Kind::P2wpkh);
    c.generate_to_address(2, &miner.address()).expect("mine");
    let pop_secrets = [[0x61u8; 32], [0x62; 32]];
    for s in pop_secrets {
        let w = PopWallet::new(s, bitcoin::Network::Regtest).expect("wallet");
        c.generate_to_address(2, &w.address).expect("fund a PoP miner");
    }
    let burn = PopWallet::new([0x77; 32], bitcoin::Network::Regtest).expect("wallet").address;
    c.generate_to_address(100, &burn).expect("mature");
    let (fed, vault) = start_on(dir.path(), &pop_config_without_submitters(btc.addr), &[]);
    let all = [0usize, 1, 2, 3];
    fed.wait_all_at_least(&all, 2, Duration::from_secs(60));
    // The operators certify the first keystone; two miners post it before Bitcoin mines a block.
    let rpc = format!("http://{}", fed.nodes[0].addr);
    wait_until("a keystone certificate", Duration::from_secs(60), || {
        let latest = fed.nodes[0].rpc("bss_keystoneCertificate", json!(["latest"]));
        (!latest.is_null()).then_some(())
    });
    let _miners: Vec<_> = pop_secrets
        .iter()
        .enumerate()
        .map(|(i, s)| start_pop_miner(dir.path(), &format!("miner{i}"), *s, &rpc, btc.addr))
        .collect();
    wait_until("both miners' keystone txs in the mempool", Duration::from_secs(60), || {
        (c.get_raw_mempool().expect("mempool").len() >= 2).then_some(())
    });
    c.generate_to_address(1, &burn).expect("mine");
    wait_until("the second posting counted once (as a duplicate)", Duration::from_secs(30), || {
        let m = fed.nodes[0].metrics();
        (metric(&m, "bss_pop_keystones_ignored{reason=\"duplicate\"}") >= 1.0).then_some(())
    });
    let alice = derive_accounts(DEV_MNEMONIC, 2).expect("keys").remove(1);
    let tx = coinbase_spend(&c, &miner, 1, deposit_outputs(&vault, 250_000, &alice.address));
    let deposit = c.send_raw_transaction(&tx).expect("deposit").to_string();
    let minted = mine_until(&c, "the deposit minted", || {
        let d = fed.nodes[0].rpc("bss_getDeposit", json!([deposit]));
        d["l2Block"].as_u64()
    });
    let payee = Key::new(12, Kind::P2tr).address().script_pubkey();
    let hash = fed.nodes[0].rpc("eth_sendRawTransaction", json!([withdraw(&alice, 0, payee.as_bytes(), 100_000)]));
    let burned = hex_u64(&fed.nodes[0].wait_for_receipt(hash.as_str().expect("hash"))["blockNumber"]);
    mine_until(&c, "the withdrawal paid and both blocks superfinal", || {
        let paid = fed.nodes[0].rpc("bss_getWithdrawal", json!([0]))["status"] == json!("paid");
        let superfinal = [minted, burned].iter().all(|n| finality(&fed.nodes[0], *n)["superfinal"] == true);
        (paid && superfinal).then_some(())
    });

    // The node that was waited on (another may be a moment behind on finality).
    let btc_url = format!("http://u:p@{}", btc.addr);
    let (ok, out) = verify(&["deposit", &deposit, "--rpc", &rpc, "--btc-rpc", &btc_url]);
    assert!(ok, "verify deposit failed:\n{out}");
    assert!(out.contains("v3: block"), "the keystone's certificate was not checked:\n{out}");
    for link in
        ["merkle proof", "vault deposit", "mint", "commit certificate", "keystone payload", "bitcoin confirmations"]
    {
        assert!(out.contains(link), "no {link} link:\n{out}");
    }
    let (ok, out) = verify(&["withdrawal", "0", "--rpc", &rpc, "--btc-rpc", &btc_url, "--json"]);
    assert!(ok, "verify withdrawal failed:\n{out}");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["ok"], json!(true));
    let names: Vec<&str> =
        report["links"].as_array().expect("links").iter().filter_map(|l| l["check"].as_str()).collect();
    for link in ["burn", "commit certificate", "keystone covers block", "vault spend", "payout"] {
        assert!(names.contains(&link), "no {link} link: {names:?}");
    }

    // One tampered link at a time: each must fail, and say which link.
    let node = fed.nodes[0].addr;
    type Tamper = Box<dyn Fn(&Value, &mut Value) + Send + Sync>;
    let cases: Vec<(&str, Tamper)> = vec![
        ("commit certificate", Box::new(|_, v| flip_certificate(v))),
        (
            "mint",
            Box::new(move |req, v| {
                if req["method"] == json!("bss_getDeposit") {
                    v["result"]["l2Block"] = json!(minted - 1);
                }
            }),
        ),
        (
            "keystone",
            Box::new(|req, v| {
                if req["method"] == json!("bss_getFinality") {
                    v["result"]["keystone"]["btcTxid"] = json!("11".repeat(32));
                }
            }),
        ),
    ];
    for (link, tamper) in cases {
        let proxy = rpc_proxy(node, tamper);
        let (ok, out) = verify(&["deposit", &deposit, "--rpc", &format!("http://{proxy}"), "--btc-rpc", &btc_url]);
        assert!(!ok && out.contains("FAIL") && out.contains(link), "a tampered {link} passed:\n{out}");
    }
    // A Bitcoin node that serves a block whose header has one byte changed (in its merkle root).
    let bad_btc = rpc_proxy(btc.addr, |req, v| {
        if req["method"] == json!("getblock") {
            if let Some(hex) = v["result"].as_str() {
                let mut b = hex.to_string();
                let at = 100;
                let flipped = if &b[at..at + 1] == "0" { "1" } else { "0" };
                b.replace_range(at..at + 1, flipped);
                v["result"] = json!(b);
            }
        }
    });
    let (ok, out) = verify(&["deposit", &deposit, "--rpc", &rpc, "--btc-rpc", &format!("http://u:p@{bad_btc}")]);
    assert!(!ok && out.contains("FAIL") && out.contains("bitcoin block"), "a tampered Bitcoin block passed:\n{out}");
    // Custody keys other than the federation's: the tx pays no such vault.
    let others: Vec<String> = (0..4).map(|i| custody(i + 4).public().to_string()).collect();
    let (ok, out) =
        verify(&["deposit", &deposit, "--rpc", &rpc, "--btc-rpc", &btc_url, "--custody-keys", &others.join(",")]);
    assert!(!ok && out.contains("vault deposit"), "foreign custody keys passed:\n{out}");
    // A receipt whose event data was changed: the burn's receipts no longer match the header.
    let proxy = rpc_proxy(node, |req, v| {
        if req["method"] == json!("eth_getTransactionReceipt") {
            if let Some(logs) = v["result"]["logs"].as_array_mut() {
                for l in logs {
                    l["data"] = json!(format!("0x{}", "00".repeat(96)));
                }
            }
        }
    });
    let (ok, out) = verify(&["withdrawal", "0", "--rpc", &format!("http://{proxy}"), "--btc-rpc", &btc_url]);
    assert!(!ok && out.contains("burn"), "tampered receipts passed:\n{out}");
}

/// Issue 31, item 2: operator 0 runs `btc-rewind:5` — every block it leads restarts the Bitcoin
/// headers five heights below its parent's tip. Honest voters refuse those blocks: along the
/// committed chain the Bitcoin tip never goes down, the view keeps up with Bitcoin, and a
/// deposit mints.
#[test]
fn a_leader_rewinding_the_bitcoin_view_is_refused_and_deposits_still_mint() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    let miner = Key::new(7, Kind::P2wpkh);
    c.generate_to_address(4, &miner.address()).expect("mine");
    c.generate_to_address(100, &Key::new(3, Kind::P2wpkh).address()).expect("mature");
    let (fed, vault) = start_with(dir.path(), btc.addr, &[(0, "btc-rewind:5")]);
    let all = [0usize, 1, 2, 3];
    fed.wait_all_at_least(&all, 2, Duration::from_secs(60));
    let erin = Address::repeat_byte(0xe1);
    let deposit = coinbase_spend(&c, &miner, 1, deposit_outputs(&vault, 55_000, &erin));
    let txid = c.send_raw_transaction(&deposit).expect("deposit");
    // Mine well past the rewind depth while operator 0 leads every fourth round.
    for _ in 0..CONFIRMATIONS + 8 {
        mine_and_follow(&c, &fed, &all);
    }
    let minted = wait_until("the deposit to mint", Duration::from_secs(60), || {
        let v = fed.nodes[1].rpc("bss_getDeposit", json!([txid.to_string()]));
        (v["status"] == json!("minted")).then_some(v)
    });
    let head = fed.nodes[1].block_number();
    fed.wait_all_at_least(&all, head, Duration::from_secs(60));
    fed.assert_same_chain(&all, head);
    let mut tip = 0u64;
    for n in 1..=head {
        let cert = fed.nodes[2].rpc("bss_getCertificate", json!([n]));
        let raw = hex::decode(cert["header"].as_str().expect("header")).expect("hex");
        let header: bss_consensus::BlockHeader = bss_consensus::codec::decode(&raw).expect("header");
        assert!(
            header.btc.tip_height >= tip,
            "block {n} moved the Bitcoin view from {tip} back to {}",
            header.btc.tip_height
        );
        tip = header.btc.tip_height;
    }
    let best = c.get_block_count().expect("count");
    assert!(tip + 1 + bss_actors::btc::DEFAULT_STALE_SLACK >= best, "the view ({tip}) fell behind Bitcoin ({best})");
    assert_eq!(hbtc_balance(&fed.nodes[3], erin), 55_000);
    let refused: f64 = (1..4).map(|i| metric(&fed.nodes[i].metrics(), "bss_consensus_refused_proposals_total")).sum();
    assert!(refused > 0.0, "no rewinding proposal was ever refused");
    eprintln!("btc-rewind: minted in block {}; honest operators refused {refused} proposals", minted["l2Block"]);
}

/// Withdrawals of `(script, sats)` from `key`'s hBTC, in one go; waits for their receipts.
fn withdraw_all(node: &Node, key: &DevKey, list: &[(&bitcoin::ScriptBuf, u64)]) {
    let nonce = hex_u64(&node.rpc("eth_getTransactionCount", json!([key.address, "pending"])));
    for (i, (script, sats)) in list.iter().enumerate() {
        let hash =
            node.rpc("eth_sendRawTransaction", json!([withdraw(key, nonce + i as u64, script.as_bytes(), *sats)]));
        let receipt = node.wait_for_receipt(hash.as_str().expect("hash"));
        assert_eq!(receipt["status"], json!("0x1"), "{receipt}");
    }
}

/// Mines until withdrawal `id` is paid on operator 0 (at most `max` Bitcoin blocks).
fn mine_until_paid(c: &Client, fed: &Federation, id: u64, max: u64) -> (Value, u64) {
    let all = [0usize, 1, 2, 3];
    for blocks in 1..=max {
        mine_and_follow(c, fed, &all);
        assert_invariant(&fed.nodes[0]);
        let w = fed.nodes[0].rpc("bss_getWithdrawal", json!([id]));
        if w["status"] == json!("paid") {
            return (w, blocks);
        }
    }
    panic!("withdrawal {id} not paid after {max} Bitcoin blocks: {}", fed.nodes[0].rpc("bss_tunnelInfo", json!([])));
}

/// The fee and fee rate (sat/vB) bitcoind's chain shows for `txid`.
fn fee_of(c: &Client, txid: &bitcoin::Txid) -> (u64, u64) {
    let tx = c.get_raw_transaction(txid, None).expect("tx");
    let inputs: u64 = tx
        .input
        .iter()
        .map(|i| {
            let prev = c.get_raw_transaction(&i.previous_output.txid, None).expect("prevout tx");
            prev.output[i.previous_output.vout as usize].value.to_sat()
        })
        .sum();
    let fee = inputs - tx.output.iter().map(|o| o.value.to_sat()).sum::<u64>();
    (fee, fee / tx.vsize() as u64)
}

/// Head-of-line blocking, fees and agreement across a restart. After 40 deposits of 20,000 sats
/// (a deposit fee of 2,500 each is the vault's surplus), withdrawals of 650,000 and 30,000: no 32
/// coins cover the first, so the federation consolidates the 32 largest, and then pays both.
/// Operator 2 restarts while a batch is open: it starts from its ledger checkpoint and all four
/// agree on the payout. Then bitcoind's minimum relay fee rises to 12 sat/vB, above what the
/// 2,000-sat withdrawal fee pays for a one-coin payout: the fee versions climb, the surplus pays
/// the rest, and the later withdrawal is paid too.
#[test]
fn a_fragmented_vault_consolidates_and_payouts_outbid_a_rising_fee_floor() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    let miner = Key::new(7, Kind::P2wpkh);
    c.generate_to_address(40, &miner.address()).expect("mine");
    c.generate_to_address(100, &Key::new(3, Kind::P2wpkh).address()).expect("mature");
    let (mut fed, vault) = start_genesis(dir.path(), &crate::btc_section(btc.addr), &[], "deposit_fee_sats = 2500\n");
    let all = [0usize, 1, 2, 3];
    fed.wait_all_at_least(&all, 2, Duration::from_secs(60));
    let alice = derive_accounts(DEV_MNEMONIC, 2).expect("keys").remove(1);
    let deposits: Vec<bitcoin::Txid> = (1..=40)
        .map(|h| {
            let tx = coinbase_spend(&c, &miner, h, deposit_outputs(&vault, 20_000, &alice.address));
            c.send_raw_transaction(&tx).expect("deposit")
        })
        .collect();
    let mut mined = 0;
    while hbtc_balance(&fed.nodes[0], alice.address) < 40 * 17_500 {
        assert!(mined <= CONFIRMATIONS + 3, "deposits not minted after {mined} Bitcoin blocks");
        mine_and_follow(&c, &fed, &all);
        mined += 1;
    }
    let d = fed.nodes[1].rpc("bss_getDeposit", json!([deposits[7].to_string()]));
    assert_eq!((d["sats"].clone(), d["mintedSats"].clone()), (json!(20_000), json!(17_500)), "{d}");
    assert_invariant(&fed.nodes[0]);

    let (big, small) =
        (Key::new(12, Kind::P2wpkh).address().script_pubkey(), Key::new(13, Kind::P2tr).address().script_pubkey());
    // A fee floor of 3 sat/vB: the first fee versions are refused, later ones get in.
    c.call::<Value>("setminrelaytxfee", &[json!(0.00003)]).expect("setminrelaytxfee");
    withdraw_all(&fed.nodes[0], &alice, &[(&big, 650_000), (&small, 30_000)]);
    let opened = wait_until("the consolidation to open", Duration::from_secs(60), || {
        let info = fed.nodes[0].rpc("bss_tunnelInfo", json!([]));
        (info["openBatch"]["consolidation"] == json!(true)).then_some(info)
    });
    assert!(opened["waiting"].as_str().is_some_and(|w| w.contains("consolidating")), "{opened}");
    // Operator 2 restarts mid-batch, from its checkpoint; the four agree on the open batch.
    wait_until("operator 2's first ledger checkpoint", Duration::from_secs(60), || {
        (metric(&fed.nodes[2].metrics(), "bss_tunnel_ledger_checkpoints_total") >= 1.0).then_some(())
    });
    fed.nodes[2].kill();
    fed.nodes[2].spawn();
    fed.wait_all_at_least(&all, fed.nodes[0].block_number() + 2, Duration::from_secs(60));
    assert!(metric(&fed.nodes[2].metrics(), "bss_tunnel_ledger_restored_l2") > 0.0, "operator 2 replayed from block 1");
    let batch = wait_until("all four on the same open batch", Duration::from_secs(60), || {
        let b: Vec<Value> =
            all.iter().map(|i| fed.nodes[*i].rpc("bss_tunnelInfo", json!([]))["openBatch"].clone()).collect();
        b.iter().all(|x| *x == b[0] && !x.is_null()).then(|| b[0].clone())
    });
    eprintln!("open batch after the restart: {batch}");
    let (paid_big, blocks) = mine_until_paid(&c, &fed, 0, 40);
    let paid_small = fed.nodes[0].rpc("bss_getWithdrawal", json!([1]));
    assert_eq!(paid_small["status"], json!("paid"), "{paid_small}");
    for i in all {
        wait_until("every operator sees the same payout", Duration::from_secs(30), || {
            let w = fed.nodes[i].rpc("bss_getWithdrawal", json!([0]));
            (w["payoutTxid"] == paid_big["payoutTxid"]).then_some(())
        });
    }
    let info = fed.nodes[0].rpc("bss_tunnelInfo", json!([]));
    assert!(info["consolidations"].as_u64() >= Some(1), "{info}");
    eprintln!(
        "650,000 and 30,000 paid {blocks} Bitcoin blocks after the burns, after {} consolidation(s)",
        info["consolidations"]
    );

    // The fee floor rises above what the withdrawal fee pays; the surplus pays the rest.
    c.call::<Value>("setminrelaytxfee", &[json!(0.00012)]).expect("setminrelaytxfee");
    withdraw_all(&fed.nodes[0], &alice, &[(&small, 20_000)]);
    let (later, blocks) = mine_until_paid(&c, &fed, 2, 24);
    let txid: bitcoin::Txid = later["payoutTxid"].as_str().expect("txid").parse().expect("txid");
    let (fee, rate) = fee_of(&c, &txid);
    assert!(fee > FEE && rate >= 12, "payout fee {fee} sats at {rate} sat/vB");
    eprintln!("withdrawal paid under a 12 sat/vB floor after {blocks} Bitcoin blocks: fee {fee} sats ({rate} sat/vB) for a {FEE}-sat withdrawal fee");
    for i in all {
        assert_invariant(&fed.nodes[i]);
    }
}
