//! Signed Ethereum transactions: decoding, sender recovery (libsecp256k1) and stateless checks.
//! Error texts are geth's, so wallets and tools recognise them.

use alloy_consensus::{Transaction as _, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{keccak256, Address, Bytes, TxKind, B256, U256};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, SECP256K1};

/// Transaction validation errors, worded as geth words them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction could not be decoded: {0}")]
    Decode(String),
    #[error("transaction type not supported")]
    TypeNotSupported,
    #[error("invalid sender")]
    InvalidSender,
    #[error("invalid chain id for signer: have {have}, want {want}")]
    ChainId { have: u64, want: u64 },
    #[error("only replay-protected (EIP-155) transactions allowed over RPC")]
    NotReplayProtected,
    #[error("nonce too low: address {address}, tx: {tx} state: {state}")]
    NonceTooLow { address: Address, tx: u64, state: u64 },
    #[error("nonce too high: address {address}, tx: {tx} state: {state}")]
    NonceTooHigh { address: Address, tx: u64, state: u64 },
    #[error("insufficient funds for gas * price + value: address {address} have {have} want {want}")]
    InsufficientFunds { address: Address, have: U256, want: U256 },
    #[error("insufficient funds for gas * price + value: address {address}: gas * price + value overflows 256 bits")]
    CostOverflow { address: Address },
    #[error("txpool is full: sender {address} already has {queued} transactions waiting for a nonce gap to close")]
    TooManyQueued { address: Address, queued: usize },
    #[error("intrinsic gas too low: have {have}, want {want}")]
    IntrinsicGas { have: u64, want: u64 },
    #[error("exceeds block gas limit")]
    ExceedsBlockGasLimit,
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    #[error("max fee per gas less than block base fee: maxFeePerGas: {fee_cap}, baseFee: {base_fee}")]
    FeeCapTooLow { fee_cap: u128, base_fee: u64 },
    #[error("transaction underpriced: gas tip cap {tip}, minimum needed {min}")]
    Underpriced { tip: u128, min: u128 },
    #[error("already known")]
    AlreadyKnown,
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    #[error("txpool is full")]
    PoolFull,
    #[error("oversized data: transaction size {size}, limit {limit}")]
    Oversized { size: usize, limit: usize },
}

/// A decoded transaction with its sender recovered once.
#[derive(Debug, Clone)]
pub struct SignedTx {
    pub envelope: TxEnvelope,
    pub raw: Bytes,
    pub hash: B256,
    pub sender: Address,
}

/// Fewer transactions than this are decoded on the calling thread.
const PARALLEL_DECODE_MIN: usize = 64;

