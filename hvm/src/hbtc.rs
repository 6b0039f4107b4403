//! hBTC, the tunnel's ERC-20 (`contracts/hbtc.vy`, compiled bytecode beside it): predeployed at
//! [`HBTC_ADDRESS`] in genesis, minted by system calls for Bitcoin deposits, burned by
//! `withdraw`, whose `WithdrawalRequested` events the operators pay out.

use alloy_primitives::{address, keccak256, Address, Bytes, B256, U256};
use bss_consensus::Mint;
use revm::context::result::ExecutionResult;
use revm::context::TxEnv;
use revm::database::{CacheDB, EmptyDB};
use revm::primitives::TxKind;
use revm::{Context, ExecuteEvm, MainBuilder, MainContext};

/// Where genesis puts hBTC ("BTC" in ASCII, then zeros).
pub const HBTC_ADDRESS: Address = address!("4254430000000000000000000000000000000000");
/// The caller of the chain's system calls (revm's, as in EIP-4788): nobody holds its key.
pub const SYSTEM_ADDRESS: Address = revm::handler::SYSTEM_ADDRESS;
/// Deployment bytecode compiled by Vyper 0.4.3 from `contracts/hbtc.vy` (hex).
pub const HBTC_INIT_CODE_HEX: &str = include_str!("../contracts/hbtc.bin");
/// hBTC's revert reason for a deposit minted before.
pub const ALREADY_MINTED: &str = "deposit already minted";
/// Storage slot of `totalSupply` (`vyper -f layout contracts/hbtc.vy`).
pub const TOTAL_SUPPLY_SLOT: u64 = 2;
/// The Vyper version that compiled [`HBTC_INIT_CODE_HEX`].
pub const HBTC_COMPILER: &str = "0.4.3";

#[derive(Debug, thiserror::Error)]
pub enum HbtcError {
    #[error("the committed hBTC bytecode is not hex: {0}")]
    Hex(String),
    #[error("deploying hBTC failed: {0}")]
    Deploy(String),
}

/// An account genesis writes as it is: code and storage.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Predeploy {
    pub address: Address,
    pub code: Bytes,
    /// Non-zero slots.
    pub storage: Vec<(U256, U256)>,
}

/// hBTC as genesis holds it: the constructor run with `min_withdrawal_sats` on an empty state,
/// its runtime code and storage moved to [`HBTC_ADDRESS`].
pub fn hbtc_predeploy(min_withdrawal_sats: u64) -> Result<Predeploy, HbtcError> {
    let init =
        hex::decode(HBTC_INIT_CODE_HEX.trim().trim_start_matches("0x")).map_err(|e| HbtcError::Hex(e.to_string()))?;
    let mut data = init;
    data.extend_from_slice(&U256::from(min_withdrawal_sats).to_be_bytes::<32>());
    let mut evm = Context::mainnet().with_db(CacheDB::<EmptyDB>::default()).build_mainnet();
    let tx = TxEnv {
        caller: SYSTEM_ADDRESS,
        gas_limit: 10_000_000,
        gas_price: 0,
        kind: TxKind::Create,
        data: data.into(),
        nonce: 0,
        ..Default::default()
    };
    let out = evm.transact(tx).map_err(|e| HbtcError::Deploy(e.to_string()))?;
    let created = match &out.result {
        ExecutionResult::Success { .. } => out.result.created_address(),
        other => return Err(HbtcError::Deploy(format!("{other:?}"))),
    }
    .ok_or_else(|| HbtcError::Deploy("no contract created".into()))?;
    let account = out.state.get(&created).ok_or_else(|| HbtcError::Deploy("created account missing".into()))?;
    let code = account.info.code.as_ref().map(|c| c.original_bytes()).unwrap_or_default();
    if code.is_empty() {
        return Err(HbtcError::Deploy("empty runtime code".into()));
    }
    let mut storage: Vec<(U256, U256)> = account
        .storage
        .iter()
        .filter(|(_, s)| !s.present_value.is_zero())
        .map(|(k, s)| (*k, s.present_value))
        .collect();
    storage.sort();
    Ok(Predeploy { address: HBTC_ADDRESS, code, storage })
}

