use actix::prelude::*;

/// Makes the RPC actor panic inside a handler (only when `rpc.fault_injection` is on): used by
/// tests and the chaos harness to exercise supervision.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct InjectFault;

/// Cloneable handle to the supervised RPC actor. The node holds one for its whole life: actix's
/// supervisor restarts an actor only while some address of it is alive, and the server's own
/// references go away with the server it restarts.
#[derive(Clone)]
pub struct RpcHandle {
    addr: Addr<super::RpcActor>,
}

impl RpcHandle {
    pub(crate) fn new(addr: Addr<super::RpcActor>) -> Self {
        Self { addr }
    }

    /// Makes the RPC actor panic (fault injection).
    pub fn inject_panic(&self) {
        self.addr.do_send(InjectFault);
    }
}

/// The parts `bss_injectFault` can make panic (only with `rpc.fault_injection`), to exercise
/// each supervision policy.
#[derive(Clone)]
pub struct Faults {
    pub rpc: Recipient<InjectFault>,
    pub executor: crate::executor::ExecutorHandle,
    pub mempool: crate::mempool::MempoolHandle,
    pub btc_watcher: Option<crate::btc::WatcherHandle>,
    pub pop_submitter: Option<crate::pop::submitter::SubmitterHandle>,
    pub pop_attest: Option<crate::pop::attest::AttestHandle>,
    pub tunnel: Option<crate::tunnel::TunnelHandle>,
    pub sync_server: crate::sync_server::SyncServerHandle,
}

impl Faults {
    pub const TARGETS: &'static str =
        "rpc, executor, mempool, btc_watcher, pop_submitter, pop_attest, tunnel, sync_server";

    /// Injects a panic into `target`; Err names what is unknown or not running here.
    pub fn inject(&self, target: &str) -> Result<(), String> {
        match target {
            "rpc" => self.rpc.do_send(InjectFault),
            "executor" => self.executor.inject_panic(),
            "mempool" => self.mempool.inject_panic(),
            "btc_watcher" => {
                self.btc_watcher.as_ref().ok_or("no Bitcoin watcher runs here ([btc] is not set)")?.inject_panic()
            }
            "pop_submitter" => {
                self.pop_submitter.as_ref().ok_or("no PoP submitter runs here ([pop] is not set)")?.inject_panic()
            }
            "pop_attest" => self
                .pop_attest
                .as_ref()
                .ok_or("no keystone attestation service runs here ([pop] is not set)")?
                .inject_panic(),
            "tunnel" => self
                .tunnel
                .as_ref()
                .ok_or("no tunnel service runs here (no [genesis.tunnel] or no [btc])")?
                .inject_panic(),
            "sync_server" => self.sync_server.inject_panic(),
            other => return Err(format!("unknown fault target {other:?}; known: {}", Self::TARGETS)),
        }
        Ok(())
    }
}
