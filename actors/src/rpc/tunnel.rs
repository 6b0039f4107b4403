//! `bss_tunnelInfo`, `bss_getDeposit`, `bss_getWithdrawal`: the BTC tunnel as this node sees it.

use super::context::RpcContext;
use super::params::{internal, invalid_params, server_error};
use crate::btc::deposit::{classify, minted_sats, spends_vault, TunnelRules};
use crate::btc::BtcLink;
use crate::hvm::hbtc::{HBTC_ADDRESS, TOTAL_SUPPLY_SLOT};
use crate::tunnel::TunnelStatus;
use alloy_primitives::U256;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::Arc;

fn tunnel(c: &RpcContext) -> Result<(&BtcLink, &TunnelRules, Arc<TunnelStatus>), ErrorObjectOwned> {
    let no = || server_error("this chain has no tunnel ([genesis.tunnel]) or this node no Bitcoin view ([btc])");
    let link = c.btc.as_ref().ok_or_else(no)?;
    let rules = link.tunnel.as_ref().ok_or_else(no)?;
    let status = c.tunnel.as_ref().ok_or_else(no)?.borrow().clone();
    Ok((link, rules, status))
}

fn txid_param(s: &str) -> Result<bitcoin::Txid, ErrorObjectOwned> {
    bitcoin::Txid::from_str(s.trim_start_matches("0x"))
        .map_err(|e| invalid_params(format!("not a Bitcoin txid (64 hex digits): {e}")))
}

fn info(c: &RpcContext) -> Result<Value, ErrorObjectOwned> {
    let (link, rules, status) = tunnel(c)?;
    // hBTC units are satoshis: 21M BTC fits a u64 many times over.
    let supply = c.reader.storage(&HBTC_ADDRESS, &U256::from(TOTAL_SUPPLY_SLOT)).map_err(internal)?;
    let supply = u64::try_from(supply).unwrap_or(u64::MAX);
    let l = &status.ledger;
    Ok(json!({
        "vaultAddress": rules.vault.address(link.rules.network).to_string(),
        "hbtc": HBTC_ADDRESS,
        "threshold": rules.vault.threshold(),
        "operators": rules.vault.keys().len(),
        "custodyKeys": rules.vault.keys().iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        "depositConfirmations": rules.deposit_confirmations,
        "minDepositSats": rules.min_deposit_sats,
        "minWithdrawalSats": rules.min_withdrawal_sats,
        "withdrawalFeeSats": rules.withdrawal_fee_sats,
        "depositFeeSats": rules.deposit_fee_sats,
        "payoutFeeCeilingSatVb": rules.payout_fee_ceiling_sat_vb,
        "vaultBalanceSats": status.vault_sats,
        "hbtcSupply": supply,
        "pendingWithdrawalSats": l.pending_sats(),
        "invariantHolds": status.invariant_holds,
        "btcTip": l.btc_tip,
        "l2Block": l.l2_head,
        "openBatch": l.batch.as_ref().map(|b| json!({
            "batch": b.seq, "first": b.first, "end": b.end, "consolidation": b.is_consolidation(),
            "openedL2": b.opened_l2, "openedBtc": b.opened_btc, "inputs": b.inputs.len(), "feeBudgetSats": b.fee_budget,
        })),
        "unpayable": l.unpayable.iter().map(|(id, why)| json!({"id": id, "reason": why})).collect::<Vec<_>>(),
        "consolidations": l.consolidations,
        "waiting": l.waiting,
    }))
}

fn deposit(c: &RpcContext, txid: bitcoin::Txid) -> Result<Value, ErrorObjectOwned> {
    let (link, rules, status) = tunnel(c)?;
    let view = link.view.current();
    let Some(best) = view.best_height() else { return Ok(Value::Null) };
    let Some(rec) = view.tx(&txid, best) else { return Ok(Value::Null) };
    let from_vault = spends_vault(&view, &rec.tx, rec.height, rules);
    let Some(p) = classify(&rec.tx, txid, rec.height, rules, from_vault) else { return Ok(Value::Null) };
    let confirmations = best + 1 - p.height;
    let recipient = match &p.attribution {
        Ok(r) => *r,
        Err(why) => {
            return Ok(json!({
                "status": "unattributed", "reason": why.to_string(), "confirmations": confirmations,
                "btcHeight": p.height, "l2Block": Value::Null, "recipient": Value::Null, "sats": p.sats,
            }))
        }
    };
    let due = p.height + rules.deposit_confirmations - 1;
    // The tunnel service records every mint of the committed chain (a Bitcoin reorg under the
    // L2 view can make block views go back, so searching blocks by view height would miss some).
    let minted = status.ledger.minted.get(&p.txid_display()).copied();
    Ok(json!({
        "status": if minted.is_some() { "minted" } else { "seen" },
        "confirmations": confirmations,
        "btcHeight": p.height,
        "dueBtcHeight": due,
        "l2Block": minted,
        "recipient": recipient,
        "sats": p.sats,
        "mintedSats": minted_sats(p.sats, rules),
    }))
}

fn withdrawal(c: &RpcContext, id: u64) -> Result<Value, ErrorObjectOwned> {
    let (link, _, status) = tunnel(c)?;
    let l = &status.ledger;
    let Some(r) = l.requests.get(&id) else { return Ok(Value::Null) };
    let best = link.view.current().best_height().unwrap_or(0);
    let base = json!({
        "id": id, "l2Block": r.l2_block, "from": r.from, "sats": r.sats,
        "btcScriptPubKey": format!("0x{}", hex::encode(r.script.as_bytes())),
    });
    let (state, txid, confirmations) = if let Some(p) = l.paid.get(&id) {
        ("paid", Some(p.txid), (best + 1).saturating_sub(p.btc_height))
    } else if let Some(why) = l.unpayable.get(&id) {
        let mut v = base;
        v["status"] = json!("unpayable");
        v["reason"] = json!(why);
        return Ok(v);
    } else {
        match &l.batch {
            Some(b) if (b.first..b.end).contains(&id) => match status.sent.get(&b.seq) {
                Some((_, txid)) => ("broadcast", Some(*txid), 0),
                None => ("signing", None, 0),
            },
            _ => ("requested", None, 0),
        }
    };
    let mut v = base;
    v["status"] = json!(state);
    v["payoutTxid"] = json!(txid.map(|t| t.to_string()));
    v["confirmations"] = json!(confirmations);
    if state == "requested" {
        v["reason"] = json!(l.waiting);
    }
    Ok(v)
}

pub fn register(module: &mut RpcModule<RpcContext>) -> std::io::Result<()> {
    let err = |e: jsonrpsee::core::RegisterMethodError| std::io::Error::other(e.to_string());
    module.register_method("bss_tunnelInfo", |_, c, _| info(c)).map_err(err)?;
    module
        .register_method("bss_getDeposit", |p, c, _| {
            let txid: String = p.one()?;
            deposit(c, txid_param(&txid)?)
        })
        .map_err(err)?;
    module
        .register_method("bss_getWithdrawal", |p, c, _| {
            let id = p.one::<super::params::BssQuantity>()?.0;
            withdrawal(c, id)
        })
        .map_err(err)?;
    Ok(())
}
