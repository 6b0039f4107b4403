//! `bss verify deposit <btc txid>` and `bss verify withdrawal <id>`: the tunnel's chain of trust,
//! each link checked on its own evidence rather than on the serving node's word.
//!
//! Deposit: (1) the deposit tx in a Bitcoin block — proof of work, merkle proof, confirmations,
//! an output paying the vault recomputed from the custody keys, the recipient in its OP_RETURN;
//! (2) the L2 block that minted it — the mint in its certified header, its commit certificate
//! against the operator set; (3) the keystone anchoring that block, with its Bitcoin
//! confirmations (superfinal).
//!
//! Withdrawal: (1) the burn — its `WithdrawalRequested` event in a receipt whose block's receipts
//! root (recomputed from every receipt) is the certified header's; (2) the keystone anchoring
//! that block; (3) the payout in a Bitcoin block — spending vault coins, paying the requested
//! script `sats − fee`, tagged with the batch that holds the id.

use crate::bench::client::RpcClient;
use crate::btc_url::BtcUrl;
use crate::verify::{check_block, fold_branch, merkle_proof, verify_block, Report, Trust, L2};
use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope};
use alloy_primitives::{Address, Bytes, Log, B256};
use bitcoin::{Transaction, Txid};
use bitcoincore_rpc::RpcApi;
use bss_actors::btc::deposit::{classify, display, minted_sats, TunnelRules};
use bss_actors::btc::index::op_return_payload;
use bss_actors::btc::vault::Vault;
use bss_actors::btc::withdrawal::{is_payout, PAYOUT_TAG};
use bss_actors::hvm::hbtc::decode_withdrawal;
use clap::Args;
use eyre::{bail, eyre, Result};
use serde_json::{json, Value};
use std::str::FromStr;

