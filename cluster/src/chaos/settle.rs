//! After a chaos run's heal: liveness within a bound, the recovery times still open, and the
//! acknowledged txs given the time to commit before the operators are stopped and checked.

use super::checker::Ack;
use super::run::RunReport;
use crate::bench::client::{hex_u64, RpcClient};
use crate::devnet;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub(super) fn height(c: &mut RpcClient) -> Option<u64> {
    c.call("eth_blockNumber", json!([])).ok().and_then(|v| hex_u64(&v))
}

/// After the heal: liveness (everyone passes the head seen at the heal within 60 s, and the
/// recoveries still open are timed), then a wait for the acknowledged txs to commit.
pub fn settle(
    rpc: &[String],
    clients: &mut [RpcClient],
    acked: &[Ack],
    report: &mut RunReport,
    recovering: &mut Vec<(usize, usize, u64)>,
    started: Instant,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for addr in rpc {
        if !devnet::wait_healthy(addr, deadline) {
            report.liveness_violation = Some(format!("operator at {addr} did not come back after the heal"));
            return;
        }
    }
    let top = clients.iter_mut().filter_map(height).max().unwrap_or(0);
    loop {
        let t = started.elapsed().as_secs_f64();
        recovering.retain(|(i, k, target)| match height(&mut clients[*i]) {
            Some(h) if h >= *target => {
                let healed = report.faults[*k].healed_s.unwrap_or(t);
                report.faults[*k].recovery_ms = Some((t - healed) * 1000.0);
                false
            }
            _ => true,
        });
        let hs: Vec<u64> = clients.iter_mut().map(|c| height(c).unwrap_or(0)).collect();
        if hs.iter().all(|h| *h >= top + 5) && recovering.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            report.liveness_violation =
                Some(format!("heights {hs:?} did not pass {} within 60 s of the heal", top + 5));
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Wait until each sender's last acknowledged tx is committed (a nonce commits only after the
    // ones below it); the checker then finds every one in the operators' storage.
    let mut last: HashMap<usize, &Ack> = HashMap::new();
    for a in acked {
        if last.get(&a.sender).is_none_or(|b| b.nonce < a.nonce) {
            last.insert(a.sender, a);
        }
    }
    for a in last.values() {
        while clients[0].call("eth_getTransactionReceipt", json!([a.hash])).map_or(true, |r| r.is_null()) {
            if Instant::now() > deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
