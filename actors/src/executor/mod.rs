//! Executor actor: the hVM on its own thread (an actix `SyncArbiter`), so execution never blocks
//! the arbiter that runs consensus. It keeps executed-but-uncommitted blocks as state layers so a
//! proposal may build on a parent that is not committed yet.

mod actor;
mod messages;

pub use actor::ExecutorActor;
pub use messages::{ExecutorError, ExecutorHandle};
