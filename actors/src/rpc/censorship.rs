//! `bss_getForcedTx`: where a tx forced in through Bitcoin stands.

use super::context::RpcContext;
use super::params::{internal, server_error};
use alloy_primitives::B256;
use bss_consensus::{BlockHeader, ForcedOutcome};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use serde_json::{json, Value};

/// Blocks after the first one whose view reaches the due height that are searched for the
/// outcome (a Bitcoin reorg under the L2 view may move it a little).
const SEARCH_AHEAD: u64 = 64;

/// The first committed block whose Bitcoin view reaches `btc_height` (views only grow, but for
/// rare reorgs under them, so a binary search over the committed chain finds it).
fn first_block_reaching(c: &RpcContext, btc_height: u64, head: u64) -> Result<Option<u64>, ErrorObjectOwned> {
    let header = |n: u64| -> Result<Option<BlockHeader>, ErrorObjectOwned> { c.reader.header(n).map_err(internal) };
    let reaches = |h: &BlockHeader| h.btc.tip_hash != B256::ZERO && h.btc.tip_height >= btc_height;
    if !header(head)?.is_some_and(|h| reaches(&h)) {
        return Ok(None);
    }
    let (mut lo, mut hi) = (1u64, head);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if header(mid)?.is_some_and(|h| reaches(&h)) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(Some(lo))
}

fn outcome_json(o: &ForcedOutcome, l2_block: u64) -> Value {
    json!({
        "status": if o.skipped.is_some() { "skipped" } else { "included" },
        "btcTxid": hex::encode(o.btc_txid),
        "btcHeight": o.btc_height,
        "l2Block": l2_block,
        "reason": o.skipped,
    })
}

pub fn register(module: &mut RpcModule<RpcContext>) -> std::io::Result<()> {
    let err = |e: jsonrpsee::core::RegisterMethodError| std::io::Error::other(e.to_string());
    module
        .register_method("bss_getForcedTx", |p, c, _| {
            let hash: B256 = p.one()?;
            let Some(link) = &c.btc else {
                return Err(server_error("this node has no Bitcoin view ([btc] is not configured)"));
            };
            let view = link.view.current();
            let Some(m) = view.inbox_by_tx_hash(&hash).cloned() else {
                return Ok::<Value, ErrorObjectOwned>(Value::Null);
            };
            let confirmations = link.rules.forced_confirmations;
            let due = m.height + confirmations - 1;
            let head = c.head()?.number;
            if let Some(first) = first_block_reaching(c, due, head)? {
                for n in first..=head.min(first + SEARCH_AHEAD) {
                    let Some(h) = c.reader.header(n).map_err(internal)? else { break };
                    // A carried tx (it did not fit) has its outcome in a later block.
                    if let Some(o) = h.forced.iter().find(|o| o.tx_hash == hash && !o.is_carried()) {
                        return Ok(outcome_json(o, n));
                    }
                }
            }
            Ok(json!({
                "status": "pending",
                "btcTxid": m.txid.to_string(),
                "btcHeight": m.height,
                "confirmations": view.best_height().map_or(0, |b| (b + 1).saturating_sub(m.height)),
                "dueBtcHeight": due,
                "l2Block": Value::Null,
                "reason": Value::Null,
            }))
        })
        .map_err(err)?;
    Ok(())
}
