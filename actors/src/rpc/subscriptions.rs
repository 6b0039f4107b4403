//! `eth_subscribe` over WebSocket: `newHeads`, fed by the consensus commit stream.

use super::context::RpcContext;
use super::format;
use super::params::invalid_params;
use jsonrpsee::core::server::SubscriptionMessage;
use jsonrpsee::RpcModule;
use tokio::sync::broadcast::error::RecvError;

pub fn register(module: &mut RpcModule<RpcContext>) -> std::io::Result<()> {
    module
        .register_subscription("eth_subscribe", "eth_subscription", "eth_unsubscribe", |params, pending, c, _| async move {
            let kind: String = match params.sequence().next() {
                Ok(k) => k,
                Err(e) => {
                    pending.reject(e).await;
                    return;
                }
            };
            if kind != "newHeads" {
                pending.reject(invalid_params(format!("unsupported subscription {kind:?}; supported: newHeads"))).await;
                return;
            }
            let mut commits = c.chain.subscribe();
            let Ok(sink) = pending.accept().await else { return };
            metrics::gauge!("bss_rpc_subscriptions").increment(1.0);
            loop {
                tokio::select! {
                    _ = sink.closed() => break,
                    next = commits.recv() => match next {
                        Ok(block) => {
                            let Ok(Some(stored)) = c.block(block.header.number) else { continue };
                            let mut head = format::block(&stored.header, &stored.body, &stored.receipts, c.spec.fee_recipient, false, &[]);
                            if let Some(o) = head.as_object_mut() {
                                o.remove("transactions");
                                o.remove("uncles");
                            }
                            let Ok(raw) = serde_json::value::to_raw_value(&head) else { continue };
                            if sink.send(SubscriptionMessage::from(raw)).await.is_err() {
                                break;
                            }
                        }
                        // A slow client skips heads rather than holding up consensus.
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => break,
                    },
                }
            }
            metrics::gauge!("bss_rpc_subscriptions").decrement(1.0);
        })
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(())
}
