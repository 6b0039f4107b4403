//! Keystone certificates over RPC: `bss_keystoneCertificate(number | "latest")` serves what a PoP
//! miner posts, `bss_keystoneEvidence` the conflicting certificates Bitcoin holds, if any.
//!
//! A certificate is self-authenticating (it verifies against the operator keys the genesis pins),
//! so a client need not trust this node for it; `inBitcoin` is this node's view of Bitcoin.

use super::context::RpcContext;
use super::params::{internal, invalid_params, server_error, BlockId, BssBlock};
use crate::pop::attest::CertStore;
use crate::pop::finality::{FinalityView, SeenKeystone};
use crate::pop::keystone::CertifiedKeystone;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use serde_json::{json, Value};

fn seen_json(k: &SeenKeystone) -> Value {
    json!({
        "l2Number": k.keystone.l2_number,
        "l2Hash": k.keystone.l2_hash,
        "signers": k.signers,
        "btcTxid": k.sighting.txid.to_string(),
        "btcBlockHash": k.sighting.block.to_string(),
        "btcHeight": k.sighting.height,
        "confirmations": k.confirmations,
    })
}

fn cert_json(c: &CertifiedKeystone, source: &str, interval: u64, f: Option<&FinalityView>) -> Value {
    let k = &c.keystone;
    let in_bitcoin = f.and_then(|f| f.matching.iter().chain(&f.other).find(|s| s.keystone == *k).map(seen_json));
    json!({
        "number": k.l2_number,
        "hash": k.l2_hash,
        "chainId": k.chain_id,
        "epoch": k.epoch,
        "btcRefHeight": k.btc_ref_height,
        "statement": format!("0x{}", hex::encode(k.statement())),
        "signers": c.signers,
        "certificate": format!("0x{}", hex::encode(c.encode())),
        "source": source,
        "keystoneInterval": interval,
        "inBitcoin": in_bitcoin,
    })
}

pub fn register(module: &mut RpcModule<RpcContext>) -> std::io::Result<()> {
    let err = |e: jsonrpsee::core::RegisterMethodError| std::io::Error::other(e.to_string());
    module
        .register_method("bss_keystoneCertificate", |p, c, _| {
            let id: BssBlock = p.one()?;
            if c.pop_confirmations.is_none() {
                return Err(server_error("proof-of-proof is not configured on this node ([pop])"));
            }
            let interval = c.node.genesis_rules.keystone_interval.max(1);
            let store = CertStore { reader: c.reader.clone() };
            let n = match id.0 {
                BlockId::Number(n) => n,
                BlockId::Latest => match store.latest().map_err(internal)? {
                    Some(n) => n,
                    None => return Ok(Value::Null),
                },
                other => return Err(invalid_params(format!("{other:?}: give a keystone number or \"latest\""))),
            };
            if n == 0 || !n.is_multiple_of(interval) {
                return Err(invalid_params(format!("{n} is not a keystone number (every {interval}th block)")));
            }
            let f = c.finality();
            if let Some(cert) = store.get(n).map_err(internal)? {
                return Ok::<Value, ErrorObjectOwned>(cert_json(&cert, "operators", interval, f.as_ref()));
            }
            // Not assembled here (this node was behind): the counted one in Bitcoin, if any.
            let from_btc = f.as_ref().and_then(|f| {
                f.matching
                    .iter()
                    .chain(&f.other)
                    .find(|s| s.keystone.l2_number == n)
                    .and_then(|s| CertifiedKeystone::decode(&s.sighting.payload).ok())
            });
            Ok(from_btc.map_or(Value::Null, |cert| cert_json(&cert, "bitcoin", interval, f.as_ref())))
        })
        .map_err(err)?;
    module
        .register_method("bss_keystoneEvidence", |_, c, _| {
            let Some(f) = c.finality() else {
                return Err(server_error("proof-of-proof is not configured on this node ([pop])"));
            };
            Ok::<Value, ErrorObjectOwned>(json!(f
                .evidence
                .iter()
                .map(|e| json!({
                    "l2Number": e.first.keystone.l2_number,
                    "first": seen_json(&e.first),
                    "conflicting": seen_json(&e.conflicting),
                    "description": e.describe(),
                }))
                .collect::<Vec<_>>()))
        })
        .map_err(err)?;
    Ok(())
}
