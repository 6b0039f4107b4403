//! Parsing of JSON-RPC parameters: block ids, quantities, call objects, log filters.

use crate::hvm::call::CallRequest;
use alloy_primitives::{Address, Bytes, B256, U256};
use jsonrpsee::types::ErrorObjectOwned;
use serde::Deserialize;
use serde_json::Value;

pub const INVALID_PARAMS: i32 = -32602;
pub const SERVER_ERROR: i32 = -32000;
pub const INTERNAL_ERROR: i32 = -32603;
/// geth's code for a call that reverted (data carries the revert bytes).
pub const EXECUTION_REVERTED: i32 = 3;
/// Infura's and geth's "limit exceeded" code, used for capped log queries.
pub const LIMIT_EXCEEDED: i32 = -32005;

pub fn invalid_params(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_PARAMS, msg.into(), None::<()>)
}

pub fn server_error(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(SERVER_ERROR, msg.into(), None::<()>)
}

pub fn internal(msg: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INTERNAL_ERROR, msg.to_string(), None::<()>)
}

/// A block named by tag, number or hash (EIP-1898 objects accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockId {
    Latest,
    Earliest,
    Pending,
    Safe,
    Finalized,
    Number(u64),
    Hash(B256),
}

/// A block number as the `bss_*` methods take it: a hex quantity or a tag, as `eth_*` methods do,
/// or a decimal number (a JSON number or a string of digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BssBlock(pub BlockId);

impl<'de> Deserialize<'de> for BssBlock {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        match &v {
            Value::Number(n) => n
                .as_u64()
                .map(|n| Self(BlockId::Number(n)))
                .ok_or_else(|| D::Error::custom(format!("block number {n} is not a non-negative 64-bit integer"))),
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse::<u64>().map(|n| Self(BlockId::Number(n))).map_err(|e| D::Error::custom(format!("{s}: {e}")))
            }
            _ => serde_json::from_value::<BlockId>(v).map(Self).map_err(D::Error::custom),
        }
    }
}

pub fn parse_u64(s: &str) -> Result<u64, String> {
    let hex = s.strip_prefix("0x").ok_or_else(|| format!("hex string without 0x prefix: {s}"))?;
    if hex.is_empty() || (hex.len() > 1 && hex.starts_with('0')) {
        return Err(format!("invalid hex quantity: {s}"));
    }
    u64::from_str_radix(hex, 16).map_err(|e| format!("invalid hex quantity {s}: {e}"))
}

impl<'de> Deserialize<'de> for BlockId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        match v {
            Value::String(s) => match s.as_str() {
                "latest" => Ok(Self::Latest),
                "earliest" => Ok(Self::Earliest),
                "pending" => Ok(Self::Pending),
                "safe" => Ok(Self::Safe),
                "finalized" => Ok(Self::Finalized),
                s if s.len() == 66 => s.parse::<B256>().map(Self::Hash).map_err(D::Error::custom),
                s => parse_u64(s).map(Self::Number).map_err(D::Error::custom),
            },
            Value::Object(o) => {
                if let Some(Value::String(h)) = o.get("blockHash") {
                    return h.parse::<B256>().map(Self::Hash).map_err(D::Error::custom);
                }
                if let Some(Value::String(n)) = o.get("blockNumber") {
                    return parse_u64(n).map(Self::Number).map_err(D::Error::custom);
                }
                Err(D::Error::custom("block id object needs blockHash or blockNumber"))
            }
            other => Err(D::Error::custom(format!("invalid block id: {other}"))),
        }
    }
}

/// A hex quantity parameter.
#[derive(Debug, Clone, Copy)]
pub struct Quantity(pub u64);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(s) => parse_u64(&s).map(Quantity).map_err(D::Error::custom),
            Value::Number(n) => n.as_u64().map(Quantity).ok_or_else(|| D::Error::custom("invalid quantity")),
            other => Err(D::Error::custom(format!("invalid quantity: {other}"))),
        }
    }
}

