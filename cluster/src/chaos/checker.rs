//! The Jepsen-style checker of a chaos run. During the run it records a history: every head each
//! operator served (height and hash) and, with Proof-of-Proof, each operator's superfinal height
//! and the block there. After the run, with every operator stopped, it reads each operator's
//! chain back from its own storage and checks, over both:
//! * no two different blocks at one height on any operator, ever, across restarts (a head an
//!   operator once served must be the block its storage holds there at the end, and the stored
//!   chains agree height by height and link parent to child);
//! * every acknowledged tx committed exactly once, and no tx committed twice;
//! * nothing at or below a superfinal block changes.

use crate::bench::client::{hex_u64, RpcClient};
use alloy_primitives::{keccak256, B256};
use bss_storage::Store;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

/// What one operator served at one moment.
#[derive(Clone, Debug)]
pub struct Observation {
    pub t: f64,
    pub operator: usize,
    pub height: u64,
    pub hash: B256,
}

/// An acknowledged transaction: which sender and nonce, its hash, which operator took it.
#[derive(Clone, Debug)]
pub struct Ack {
    pub sender: usize,
    pub nonce: u64,
    pub hash: B256,
    pub operator: usize,
}

/// The history recorded during a run.
#[derive(Default)]
pub struct History {
    pub heads: Vec<Observation>,
    pub superfinal: Vec<Observation>,
    /// Each operator's last recorded head height: a head is recorded once, when it changes.
    last_head: std::collections::BTreeMap<usize, u64>,
}

fn block_hash(c: &mut RpcClient, tag: serde_json::Value) -> Option<(u64, B256)> {
    let b = c.call("eth_getBlockByNumber", json!([tag, false])).ok()?;
    Some((hex_u64(&b["number"])?, b["hash"].as_str()?.parse().ok()?))
}

impl History {
    /// Records operator `i`'s head (one RPC call); returns its height.
    pub fn sample_head(&mut self, t: f64, operator: usize, c: &mut RpcClient) -> Option<u64> {
        let (height, hash) = block_hash(c, json!("latest"))?;
        if self.last_head.insert(operator, height) != Some(height) {
            self.heads.push(Observation { t, operator, height, hash });
        }
        Some(height)
    }

    /// Records operator `i`'s superfinal block, if it has one (Proof-of-Proof runs).
    pub fn sample_superfinal(&mut self, t: f64, operator: usize, c: &mut RpcClient) {
        let Ok(k) = c.call("bss_keystones", json!([1])) else { return };
        let Some(height) = k["superfinalHeight"].as_u64().filter(|h| *h > 0) else { return };
        if let Some((height, hash)) = block_hash(c, json!(format!("{height:#x}"))) {
            self.superfinal.push(Observation { t, operator, height, hash });
        }
    }
}

/// One operator's committed chain as its storage holds it after the run.
pub struct StoredChain {
    /// Block hashes from the genesis up; `hashes[h]` is height h.
    pub hashes: Vec<B256>,
    /// Every committed tx hash → the heights that hold it.
    pub txs: HashMap<B256, Vec<u64>>,
    /// Heights whose header does not name the block below as its parent.
    pub broken_links: Vec<u64>,
}

/// Reads operator storage at `db` (the node must be stopped).
pub fn read_back(db: &Path) -> eyre::Result<StoredChain> {
    let store = Store::open(db, false)?;
    let r = store.reader();
    let head = r.head_number()?.unwrap_or(0);
    let mut chain = StoredChain { hashes: vec![], txs: HashMap::new(), broken_links: vec![] };
    let Some(genesis) = r.header(0)? else { eyre::bail!("{}: no genesis header", db.display()) };
    let mut parent = genesis.hash();
    chain.hashes.push(parent);
    for n in 1..=head {
        let Some(header) = r.header(n)? else {
            eyre::bail!("{}: header {n} missing below the head {head}", db.display())
        };
        if header.parent_hash != parent {
            chain.broken_links.push(n);
        }
        let hash = header.hash();
        for raw in r.body(n)?.map(|b| b.transactions).unwrap_or_default() {
            chain.txs.entry(keccak256(&raw)).or_default().push(n);
        }
        chain.hashes.push(hash);
        parent = hash;
    }
    Ok(chain)
}

/// What the checker found.
#[derive(Default, Debug)]
pub struct Verdict {
    pub safety: Vec<String>,
    pub lost_acked: usize,
    pub duplicated_txs: usize,
    /// The first acknowledged tx that is not committed, and who acknowledged it.
    pub first_lost: Option<String>,
    /// Heights every operator's storage holds (checked identical).
    pub common_height: u64,
}

fn at(chain: &StoredChain, h: u64) -> Option<B256> {
    chain.hashes.get(usize::try_from(h).ok()?).copied()
}

/// The height of a chain's head.
fn head(chain: &StoredChain) -> u64 {
    chain.hashes.len().saturating_sub(1) as u64
}

const SHOWN: usize = 5;

