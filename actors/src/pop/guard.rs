//! The fork guard: blocks that conflict with a superfinal keystone are refused, whoever signed
//! them. Checked on every commit, on every batch of synced blocks and headers, and against the
//! stored chain whenever the Bitcoin view moves (which covers a restart).

use super::finality::FinalityView;
use crate::btc::BtcLink;
use bss_consensus::BlockHeader;

#[derive(Clone, Debug)]
pub struct ForkGuard {
    pub link: BtcLink,
    pub chain_id: u64,
    pub superfinality_confirmations: u64,
}

impl ForkGuard {
    fn view(&self) -> FinalityView {
        FinalityView::compute(&self.link.view.current(), self.chain_id, self.superfinality_confirmations, |_| None)
    }

    /// The first header of `headers` that conflicts with a superfinal keystone, and why.
    pub fn check(&self, headers: &[&BlockHeader]) -> Result<(), String> {
        let f = self.view();
        if f.pins.is_empty() {
            return Ok(());
        }
        match headers.iter().find_map(|h| f.conflict(h)) {
            Some(why) => {
                metrics::counter!("bss_fork_guard_refusals_total").increment(1);
                Err(why)
            }
            None => Ok(()),
        }
    }

    /// Checks the stored chain: `stored(n)` is the committed header at `n`.
    pub fn check_stored(&self, head: u64, stored: impl Fn(u64) -> Option<BlockHeader>) -> Result<(), String> {
        let f = self.view();
        for n in f.pins.keys().filter(|n| **n <= head) {
            if let Some(h) = stored(*n) {
                if let Some(why) = f.conflict(&h) {
                    metrics::counter!("bss_fork_guard_refusals_total").increment(1);
                    return Err(format!("the stored chain conflicts with Bitcoin: {why}"));
                }
            }
        }
        Ok(())
    }
}