/// A quantity as the `bss_*` methods take it (ids, counts): a hex quantity, as `eth_*` methods
/// take one, a JSON number, or a string of decimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BssQuantity(pub u64);

impl<'de> Deserialize<'de> for BssQuantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .map(Self)
                .ok_or_else(|| D::Error::custom(format!("{n} is not a non-negative 64-bit integer"))),
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse::<u64>().map(Self).map_err(|e| D::Error::custom(format!("{s}: {e}")))
            }
            Value::String(s) => parse_u64(&s).map(Self).map_err(D::Error::custom),
            other => Err(D::Error::custom(format!("expected a quantity (hex, number or decimal string), got {other}"))),
        }
    }
}

/// The transaction object of eth_call / eth_estimateGas.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallObject {
    pub from: Option<Address>,
    pub to: Option<Address>,
    pub gas: Option<Quantity>,
    pub gas_price: Option<U256>,
    pub max_fee_per_gas: Option<U256>,
    pub max_priority_fee_per_gas: Option<U256>,
    pub value: Option<U256>,
    pub data: Option<Bytes>,
    pub input: Option<Bytes>,
    pub nonce: Option<Quantity>,
}

impl CallObject {
    pub fn into_request(self) -> Result<CallRequest, ErrorObjectOwned> {
        if let (Some(d), Some(i)) = (&self.data, &self.input) {
            if d != i {
                return Err(invalid_params("both \"data\" and \"input\" are set and not equal"));
            }
        }
        let price = self.gas_price.or(self.max_fee_per_gas);
        let gas_price = match price {
            Some(p) => Some(u128::try_from(p).map_err(|_| invalid_params("gas price too large"))?),
            None => None,
        };
        Ok(CallRequest {
            from: self.from,
            to: self.to,
            gas: self.gas.map(|q| q.0),
            gas_price,
            value: self.value,
            input: self.input.or(self.data).unwrap_or_default(),
            nonce: self.nonce.map(|q| q.0),
        })
    }
}

/// One position of a log filter's topics: any, one, or one of several.
#[derive(Debug, Clone, Default)]
pub struct TopicFilter(pub Option<Vec<B256>>);

impl<'de> Deserialize<'de> for TopicFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Null => Ok(Self(None)),
            Value::String(s) => s.parse::<B256>().map(|t| Self(Some(vec![t]))).map_err(D::Error::custom),
            Value::Array(a) => {
                let mut out = Vec::new();
                for v in a {
                    match v {
                        Value::String(s) => out.push(s.parse::<B256>().map_err(D::Error::custom)?),
                        Value::Null => return Ok(Self(None)),
                        other => return Err(D::Error::custom(format!("invalid topic: {other}"))),
                    }
                }
                Ok(Self(Some(out)))
            }
            other => Err(D::Error::custom(format!("invalid topic: {other}"))),
        }
    }
}

/// Address filter: one address or a list.
#[derive(Debug, Clone, Default)]
pub struct AddressFilter(pub Vec<Address>);

