//! Four operators as real processes on loopback: crashes, restarts, catch-up, a lost quorum,
//! and peers that misbehave on the operator network.

#[path = "../support/mod.rs"]
mod support;

mod bad_peers;
mod bench_smoke;
mod byzantine;
mod censorship;
mod chaos_sample;
mod floods;
mod hotstuff_rs;
mod n4f1;