/// The cores this process may use, read once (on Linux the standard library reads cgroup files
/// on every call).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl SignedTx {
    /// Decodes EIP-2718 bytes (legacy, EIP-2930, EIP-1559) and recovers the sender.
    pub fn decode(raw: &[u8]) -> Result<Self, TxError> {
        let mut buf = raw;
        let envelope = TxEnvelope::decode_2718(&mut buf).map_err(|e| TxError::Decode(e.to_string()))?;
        if !buf.is_empty() {
            return Err(TxError::Decode(format!("{} trailing bytes", buf.len())));
        }
        match envelope {
            TxEnvelope::Legacy(_) | TxEnvelope::Eip2930(_) | TxEnvelope::Eip1559(_) => {}
            _ => return Err(TxError::TypeNotSupported),
        }
        let sender = recover_sender(&envelope)?;
        Ok(Self { hash: *envelope.tx_hash(), envelope, raw: Bytes::copy_from_slice(raw), sender })
    }

    /// [`SignedTx::decode`] of many transactions, in order, spread over the machine's cores when
    /// there are enough to pay for the threads (a synced block's txs, which no pool held).
    pub fn decode_many(raws: &[&[u8]]) -> Vec<Result<Self, TxError>> {
        let threads = cores();
        if raws.len() < PARALLEL_DECODE_MIN || threads < 2 {
            return raws.iter().map(|r| Self::decode(r)).collect();
        }
        let chunk = raws.len().div_ceil(threads);
        std::thread::scope(|s| {
            let parts: Vec<_> = raws
                .chunks(chunk)
                .map(|part| s.spawn(move || part.iter().map(|r| Self::decode(r)).collect::<Vec<_>>()))
                .collect();
            parts
                .into_iter()
                .zip(raws.chunks(chunk))
                // A decode cannot panic on any input; if a helper did, its share is redone here.
                .flat_map(|(h, part)| h.join().unwrap_or_else(|_| part.iter().map(|r| Self::decode(r)).collect()))
                .collect()
        })
    }

    /// Decodes a committed transaction whose sender was recovered when its block was executed
    /// (stored beside it), so reading a block back costs no signature recovery.
    pub fn decode_known_sender(raw: &[u8], sender: Address) -> Result<Self, TxError> {
        let mut buf = raw;
        let envelope = TxEnvelope::decode_2718(&mut buf).map_err(|e| TxError::Decode(e.to_string()))?;
        Ok(Self { hash: *envelope.tx_hash(), envelope, raw: Bytes::copy_from_slice(raw), sender })
    }

    pub fn nonce(&self) -> u64 {
        self.envelope.nonce()
    }

    pub fn gas_limit(&self) -> u64 {
        self.envelope.gas_limit()
    }

    pub fn value(&self) -> U256 {
        self.envelope.value()
    }

    pub fn input(&self) -> &Bytes {
        self.envelope.input()
    }

    pub fn kind(&self) -> TxKind {
        self.envelope.kind()
    }

    pub fn chain_id(&self) -> Option<u64> {
        self.envelope.chain_id()
    }

    pub fn tx_type(&self) -> u8 {
        self.envelope.tx_type() as u8
    }

    /// Max fee per gas (the gas price for legacy and EIP-2930).
    pub fn max_fee_per_gas(&self) -> u128 {
        self.envelope.max_fee_per_gas()
    }

    /// Max priority fee per gas (the gas price for legacy and EIP-2930).
    pub fn max_priority_fee_per_gas(&self) -> u128 {
        self.envelope.max_priority_fee_per_gas().unwrap_or_else(|| self.envelope.max_fee_per_gas())
    }

    /// The tip a block with `base_fee` earns from this tx, or None if its fee cap is below base fee.
    pub fn effective_tip(&self, base_fee: u64) -> Option<u128> {
        let cap = self.max_fee_per_gas();
        let base = base_fee as u128;
        (cap >= base).then(|| (cap - base).min(self.max_priority_fee_per_gas()))
    }

    pub fn effective_gas_price(&self, base_fee: u64) -> u128 {
        self.effective_tip(base_fee).map_or(self.max_fee_per_gas(), |tip| tip + base_fee as u128)
    }

    /// The most this tx can cost its sender: gas limit × fee cap + value, or None when that
    /// overflows 256 bits (such a tx can never be paid for).
    pub fn max_cost(&self) -> Option<U256> {
        U256::from(self.gas_limit()).checked_mul(U256::from(self.max_fee_per_gas()))?.checked_add(self.value())
    }

    pub fn intrinsic_gas(&self) -> u64 {
        super::fees::intrinsic_gas(self.input(), self.kind().is_create(), self.envelope.access_list())
    }

    /// Checks that need no state: chain id, fee fields, intrinsic gas, block gas limit, size.
    pub fn check_stateless(&self, chain_id: u64, block_gas_limit: u64, max_size: usize) -> Result<(), TxError> {
        if self.raw.len() > max_size {
            return Err(TxError::Oversized { size: self.raw.len(), limit: max_size });
        }
        match self.chain_id() {
            Some(have) if have != chain_id => return Err(TxError::ChainId { have, want: chain_id }),
            None => return Err(TxError::NotReplayProtected),
            _ => {}
        }
        if self.max_priority_fee_per_gas() > self.max_fee_per_gas() {
            return Err(TxError::TipAboveFeeCap);
        }
        if self.gas_limit() > block_gas_limit {
            return Err(TxError::ExceedsBlockGasLimit);
        }
        let want = self.intrinsic_gas();
        if self.gas_limit() < want {
            return Err(TxError::IntrinsicGas { have: self.gas_limit(), want });
        }
        Ok(())
    }
}

/// Recovers the signer with libsecp256k1 (the fast path; k256 is ~6× slower here).
pub fn recover_sender(envelope: &TxEnvelope) -> Result<Address, TxError> {
    let sig = envelope.signature();
    // EIP-2: reject high-s signatures.
    if sig.normalize_s().is_some() {
        return Err(TxError::InvalidSender);
    }
    let mut compact = [0u8; 64];
    compact[..32].copy_from_slice(&sig.r().to_be_bytes::<32>());
    compact[32..].copy_from_slice(&sig.s().to_be_bytes::<32>());
    let recid = RecoveryId::try_from(i32::from(sig.v())).map_err(|_| TxError::InvalidSender)?;
    let rsig = RecoverableSignature::from_compact(&compact, recid).map_err(|_| TxError::InvalidSender)?;
    let msg = Message::from_digest(envelope.signature_hash().0);
    let pk = SECP256K1.recover_ecdsa(msg, &rsig).map_err(|_| TxError::InvalidSender)?;
    let uncompressed = pk.serialize_uncompressed();
    Ok(Address::from_slice(&keccak256(&uncompressed[1..])[12..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::DevKey;
    use alloy_consensus::TxEip1559;
    use alloy_primitives::TxKind;

    #[test]
    fn decode_many_keeps_order_and_each_error_in_place_on_any_number_of_threads() {
        for n in [3usize, PARALLEL_DECODE_MIN * 3 + 1] {
            let raws: Vec<Bytes> = (0..n as u64)
                .map(|i| {
                    if i % 17 == 5 {
                        return Bytes::from_static(b"\x02garbage");
                    }
                    DevKey::from_seed(i % 7).sign_raw(TxEip1559 {
                        chain_id: 7,
                        nonce: i,
                        gas_limit: 21_000,
                        max_fee_per_gas: 1,
                        to: TxKind::Call(Address::ZERO),
                        ..Default::default()
                    })
                })
                .collect();
            let slices: Vec<&[u8]> = raws.iter().map(|r| r.as_ref()).collect();
            let many = SignedTx::decode_many(&slices);
            assert_eq!(many.len(), n);
            for (raw, got) in raws.iter().zip(&many) {
                match (SignedTx::decode(raw), got) {
                    (Ok(a), Ok(b)) => assert_eq!((a.hash, a.sender), (b.hash, b.sender)),
                    (Err(_), Err(_)) => {}
                    (a, b) => panic!("decode {a:?} but decode_many {b:?}"),
                }
            }
        }
    }
}
