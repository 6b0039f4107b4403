//! Starts the supervised RPC actor and waits for its listening address.

use super::NodeError;
use crate::rpc::messages::{Faults, RpcHandle};
use crate::rpc::{RpcActor, RpcContext};
use actix::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Everything the RPC handlers share, but the fault targets (added per restart).
pub struct RpcParts {
    pub context: Box<dyn Fn() -> RpcContext + Send + Sync>,
    /// With `rpc.fault_injection`: what `bss_injectFault` reaches, but the RPC actor itself.
    pub faults: Option<Box<dyn Fn(Recipient<crate::rpc::messages::InjectFault>) -> Faults + Send + Sync>>,
}

pub async fn start(p: RpcParts) -> Result<(RpcHandle, SocketAddr), NodeError> {
    let RpcParts { context, faults } = p;
    let factory = Arc::new(move |rpc: Recipient<_>| {
        let mut c = context();
        c.faults = faults.as_ref().map(|f| f(rpc));
        c
    });
    let (bound, mut announced) = tokio::sync::watch::channel(None);
    let handle = RpcHandle::new(Supervisor::start(move |_| RpcActor::new(factory, bound)));
    let addr = match tokio::time::timeout(Duration::from_secs(10), announced.wait_for(Option::is_some)).await {
        Ok(Ok(addr)) => *addr,
        _ => return Err(NodeError::RpcStart("no listening address after 10s (see the log)".into())),
    };
    Ok((handle, addr.ok_or_else(|| NodeError::RpcStart("no address announced".into()))?))
}