impl<'de> Deserialize<'de> for AddressFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Null => Ok(Self(vec![])),
            Value::String(s) => s.parse::<Address>().map(|a| Self(vec![a])).map_err(D::Error::custom),
            Value::Array(a) => a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => s.parse::<Address>().map_err(D::Error::custom),
                    other => Err(D::Error::custom(format!("invalid address: {other}"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Self),
            other => Err(D::Error::custom(format!("invalid address: {other}"))),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogFilter {
    pub from_block: Option<BlockId>,
    pub to_block: Option<BlockId>,
    pub block_hash: Option<B256>,
    #[serde(default)]
    pub address: AddressFilter,
    #[serde(default)]
    pub topics: Vec<TopicFilter>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bss_block_numbers_take_hex_tags_and_decimal() {
        let p = |s: &str| serde_json::from_str::<BssBlock>(s).map(|b| b.0);
        assert_eq!(p("12").expect("number"), BlockId::Number(12));
        assert_eq!(p("\"12\"").expect("decimal string"), BlockId::Number(12));
        assert_eq!(p("\"0xc\"").expect("hex"), BlockId::Number(12));
        assert_eq!(p("\"finalized\"").expect("tag"), BlockId::Finalized);
        assert!(p("-1").is_err() && p("1.5").is_err() && p("\"0x\"").is_err() && p("\"twelve\"").is_err());
        assert!(p("\"99999999999999999999999\"").is_err());
    }

    #[test]
    fn bss_quantities_take_hex_numbers_and_decimal() {
        let p = |s: &str| serde_json::from_str::<BssQuantity>(s).map(|q| q.0);
        assert_eq!(p("\"0x0\"").expect("hex zero"), 0);
        assert_eq!(p("\"0x1f\"").expect("hex"), 31);
        assert_eq!(p("31").expect("number"), 31);
        assert_eq!(p("\"31\"").expect("decimal string"), 31);
        assert!(p("-1").is_err() && p("\"0x\"").is_err() && p("\"0x01\"").is_err() && p("null").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(bss_consensus::proptest_cases(256)))]

        /// Every u64 survives the trip through a hex quantity and through the bss_* forms.
        #[test]
        fn quantities_roundtrip(n in proptest::prelude::any::<u64>()) {
            let hex = format!("\"{n:#x}\"");
            proptest::prop_assert_eq!(serde_json::from_str::<Quantity>(&hex).expect("hex").0, n);
            proptest::prop_assert_eq!(serde_json::from_str::<BlockId>(&hex).expect("id"), BlockId::Number(n));
            proptest::prop_assert_eq!(serde_json::from_str::<BssBlock>(&hex).expect("bss").0, BlockId::Number(n));
            proptest::prop_assert_eq!(serde_json::from_str::<BssBlock>(&n.to_string()).expect("number").0, BlockId::Number(n));
            proptest::prop_assert_eq!(serde_json::from_str::<BssBlock>(&format!("\"{n}\"")).expect("decimal").0, BlockId::Number(n));
        }

        /// Arbitrary strings as params: a value or an error, never a panic; a leading zero or a
        /// missing 0x is never read as a hex quantity.
        #[test]
        fn arbitrary_params_never_panic(s in "\\PC{0,80}") {
            let quoted = serde_json::to_string(&s).expect("json");
            let q = serde_json::from_str::<Quantity>(&quoted);
            let _ = serde_json::from_str::<BlockId>(&quoted);
            let _ = serde_json::from_str::<BssBlock>(&quoted);
            let _ = serde_json::from_str::<LogFilter>(&s);
            let _ = serde_json::from_str::<CallObject>(&s);
            if let Ok(q) = q {
                proptest::prop_assert_eq!(format!("{:#x}", q.0), s);
            }
        }
    }

    #[test]
    fn block_ids() {
        let p = |s: &str| serde_json::from_str::<BlockId>(s);
        assert_eq!(p("\"latest\"").expect("tag"), BlockId::Latest);
        assert_eq!(p("\"0x10\"").expect("num"), BlockId::Number(16));
        assert!(p("\"0x010\"").is_err());
        assert!(p("\"12\"").is_err());
        assert!(p("\"nonsense\"").is_err());
        assert_eq!(p("{\"blockNumber\":\"0x2\"}").expect("obj"), BlockId::Number(2));
        let h = format!("\"0x{}\"", "11".repeat(32));
        assert!(matches!(p(&h).expect("hash"), BlockId::Hash(_)));
    }

    #[test]
    fn filters() {
        let f: LogFilter = serde_json::from_str(
            r#"{"fromBlock":"0x1","address":"0x0000000000000000000000000000000000000001","topics":[null,["0x0000000000000000000000000000000000000000000000000000000000000001"]]}"#,
        )
        .expect("filter");
        assert_eq!(f.address.0.len(), 1);
        assert!(f.topics[0].0.is_none());
        assert_eq!(f.topics[1].0.as_ref().map(Vec::len), Some(1));
        assert!(serde_json::from_str::<LogFilter>(r#"{"bogus":1}"#).is_err());
    }
}
