//! Peers that send garbage, oversized frames, replayed or relayed handshakes, unknown keys or
//! tampered frames are dropped and counted; the operator keeps running and committing.

use crate::support::*;
use bss_actors::network::noise::{self, HandshakeError, LocalIdentity};
use bss_consensus::OperatorSigner;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Sends `bytes` and reports whether the node closed the connection within a few seconds.
fn closed_after(addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(7))).expect("timeout");
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // the node's own handshake message
            Err(e) => return e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut,
        }
    }
}

fn handshake_failures(node: &Node, reason: &str) -> f64 {
    metric(&node.metrics(), &format!("bss_network_handshake_failures_total{{reason=\"{reason}\"}}"))
}

#[test]
fn misbehaving_peers_are_dropped_and_the_node_keeps_going() {
    let dir = tempfile::tempdir().expect("tmp");
    let fed = Federation::start(dir.path(), 4, "block_time = \"100ms\"\nbase_timeout = \"500ms\"");
    fed.wait_all_at_least(&[0, 1, 2, 3], 3, Duration::from_secs(60));
    let target = p2p_addr(dir.path(), 3);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (signers, set) = federation_keys(4);

    // Garbage instead of a Noise handshake.
    assert!(closed_after(target, b"GET / HTTP/1.1\r\n\r\n this is not noise at all"));
    // A handshake message announcing more than it sends, then silence: the 5 s deadline drops it.
    assert!(closed_after(target, &[0xff, 0xff, 1, 2, 3]));

    // The relay attack. The attacker dials operator 2 and runs a real handshake to capture its
    // signed identity payload, then offers that payload to operator 3 next to the attacker's own
    // Noise static key, posing as operator 2 (an index operator 3 accepts inbound). The payload's
    // signature covers operator 2's static key, not the attacker's: refused.
    let captured = rt.block_on(async {
        let attacker = LocalIdentity::generate(CHAIN_ID, 0, &OperatorSigner::from_bytes([0xee; 32])).expect("id");
        let mut s = tokio::net::TcpStream::connect(p2p_addr(dir.path(), 2)).await.expect("dial 2");
        // Operator 2 rejects us after sending its payload; we only want the payload.
        match noise::initiate(&mut s, &attacker, &set, 2).await {
            Ok(link) => link.peer_payload,
            Err(e) => panic!("operator 2's identity should check out for the dialer: {e}"),
        }
    });
    let before = handshake_failures(&fed.nodes[3], "bad_identity");
    let refused = rt.block_on(async {
        let relay = LocalIdentity::replaying(CHAIN_ID, 2, captured).expect("id");
        let mut s = tokio::net::TcpStream::connect(target).await.expect("dial 3");
        noise::initiate(&mut s, &relay, &set, 3).await.expect("operator 3's side is genuine");
        // Operator 3 judges our message 3 and hangs up.
        let mut b = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(6), tokio::io::AsyncReadExt::read(&mut s, &mut b)).await
    });
    assert!(matches!(refused, Ok(Ok(0)) | Ok(Err(_))), "operator 3 kept a relayed handshake open: {refused:?}");
    wait_until("the relayed handshake counted", Duration::from_secs(10), || {
        (handshake_failures(&fed.nodes[3], "bad_identity") > before).then_some(())
    });

    // A key that is not operator 0's, claiming index 0 (a stolen identity without the key).
    rt.block_on(async {
        let impostor = LocalIdentity::generate(CHAIN_ID, 0, &OperatorSigner::from_bytes([0xee; 32])).expect("id");
        let mut s = tokio::net::TcpStream::connect(target).await.expect("dial 3");
        let _ = noise::initiate(&mut s, &impostor, &set, 3).await;
    });
    // Another chain: our own side already refuses operator 3's identity.
    let wrong_chain = rt.block_on(async {
        let other = LocalIdentity::generate(1, 0, &signers[0]).expect("id");
        let mut s = tokio::net::TcpStream::connect(target).await.expect("dial 3");
        noise::initiate(&mut s, &other, &set, 3).await
    });
    assert!(matches!(wrong_chain, Err(HandshakeError::WrongChain(CHAIN_ID))));
    wait_until("every handshake failure counted", Duration::from_secs(10), || {
        (handshake_failures(&fed.nodes[3], "bad_identity") >= before + 2.0).then_some(())
    });

    // A genuine operator key (a Byzantine operator 0) that completes the handshake and then
    // sends an oversized frame announcement inside the encrypted channel: dropped and counted.
    send_as_operator(target, 0, 3, &[(1u32 << 30).to_be_bytes().to_vec()], Duration::ZERO);
    wait_until("the oversized frame counted", Duration::from_secs(10), || {
        let m = fed.nodes[3].metrics();
        (metric(&m, "bss_network_bad_frames_total{reason=\"oversized\"}") >= 1.0).then_some(())
    });

    // Still healthy, still committing with the others.
    let h = fed.nodes[3].block_number();
    fed.wait_all_at_least(&[0, 1, 2, 3], h + 5, Duration::from_secs(60));
    wait_until("operator 3 connected to all", Duration::from_secs(20), || {
        (metric(&fed.nodes[3].metrics(), "bss_network_peers") >= 3.0).then_some(())
    });
}

/// A TCP proxy for one operator link that flips one byte of the encrypted stream once `after`
/// bytes have passed from dialer to listener; returns its address.
fn tampering_link_proxy(upstream: SocketAddr, after: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut tampered = false;
        for inbound in listener.incoming() {
            let Ok(inbound) = inbound else { continue };
            let Ok(outbound) = TcpStream::connect(upstream) else { continue };
            let (mut in_r, mut out_w) = (inbound.try_clone().expect("clone"), outbound.try_clone().expect("clone"));
            let (mut out_r, mut in_w) = (outbound, inbound);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut out_r, &mut in_w);
            });
            // Only the first connection is tampered with; redials pass through untouched.
            let flip = !tampered;
            tampered = true;
            std::thread::spawn(move || {
                let mut seen = 0usize;
                let mut buf = [0u8; 16 * 1024];
                loop {
                    let n = match in_r.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if flip && seen < after && seen + n > after {
                        buf[after - seen] ^= 0x01;
                    }
                    seen += n;
                    if out_w.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_tampered_frame_drops_the_link_and_the_operators_reconnect() {
    let dir = tempfile::tempdir().expect("tmp");
    // Operator 0 dials operator 1 through a proxy that flips a byte after the handshake
    // (handshake messages total well under 4 KB; consensus traffic follows at once).
    let fed = Federation::start_with_links(
        dir.path(),
        4,
        "block_time = \"100ms\"\nbase_timeout = \"500ms\"",
        |from, to, at| (from == 0 && to == 1).then(|| tampering_link_proxy(at, 4_096)),
    );
    wait_until("a frame failing authentication", Duration::from_secs(60), || {
        (metric(&fed.nodes[1].metrics(), "bss_network_bad_frames_total{reason=\"auth\"}") >= 1.0).then_some(())
    });
    // The link comes back (operator 0 redials through the proxy, untouched now) and all commit.
    let h = fed.nodes[1].block_number();
    fed.wait_all_at_least(&[0, 1, 2, 3], h + 5, Duration::from_secs(60));
    wait_until("operator 1 connected to all", Duration::from_secs(20), || {
        (metric(&fed.nodes[1].metrics(), "bss_network_peers") >= 3.0).then_some(())
    });
}