/// Where to look and whom to trust (shared by both commands).
#[derive(Args)]
pub struct Sources {
    /// An operator's JSON-RPC URL.
    #[arg(long)]
    rpc: String,
    /// A Bitcoin node's RPC URL (http://user:pass@host:port); or set BSS_BTC_RPC.
    #[arg(long, env = "BSS_BTC_RPC", hide_env_values = true)]
    btc_rpc: String,
    /// The genesis hash (block 0): pins the operator and custody keys and the
    /// tunnel's rules, taken from the genesis the node serves once it hashes to this.
    #[arg(long)]
    genesis: Option<String>,
    /// Operator public keys (hex, comma-separated, index order); default: the genesis's
    /// (`--genesis`), else what the RPC reports.
    #[arg(long, value_delimiter = ',')]
    operators: Vec<String>,
    /// Custody keys (hex x-only, comma-separated, operator order) the vault is recomputed
    /// from; default: what `bss_tunnelInfo` reports.
    #[arg(long, value_delimiter = ',')]
    custody_keys: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct DepositArgs {
    /// The deposit's Bitcoin txid.
    txid: String,
    #[command(flatten)]
    src: Sources,
}

#[derive(Args)]
pub struct WithdrawalArgs {
    /// The withdrawal id (from the `WithdrawalRequested` event).
    id: u64,
    #[command(flatten)]
    src: Sources,
}

/// The tunnel's rules as the verifier rebuilds them (the vault from the custody keys), or a
/// failed "tunnel" link.
fn rules(l2: &mut L2, src: &Sources, r: &mut Report) -> Option<TunnelRules> {
    let rules = fetch_rules(l2, src);
    match rules {
        Ok(x) => Some(x),
        Err(e) => {
            r.check("tunnel", Err(e));
            None
        }
    }
}

fn fetch_rules(l2: &mut L2, src: &Sources) -> Result<TunnelRules> {
    if let Some(pin) = &src.genesis {
        return pinned_tunnel(l2, pin, &src.custody_keys);
    }
    let info = l2.call("bss_tunnelInfo", json!([]))?;
    let keys: Vec<String> = if src.custody_keys.is_empty() {
        info["custodyKeys"].as_array().into_iter().flatten().filter_map(|k| k.as_str().map(String::from)).collect()
    } else {
        src.custody_keys.clone()
    };
    let keys = keys
        .iter()
        .map(|k| bitcoin::secp256k1::XOnlyPublicKey::from_str(k).map_err(|e| eyre!("custody key {k}: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let threshold = info["threshold"].as_u64().ok_or_else(|| eyre!("bss_tunnelInfo has no threshold"))? as usize;
    let vault = Vault::new(keys, threshold).map_err(|e| eyre!("{e}"))?;
    let chain_id = l2.call("eth_chainId", json!([]))?;
    let chain_id = u64::from_str_radix(chain_id.as_str().unwrap_or_default().trim_start_matches("0x"), 16)?;
    let num = |k: &str| info[k].as_u64().ok_or_else(|| eyre!("bss_tunnelInfo has no {k}"));
    Ok(TunnelRules {
        vault,
        chain_id,
        min_deposit_sats: num("minDepositSats")?,
        deposit_confirmations: num("depositConfirmations")?,
        min_withdrawal_sats: num("minWithdrawalSats")?,
        withdrawal_fee_sats: num("withdrawalFeeSats")?,
        deposit_fee_sats: info["depositFeeSats"].as_u64().unwrap_or(0),
        payout_fee_ceiling_sat_vb: info["payoutFeeCeilingSatVb"].as_u64().unwrap_or(0),
    })
}

/// The tunnel's rules from the pinned genesis (custody keys given on the command line must be
/// the genesis's).
fn pinned_tunnel(l2: &mut L2, pin: &str, given: &[String]) -> Result<TunnelRules> {
    let (rules, _) = crate::verify_genesis::pinned_rules(l2, pin)?;
    let t = rules.tunnel.as_ref().ok_or_else(|| eyre!("the pinned genesis sets up no tunnel"))?;
    let pinned = crate::verify_genesis::hex_keys(&t.custody_keys);
    if !given.is_empty() && given.iter().map(|k| k.to_ascii_lowercase()).ne(pinned.iter().cloned()) {
        bail!("--custody-keys differ from the pinned genesis's custody keys");
    }
    let keys = pinned
        .iter()
        .map(|k| bitcoin::secp256k1::XOnlyPublicKey::from_str(k).map_err(|e| eyre!("custody key {k}: {e}")))
        .collect::<Result<Vec<_>>>()?;
    Ok(TunnelRules {
        vault: Vault::new(keys, t.threshold as usize).map_err(|e| eyre!("{e}"))?,
        chain_id: rules.chain_id,
        min_deposit_sats: t.min_deposit_sats,
        deposit_confirmations: t.deposit_confirmations,
        min_withdrawal_sats: t.min_withdrawal_sats,
        withdrawal_fee_sats: t.withdrawal_fee_sats,
        deposit_fee_sats: t.deposit_fee_sats,
        payout_fee_ceiling_sat_vb: t.payout_fee_ceiling_sat_vb,
    })
}

/// Checks that `txid` is in a Bitcoin block with valid proof of work, by merkle proof, with at
/// least `confirmations`; returns the tx and its height.
fn bitcoin_tx(
    btc: &bitcoincore_rpc::Client,
    txid: Txid,
    confirmations: u64,
    r: &mut Report,
) -> Option<(Transaction, u64)> {
    let info = match btc.get_raw_transaction_info(&txid, None) {
        Ok(i) => i,
        Err(e) => {
            r.check("bitcoin tx", Err(eyre!("{txid}: {e}")));
            return None;
        }
    };
    let Some(block_hash) = info.blockhash else {
        r.check("bitcoin tx", Err(eyre!("{txid} is not in a block yet")));
        return None;
    };
    let block = match btc.get_block(&block_hash) {
        Ok(b) => b,
        Err(e) => {
            r.check("bitcoin block", Err(eyre!("{block_hash}: {e}")));
            return None;
        }
    };
    if !r.check("bitcoin block", check_block(&block, &block_hash)) {
        return None;
    }
    let txids: Vec<Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
    let Some(index) = txids.iter().position(|t| *t == txid) else {
        r.check("merkle proof", Err(eyre!("tx {txid} is not in block {block_hash}")));
        return None;
    };
    let (branch, _) = merkle_proof(&txids, index);
    let root = fold_branch(txid.to_raw_hash(), &branch, index);
    let proof = if root == block.header.merkle_root.to_raw_hash() {
        Ok(format!("tx {txid} at index {index}, {} hashes up to the header's merkle root", branch.len()))
    } else {
        Err(eyre!("the branch leads to {root}, the header says {}", block.header.merkle_root))
    };
    if !r.check("merkle proof", proof) {
        return None;
    }
    let header = btc.get_block_header_info(&block_hash).map_err(|e| eyre!("{e}"));
    let deep = header.and_then(|h| {
        if h.confirmations < 1 {
            bail!("block {block_hash} is not on the best chain (reorged away)");
        }
        if (h.confirmations as u64) < confirmations {
            bail!("{} confirmations, {confirmations} needed", h.confirmations);
        }
        Ok((format!("{} confirmations at height {}", h.confirmations, h.height), h.height as u64))
    });
    let height = deep.as_ref().ok().map(|(_, h)| *h);
    r.check("bitcoin confirmations", deep.map(|(d, _)| d));
    let tx = block.txdata.into_iter().nth(index)?;
    Some((tx, height?))
}

fn btc_client(src: &Sources, r: &mut Report) -> Option<bitcoincore_rpc::Client> {
    match BtcUrl::parse(&src.btc_rpc).and_then(|u| u.client()) {
        Ok(c) => Some(c),
        Err(e) => {
            r.check("bitcoin node", Err(e));
            None
        }
    }
}

fn trust(src: &Sources) -> Trust {
    Trust { genesis: src.genesis.clone(), operators: src.operators.clone() }
}

pub fn run_deposit(a: DepositArgs) -> Result<()> {
    let txid = Txid::from_str(a.txid.trim_start_matches("0x")).map_err(|e| eyre!("{}: not a txid: {e}", a.txid))?;
    let mut r = Report { links: vec![] };
    verify_deposit(txid, &a.src, &mut r);
    let verdict =
        "verified: the deposit is locked in the vault, minted by a certified block, and anchored superfinal in Bitcoin";
    r.emit(&format!("deposit {txid}"), json!({ "deposit": txid.to_string() }), a.src.json, verdict)
}

fn verify_deposit(txid: Txid, src: &Sources, r: &mut Report) {
    let mut l2 = L2 { client: RpcClient::new(&src.rpc) };
    let Some(rules) = rules(&mut l2, src, r) else { return };
    let Some(btc) = btc_client(src, r) else { return };
    // 1. The lock in Bitcoin.
    let Some((tx, height)) = bitcoin_tx(&btc, txid, rules.deposit_confirmations, r) else { return };
    // A tx of the federation (it spends a vault coin, and carries the payout tag) is no deposit.
    let payment = classify(&tx, txid, height, &rules, is_payout(&tx));
    let deposit = match payment {
        None => Err(eyre!("the tx pays nothing to the vault recomputed from the custody keys")),
        Some(p) => match p.attribution {
            Ok(to) => Ok((to, p.sats)),
            Err(why) => Err(eyre!("the payment is unattributed: {why}")),
        },
    };
    let (recipient, sats) = match deposit {
        Ok(d) => d,
        Err(e) => {
            r.check("vault deposit", Err(e));
            return;
        }
    };
    let vault = rules.vault.address(btc.get_blockchain_info().map(|i| i.chain).unwrap_or(bitcoin::Network::Regtest));
    r.check("vault deposit", Ok(format!("{sats} sats to vault {vault} for {recipient}")));
    // 2. The L2 block that minted it.
    let minted = (|| {
        let d = l2.call("bss_getDeposit", json!([txid.to_string()]))?;
        let n = d["l2Block"].as_u64().ok_or_else(|| eyre!("not minted yet (the node says {})", d["status"]))?;
        let header = l2.block(n)?.header;
        let due = height + rules.deposit_confirmations - 1;
        if header.btc.tip_height < due {
            bail!("block {n}'s Bitcoin view ends at {}, before the deposit's due height {due}", header.btc.tip_height);
        }
        let found = header.mints.iter().find(|m| m.btc_txid == display(&txid));
        match found {
            Some(m) if m.recipient == recipient && m.sats == minted_sats(sats, &rules) => Ok((
                n,
                format!(
                    "block {n} mints {} hBTC units to {recipient} (its header, which the certificate signs)",
                    m.sats
                ),
            )),
            Some(m) => bail!("block {n} mints {} to {} instead", m.sats, m.recipient),
            None => bail!("block {n}'s header carries no mint for this deposit"),
        }
    })();
    let Ok((n, detail)) = minted else {
        r.check("mint", minted.map(|(_, d)| d));
        return;
    };
    r.check("mint", Ok(detail));
    // 3. That block's certificate, and the keystone anchoring it.
    verify_block(n, &src.rpc, Some(&src.btc_rpc), &trust(src), r);
}

pub fn run_withdrawal(a: WithdrawalArgs) -> Result<()> {
    let mut r = Report { links: vec![] };
    verify_withdrawal(a.id, &a.src, &mut r);
    let verdict = "verified: the burn is in a certified block anchored superfinal in Bitcoin, and the vault paid it";
    r.emit(&format!("withdrawal {}", a.id), json!({ "withdrawal": a.id }), a.src.json, verdict)
}

/// A receipt as eth_getTransactionReceipt serves it, as the receipts trie holds it.
fn receipt_envelope(v: &Value) -> Result<ReceiptEnvelope> {
    let hex = |x: &Value| u64::from_str_radix(x.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16);
    let logs = v["logs"]
        .as_array()
        .ok_or_else(|| eyre!("receipt without logs"))?
        .iter()
        .map(|l| {
            let address = Address::from_str(l["address"].as_str().unwrap_or_default())?;
            let topics = l["topics"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| B256::from_str(t.as_str().unwrap_or_default()))
                .collect::<Result<Vec<_>, _>>()?;
            let data = Bytes::from_str(l["data"].as_str().unwrap_or("0x"))?;
            Ok(Log::new_unchecked(address, topics, data))
        })
        .collect::<Result<Vec<_>>>()?;
    let receipt = Receipt {
        status: Eip658Value::Eip658(hex(&v["status"])? == 1),
        cumulative_gas_used: hex(&v["cumulativeGasUsed"])?,
        logs,
    }
    .with_bloom();
    Ok(match hex(&v["type"])? {
        0 => ReceiptEnvelope::Legacy(receipt),
        1 => ReceiptEnvelope::Eip2930(receipt),
        _ => ReceiptEnvelope::Eip1559(receipt),
    })
}

fn verify_withdrawal(id: u64, src: &Sources, r: &mut Report) {
    let mut l2 = L2 { client: RpcClient::new(&src.rpc) };
    let Some(rules) = rules(&mut l2, src, r) else { return };
    // 1. The burn, in the receipts its certified block commits to.
    let burn = (|| {
        let w = l2.call("bss_getWithdrawal", json!([id]))?;
        let n = w["l2Block"].as_u64().ok_or_else(|| eyre!("the node knows no withdrawal {id}"))?;
        let header = l2.block(n)?.header;
        let block = l2.call("eth_getBlockByNumber", json!([format!("{n:#x}"), false]))?;
        let mut receipts = vec![];
        for h in block["transactions"].as_array().into_iter().flatten() {
            receipts.push(l2.call("eth_getTransactionReceipt", json!([h]))?);
        }
        let envelopes = receipts.iter().map(receipt_envelope).collect::<Result<Vec<_>>>()?;
        let root = alloy_consensus::proofs::calculate_receipt_root(&envelopes);
        if root != header.receipts_root {
            bail!("the receipts served for block {n} hash to {root}, its header says {}", header.receipts_root);
        }
        let request = envelopes
            .iter()
            .flat_map(|e| e.logs())
            .filter_map(|l| decode_withdrawal(&l.address, l.topics(), &l.data.data))
            .find(|req| req.id == id)
            .ok_or_else(|| eyre!("no WithdrawalRequested event with id {id} in block {n}"))?;
        Ok((n, request))
    })();
    let (n, request) = match burn {
        Ok(b) => b,
        Err(e) => {
            r.check("burn", Err(e));
            return;
        }
    };
    r.check(
        "burn",
        Ok(format!(
            "block {n}: {} burned {} sats for script 0x{} (receipts root matches the header)",
            request.from,
            request.sats,
            hex::encode(&request.script)
        )),
    );
    // 2. That block's certificate and keystone.
    verify_block(n, &src.rpc, Some(&src.btc_rpc), &trust(src), r);
    // 3. The payout.
    let payout = l2.call("bss_getWithdrawal", json!([id])).and_then(|w| {
        let t = w["payoutTxid"].as_str().ok_or_else(|| eyre!("not paid yet (the node says {})", w["status"]))?;
        Ok(Txid::from_str(t)?)
    });
    let txid = match payout {
        Ok(t) => t,
        Err(e) => {
            r.check("payout", Err(e));
            return;
        }
    };
    let Some(btc) = btc_client(src, r) else { return };
    let Some((tx, _)) = bitcoin_tx(&btc, txid, 1, r) else { return };
    let vault = rules.vault.script_pubkey();
    let spends_vault = tx.input.iter().try_for_each(|i| {
        let prev = btc.get_raw_transaction(&i.previous_output.txid, None).map_err(|e| eyre!("{e}"))?;
        match prev.output.get(i.previous_output.vout as usize) {
            Some(o) if o.script_pubkey == vault => Ok(()),
            _ => bail!("input {} is not a vault coin", i.previous_output),
        }
    });
    r.check("vault spend", spends_vault.map(|_| format!("all {} inputs are vault coins", tx.input.len())));
    let owed = request.sats - rules.withdrawal_fee_sats;
    let paid =
        tx.output.iter().any(|o| o.script_pubkey.as_bytes() == request.script.as_slice() && o.value.to_sat() == owed);
    let tagged = tx.output.iter().filter(|o| o.script_pubkey.is_op_return()).any(|o| {
        let p = op_return_payload(&o.script_pubkey);
        let range = |a: usize| p.get(a..a + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
        p.starts_with(PAYOUT_TAG)
            && matches!((range(8), range(16)), (Some(first), Some(end)) if first <= id && id < end)
    });
    r.check(
        "payout",
        match (paid, tagged) {
            (true, true) => Ok(format!(
                "{txid} pays {owed} sats ({} − fee {}) to the script",
                request.sats, rules.withdrawal_fee_sats
            )),
            (false, _) => Err(eyre!("{txid} has no output paying {owed} sats to the requested script")),
            (true, false) => Err(eyre!("{txid} carries no payout tag covering withdrawal {id}")),
        },
    );
}
