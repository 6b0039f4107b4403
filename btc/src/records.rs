//! How the Bitcoin index lays out its records in the node's database (`AuxSpace::Btc*`).
//! Integers are big-endian; Bitcoin structures use Bitcoin's consensus encoding.

use super::index::{CoinRecord, TxRecord};
use bitcoin::block::Header;
use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, OutPoint, ScriptBuf, Transaction, Txid};
use std::sync::Arc;

/// `BtcMeta` key of the height the index starts at.
pub const META_START: &[u8] = b"start";
/// `BtcMeta` key prefix of per-script output counts (‖ script key).
pub const META_COUNT: &[u8] = b"count/";

/// A record that does not decode is a corrupt database: stop rather than answer wrongly.
fn corrupt(what: &str) -> ! {
    bss_storage::fatal::stop("storage", format!("corrupt Bitcoin index record ({what})"))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

pub fn coin_key(o: &OutPoint) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(o.txid.as_byte_array());
    k[32..].copy_from_slice(&o.vout.to_be_bytes());
    k
}

fn outpoint_at(b: &[u8]) -> Option<OutPoint> {
    let txid = Txid::from_slice(b.get(..32)?).ok()?;
    let vout = u32::from_be_bytes(b.get(32..36)?.try_into().ok()?);
    Some(OutPoint::new(txid, vout))
}

/// The key all outputs of `script` share: sha256 of the script (scripts are up to 10 KB).
pub fn script_key(script: &ScriptBuf) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(script.as_bytes()).into()
}

/// `BtcScripts` key of one output of `script`.
pub fn script_output_key(script: &ScriptBuf, o: &OutPoint) -> Vec<u8> {
    [&script_key(script)[..], &coin_key(o)[..]].concat()
}

pub fn outpoint_of_script_key(k: &[u8]) -> Option<OutPoint> {
    outpoint_at(k.get(32..)?)
}

pub struct StoredTx {
    pub height: u64,
    pub block: BlockHash,
    pub tx: Transaction,
}

impl StoredTx {
    pub fn encode(height: u64, block: &BlockHash, tx: &Transaction) -> Vec<u8> {
        [&height.to_be_bytes()[..], block.as_byte_array(), &encode::serialize(tx)].concat()
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        let parsed = (|| {
            let height = u64_at(b, 0)?;
            let block = BlockHash::from_slice(b.get(8..40)?).ok()?;
            let tx = encode::deserialize(b.get(40..)?).ok()?;
            Some(StoredTx { height, block, tx })
        })();
        Some(parsed.unwrap_or_else(|| corrupt("tx")))
    }

    pub fn record(self) -> TxRecord {
        TxRecord { height: self.height, block: self.block, tx: Arc::new(self.tx) }
    }
}

pub struct StoredCoin(CoinRecord);

impl StoredCoin {
    pub fn encode(c: &CoinRecord) -> Vec<u8> {
        let spent = c.spent_at.unwrap_or(u64::MAX);
        [&c.value.to_be_bytes()[..], &c.height.to_be_bytes(), &spent.to_be_bytes(), c.script.as_bytes()].concat()
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        let parsed = (|| {
            let spent = u64_at(b, 16)?;
            Some(CoinRecord {
                value: u64_at(b, 0)?,
                height: u64_at(b, 8)?,
                spent_at: (spent != u64::MAX).then_some(spent),
                script: ScriptBuf::from_bytes(b.get(24..)?.to_vec()),
            })
        })();
        Some(StoredCoin(parsed.unwrap_or_else(|| corrupt("coin"))))
    }

    pub fn record(self) -> CoinRecord {
        self.0
    }
}

/// A best-chain block: its hash, header and txids (a reorg removes what they created).
pub struct StoredBlock {
    pub hash: BlockHash,
    pub header: Header,
    pub txids: Vec<Txid>,
}

impl StoredBlock {
    pub fn encode(hash: &BlockHash, header: &Header, txids: &[Txid]) -> Vec<u8> {
        let mut v = Vec::with_capacity(32 + 80 + 32 * txids.len());
        v.extend_from_slice(hash.as_byte_array());
        v.extend_from_slice(&encode::serialize(header));
        for t in txids {
            v.extend_from_slice(t.as_byte_array());
        }
        v
    }

    pub fn decode(b: &[u8]) -> Self {
        let parsed = (|| {
            let hash = BlockHash::from_slice(b.get(..32)?).ok()?;
            let header: Header = encode::deserialize(b.get(32..112)?).ok()?;
            let rest = b.get(112..)?;
            if rest.len() % 32 != 0 {
                return None;
            }
            let txids = rest.chunks(32).map(Txid::from_slice).collect::<Result<_, _>>().ok()?;
            Some(StoredBlock { hash, header, txids })
        })();
        parsed.unwrap_or_else(|| corrupt("block"))
    }
}

/// A Bitcoin block off the best chain (`BtcStale`, by hash): its height and the whole block.
pub struct StoredStale {
    pub height: u64,
    pub block: bitcoin::Block,
}

impl StoredStale {
    pub fn encode(height: u64, block: &bitcoin::Block) -> Vec<u8> {
        [&height.to_be_bytes()[..], &encode::serialize(block)].concat()
    }

    pub fn decode(b: &[u8]) -> Self {
        let parsed = (|| Some(StoredStale { height: u64_at(b, 0)?, block: encode::deserialize(b.get(8..)?).ok()? }))();
        parsed.unwrap_or_else(|| corrupt("stale block"))
    }
}
