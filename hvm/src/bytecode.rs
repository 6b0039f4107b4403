//! Small EVM bytecode helpers for tools, tests and benchmarks.

use alloy_primitives::Bytes;

/// Initcode that deploys `runtime` unchanged: CODECOPY the runtime into memory and RETURN it.
/// `runtime` must be at most 255 bytes (it is addressed with PUSH1).
pub fn deploy_initcode(runtime: &[u8]) -> Bytes {
    assert!(runtime.len() <= 255, "runtime of {} bytes is too long for this initcode", runtime.len());
    // PUSH1 len, DUP1, PUSH1 11 (runtime offset), PUSH1 0, CODECOPY, PUSH1 0, RETURN
    let mut init = vec![0x60, runtime.len() as u8, 0x80, 0x60, 0x0b, 0x60, 0x00, 0x39, 0x60, 0x00, 0xf3];
    init.extend_from_slice(runtime);
    Bytes::from(init)
}

/// keccak256("Transfer(address,address,uint256)").
pub fn transfer_topic() -> alloy_primitives::B256 {
    alloy_primitives::keccak256("Transfer(address,address,uint256)")
}

/// A token with ERC-20's transfer profile (2 SLOAD, 2 SSTORE, LOG3 Transfer): calldata is
/// `to ‖ amount` (two words); it debits slot[caller] and credits slot[to]. Balances are wrapping
/// counters so every account can send without minting first, which is what a load generator
/// needs; gas and storage traffic are those of an ERC-20 transfer.
pub fn token_runtime() -> Vec<u8> {
    let mut c = vec![
        0x60, 0x20, 0x35, // amount
        0x33, 0x54, 0x81, 0x01, 0x33, 0x55, // slot[caller] += amount
        0x60, 0x00, 0x35, 0x80, 0x54, 0x82, 0x90, 0x03, 0x90, 0x55, // slot[to] -= amount
        0x60, 0x00, 0x52, // mem[0] = amount
        0x60, 0x00, 0x35, 0x33, 0x7f, // to, caller, PUSH32 topic
    ];
    c.extend_from_slice(transfer_topic().as_slice());
    c.extend_from_slice(&[0x60, 0x20, 0x60, 0x00, 0xa3, 0x00]);
    c
}

/// Calldata of a token transfer.
pub fn token_transfer(to: alloy_primitives::Address, amount: u64) -> Bytes {
    let mut data = alloy_primitives::B256::left_padding_from(to.as_slice()).to_vec();
    data.extend_from_slice(&alloy_primitives::B256::left_padding_from(&amount.to_be_bytes()).0);
    Bytes::from(data)
}
