//! Supervision helpers. actix restarts a supervised actor when it *stops*, not when a handler
//! panics, so handlers of restartable actors run their body under `catch_unwind` and stop the
//! actor on a panic; the `Supervisor` then calls `restarting` and `started` again.

use actix::ActorContext;
use std::panic::{catch_unwind, AssertUnwindSafe};
use tracing::error;

/// Runs `f`; if it panics, logs, counts and stops the actor (its supervisor restarts it).
pub fn guarded<C, R>(actor: &'static str, ctx: &mut C, f: impl FnOnce(&mut C) -> R) -> Option<R>
where
    C: ActorContext,
{
    match catch_unwind(AssertUnwindSafe(|| f(ctx))) {
        Ok(r) => Some(r),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            error!(target: "supervision", actor, panic = %msg, "actor panicked; stopping it for a restart");
            metrics::counter!("bss_actor_panics_total", "actor" => actor).increment(1);
            ctx.stop();
            None
        }
    }
}
