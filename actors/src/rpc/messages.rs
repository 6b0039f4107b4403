use actix::prelude::*;

/// Makes the RPC actor panic inside a handler (only when `rpc.fault_injection` is on): used by
/// tests and the chaos harness to exercise supervision.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct InjectFault;
