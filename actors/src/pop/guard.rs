//! The fork guard: blocks that conflict with a superfinal keystone are refused, whoever signed
//! them. Checked on every commit, on every batch of synced blocks and headers, and against the
//! stored chain whenever the Bitcoin view moves (which covers a restart).
//!
//! Conflicting keystone certificates in Bitcoin (a quorum of operators signed two hashes for
//! one number) stop the chain the same way: no honest node can tell which fork to follow, and
//! the evidence is exposed (`bss_keystoneEvidence`, `bss_pop_conflicting_certificates`).
//!
//! The pins are derived from the Bitcoin view; they are recomputed only when the watcher
//! publishes a new view, not on every commit.

use super::finality::FinalityView;
use crate::btc::{BtcIndex, BtcLink};
use bss_consensus::BlockHeader;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct ForkGuard {
    pub link: BtcLink,
    pub superfinality_confirmations: u64,
    /// The view the pins were computed from, and the pins.
    pins: Option<(Arc<BtcIndex>, FinalityView)>,
    /// The view the stored chain was last checked against.
    stored_checked: Option<Arc<BtcIndex>>,
}

impl ForkGuard {
    pub fn new(link: BtcLink, superfinality_confirmations: u64) -> Self {
        Self { link, superfinality_confirmations, pins: None, stored_checked: None }
    }

    /// The pins of the current view (recomputed when the view changed).
    fn pins(&mut self) -> &FinalityView {
        let view = self.link.view.current();
        let fresh = match self.pins.take() {
            Some((v, f)) if Arc::ptr_eq(&v, &view) => (v, f),
            _ => {
                let f = FinalityView::compute(&view, &self.link.keystones, self.superfinality_confirmations, |_| None);
                (view, f)
            }
        };
        &self.pins.insert(fresh).1
    }

    /// The first header of `headers` that conflicts with a superfinal keystone, and why.
    pub fn check(&mut self, headers: &[&BlockHeader]) -> Result<(), String> {
        let f = self.pins();
        evidence(f)?;
        match headers.iter().find_map(|h| f.conflict(h)) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Checks the stored chain (`stored(n)` is the committed header at `n`) once per Bitcoin
    /// view: blocks committed since were checked one by one as they were committed.
    pub fn check_stored(&mut self, head: u64, stored: impl Fn(u64) -> Option<BlockHeader>) -> Result<(), String> {
        let view = self.link.view.current();
        if self.stored_checked.as_ref().is_some_and(|v| Arc::ptr_eq(v, &view)) {
            return Ok(());
        }
        self.stored_checked = Some(view);
        let f = self.pins();
        evidence(f)?;
        match f.pins.range(..=head).filter_map(|(n, _)| stored(*n)).find_map(|h| f.conflict(&h)) {
            Some(why) => Err(format!("the stored chain conflicts with Bitcoin: {why}")),
            None => Ok(()),
        }
    }
}

/// The evidence of a compromised quorum in the view, as the reason to stop.
fn evidence(f: &FinalityView) -> Result<(), String> {
    match f.evidence.first() {
        Some(e) => Err(format!("conflicting keystone certificates in Bitcoin: {}", e.describe())),
        None => Ok(()),
    }
}
