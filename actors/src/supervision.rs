//! Supervision: what happens when a part of the node fails. The policy, per part (README
//! "Supervision" lists the same table):
//!
//! | part          | on a panic                                                           |
//! |---------------|----------------------------------------------------------------------|
//! | Rpc           | actix `Supervisor` restarts it (rebinding its port)                   |
//! | Executor      | the request fails, the thread reloads the committed head and goes on |
//! | BtcWatcher    | restarted after a backoff, resuming from the last index it published |
//! | PopSubmitter  | restarted after a backoff, resuming from its records in storage      |
//! | PopAttest     | restarted after a backoff; its slots are idempotent, certificates on disk |
//! | Tunnel        | restarted after a backoff, its ledger resumed from its checkpoint    |
//! | SyncServer    | restarted after a backoff; the request it was building is lost (asked again) |
//! | Mempool       | fatal: consensus must not propose from a pool that is gone           |
//! | Consensus, Chain, Storage | fatal ([`crate::fatal::stop`], exit code 2)              |
//!
//! actix restarts a supervised actor when it *stops*, not when a handler panics, so handlers of
//! restartable actors run their body under `catch_unwind` ([`guarded`]) and stop the actor on a
//! panic; the `Supervisor` then calls `restarting` and `started` again.

use actix::ActorContext;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;
use tracing::{error, warn};

/// The text of a panic payload.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `f`; if it panics, logs, counts and stops the actor (its supervisor restarts it).
pub fn guarded<C, R>(actor: &'static str, ctx: &mut C, f: impl FnOnce(&mut C) -> R) -> Option<R>
where
    C: ActorContext,
{
    match catch_unwind(AssertUnwindSafe(|| f(ctx))) {
        Ok(r) => Some(r),
        Err(panic) => {
            let msg = panic_message(panic.as_ref());
            error!(target: "supervision", actor, panic = %msg, "actor panicked; stopping it for a restart");
            metrics::counter!("bss_actor_panics_total", "actor" => actor).increment(1);
            ctx.stop();
            None
        }
    }
}

/// Runs a service loop on the current thread and restarts it after a panic, waiting `backoff`
/// (doubling up to 30 s while it keeps failing). `run` returns when the service is done (its
/// inputs are gone); a loop that ran an hour without panicking starts its backoff over.
pub fn restart_on_panic(service: &'static str, backoff: Duration, mut run: impl FnMut()) {
    let mut wait = backoff;
    loop {
        let started = std::time::Instant::now();
        match catch_unwind(AssertUnwindSafe(&mut run)) {
            Ok(()) => return,
            Err(panic) => {
                let msg = panic_message(panic.as_ref());
                if started.elapsed() > Duration::from_secs(3600) {
                    wait = backoff;
                }
                error!(target: "supervision", actor = service, panic = %msg, restart_in_ms = wait.as_millis() as u64, "service panicked; restarting it");
                metrics::counter!("bss_actor_restarts_total", "actor" => service).increment(1);
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(30));
                warn!(target: "supervision", actor = service, "service restarted");
            }
        }
    }
}

/// Fault injection into a service thread: the handle `bss_injectFault` holds, and the trigger
/// the thread's loop polls once a round (it panics when the trigger fired).
#[derive(Clone)]
pub struct FaultSwitch(std::sync::mpsc::SyncSender<()>);

pub struct FaultTrigger(std::sync::mpsc::Receiver<()>);

impl FaultSwitch {
    pub fn new() -> (Self, FaultTrigger) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        (Self(tx), FaultTrigger(rx))
    }

    /// Makes the service panic at its next round.
    pub fn inject_panic(&self) {
        let _ = self.0.try_send(());
    }
}

impl FaultTrigger {
    /// Panics (naming `service`) if a fault was injected since the last round.
    pub fn check(&self, service: &str) {
        if self.0.try_recv().is_ok() {
            panic!("injected fault (bss_injectFault {service})");
        }
    }
}
