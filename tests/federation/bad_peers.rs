//! Peers that send garbage, oversized frames, wrong signatures or unknown keys are dropped;
//! the operator keeps running and committing.

use crate::support::*;
use bss_actors::network::wire::{auth_message, encode, WireMessage};
use bss_consensus::certificate::SigBytes;
use bss_consensus::OperatorSigner;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn p2p_addr(dir: &std::path::Path, i: usize) -> SocketAddr {
    let text = std::fs::read_to_string(dir.join(format!("node{i}.toml"))).expect("config");
    let line = text.lines().skip_while(|l| *l != "[network]").find(|l| l.starts_with("listen")).expect("listen");
    line.split('"').nth(1).expect("addr").parse().expect("socket addr")
}

/// Sends `bytes` and reports whether the node closed the connection within a few seconds.
fn closed_after(addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(6))).expect("timeout");
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // the node's own Hello
            Err(e) => return e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut,
        }
    }
}

#[test]
fn misbehaving_peers_are_dropped_and_the_node_keeps_going() {
    let dir = tempfile::tempdir().expect("tmp");
    let fed = Federation::start(dir.path(), 4, "block_time = \"100ms\"\nbase_timeout = \"500ms\"");
    fed.wait_all_at_least(&[0, 1, 2, 3], 3, Duration::from_secs(60));
    let target = p2p_addr(dir.path(), 3);

    // Garbage instead of a Hello.
    assert!(closed_after(target, b"GET / HTTP/1.1\r\n\r\n this is not bincode at all"));
    // A frame announcing 1 GiB.
    assert!(closed_after(target, &(1u32 << 30).to_be_bytes()));
    // A Hello from an index the config does not know.
    let hello = encode(&WireMessage::Hello { chain_id: CHAIN_ID, operator: 9, nonce: [1; 32] }).expect("encode");
    assert!(closed_after(target, &hello));
    // A Hello on another chain.
    let hello = encode(&WireMessage::Hello { chain_id: 1, operator: 0, nonce: [1; 32] }).expect("encode");
    assert!(closed_after(target, &hello));
    // Operator 0's index with a key that is not operator 0's (a stolen identity without the key).
    let mut bytes = encode(&WireMessage::Hello { chain_id: CHAIN_ID, operator: 0, nonce: [1; 32] }).expect("encode");
    let impostor = OperatorSigner::from_bytes([0xee; 32]);
    let sig = SigBytes(impostor.sign(&auth_message(CHAIN_ID, &[0; 32], 0)));
    bytes.extend(encode(&WireMessage::Auth { signature: sig }).expect("encode"));
    assert!(closed_after(target, &bytes));

    let m = fed.nodes[3].metrics();
    assert!(metric(&m, "bss_network_handshake_failures_total") >= 4.0, "handshake failures not counted:\n{m}");
    // Still healthy, still committing with the others.
    let h = fed.nodes[3].block_number();
    fed.wait_all_at_least(&[0, 1, 2, 3], h + 5, Duration::from_secs(60));
    assert!(metric(&fed.nodes[3].metrics(), "bss_network_peers") >= 3.0);
}
