//! `bss verify block N --rpc URL --btc-rpc URL`: the chain of evidence that block N is final,
//! each link checked independently of the node that serves it:
//! 1. the L2 block header (its hash recomputed) and its commit certificate (signatures checked
//!    against the operator set);
//! 2. the keystone block covering N, its certificate, and the parent links from it down to N;
//! 3. the Bitcoin tx carrying the keystone (statement decoded from its witness and compared with
//!    the header; the federation's certificate in it checked against the operator set), in a
//!    Bitcoin block whose proof of work is checked, with a merkle proof checked against its header
//!    (who paid for the tx does not matter: version 3);
//! 4. that block's confirmations on the Bitcoin node's best chain.
//!
//! Without `--btc-rpc` only link 1 is checked: the block is committed (its certificate, of either
//! engine, verifies against the operator set), nothing is said about Bitcoin.
//!
//! Readable by a person, or `--json`. Exits non-zero if any link fails.

use crate::bench::client::RpcClient;
use crate::btc_url::BtcUrl;
use alloy_primitives::B256;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{BlockHash, Txid};
use bitcoincore_rpc::RpcApi;
use bss_actors::pop::keystone::{CertifiedKeystone, Keystone};
use bss_consensus::{BlockHeader, Certificate, OperatorKey, OperatorSet, SigBytes};
use clap::{Args, Subcommand};
use eyre::{bail, eyre, Result};
use serde_json::{json, Value};
use std::str::FromStr;

#[derive(Args)]
pub struct VerifyArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Verify that an L2 block is committed and anchored in Bitcoin.
    Block {
        number: u64,
        /// An operator's JSON-RPC URL.
        #[arg(long)]
        rpc: String,
        /// A Bitcoin node's RPC URL (http://user:pass@host:port); or set BSS_BTC_RPC, which keeps
        /// the password out of the process list. Without it only the commit is verified.
        #[arg(long, env = "BSS_BTC_RPC", hide_env_values = true)]
        btc_rpc: Option<String>,
        /// The genesis hash (block 0): pins the operator set and the rules, which are then
        /// taken from the genesis the node serves once it hashes to this.
        #[arg(long)]
        genesis: Option<String>,
        /// Operator public keys (hex, comma-separated, in index order) to check commit and
        /// keystone certificates against; default: the genesis's (`--genesis`), else the set the
        /// RPC reports.
        #[arg(long, value_delimiter = ',')]
        operators: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Verify a tunnel deposit: the BTC lock, the L2 block that minted it, and the keystone
    /// that anchors that block in Bitcoin.
    Deposit(crate::verify_tunnel::DepositArgs),
    /// Verify a tunnel withdrawal: the burn in a certified L2 block, its keystone, and the
    /// Bitcoin payout from the vault.
    Withdrawal(crate::verify_tunnel::WithdrawalArgs),
}

/// One link of the chain of evidence.
pub(crate) struct Link {
    pub(crate) name: &'static str,
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

pub(crate) struct Report {
    pub(crate) links: Vec<Link>,
}

impl Report {
    pub(crate) fn check(&mut self, name: &'static str, result: Result<String>) -> bool {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(e) => (false, format!("{e:#}")),
        };
        self.links.push(Link { name, ok, detail });
        ok
    }
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let (number, rpc, btc_rpc, trust, as_json) = match args.what {
        What::Block { number, rpc, btc_rpc, genesis, operators, json } => {
            (number, rpc, btc_rpc, Trust { genesis, operators }, json)
        }
        What::Deposit(a) => return crate::verify_tunnel::run_deposit(a),
        What::Withdrawal(a) => return crate::verify_tunnel::run_withdrawal(a),
    };
    let mut report = Report { links: vec![] };
    verify_block(number, &rpc, btc_rpc.as_deref(), &trust, &mut report);
    let verdict = match btc_rpc.is_some() {
        true => "verified: the block is committed and superfinal in Bitcoin",
        false => "verified: the block is committed (Bitcoin not checked: no --btc-rpc)",
    };
    report.emit(&format!("block {number}"), json!({ "block": number }), as_json, verdict)
}