fn selector(signature: &str) -> [u8; 4] {
    let h = keccak256(signature.as_bytes());
    [h[0], h[1], h[2], h[3]]
}

fn word_address(a: &Address) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[12..].copy_from_slice(a.as_slice());
    w
}

/// Calldata of the system call that mints for one deposit: `mint(recipient, sats, txid)`.
pub fn mint_calldata(m: &Mint) -> Bytes {
    let mut d = selector("mint(address,uint256,bytes32)").to_vec();
    d.extend_from_slice(&word_address(&m.recipient));
    d.extend_from_slice(&U256::from(m.sats).to_be_bytes::<32>());
    d.extend_from_slice(m.btc_txid.as_slice());
    d.into()
}

/// Calldata of a read-only call with no arguments (`totalSupply()`, `withdrawalCount()`).
pub fn getter_calldata(signature: &str) -> Bytes {
    selector(signature).to_vec().into()
}

/// Calldata of `balanceOf(owner)`.
pub fn balance_of_calldata(owner: &Address) -> Bytes {
    let mut d = selector("balanceOf(address)").to_vec();
    d.extend_from_slice(&word_address(owner));
    d.into()
}

/// Calldata of `withdraw(btcScriptPubKey, sats)`.
pub fn withdraw_calldata(script: &[u8], sats: u64) -> Bytes {
    let mut d = selector("withdraw(bytes,uint64)").to_vec();
    d.extend_from_slice(&U256::from(64u8).to_be_bytes::<32>());
    d.extend_from_slice(&U256::from(sats).to_be_bytes::<32>());
    d.extend_from_slice(&U256::from(script.len()).to_be_bytes::<32>());
    let mut padded = script.to_vec();
    padded.resize(script.len().div_ceil(32) * 32, 0);
    d.extend_from_slice(&padded);
    d.into()
}

/// topic0 of `Transfer(address,address,uint256)`.
pub fn transfer_topic() -> B256 {
    keccak256("Transfer(address,address,uint256)")
}

/// topic0 of `WithdrawalRequested(uint64,address,bytes,uint64)`.
pub fn withdrawal_topic() -> B256 {
    keccak256("WithdrawalRequested(uint64,address,bytes,uint64)")
}

/// A burn asking for a Bitcoin payout, as its event logs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawalRequest {
    pub id: u64,
    pub from: Address,
    pub script: Vec<u8>,
    pub sats: u64,
}

/// Decodes a `WithdrawalRequested` log of hBTC (`None` for any other log).
pub fn decode_withdrawal(address: &Address, topics: &[B256], data: &[u8]) -> Option<WithdrawalRequest> {
    if *address != HBTC_ADDRESS || topics.len() != 3 || topics[0] != withdrawal_topic() {
        return None;
    }
    let word = |i: usize| data.get(i * 32..i * 32 + 32);
    let u64_of = |w: &[u8]| -> Option<u64> {
        w[..24].iter().all(|b| *b == 0).then(|| u64::from_be_bytes(w[24..32].try_into().unwrap_or([0; 8])))
    };
    let id = u64_of(topics[1].as_slice())?;
    let from = Address::from_slice(&topics[2][12..]);
    let offset = usize::try_from(u64_of(word(0)?)?).ok()?;
    let sats = u64_of(word(1)?)?;
    let len_word = data.get(offset..offset.checked_add(32)?)?;
    let len = usize::try_from(u64_of(len_word)?).ok()?;
    let start = offset.checked_add(32)?;
    let script = data.get(start..start.checked_add(len)?)?.to_vec();
    Some(WithdrawalRequest { id, from, script, sats })
}

/// Reads a uint256 return value.
pub fn decode_uint(ret: &[u8]) -> Option<U256> {
    (ret.len() == 32).then(|| U256::from_be_slice(ret))
}
