//! A tiny contract assembled by hand, deployed from raw bytecode.
//!
//! Runtime: empty calldata → returns slot 0. Otherwise v = calldata[0..32]; v == 0 → revert;
//! else slot 0 = v and LOG1(topic = TOPIC, data = v).

use alloy_primitives::{Bytes, B256};

pub const TOPIC: B256 = B256::repeat_byte(0xab);

pub fn runtime() -> Vec<u8> {
    let mut c = vec![
        0x36, 0x60, 0x0f, 0x57, // CALLDATASIZE PUSH1 set JUMPI
        0x60, 0x00, 0x54, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3, // return slot 0
        0x5b, 0x60, 0x00, 0x35, 0x80, 0x15, 0x60, 0x46, 0x57, // set: v, if v == 0 goto revert
        0x80, 0x60, 0x00, 0x55, 0x60, 0x00, 0x52, // slot0 = v; mem[0] = v
        0x7f, // PUSH32 topic
    ];
    c.extend_from_slice(TOPIC.as_slice());
    c.extend_from_slice(&[0x60, 0x20, 0x60, 0x00, 0xa1, 0x00]); // LOG1(0, 32, topic) STOP
    c.extend_from_slice(&[0x5b, 0x60, 0x00, 0x60, 0x00, 0xfd]); // revert: REVERT(0, 0)
    assert_eq!(c.len(), 76);
    c
}

pub fn initcode() -> Bytes {
    let runtime = runtime();
    let mut init = vec![0x60, runtime.len() as u8, 0x80, 0x60, 0x0b, 0x60, 0x00, 0x39, 0x60, 0x00, 0xf3];
    init.extend_from_slice(&runtime);
    Bytes::from(init)
}

pub fn word(v: u64) -> Bytes {
    Bytes::from(B256::left_padding_from(&v.to_be_bytes()).to_vec())
}