impl Report {
    /// Prints the links (text or JSON under `subject`) and fails unless every link holds.
    pub(crate) fn emit(&self, title: &str, mut subject: Value, as_json: bool, verdict: &str) -> Result<()> {
        let ok = self.links.iter().all(|l| l.ok) && !self.links.is_empty();
        if as_json {
            let links: Vec<Value> =
                self.links.iter().map(|l| json!({ "check": l.name, "ok": l.ok, "detail": l.detail })).collect();
            subject["ok"] = json!(ok);
            subject["links"] = json!(links);
            println!("{}", serde_json::to_string_pretty(&subject)?);
        } else {
            println!("bss verify {title}");
            for l in &self.links {
                println!("  [{}] {:<22} {}", if l.ok { " ok " } else { "FAIL" }, l.name, l.detail);
            }
            println!("{}", if ok { verdict } else { "NOT verified" });
        }
        if !ok {
            bail!("verification of {title} failed");
        }
        Ok(())
    }
}

/// Keys the user gives; empty lists fall back to the pinned genesis's, else to what the node
/// reports (a convenience, never the trust root).
pub(crate) struct Trust {
    pub(crate) genesis: Option<String>,
    pub(crate) operators: Vec<String>,
}

/// What a block fetched over RPC comes with.
pub(crate) struct Fetched {
    pub(crate) header: BlockHeader,
    pub(crate) cert: Option<Certificate>,
    pub(crate) operators: Vec<String>,
}

pub(crate) struct L2 {
    pub(crate) client: RpcClient,
}

impl L2 {
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.client.call(method, params).map_err(|e| eyre!("{method}: {e}"))
    }

    /// The header at `n` (hash recomputed from its canonical encoding), and its certificate.
    pub(crate) fn block(&mut self, n: u64) -> Result<Fetched> {
        let v = self.call("bss_getCertificate", json!([n]))?;
        if v.is_null() {
            bail!("the node has no block {n}");
        }
        let bytes = hex::decode(v["header"].as_str().unwrap_or_default())?;
        let header: BlockHeader =
            bss_consensus::codec::decode_untrusted(&bytes).map_err(|e| eyre!("header {n}: {e}"))?;
        if header.number != n {
            bail!("asked for block {n}, got a header for {}", header.number);
        }
        let cert = match &v["certificate"] {
            Value::Null => None,
            c => Some(certificate(c)?),
        };
        let strings = |key: &str| -> Vec<String> {
            v[key]
                .as_array()
                .map(|a| a.iter().filter_map(|k| k.as_str().map(String::from)).collect())
                .unwrap_or_default()
        };
        Ok(Fetched { header, cert, operators: strings("operators") })
    }
}

fn certificate(c: &Value) -> Result<Certificate> {
    let signatures = c["signatures"]
        .as_array()
        .ok_or_else(|| eyre!("certificate without signatures"))?
        .iter()
        .map(|s| {
            let sig: [u8; 64] = hex::decode(s["signature"].as_str().unwrap_or_default())?
                .try_into()
                .map_err(|_| eyre!("a signature is not 64 bytes"))?;
            Ok((s["operator"].as_u64().unwrap_or(u64::MAX) as u16, SigBytes(sig)))
        })
        .collect::<Result<Vec<_>>>()?;
    let hotstuff_rs = match &c["hotstuffRs"] {
        Value::Null => None,
        q => Some(hotstuff_rs_qc(q)?),
    };
    Ok(Certificate {
        chain_id: c["chainId"].as_u64().unwrap_or_default(),
        round: c["round"].as_u64().unwrap_or_default(),
        block_hash: B256::from_str(c["blockHash"].as_str().unwrap_or_default())?,
        signatures,
        hotstuff_rs,
    })
}

