//! `bss status --rpc URL`: one screen about one operator, as `bitcoin-cli -getinfo` gives for
//! bitcoind: chain, head and its age, consensus round, peers, mempool, the Bitcoin view, and how
//! far the chain is final in Bitcoin.

use crate::bench::client::RpcClient;
use clap::Args;
use eyre::{eyre, Result};
use serde_json::{json, Value};

#[derive(Args)]
pub struct StatusArgs {
    /// The operator's JSON-RPC URL.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    rpc: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn hex(v: &Value) -> Option<u64> {
    v.as_str().and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
}

pub fn run(args: StatusArgs) -> Result<()> {
    let mut c = RpcClient::new(&args.rpc);
    let mut call = |m: &str, p: Value| c.call(m, p).map_err(|e| eyre!("{m}: {e}"));
    let info = call("bss_nodeInfo", json!([]))?;
    let head = call("eth_getBlockByNumber", json!(["latest", false]))?;
    let finalized = call("eth_getBlockByNumber", json!(["finalized", false])).ok();
    let btc = call("bss_btcTip", json!([])).ok();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let age = hex(&head["timestamp"]).map(|t| now.saturating_sub(t));
    let summary = json!({
        "chainId": info["chainId"],
        "genesis": info["genesis"],
        "operator": info["operatorIndex"],
        "operators": info["operators"],
        "engine": info["engine"],
        "version": info["version"],
        "head": { "number": hex(&head["number"]), "hash": head["hash"], "ageSecs": age, "round": info["head"]["round"] },
        "peers": info["peers"],
        "mempool": info["mempool"],
        "superfinal": finalized.as_ref().and_then(|b| hex(&b["number"])),
        "bitcoin": btc,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    let peers = info["peers"].as_array().map(|p| p.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "));
    println!(
        "bss {} — operator {} of {}, engine {}, chain id {}",
        info["version"].as_str().unwrap_or("?"),
        info["operatorIndex"],
        info["operators"],
        info["engine"].as_str().unwrap_or("?"),
        info["chainId"]
    );
    println!("genesis     {} (pins the operators, their keys and the rules)", info["genesis"].as_str().unwrap_or("?"));
    println!(
        "head        #{} {} ({} s old, round {})",
        hex(&head["number"]).unwrap_or(0),
        head["hash"].as_str().unwrap_or("?"),
        age.map_or("?".into(), |a| a.to_string()),
        info["head"]["round"]
    );
    println!(
        "superfinal  {}",
        summary["superfinal"]
            .as_u64()
            .map_or("— (no [pop] or no keystone yet)".into(), |n| format!("#{n} (anchored in Bitcoin, `finalized`)"))
    );
    println!("peers       {} connected: [{}]", info["peers"].as_array().map_or(0, Vec::len), peers.unwrap_or_default());
    println!("mempool     {} pending, {} queued", info["mempool"]["pending"], info["mempool"]["queued"]);
    match &btc {
        Some(b) if !b["watcher"].is_null() => {
            let w = &b["watcher"];
            println!(
                "bitcoin     {} view #{} {} (watcher best #{}, {}, lag {})",
                w["network"].as_str().unwrap_or("?"),
                b["height"],
                b["hash"].as_str().unwrap_or("—"),
                w["height"],
                if w["connected"] == true { "connected" } else { "DISCONNECTED" },
                w["confirmationsLag"]
            );
            if w["viewStale"] == true {
                println!(
                    "            STALE VIEW: the L2 is live but its Bitcoin view is {} blocks behind this watcher \
                     (more than the slack of {}); leaders are not moving it — deposits, forced txs and \
                     payouts wait, and the hVM answers for an old Bitcoin",
                    w["viewBehind"], w["staleViewSlack"]
                );
            }
        }
        _ => println!("bitcoin     — (no [btc] section)"),
    }
    Ok(())
}
