use super::hvm_runner::Executor;
use super::messages::{ExecutorHandle, Request};
use super::metrics::ExecutorMetrics;
use crate::btc::BtcLink;
use crate::hvm::ChainSpec;
use bss_storage::StoreReader;
use std::panic::{catch_unwind, AssertUnwindSafe};
use tokio::sync::mpsc;
use tracing::{error, info};

/// Starts the executor thread and supervises it (see the module note for the policy).
pub struct ExecutorService;

impl ExecutorService {
    pub fn spawn(
        spec: ChainSpec,
        reader: StoreReader,
        btc: Option<BtcLink>,
        queue: usize,
        btc_rewind: Option<u64>,
    ) -> std::io::Result<ExecutorHandle> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        std::thread::Builder::new()
            .name("bss-executor".into())
            .spawn(move || supervise(spec, reader, btc, btc_rewind, rx))?;
        Ok(ExecutorHandle { tx })
    }
}

fn supervise(
    spec: ChainSpec,
    reader: StoreReader,
    btc: Option<BtcLink>,
    btc_rewind: Option<u64>,
    mut rx: mpsc::Receiver<Request>,
) {
    let metrics = ExecutorMetrics::register();
    loop {
        let executor = match Executor::load(spec.clone(), reader.clone(), btc.clone(), metrics.clone()) {
            Ok(e) => e.with_btc_rewind(btc_rewind),
            Err(e) => crate::fatal::stop("executor", format!("cannot load the committed head: {e}")),
        };
        match catch_unwind(AssertUnwindSafe(|| serve(executor, &mut rx))) {
            Ok(()) => return, // every handle is gone: the node is stopping
            Err(panic) => {
                let msg = crate::supervision::panic_message(panic.as_ref());
                error!(target: "supervision", actor = "executor", panic = %msg, "the executor panicked; the request failed, reloading its state from storage");
                metrics.restarts.increment(1);
                info!(target: "supervision", actor = "executor", "executor restarted");
            }
        }
    }
}

fn serve(mut ex: Executor, rx: &mut mpsc::Receiver<Request>) {
    while let Some(req) = rx.blocking_recv() {
        match req {
            Request::Build { parent, layers, fields, candidates, reply } => {
                let _ = reply.send(ex.build(&parent, &layers, fields, candidates));
            }
            Request::Validate { layers, block, known, check_btc, reply } => {
                let _ = reply.send(ex.validate(&layers, &block, known, check_btc));
            }
            Request::InjectPanic => panic!("injected fault in the executor"),
        }
    }
}