/// A hotstuff-rs quorum certificate as `bss_getCertificate` shows it.
fn hotstuff_rs_qc(q: &Value) -> Result<bss_consensus::HotstuffRsQc> {
    let signatures = q["signatures"]
        .as_array()
        .ok_or_else(|| eyre!("hotstuff-rs certificate without signature slots"))?
        .iter()
        .map(|s| match s.as_str() {
            None => Ok(None),
            Some(hex_sig) => {
                let sig: [u8; 64] =
                    hex::decode(hex_sig)?.try_into().map_err(|_| eyre!("a signature is not 64 bytes"))?;
                Ok(Some(SigBytes(sig)))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let phase = q["phase"].as_u64().and_then(|p| u8::try_from(p).ok()).ok_or_else(|| eyre!("bad phase"))?;
    Ok(bss_consensus::HotstuffRsQc {
        height: q["height"].as_u64().ok_or_else(|| eyre!("hotstuff-rs certificate without a height"))?,
        justify: hex::decode(q["justify"].as_str().unwrap_or_default())?,
        phase,
        signatures,
    })
}

pub(crate) fn check_certificate(header: &BlockHeader, cert: Option<&Certificate>, set: &OperatorSet) -> Result<String> {
    let cert = cert.ok_or_else(|| eyre!("block {} has no commit certificate", header.number))?;
    if cert.chain_id != header.chain_id {
        bail!("certificate is for chain {}, block for {}", cert.chain_id, header.chain_id);
    }
    cert.verify(set, &header.hash()).map_err(|e| eyre!("{e}"))?;
    let engine = if cert.hotstuff_rs.is_some() { "hotstuff-rs" } else { "native" };
    Ok(format!("{} of {} operators signed ({engine} certificate)", cert.signer_count(), set.len()))
}

/// The block served for `asked` is that block (its header hashes to it) and its proof of work
/// is valid.
pub(crate) fn check_block(block: &bitcoin::Block, asked: &BlockHash) -> Result<String> {
    let hash = block.block_hash();
    if hash != *asked {
        bail!("the Bitcoin node served a block hashing to {hash} for {asked}");
    }
    block.header.validate_pow(block.header.target()).map_err(|e| eyre!("{e}"))?;
    Ok(format!("{asked} (proof of work valid)"))
}

/// The merkle branch of `index` among `txids`, and the root it leads to.
pub(crate) fn merkle_proof(txids: &[Txid], index: usize) -> (Vec<sha256d::Hash>, sha256d::Hash) {
    let mut level: Vec<sha256d::Hash> = txids.iter().map(|t| t.to_raw_hash()).collect();
    let mut branch = vec![];
    let mut i = index;
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(level[level.len() - 1]);
        }
        branch.push(level[i ^ 1]);
        level = level
            .chunks(2)
            .map(|p| {
                let mut buf = [0u8; 64];
                buf[..32].copy_from_slice(p[0].as_byte_array());
                buf[32..].copy_from_slice(p[1].as_byte_array());
                sha256d::Hash::hash(&buf)
            })
            .collect();
        i /= 2;
    }
    (branch, level[0])
}

/// Folds a branch from a leaf, as an SPV client does.
pub(crate) fn fold_branch(leaf: sha256d::Hash, branch: &[sha256d::Hash], mut index: usize) -> sha256d::Hash {
    let mut h = leaf;
    for sibling in branch {
        let mut buf = [0u8; 64];
        let (l, r) = if index & 1 == 1 { (sibling, &h) } else { (&h, sibling) };
        buf[..32].copy_from_slice(l.as_byte_array());
        buf[32..].copy_from_slice(r.as_byte_array());
        h = sha256d::Hash::hash(&buf);
        index /= 2;
    }
    h
}

/// Checks that `tx` spends a coin paying one of the keystone keys (P2TR key path).
/// Whether the federation's agreed Bitcoin view keeps up with Bitcoin: the L2 head (its
/// certificate checked) names a tip on the Bitcoin node's best chain, at most the lag plus a
/// voter's stale slack below its best. A live L2 whose view is stale is what a colluding
/// supermajority that freezes the view looks like from outside: this link is the evidence.
fn check_view_fresh(l2: &mut L2, btc_rpc: &str, set: &OperatorSet) -> Result<String> {
    let head = l2.call("eth_blockNumber", json!([])).and_then(|v| {
        let s = v.as_str().unwrap_or_default().trim_start_matches("0x").to_string();
        u64::from_str_radix(&s, 16).map_err(|e| eyre!("eth_blockNumber: {e}"))
    })?;
    let Fetched { header, cert, .. } = l2.block(head)?;
    check_certificate(&header, cert.as_ref(), set)?;
    let lag = l2.call("bss_btcTip", json!([]))?["watcher"]["confirmationsLag"].as_u64().unwrap_or(1);
    let btc = BtcUrl::parse(btc_rpc)?.client()?;
    let best = btc.get_block_count().map_err(|e| eyre!("getblockcount: {e}"))?;
    let tip = &header.btc;
    if tip.tip_hash == B256::ZERO {
        bail!("head #{head} has no Bitcoin view at all (Bitcoin best #{best})");
    }
    let on_best = btc.get_block_hash(tip.tip_height).map(|h| B256::from(h.to_byte_array()) == tip.tip_hash);
    if !matches!(on_best, Ok(true)) {
        bail!("head #{head}'s Bitcoin tip #{} is not on this Bitcoin node's best chain", tip.tip_height);
    }
    let allowed = lag + bss_actors::btc::DEFAULT_STALE_SLACK;
    let behind = best.saturating_sub(tip.tip_height);
    let age_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        .saturating_sub(header.timestamp_ms)
        / 1000;
    let added = header.btc.headers.len();
    if behind > allowed && added > 0 {
        return Ok(format!(
            "head #{head} sees Bitcoin #{} ({behind} below the best #{best}) and is catching up: it adds {added} header(s)",
            tip.tip_height
        ));
    }
    if behind > allowed {
        bail!(
            "the L2 is live (head #{head}, {age_s} s old) while its Bitcoin view is stale: it adds no headers and its tip #{} \
             is {behind} blocks below Bitcoin's best #{best} (more than the lag {lag} + slack {})",
            tip.tip_height,
            bss_actors::btc::DEFAULT_STALE_SLACK
        );
    }
    Ok(format!(
        "head #{head} sees Bitcoin #{} ({behind} below the best #{best}, within lag + slack {allowed})",
        tip.tip_height
    ))
}

pub(crate) fn verify_block(number: u64, rpc: &str, btc_rpc: Option<&str>, trust: &Trust, r: &mut Report) {
    let mut l2 = L2 { client: RpcClient::new(rpc) };
    // 1. The block and its certificate.
    let Fetched { header, cert, operators: reported_ops } = match l2.block(number) {
        Ok(x) => x,
        Err(e) => {
            r.check("L2 block", Err(e));
            return;
        }
    };
    let reported_ops = match &trust.genesis {
        Some(pin) => match crate::verify_genesis::pinned_rules(&mut l2, pin) {
            Ok((rules, detail)) => {
                r.check("genesis", Ok(detail));
                crate::verify_genesis::hex_keys(&rules.operators)
            }
            Err(e) => {
                r.check("genesis", Err(e));
                return;
            }
        },
        None => reported_ops,
    };
    let keys = if trust.operators.is_empty() { reported_ops } else { trust.operators.clone() };
    let set = match keys.iter().map(|k| OperatorKey::from_hex(k)).collect::<Result<Vec<_>, _>>() {
        Ok(k) if !k.is_empty() => OperatorSet::new(k),
        _ => {
            r.check("operator set", Err(eyre!("no valid operator keys")));
            return;
        }
    };
    let served_hash = l2.call("eth_getBlockByNumber", json!([format!("{number:#x}"), false]));
    r.check(
        "L2 block",
        served_hash.and_then(|b| {
            let h = B256::from_str(b["hash"].as_str().unwrap_or_default())?;
            if h != header.hash() {
                bail!("header hashes to {}, the node says {h}", header.hash());
            }
            Ok(format!("#{number} {h} (chain {})", header.chain_id))
        }),
    );
    r.check("commit certificate", check_certificate(&header, cert.as_ref(), &set));
    let Some(btc_rpc) = btc_rpc else { return };
    r.check("bitcoin view fresh", check_view_fresh(&mut l2, btc_rpc, &set));

    // 2. The keystone that covers it.
    let finality = match l2.call("bss_getFinality", json!([number])) {
        Ok(f) => f,
        Err(e) => {
            r.check("keystone", Err(e));
            return;
        }
    };
    let k = &finality["keystone"];
    if k.is_null() {
        r.check("keystone", Err(eyre!("no keystone in Bitcoin covers block {number} yet")));
        return;
    }
    let k_number = k["l2Number"].as_u64().unwrap_or_default();
    let (k_header, k_cert) = match l2.block(k_number) {
        Ok(f) => (f.header, f.cert),
        Err(e) => {
            r.check("keystone block", Err(e));
            return;
        }
    };
    r.check("keystone certificate", check_certificate(&k_header, k_cert.as_ref(), &set));
    let mut cursor = k_header.clone();
    let linked = (|| {
        while cursor.number > number {
            let parent = l2.block(cursor.number - 1)?.header;
            if parent.hash() != cursor.parent_hash {
                bail!("block {} does not link to block {}", cursor.number, parent.number);
            }
            cursor = parent;
        }
        if cursor.hash() != header.hash() {
            bail!("the keystone's chain reaches a different block {number}");
        }
        Ok(format!("block {k_number} descends from block {number} ({} parent links)", k_number - number))
    })();
    r.check("keystone covers block", linked);

    // 3. The Bitcoin transaction, block and merkle proof.
    let btc = match BtcUrl::parse(btc_rpc).and_then(|u| u.client()) {
        Ok(c) => c,
        Err(e) => {
            r.check("bitcoin node", Err(e));
            return;
        }
    };
    let (Ok(txid), Ok(block_hash)) = (
        Txid::from_str(k["btcTxid"].as_str().unwrap_or_default()),
        BlockHash::from_str(k["btcBlockHash"].as_str().unwrap_or_default()),
    ) else {
        r.check("bitcoin tx", Err(eyre!("the node reported a malformed txid or block hash")));
        return;
    };
    let block = match btc.get_block(&block_hash) {
        Ok(b) => b,
        Err(e) => {
            r.check("bitcoin block", Err(eyre!("{block_hash}: {e}")));
            return;
        }
    };
    r.check("bitcoin block", check_block(&block, &block_hash));
    let txids: Vec<Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
    let Some(index) = txids.iter().position(|t| *t == txid) else {
        r.check("bitcoin tx", Err(eyre!("tx {txid} is not in block {block_hash}")));
        return;
    };
    let (branch, _) = merkle_proof(&txids, index);
    let root = fold_branch(txid.to_raw_hash(), &branch, index);
    r.check(
        "merkle proof",
        if root == block.header.merkle_root.to_raw_hash() {
            Ok(format!("tx {txid} at index {index}, {} hashes up to the header's merkle root", branch.len()))
        } else {
            Err(eyre!("the branch leads to {root}, the header says {}", block.header.merkle_root))
        },
    );
    let tx = &block.txdata[index];
    r.check("keystone payload", check_keystone(tx, &Keystone::of(&k_header, 0), &set));

    // 4. Confirmations on the Bitcoin node's best chain.
    let needed = finality["superfinalityConfirmations"].as_u64().unwrap_or(1);
    r.check(
        "bitcoin confirmations",
        btc.get_block_header_info(&block_hash).map_err(|e| eyre!("{e}")).and_then(|h| {
            if h.confirmations < 1 {
                bail!("block {block_hash} is not on the best chain (reorged away)");
            }
            if (h.confirmations as u64) < needed {
                bail!("{} confirmations, superfinal at {needed}", h.confirmations);
            }
            Ok(format!("{} confirmations at height {} (superfinal at {needed})", h.confirmations, h.height))
        }),
    );
}

/// The tx carries a version-3 keystone of `expected` whose certificate verifies against `set`
/// (the operator keys this command pins, never the RPC's word).
pub(crate) fn check_keystone(tx: &bitcoin::Transaction, expected: &Keystone, set: &OperatorSet) -> Result<String> {
    let mut why = vec![];
    for (_, payload) in bss_actors::btc::index::keystone_payloads(tx) {
        match CertifiedKeystone::decode(&payload) {
            Ok(c) if c.keystone == *expected => {
                c.verify(set).map_err(|e| eyre!("the keystone's certificate does not verify: {e}"))?;
                return Ok(format!(
                    "v3: block {} {}, certified by operators {:?} ({} of {} needed)",
                    c.keystone.l2_number,
                    c.keystone.l2_hash,
                    c.signers,
                    c.signers.len(),
                    set.quorum()
                ));
            }
            Ok(c) => why.push(format!(
                "names block {} {} (epoch {})",
                c.keystone.l2_number, c.keystone.l2_hash, c.keystone.epoch
            )),
            Err(e) => why.push(e.to_string()),
        }
    }
    bail!("no keystone of block {} {} in the tx ({})", expected.l2_number, expected.l2_hash, why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merkle_proofs_match_the_bitcoin_crate_root() {
        for n in 1..9usize {
            let txids: Vec<Txid> = (0..n).map(|i| Txid::from_byte_array([i as u8 + 1; 32])).collect();
            let expected = bitcoin::merkle_tree::calculate_root(txids.iter().map(|t| t.to_raw_hash())).expect("root");
            for i in 0..n {
                let (branch, root) = merkle_proof(&txids, i);
                assert_eq!(root, expected);
                assert_eq!(fold_branch(txids[i].to_raw_hash(), &branch, i), expected, "n {n} i {i}");
            }
        }
    }
}
