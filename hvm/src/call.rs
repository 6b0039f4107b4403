//! eth_call and eth_estimateGas: execute a message on a state without committing anything.
//!
//! Bounded work: the gas of a call is capped ([`CallLimits::gas_cap`], geth's 50M by default) and
//! a wall-clock deadline halts the interpreter (an inspector looks at the clock every 4,096
//! instructions), so one request cannot run past its budget whatever gas it asks for.

use super::btc_precompiles::{BtcAt, HvmPrecompiles};
use super::chain::ChainSpec;
use super::execute::{block_env, cfg_env, SPEC};
use super::state::{StateError, StateSource};
use super::write_set::WriteSet;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use bss_consensus::BlockHeader;
use revm::context::result::{EVMError, ExecutionResult};
use revm::context::TxEnv;
use revm::interpreter::{InstructionResult, Interpreter};
use revm::{Context, InspectEvm, Inspector, MainBuilder, MainContext};
use std::time::{Duration, Instant};

/// A call request (the fields of eth_call's transaction object).
#[derive(Debug, Clone, Default)]
pub struct CallRequest {
    pub from: Option<Address>,
    pub to: Option<Address>,
    pub gas: Option<u64>,
    pub gas_price: Option<u128>,
    pub value: Option<U256>,
    pub input: Bytes,
    pub nonce: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    State(#[from] StateError),
    /// The call could not run at all (geth's -32000 errors: funds, gas, nonce).
    #[error("{0}")]
    Invalid(String),
    /// The deadline passed (geth: "execution aborted (timeout = 5s)").
    #[error("execution aborted (timeout = {0:?})")]
    Timeout(Duration),
}

/// What one eth_call or eth_estimateGas may spend.
#[derive(Clone, Copy, Debug)]
pub struct CallLimits {
    /// Most gas one execution gets, whatever the request asks for.
    pub gas_cap: u64,
    /// When the request gives up (every execution of an estimate shares it).
    pub deadline: Instant,
}

impl CallLimits {
    pub fn new(gas_cap: u64, timeout: Duration) -> Self {
        Self { gas_cap, deadline: Instant::now() + timeout }
    }
}

/// Halts the interpreter once the deadline has passed.
struct Deadline {
    at: Instant,
    steps: u32,
    timed_out: bool,
}

impl<CTX> Inspector<CTX> for Deadline {
    fn step(&mut self, interp: &mut Interpreter, _: &mut CTX) {
        self.steps = self.steps.wrapping_add(1);
        if self.timed_out || self.steps.is_multiple_of(4_096) && Instant::now() >= self.at {
            self.timed_out = true;
            interp.halt(InstructionResult::OutOfGas);
        }
    }
}

/// What a call did.
#[derive(Debug, Clone)]
pub enum CallOutcome {
    Success { output: Bytes, gas_used: u64 },
    Revert { output: Bytes, gas_used: u64 },
    Halt { reason: String, gas_used: u64 },
}

impl CallOutcome {
    pub fn gas_used(&self) -> u64 {
        match self {
            Self::Success { gas_used, .. } | Self::Revert { gas_used, .. } | Self::Halt { gas_used, .. } => *gas_used,
        }
    }
}

/// Runs `req` on `state` as if in a block right after `head`.
pub fn call<S: StateSource>(
    spec: &ChainSpec,
    state: &S,
    head: &BlockHeader,
    req: &CallRequest,
    btc: Option<&BtcAt>,
    limits: CallLimits,
) -> Result<CallOutcome, CallError> {
    let started = Instant::now();
    if started >= limits.deadline {
        return Err(CallError::Timeout(Duration::ZERO));
    }
    let caller = req.from.unwrap_or_default();
    let nonce = match req.nonce {
        Some(n) => n,
        None => state.account(&caller)?.map_or(0, |a| a.nonce),
    };
    let gas_price = req.gas_price.unwrap_or(0);
    let tx = TxEnv {
        tx_type: 0,
        caller,
        gas_limit: req.gas.unwrap_or(limits.gas_cap).min(limits.gas_cap),
        gas_price,
        kind: req.to.map_or(TxKind::Create, TxKind::Call),
        value: req.value.unwrap_or_default(),
        data: req.input.clone(),
        nonce,
        chain_id: Some(spec.chain_id),
        ..Default::default()
    };
    let mut cfg = cfg_env(spec.chain_id);
    // As geth: a call without a gas price is not held to the base fee.
    cfg.disable_base_fee = gas_price == 0;
    cfg.disable_nonce_check = true;
    let mut block = block_env(head, spec.fee_recipient);
    block.number = U256::from(head.number + 1);
    // As geth: the call's gas is bounded by the RPC gas cap, not by the block gas limit.
    block.gas_limit = block.gas_limit.max(limits.gas_cap);
    let mut evm = Context::mainnet()
        .with_db(WriteSet::new(state))
        .with_block(block)
        .with_cfg(cfg)
        .build_mainnet_with_inspector(Deadline { at: limits.deadline, steps: 0, timed_out: false })
        .with_precompiles(HvmPrecompiles::new(SPEC, btc.cloned()));
    let outcome = evm.inspect_one_tx(tx);
    if evm.inspector.timed_out {
        return Err(CallError::Timeout(started.elapsed()));
    }
    let result = match outcome {
        Ok(r) => r,
        Err(EVMError::Database(e)) => return Err(e.into()),
        Err(EVMError::Transaction(e)) => return Err(CallError::Invalid(e.to_string())),
        Err(e) => return Err(CallError::Invalid(e.to_string())),
    };
    let gas_used = result.tx_gas_used();
    Ok(match result {
        ExecutionResult::Success { output, .. } => CallOutcome::Success { output: output.into_data(), gas_used },
        ExecutionResult::Revert { output, .. } => CallOutcome::Revert { output, gas_used },
        ExecutionResult::Halt { reason, .. } => CallOutcome::Halt { reason: format!("{reason:?}"), gas_used },
    })
}

/// The smallest gas limit with which `req` succeeds (binary search, as geth does).
pub fn estimate_gas<S: StateSource>(
    spec: &ChainSpec,
    state: &S,
    head: &BlockHeader,
    req: &CallRequest,
    btc: Option<&BtcAt>,
    limits: CallLimits,
) -> Result<u64, CallError> {
    let cap = req.gas.unwrap_or(limits.gas_cap).min(limits.gas_cap);
    let mut probe = req.clone();
    probe.gas = Some(cap);
    let call = |p: &CallRequest| call(spec, state, head, p, btc, limits);
    match call(&probe)? {
        CallOutcome::Success { gas_used, .. } => {
            let mut lo = gas_used.saturating_sub(1).max(20_999);
            let mut hi = cap;
            // Refunds and the 63/64 rule mean gas_used may not be enough; search upward from it.
            probe.gas = Some(gas_used);
            if matches!(call(&probe)?, CallOutcome::Success { .. }) {
                return Ok(gas_used);
            }
            while lo + 1 < hi {
                let mid = lo + (hi - lo) / 2;
                probe.gas = Some(mid);
                if matches!(call(&probe)?, CallOutcome::Success { .. }) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            Ok(hi)
        }
        CallOutcome::Revert { output, .. } => Err(CallError::Invalid(format!(
            "execution reverted{}",
            super::call::revert_reason(&output).map(|r| format!(": {r}")).unwrap_or_default()
        ))),
        CallOutcome::Halt { reason, .. } => Err(CallError::Invalid(format!(
            "gas required exceeds allowance ({cap}) or always failing transaction: {reason}"
        ))),
    }
}

/// Decodes a Solidity `Error(string)` revert payload.
pub fn revert_reason(output: &[u8]) -> Option<String> {
    if output.len() < 68 || output[..4] != [0x08, 0xc3, 0x79, 0xa0] {
        return None;
    }
    let len = U256::from_be_slice(&output[36..68]);
    let len = usize::try_from(len).ok()?;
    let bytes = output.get(68..68usize.checked_add(len)?)?;
    String::from_utf8(bytes.to_vec()).ok()
}
