//! Transactions and scripts in bitcoind's JSON shapes (`decoderawtransaction`, verbose
//! `getrawtransaction`, `getblock` verbosity 2, `gettxout`).

use bitcoin::script::Instruction;
use bitcoin::{Address, Amount, Network, Script, Transaction, TxOut};
use serde_json::{json, Value};

/// Core's `ScriptToAsmStr`: small pushes as numbers, others as hex, opcodes by name.
pub fn script_asm(script: &Script) -> String {
    let mut parts = vec![];
    for ins in script.instructions() {
        match ins {
            Ok(Instruction::PushBytes(b)) => {
                let bytes = b.as_bytes();
                if bytes.is_empty() {
                    parts.push("0".to_string());
                } else if bytes.len() <= 4 {
                    parts.push(script_num(bytes).to_string());
                } else {
                    parts.push(hex::encode(bytes));
                }
            }
            Ok(Instruction::Op(op)) => {
                let n = op.to_u8();
                parts.push(match n {
                    0x4f => "-1".to_string(),
                    0x51..=0x60 => (n - 0x50).to_string(),
                    _ => op.to_string(),
                });
            }
            Err(_) => {
                parts.push("[error]".to_string());
                break;
            }
        }
    }
    parts.join(" ")
}

/// A minimally encoded script number (little-endian, sign bit in the last byte).
fn script_num(bytes: &[u8]) -> i64 {
    let mut v: i64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        v |= i64::from(*b) << (8 * i);
    }
    let last = bytes.len() - 1;
    if bytes[last] & 0x80 != 0 {
        -(v & !(0x80i64 << (8 * last)))
    } else {
        v
    }
}

/// bitcoind's `type` names.
pub fn script_type(s: &Script) -> &'static str {
    if s.is_p2pkh() {
        "pubkeyhash"
    } else if s.is_p2sh() {
        "scripthash"
    } else if s.is_p2wpkh() {
        "witness_v0_keyhash"
    } else if s.is_p2wsh() {
        "witness_v0_scripthash"
    } else if s.is_p2tr() {
        "witness_v1_taproot"
    } else if s.is_op_return() {
        "nulldata"
    } else if s.is_p2pk() {
        "pubkey"
    } else if s.is_multisig() {
        "multisig"
    } else if s.witness_version().is_some() {
        "witness_unknown"
    } else {
        "nonstandard"
    }
}

pub fn script_pubkey_json(s: &Script) -> Value {
    let mut v = json!({ "asm": script_asm(s), "hex": hex::encode(s.as_bytes()), "type": script_type(s) });
    if let Ok(a) = Address::from_script(s, Network::Regtest) {
        v["address"] = json!(a.to_string());
    }
    v
}

pub fn btc(a: Amount) -> Value {
    json!(a.to_btc())
}

/// The decoded transaction; with `prevouts` (the spent outputs, in input order) the fee too.
pub fn tx_json(tx: &Transaction, prevouts: Option<&[TxOut]>) -> Value {
    let vin: Vec<Value> = tx
        .input
        .iter()
        .map(|i| {
            let mut v = if tx.is_coinbase() {
                json!({ "coinbase": hex::encode(i.script_sig.as_bytes()) })
            } else {
                json!({
                    "txid": i.previous_output.txid.to_string(),
                    "vout": i.previous_output.vout,
                    "scriptSig": { "asm": script_asm(&i.script_sig), "hex": hex::encode(i.script_sig.as_bytes()) },
                })
            };
            if !i.witness.is_empty() {
                v["txinwitness"] = json!(i.witness.iter().map(hex::encode).collect::<Vec<_>>());
            }
            v["sequence"] = json!(i.sequence.0);
            v
        })
        .collect();
    let vout: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, o)| json!({ "value": btc(o.value), "n": n, "scriptPubKey": script_pubkey_json(&o.script_pubkey) }))
        .collect();
    let mut v = json!({
        "txid": tx.compute_txid().to_string(),
        "hash": tx.compute_wtxid().to_string(),
        "version": tx.version.0,
        "size": tx.total_size(),
        "vsize": tx.vsize(),
        "weight": tx.weight().to_wu(),
        "locktime": tx.lock_time.to_consensus_u32(),
        "vin": vin,
        "vout": vout,
    });
    if let Some(prev) = prevouts.filter(|_| !tx.is_coinbase()) {
        let total_in: Amount = prev.iter().map(|o| o.value).sum();
        let total_out: Amount = tx.output.iter().map(|o| o.value).sum();
        if let Some(fee) = total_in.checked_sub(total_out) {
            v["fee"] = btc(fee);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::ScriptBuf;

    #[test]
    fn asm_matches_core() {
        let s = ScriptBuf::from_hex("0014751e76e8199196d454941c45d1b3a323f1433bd6").expect("hex");
        assert_eq!(script_asm(&s), "0 751e76e8199196d454941c45d1b3a323f1433bd6");
        assert_eq!(script_type(&s), "witness_v0_keyhash");
        let r = ScriptBuf::from_hex("6a0401020304").expect("hex");
        assert_eq!(script_asm(&r), "OP_RETURN 67305985");
        assert_eq!(script_type(&r), "nulldata");
        assert_eq!(script_num(&[0x81]), -1);
    }
}
