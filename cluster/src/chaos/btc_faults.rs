//! Bitcoin faults of `bss chaos --tunnel`, against the embedded regtest the run starts:
//! `btc_reorg` (the last 1–[`LAG`] blocks invalidated, within the operators' lag; the regtest
//! keeps mining on the new branch), `btc_deep_reorg` (the last `LAG`+1 to [`DEEP_REORG`] blocks:
//! certified L2 blocks' Bitcoin tips are orphaned, and every replica must still execute them),
//! `btc_down` (the regtest stopped, then started again on its data dir) and `btc_slow` (every
//! RPC reply delayed 1–3 s through the proxy the operators reach it by). Recovery: from the heal
//! until every operator's L2 Bitcoin view is at least at the regtest's best − lag and on its
//! best chain. A deep reorg stays above the deposits' depth (lag + 6 confirmations), so no
//! minted deposit is orphaned.

use super::links::Proxy;
use crate::bench::client::RpcClient;
use crate::btc_url::BtcUrl;
use crate::devnet::{DevnetArgs, DevnetBitcoin};
use bitcoincore_rpc::RpcApi;
use eyre::Result;
use serde_json::json;
use std::str::FromStr;
use std::time::Duration;

/// The operators' `confirmations_lag` in a run, and the deepest reorg `btc_reorg` makes.
pub const LAG: u64 = 2;
/// The deepest reorg `btc_deep_reorg` makes (below the deposits' depth, `LAG` + 6).
pub const DEEP_REORG: u64 = LAG + 4;

/// The run's Bitcoin node and the handles its faults need.
pub struct BtcHarness {
    pub dev: DevnetArgs,
    pub node: Option<DevnetBitcoin>,
    pub proxy: Proxy,
    /// Straight to the regtest (not through the proxy).
    pub url: String,
}

impl BtcHarness {
    fn client(&self) -> Result<bitcoincore_rpc::Client> {
        BtcUrl::parse(&self.url)?.client()
    }

    /// Invalidates the block `depth` below the tip (and so everything above it).
    pub fn reorg(&self, depth: u64) -> Result<u64> {
        let c = self.client()?;
        let best = c.get_block_count()?;
        let at = best.saturating_sub(depth.min(DEEP_REORG).saturating_sub(1)).max(1);
        c.invalidate_block(&c.get_block_hash(at)?)?;
        Ok(best + 1 - at)
    }

    pub fn down(&mut self) {
        if let Some(mut n) = self.node.take() {
            n.stop();
        }
    }

    pub fn up(&mut self) -> Result<()> {
        if self.node.is_none() {
            self.node = Some(DevnetBitcoin::start(&self.dev)?);
        }
        Ok(())
    }

    /// The height every operator's view must reach to count as recovered (best − lag).
    pub fn target(&self) -> Option<u64> {
        self.client().ok()?.get_block_count().ok().map(|b| b.saturating_sub(LAG))
    }

    /// This operator's L2 Bitcoin tip is at least `target` and on the regtest's best chain.
    pub fn caught_up(&self, operator: &mut RpcClient, target: u64) -> bool {
        let Ok(c) = self.client() else { return false };
        let Ok(tip) = operator.call("bss_btcTip", json!([])) else { return false };
        let (Some(h), Some(hash)) = (tip["height"].as_u64(), tip["hash"].as_str()) else { return false };
        let Ok(hash) = bitcoin::BlockHash::from_str(hash) else { return false };
        h >= target && c.get_block_hash(h).is_ok_and(|best| best == hash)
    }
}

/// How long a `btc_slow` fault delays each reply.
pub fn slow_delay(pick: u64) -> Duration {
    Duration::from_millis(1_000 + pick % 2_000)
}
