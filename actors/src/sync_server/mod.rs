//! Block sync, server side: a service thread that answers peers' `SyncRequest`s with pages of
//! committed blocks read from storage (see [`page`]). Its fjall reads run on its own thread,
//! never on an actor's arbiter. Requests wait in a short bounded queue; when it is full a
//! request is dropped and counted (`bss_network_dropped_total{reason="sync_busy"}`), and the
//! requester asks again after its timeout.

pub mod page;
mod service;

pub use service::{SyncServer, SyncServerHandle};
