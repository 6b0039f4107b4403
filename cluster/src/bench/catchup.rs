//! `bss bench --catch-up`: after the load, the last operator is stopped, its chain database
//! wiped (its key kept), and started again; it syncs the whole chain from its peers (certified blocks,
//! re-executed). Measured: how long from its start until it serves the head the others served
//! when it was wiped, in blocks/s and tx/s.

use super::client::{hex_u64, RpcClient};
use crate::devnet::LocalFederation;
use eyre::{bail, eyre, Result};
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize)]
pub struct CatchUp {
    pub operator: usize,
    /// The head it had to reach (every block from genesis).
    pub blocks: u64,
    /// Transactions in those blocks.
    pub txs: u64,
    /// From the restart until its head reached `blocks`.
    pub seconds: f64,
    pub blocks_per_s: f64,
    pub txs_per_s: f64,
}

/// How often the wiped operator's head is read.
const POLL: Duration = Duration::from_millis(10);

pub fn measure(fed: &mut LocalFederation, timeout: Duration) -> Result<CatchUp> {
    let Some(operator) = fed.rpc.len().checked_sub(1).filter(|i| *i > 0) else {
        bail!("--catch-up needs at least two operators");
    };
    let mut peer = RpcClient::new(&fed.rpc[0]);
    let head = |c: &mut RpcClient| c.call("eth_blockNumber", json!([])).ok().and_then(|v| hex_u64(&v));
    fed.wipe(operator)?;
    let blocks = head(&mut peer).ok_or_else(|| eyre!("operator 0 does not answer eth_blockNumber"))?;
    let txs = (1..=blocks)
        .map(|n| {
            peer.call("eth_getBlockTransactionCountByNumber", json!([format!("{n:#x}")]))
                .ok()
                .and_then(|v| hex_u64(&v))
                .ok_or_else(|| eyre!("operator 0 does not serve block {n}"))
        })
        .sum::<Result<u64>>()?;
    println!("catch-up: operator {operator} wiped; syncing {blocks} blocks ({txs} txs) from its peers…");
    let started = Instant::now();
    fed.restart(operator)?;
    let mut wiped = RpcClient::new(&fed.rpc[operator]);
    while head(&mut wiped).is_none_or(|h| h < blocks) {
        fed.check_running(operator)?;
        if started.elapsed() > timeout {
            bail!("operator {operator} did not reach block {blocks} within {timeout:?}");
        }
        std::thread::sleep(POLL);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(CatchUp {
        operator,
        blocks,
        txs,
        seconds,
        blocks_per_s: blocks as f64 / seconds,
        txs_per_s: txs as f64 / seconds,
    })
}

impl std::fmt::Display for CatchUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} blocks ({} txs) in {:.2} s: {:.0} blocks/s, {:.0} tx/s",
            self.blocks, self.txs, self.seconds, self.blocks_per_s, self.txs_per_s
        )
    }
}
