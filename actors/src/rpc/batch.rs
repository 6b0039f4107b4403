//! JSON-RPC batches whose transaction submissions run together.
//!
//! jsonrpsee answers the calls of a batch one after another. A wallet or load generator that
//! sends 200 `eth_sendRawTransaction` in one batch would then pay 200 sequential trips to the
//! mempool and the journal. Here each run of consecutive submissions in a batch is started at
//! once, so their admissions meet in one group (`mempool::grouping`): one mempool message and one
//! journal write for the run. Every other call keeps its place and runs alone, in order, so a
//! batch that submits and then reads sees its submissions. Answers keep the batch's order.

use futures::future::join_all;
use jsonrpsee::core::middleware::{Batch, BatchEntry, Notification, RpcServiceT};
use jsonrpsee::core::server::BatchResponseBuilder;
use jsonrpsee::server::MethodResponse;
use jsonrpsee::types::Request;
use std::future::Future;

/// The method whose consecutive calls in a batch are started together.
const SUBMIT: &str = "eth_sendRawTransaction";

#[derive(Clone)]
pub struct GroupedSubmissions<S> {
    pub inner: S,
    /// The largest batch response, as the server's own limit.
    pub max_response_bytes: usize,
}

impl<S> RpcServiceT for GroupedSubmissions<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        self.inner.call(request)
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let service = self.inner.clone();
        let limit = self.max_response_bytes;
        async move {
            let mut responses = BatchResponseBuilder::new_with_limit(limit);
            let mut got_notification = false;
            let mut run: Vec<Request<'a>> = Vec::new();
            for entry in batch {
                let single = match entry {
                    Ok(BatchEntry::Call(req)) if req.method_name() == SUBMIT => {
                        run.push(req);
                        continue;
                    }
                    other => other,
                };
                if let Err(too_big) = answer_run(&service, &mut run, &mut responses).await {
                    return too_big;
                }
                let response = match single {
                    Ok(BatchEntry::Call(req)) => service.call(req).await,
                    Ok(BatchEntry::Notification(n)) => {
                        got_notification = true;
                        service.notification(n).await;
                        continue;
                    }
                    Err(e) => {
                        let (err, id) = e.into_parts();
                        MethodResponse::error(id, err)
                    }
                };
                if let Err(too_big) = responses.append(response) {
                    return too_big;
                }
            }
            if let Err(too_big) = answer_run(&service, &mut run, &mut responses).await {
                return too_big;
            }
            if responses.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(responses.finish())
            }
        }
    }

    fn notification<'a>(&self, n: Notification<'a>) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}

/// Starts every call of `run` at once and appends their answers in order.
async fn answer_run<'a, S>(
    service: &S,
    run: &mut Vec<Request<'a>>,
    responses: &mut BatchResponseBuilder,
) -> Result<(), MethodResponse>
where
    S: RpcServiceT<MethodResponse = MethodResponse>,
{
    if run.is_empty() {
        return Ok(());
    }
    for response in join_all(run.drain(..).map(|req| service.call(req))).await {
        responses.append(response)?;
    }
    Ok(())
}