pub fn check(chains: &[StoredChain], history: &History, acked: &[Ack]) -> Verdict {
    let mut v = Verdict { common_height: chains.iter().map(head).min().unwrap_or(0), ..Default::default() };
    let top = chains.iter().map(head).max().unwrap_or(0);
    for (i, c) in chains.iter().enumerate() {
        if let Some(h) = c.broken_links.first() {
            v.safety.push(format!("operator {i}'s stored block {h} does not name block {} as its parent", h - 1));
        }
    }
    for h in 0..=top {
        let mut seen: Vec<(usize, B256)> =
            chains.iter().enumerate().filter_map(|(i, c)| at(c, h).map(|x| (i, x))).collect();
        seen.dedup_by_key(|x| x.1);
        if seen.len() > 1 && v.safety.len() < SHOWN {
            v.safety.push(format!("operators' storage disagrees at height {h}: {seen:?}"));
        }
    }
    for o in &history.heads {
        match chains.get(o.operator).and_then(|c| at(c, o.height)) {
            Some(x) if x == o.hash => {}
            stored if v.safety.len() < 2 * SHOWN => v.safety.push(format!(
                "operator {} served block {} = {} at {:.1}s, but its storage holds {} there after the run",
                o.operator,
                o.height,
                o.hash,
                o.t,
                stored.map_or("nothing".to_string(), |s| s.to_string())
            )),
            _ => {}
        }
    }
    for o in &history.superfinal {
        for (i, c) in chains.iter().enumerate() {
            if at(c, o.height).is_some_and(|x| x != o.hash) {
                v.safety.push(format!(
                    "superfinal block {} ({} on operator {} at {:.1}s) changed on operator {i}",
                    o.height, o.hash, o.operator, o.t
                ));
            }
        }
    }
    // The longest chain holds every other's blocks (checked above): count txs on it.
    if let Some(longest) = chains.iter().max_by_key(|c| c.hashes.len()) {
        for (hash, heights) in &longest.txs {
            if heights.len() > 1 {
                v.duplicated_txs += 1;
                if v.safety.len() < 3 * SHOWN {
                    v.safety.push(format!("tx {hash} committed {} times, at heights {heights:?}", heights.len()));
                }
            }
        }
        let mut lost = acked.iter().filter(|a| !longest.txs.contains_key(&a.hash));
        v.first_lost = lost.next().map(|a| {
            format!("tx {} (sender {} nonce {}) acknowledged by operator {}", a.hash, a.sender, a.nonce, a.operator)
        });
        v.lost_acked = usize::from(v.first_lost.is_some()) + lost.count();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(hashes: &[u8], txs: &[(u8, &[u64])]) -> StoredChain {
        StoredChain {
            hashes: [0].iter().chain(hashes).map(|b| B256::repeat_byte(*b)).collect(),
            txs: txs.iter().map(|(t, hs)| (B256::repeat_byte(*t), hs.to_vec())).collect(),
            broken_links: vec![],
        }
    }

    fn seen(operator: usize, height: u64, b: u8) -> Observation {
        Observation { t: 1.0, operator, height, hash: B256::repeat_byte(b) }
    }

    fn ack(b: u8) -> Ack {
        Ack { sender: 0, nonce: 0, hash: B256::repeat_byte(b), operator: 0 }
    }

    #[test]
    fn agreeing_chains_pass_and_every_kind_of_divergence_is_caught() {
        let good = [chain(&[1, 2, 3], &[(9, &[2])]), chain(&[1, 2], &[(9, &[2])])];
        let history = History {
            heads: vec![seen(0, 3, 3), seen(1, 2, 2)],
            superfinal: vec![seen(0, 2, 2)],
            ..Default::default()
        };
        let v = check(&good, &history, &[ack(9)]);
        assert!(v.safety.is_empty() && v.lost_acked == 0 && v.common_height == 2, "{v:?}");

        // Two blocks at height 2.
        let forked = [chain(&[1, 2, 3], &[]), chain(&[1, 7], &[])];
        assert!(check(&forked, &History::default(), &[]).safety[0].contains("disagrees at height 2"));
        // A head served during the run that storage no longer holds (lost across a restart).
        let h = History { heads: vec![seen(1, 3, 3)], ..Default::default() };
        assert!(check(&good, &h, &[]).safety[0].contains("holds nothing"));
        // A superfinal block that changed.
        let h = History { superfinal: vec![seen(0, 2, 8)], ..Default::default() };
        assert!(check(&good, &h, &[]).safety.iter().any(|s| s.contains("superfinal block 2")));
        // A tx twice, an acknowledged tx never.
        let twice = [chain(&[1, 2], &[(9, &[1, 2])])];
        let v = check(&twice, &History::default(), &[ack(9), ack(5)]);
        assert_eq!((v.duplicated_txs, v.lost_acked), (1, 1), "{v:?}");
        // A stored chain whose links break.
        let mut broken = chain(&[1, 2], &[]);
        broken.broken_links.push(2);
        assert!(check(&[broken], &History::default(), &[]).safety[0].contains("parent"));
    }
}
