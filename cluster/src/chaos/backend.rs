//! What a chaos run does to a federation, whatever runs it: operator processes on loopback with
//! link faults through the harness's TCP proxies (`process`), or containers on a docker network
//! with link faults in each container's network namespace (`docker`).

use super::links::{Links, Mode};
use crate::devnet::LocalFederation;
use eyre::Result;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// How an operator that stopped by itself ended: its exit code and its log.
pub struct Exit {
    pub code: Option<i32>,
    pub log: String,
}

pub trait Cluster {
    /// Every operator's JSON-RPC address, as the harness reaches it.
    fn rpc(&self) -> Vec<String>;
    /// Operator `i`'s config file (rewritten to restart it Byzantine, or honest again).
    fn config(&self, i: usize) -> PathBuf;
    /// SIGKILL.
    fn kill(&mut self, i: usize);
    /// Starts operator `i` again (stopping it first if it runs), with its config as it is now.
    fn restart(&mut self, i: usize) -> Result<()>;
    fn pause(&mut self, i: usize);
    fn resume(&mut self, i: usize);
    /// Operator `i` cut off from every other operator, both ways.
    fn isolate(&mut self, i: usize) -> Result<()>;
    /// What operator `i` sends to the others is dropped.
    fn drop_outbound(&mut self, i: usize) -> Result<()>;
    /// Operator `i`'s links slowed, both ways.
    fn delay(&mut self, i: usize, delay: Duration, jitter: Duration) -> Result<()>;
    /// `permille` ‰ of what operator `i` sends and receives lost.
    fn loss(&mut self, i: usize, permille: u64) -> Result<()>;
    /// Undoes `isolate`, `drop_outbound`, `delay` and `loss` for operator `i`.
    fn heal_links(&mut self, i: usize) -> Result<()>;
    /// The federation cut in two halves (`on`), or whole again.
    fn split(&mut self, on: bool) -> Result<()>;
    /// `Some` once operator `i` has stopped by itself.
    fn exited(&mut self, i: usize) -> Option<Exit>;
    /// Stops every operator (gracefully, then for good).
    fn stop(&mut self);
}

/// Operator processes on loopback; link faults through [`Links`].
pub struct Processes {
    pub fed: LocalFederation,
    pub links: Option<Links>,
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

impl Processes {
    fn links(&self) -> Result<&Links> {
        self.links.as_ref().ok_or_else(|| eyre::eyre!("link faults need the link proxies"))
    }
}

impl Cluster for Processes {
    fn rpc(&self) -> Vec<String> {
        self.fed.rpc.clone()
    }
    fn config(&self, i: usize) -> PathBuf {
        self.fed.configs[i].clone()
    }
    fn kill(&mut self, i: usize) {
        signal(self.fed.children[i].id(), "-KILL");
    }
    fn restart(&mut self, i: usize) -> Result<()> {
        self.fed.restart(i)
    }
    fn pause(&mut self, i: usize) {
        signal(self.fed.children[i].id(), "-STOP");
    }
    fn resume(&mut self, i: usize) {
        signal(self.fed.children[i].id(), "-CONT");
    }
    fn isolate(&mut self, i: usize) -> Result<()> {
        let l = self.links()?;
        for j in (0..self.fed.rpc.len()).filter(|j| *j != i) {
            l.set(i, j, Mode::Cut);
            l.set(j, i, Mode::Cut);
        }
        Ok(())
    }
    fn drop_outbound(&mut self, i: usize) -> Result<()> {
        let l = self.links()?;
        for j in (0..self.fed.rpc.len()).filter(|j| *j != i) {
            l.set(i, j, Mode::Drop);
        }
        Ok(())
    }
    fn delay(&mut self, i: usize, delay: Duration, jitter: Duration) -> Result<()> {
        let l = self.links()?;
        for j in (0..self.fed.rpc.len()).filter(|j| *j != i) {
            l.delay(i, j, delay, jitter);
            l.delay(j, i, delay, jitter);
        }
        Ok(())
    }
    fn loss(&mut self, i: usize, permille: u64) -> Result<()> {
        let l = self.links()?;
        for j in (0..self.fed.rpc.len()).filter(|j| *j != i) {
            l.loss(i, j, permille);
            l.loss(j, i, permille);
        }
        Ok(())
    }
    fn heal_links(&mut self, i: usize) -> Result<()> {
        self.links()?.heal(i);
        Ok(())
    }
    fn split(&mut self, on: bool) -> Result<()> {
        self.links()?.split(if on { Mode::Cut } else { Mode::Pass });
        Ok(())
    }
    fn exited(&mut self, i: usize) -> Option<Exit> {
        let status = self.fed.children[i].try_wait().ok()??;
        Some(Exit { code: status.code(), log: std::fs::read_to_string(&self.fed.logs[i]).unwrap_or_default() })
    }
    fn stop(&mut self) {
        self.fed.stop();
    }
}
