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
