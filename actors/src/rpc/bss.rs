//! `bss_*` methods: node status and fault injection.

use super::context::RpcContext;
use super::params::{internal, invalid_params, server_error, BlockId, BssBlock};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use serde_json::{json, Value};

/// A counted keystone as `bss_getFinality` and `bss_keystones` show it.
fn keystone_json(k: &crate::pop::finality::SeenKeystone) -> Value {
    json!({
        "l2Number": k.keystone.l2_number,
        "l2Hash": k.keystone.l2_hash,
        "btcTxid": k.sighting.txid.to_string(),
        "btcBlockHash": k.sighting.block.to_string(),
        "btcHeight": k.sighting.height,
        "confirmations": k.confirmations,
    })
}

pub fn register(module: &mut RpcModule<RpcContext>) -> std::io::Result<()> {
    let err = |e: jsonrpsee::core::RegisterMethodError| std::io::Error::other(e.to_string());
    module
        .register_async_method("bss_nodeInfo", |_, c, _| async move {
            let head = c.head()?;
            let (pending, queued) = c.mempool.status().await.map_err(internal)?;
            let peers = match &c.network {
                Some(n) => n.peers().await,
                None => vec![],
            };
            let genesis = c.reader.header(0).map_err(internal)?.map(|h| h.hash());
            Ok::<Value, ErrorObjectOwned>(json!({
                "chainId": c.spec.chain_id,
                "genesis": genesis,
                "operatorIndex": c.node.operator_index,
                "operators": c.node.operators,
                "engine": c.node.engine,
                "head": { "number": head.number, "hash": head.hash(), "round": head.round },
                "mempool": { "pending": pending, "queued": queued },
                "peers": peers,
                "inclusionDeadline": c.node.inclusion_deadline,
                "forcedConfirmations": c.node.forced_confirmations,
                "version": env!("CARGO_PKG_VERSION"),
            }))
        })
        .map_err(err)?;
    module
        .register_method("bss_genesis", |_, c, _| {
            // Untrusted as it comes: a client hashes `rules` itself and checks that block 0's
            // parent hash is that hash and that block 0 hashes to the genesis it pins.
            let genesis =
                c.reader.header(0).map_err(internal)?.ok_or_else(|| internal("genesis block missing from storage"))?;
            let rules = serde_json::to_value(c.node.genesis_rules.as_ref()).map_err(internal)?;
            Ok::<Value, ErrorObjectOwned>(json!({
                "hash": genesis.hash(),
                "rulesHash": c.node.genesis_rules.hash(),
                "rules": rules,
            }))
        })
        .map_err(err)?;
    module
        .register_async_method("bss_peers", |_, c, _| async move {
            let views = match &c.network {
                Some(n) => n.peer_views().await,
                None => vec![],
            };
            serde_json::to_value(views).map_err(internal)
        })
        .map_err(err)?;
    module
        .register_method("bss_keystones", |p, c, _| {
            // Optional; when given, a quantity (hex, number or decimal string) like every bss_* one.
            let count: Option<super::params::BssQuantity> = p.sequence().optional_next()?;
            let count = count.map_or(10, |q| q.0.min(100) as usize);
            let Some(f) = c.finality() else {
                return Err(server_error("proof-of-proof is not configured on this node ([pop])"));
            };
            let threshold = c.pop_confirmations.unwrap_or(1);
            let list: Vec<Value> = f
                .matching
                .iter()
                .rev()
                .take(count)
                .map(|k| {
                    let mut v = keystone_json(k);
                    v["superfinal"] = json!(k.confirmations >= threshold);
                    v
                })
                .collect();
            Ok::<Value, ErrorObjectOwned>(json!({
                "superfinalHeight": f.superfinal,
                "superfinalityConfirmations": threshold,
                "keystones": list,
            }))
        })
        .map_err(err)?;
    module
        .register_method("bss_injectFault", |p, c, _| {
            let (target, token): (String, String) = p.parse()?;
            let Some(faults) = &c.faults else {
                return Err(server_error("fault injection is disabled (rpc.fault_injection = false)"));
            };
            if !c.cfg.fault_token_matches(&token) {
                metrics::counter!("bss_rpc_refused_total", "reason" => "fault_token").increment(1);
                return Err(server_error("bss_injectFault: wrong token (rpc.fault_injection_token)"));
            }
            faults.inject(&target).map_err(super::params::invalid_params)?;
            Ok::<Value, ErrorObjectOwned>(json!("injected"))
        })
        .map_err(err)?;
    module
        .register_method("bss_btcTip", |_, c, _| {
            let head = c.head()?;
            let tip = &head.btc;
            let watcher = c.btc.as_ref().map(|l| {
                let v = l.view.current();
                // Whether the head left the agreed view (its tip) unmoved while it trails what this
                // node's watcher would accept by more than a voter lets a leader leave it (README
                // "Threat model"). A head that adds headers is catching up, not stale.
                let stale = tip.headers.is_empty() && crate::btc::stale_by(tip, &v, &l.rules).is_some();
                json!({
                    "height": v.best_height(),
                    "hash": v.best_hash().map(|h| h.to_string()),
                    "confirmationsLag": l.rules.confirmations_lag,
                    "staleViewSlack": l.rules.stale_slack,
                    "viewStale": stale,
                    "viewBehind": v.best_height().map(|b| b.saturating_sub(l.rules.confirmations_lag).saturating_sub(tip.tip_height)),
                    "connected": l.view.connected(),
                    "network": l.rules.network.to_string(),
                })
            });
            let hash = crate::btc::attributes::tip_hash(tip).map(|h| h.to_string());
            Ok::<Value, ErrorObjectOwned>(json!({
                "l2Block": head.number,
                "height": hash.as_ref().map(|_| tip.tip_height),
                "hash": hash,
                "watcher": watcher,
            }))
        })
        .map_err(err)?;
    module
        .register_method("bss_btcHeader", |p, c, _| {
            let id: BssBlock = p.one()?;
            let Some(link) = &c.btc else {
                return Err(server_error("this node has no Bitcoin view ([btc] is not configured)"));
            };
            let v = link.view.current();
            let height = match id.0 {
                BlockId::Number(n) => n,
                BlockId::Latest => v.best_height().unwrap_or(0),
                BlockId::Earliest => v.start_height(),
                other => {
                    return Err(invalid_params(format!("{other:?}: a Bitcoin height, \"latest\" or \"earliest\"")))
                }
            };
            let (Some(h), Some(hash)) = (v.header_at(height), v.hash_at(height)) else {
                return Ok(Value::Null);
            };
            Ok::<Value, ErrorObjectOwned>(json!({
                "height": height,
                "hash": hash.to_string(),
                "previousBlockHash": h.prev_blockhash.to_string(),
                "merkleRoot": h.merkle_root.to_string(),
                "version": h.version.to_consensus(),
                "time": h.time,
                "bits": format!("{:08x}", h.bits.to_consensus()),
                "nonce": h.nonce,
                "raw": hex::encode(bitcoin::consensus::encode::serialize(h)),
            }))
        })
        .map_err(err)?;
    module
        .register_method("bss_getFinality", |p, c, _| {
            let id: BssBlock = p.one()?;
            let head = c.head()?;
            let number = match id.0 {
                BlockId::Number(n) => n,
                other => c.resolve(other)?.ok_or_else(|| invalid_params("unknown block"))?,
            };
            let Some(f) = c.finality() else {
                return Err(server_error("proof-of-proof is not configured on this node ([pop])"));
            };
            let committed = number <= head.number;
            let keystone =
                f.covering(number, c.pop_confirmations.unwrap_or(1)).filter(|_| committed).map(keystone_json);
            Ok::<Value, ErrorObjectOwned>(json!({
                "number": number,
                "committed": committed,
                "superfinal": committed && f.superfinal.is_some_and(|s| number <= s),
                "superfinalHeight": f.superfinal,
                "superfinalityConfirmations": c.pop_confirmations,
                "keystone": keystone,
            }))
        })
        .map_err(err)?;
    module
        .register_method("bss_getCertificate", |p, c, _| {
            let id: BssBlock = p.one()?;
            let Some(number) = c.resolve(id.0)? else { return Ok(Value::Null) };
            let Some(header) = c.reader.header(number).map_err(internal)? else { return Ok(Value::Null) };
            let cert = c.reader.certificate(number).map_err(internal)?;
            Ok::<Value, ErrorObjectOwned>(json!({
                "number": number,
                "hash": header.hash(),
                "header": hex::encode(bss_consensus::codec::encode(&header).map_err(internal)?),
                "certificate": cert.map(|c| json!({
                    "chainId": c.chain_id,
                    "round": c.round,
                    "blockHash": c.block_hash,
                    "signatures": c.signatures.iter().map(|(i, s)| json!({ "operator": i, "signature": hex::encode(s.0) })).collect::<Vec<_>>(),
                    "hotstuffRs": c.hotstuff_rs.as_ref().map(|q| json!({
                        "height": q.height,
                        "justify": hex::encode(&q.justify),
                        "phase": q.phase,
                        "signatures": q.signatures.iter().map(|s| s.map(|s| hex::encode(s.0))).collect::<Vec<_>>(),
                    })),
                })),
                "operators": c.node.operator_keys,
                // The operators' PoP wallet keys (they pay for keystones; they decide nothing).
                "keystoneKeys": c.node.genesis_rules.keystone_keys.iter().map(hex::encode).collect::<Vec<_>>(),
            }))
        })
        .map_err(err)?;
    Ok(())
}
