//! `bss btc-regtest`: the embedded Bitcoin regtest node (crate `bss-regtest`) as a command.

pub mod cmd;
