//! Watches commits: polls the head of one operator, reads each new block's transactions, and
//! turns send times into commit latencies and per-second throughput.

use super::client::{hex_u64, RpcClient};
use super::load::{SendLog, Signed};
use alloy_primitives::B256;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[derive(Default, Clone, serde::Serialize)]
pub struct Second {
    pub t: u64,
    pub txs: u64,
    pub gas: u64,
    pub blocks: u64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
}

#[derive(Default)]
pub struct Observed {
    pub committed: u64,
    pub gas: u64,
    pub blocks: u64,
    /// Commit latency of every benchmark tx seen committed, ms.
    pub latencies_ms: Vec<f64>,
    pub timeline: Vec<Second>,
    pub first_commit_s: Option<f64>,
    pub last_commit_s: f64,
    pub foreign_txs: u64,
    /// The highest base fee seen, wei.
    pub base_fee_max: u64,
    /// Blocks whose base fee was above the load's fee cap: none of its txs could be in them.
    pub priced_out_blocks: u64,
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs until `log.stop` is set and `drain` has passed with nothing new, or every sent tx is seen.
pub fn watch(
    rpc: String,
    signed: Arc<Signed>,
    log: Arc<SendLog>,
    drain: Duration,
    mut on_tick: impl FnMut(&Observed),
) -> Observed {
    let mut client = RpcClient::new(&rpc);
    let mut obs = Observed::default();
    let mut next = client.call("eth_blockNumber", json!([])).ok().and_then(|v| hex_u64(&v)).unwrap_or(0) + 1;
    let mut per_second: Vec<(u64, u64, u64, Vec<f64>)> = Vec::new();
    let mut idle_since: Option<std::time::Instant> = None;
    loop {
        let head = client.call("eth_blockNumber", json!([])).ok().and_then(|v| hex_u64(&v)).unwrap_or(0);
        while next <= head {
            let Ok(block) = client.call("eth_getBlockByNumber", json!([format!("{next:#x}"), false])) else { break };
            let now_s = log.started.elapsed().as_secs_f64();
            let now_us = log.started.elapsed().as_micros() as u64;
            let sec = now_s as usize;
            if per_second.len() <= sec {
                per_second.resize(sec + 1, (0, 0, 0, Vec::new()));
            }
            let gas = hex_u64(&block["gasUsed"]).unwrap_or(0);
            let base_fee = hex_u64(&block["baseFeePerGas"]).unwrap_or(0);
            obs.base_fee_max = obs.base_fee_max.max(base_fee);
            if u128::from(base_fee) > super::load::MAX_FEE_PER_GAS {
                obs.priced_out_blocks += 1;
            }
            per_second[sec].1 += gas;
            per_second[sec].2 += 1;
            obs.blocks += 1;
            obs.gas += gas;
            for h in block["transactions"].as_array().into_iter().flatten() {
                let Some(hash) = h.as_str().and_then(|s| s.parse::<B256>().ok()) else { continue };
                match signed.index.get(&hash) {
                    Some(i) => {
                        let sent = log.sent_at[*i].load(Ordering::Relaxed);
                        let ms = now_us.saturating_sub(sent) as f64 / 1000.0;
                        obs.latencies_ms.push(ms);
                        per_second[sec].3.push(ms);
                        per_second[sec].0 += 1;
                        obs.committed += 1;
                        obs.first_commit_s.get_or_insert(now_s);
                        obs.last_commit_s = now_s;
                    }
                    None => obs.foreign_txs += 1,
                }
            }
            next += 1;
        }
        on_tick(&obs);
        let sent = log.sent.load(Ordering::Relaxed);
        if log.stop.load(Ordering::Relaxed) {
            let accepted =
                sent.saturating_sub(log.rejected.load(Ordering::Relaxed) + log.errors.load(Ordering::Relaxed));
            if obs.committed >= accepted {
                break;
            }
            let since = *idle_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > drain {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    obs.timeline = per_second
        .into_iter()
        .enumerate()
        .map(|(t, (txs, gas, blocks, mut lat))| {
            lat.sort_by(f64::total_cmp);
            Second {
                t: t as u64,
                txs,
                gas,
                blocks,
                latency_ms_p50: percentile(&lat, 50.0),
                latency_ms_p99: percentile(&lat, 99.0),
            }
        })
        .collect();
    obs
}
