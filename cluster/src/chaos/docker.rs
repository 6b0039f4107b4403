//! The docker backend of `bss chaos` (`--backend docker`): every operator in a container of the
//! `bss` image (`bash cluster/docker/build.sh`) on a bridge network of the run's own, dialing its
//! peers by container name; the run directory (configs, keys, data) bind-mounted at /run.
//! Faults act on the containers: `docker kill`, `docker pause`, `docker network disconnect`
//! (partition), iptables in the container's network namespace from the host (one-way loss,
//! random packet loss, the 2|2 split) and `tc netem` there (delay; kernels without sch_netem refuse it up front).

use super::backend::{Cluster, Exit};
use eyre::{bail, Result, WrapErr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The operator port inside every container.
const P2P_PORT: u16 = 9545;
const RPC_PORT: u16 = 8545;

pub struct Containers {
    names: Vec<String>,
    network: String,
    rpc: Vec<String>,
    configs: Vec<PathBuf>,
    disconnected: Vec<bool>,
}

fn docker(args: &[&str]) -> Result<String> {
    let out = Command::new("docker").args(args).output().wrap_err("running docker")?;
    if !out.status.success() {
        bail!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs `cmd` in the network namespace of the container whose init has `pid`.
fn in_netns(pid: &str, cmd: &[&str]) -> Result<()> {
    let out = Command::new("nsenter").args(["-t", pid, "-n"]).args(cmd).output().wrap_err("running nsenter")?;
    if !out.status.success() {
        bail!("{} in a container's network namespace: {}", cmd.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Whether this kernel has the netem qdisc (`delay` needs it).
pub fn netem_available() -> bool {
    Command::new("unshare")
        .args(["-n", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Checks that docker answers and the image exists, before a run starts.
pub fn preflight(image: &str) -> Result<()> {
    docker(&["version", "--format", "{{.Server.Version}}"])
        .wrap_err("--backend docker needs a running docker engine")?;
    docker(&["image", "inspect", "--format", "{{.Id}}", image])
        .wrap_err_with(|| format!("no image {image}: build it with `bash cluster/docker/build.sh`"))?;
    Ok(())
}

fn names(tag: &str, nodes: usize) -> Vec<String> {
    (0..nodes).map(|i| format!("bss-chaos-{tag}-{i}")).collect()
}

fn network_name(tag: &str) -> String {
    format!("bss-chaos-{tag}")
}

/// Creates the run's network (removing the leftovers of a run cut short); returns the address
/// of the host on it (its gateway), where containers reach services the host runs.
pub fn create_network(tag: &str, nodes: usize) -> Result<std::net::IpAddr> {
    for n in names(tag, nodes) {
        let _ = docker(&["rm", "-f", &n]);
    }
    let network = network_name(tag);
    let _ = docker(&["network", "rm", &network]);
    docker(&["network", "create", &network])?;
    let gateway = docker(&["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", &network])?;
    gateway.parse().map_err(|e| eyre::eyre!("network {network}: gateway {gateway:?}: {e}"))
}

/// Rewrites a devnet config for a container: listen on all interfaces at the container ports,
/// dial peers by container name.
fn containerize(text: &str, names: &[String]) -> String {
    let peers: Vec<String> = names.iter().map(|n| format!("\"{n}:{P2P_PORT}\"")).collect();
    let mut out: Vec<String> = vec![];
    let mut section = String::new();
    for line in text.lines() {
        if line.starts_with('[') {
            section = line.to_string();
        }
        out.push(match (section.as_str(), line) {
            ("[operators]", l) if l.starts_with("addrs = [") => format!("addrs = [{}]", peers.join(", ")),
            ("[rpc]", l) if l.starts_with("addr = ") => format!("addr = \"0.0.0.0:{RPC_PORT}\""),
            ("[network]", l) if l.starts_with("listen = ") => format!("listen = \"0.0.0.0:{P2P_PORT}\""),
            (_, l) => l.to_string(),
        });
    }
    out.join("\n") + "\n"
}

impl Containers {
    /// Starts one container per config in `run_dir`; operator i's RPC is published on
    /// 127.0.0.1:(rpc_base + i).
    pub fn launch(image: &str, run_dir: &Path, configs: &[PathBuf], rpc_base: u16, tag: &str) -> Result<Self> {
        let names = names(tag, configs.len());
        let network = network_name(tag);
        if docker(&["network", "inspect", &network]).is_err() {
            create_network(tag, configs.len())?;
        }
        let run_dir = run_dir.canonicalize()?;
        let mut c = Containers {
            names: names.clone(),
            network,
            rpc: vec![],
            configs: configs.to_vec(),
            disconnected: vec![false; configs.len()],
        };
        for (i, path) in configs.iter().enumerate() {
            crate::write_secret(path, &containerize(&std::fs::read_to_string(path)?, &names))?;
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
            let port = rpc_base.saturating_add(i as u16);
            let started = docker(&[
                "run",
                "-d",
                "--name",
                &names[i],
                "--network",
                &c.network,
                "-p",
                &format!("127.0.0.1:{port}:{RPC_PORT}"),
                "-v",
                &format!("{}:/run", run_dir.display()),
                "-e",
                "RUST_LOG=info,fjall=warn,lsm_tree=warn",
                image,
                "node",
                "--config",
                &format!("/run/{file}"),
            ]);
            if let Err(e) = started {
                c.stop(); // the containers already started, and the network
                return Err(e);
            }
            c.rpc.push(format!("127.0.0.1:{port}"));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        for (i, addr) in c.rpc.iter().enumerate() {
            if !crate::devnet::wait_healthy(addr, deadline) {
                let logs = c.logs(i);
                c.stop();
                bail!("container {} did not come up:\n{logs}", names[i]);
            }
        }
        Ok(c)
    }

    /// The pid of the container's init; None while it is not running (a stopped container's
    /// namespace is gone, and with it every rule in it).
    fn pid(&self, i: usize) -> Result<Option<String>> {
        let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &self.names[i]])?;
        Ok((pid != "0" && !pid.is_empty()).then_some(pid))
    }

    fn ip(&self, i: usize) -> Result<String> {
        docker(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &self.names[i]])
    }

    fn logs(&self, i: usize) -> String {
        Command::new("docker")
            .args(["logs", &self.names[i]])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr))
            .unwrap_or_default()
    }

    fn iptables(&self, i: usize, rules: &[Vec<String>]) -> Result<()> {
        let Some(pid) = self.pid(i)? else { return Ok(()) };
        for r in rules {
            let args: Vec<&str> = std::iter::once("iptables").chain(r.iter().map(String::as_str)).collect();
            in_netns(&pid, &args)?;
        }
        Ok(())
    }

    fn half(&self, i: usize) -> bool {
        i < self.names.len() / 2
    }
}

fn rule(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

impl Cluster for Containers {
    fn rpc(&self) -> Vec<String> {
        self.rpc.clone()
    }
    fn config(&self, i: usize) -> PathBuf {
        self.configs[i].clone()
    }
    fn kill(&mut self, i: usize) {
        let _ = docker(&["kill", "-s", "KILL", &self.names[i]]);
    }
    fn restart(&mut self, i: usize) -> Result<()> {
        docker(&["restart", "-t", "10", &self.names[i]]).map(|_| ())
    }
    fn pause(&mut self, i: usize) {
        let _ = docker(&["pause", &self.names[i]]);
    }
    fn resume(&mut self, i: usize) {
        let _ = docker(&["unpause", &self.names[i]]);
    }
    fn isolate(&mut self, i: usize) -> Result<()> {
        docker(&["network", "disconnect", &self.network, &self.names[i]])?;
        self.disconnected[i] = true;
        Ok(())
    }
    fn drop_outbound(&mut self, i: usize) -> Result<()> {
        let port = P2P_PORT.to_string();
        self.iptables(
            i,
            &[
                rule(&["-A", "OUTPUT", "-p", "tcp", "--dport", &port, "-j", "DROP"]),
                rule(&["-A", "OUTPUT", "-p", "tcp", "--sport", &port, "-j", "DROP"]),
            ],
        )
    }
    fn delay(&mut self, i: usize, delay: Duration, jitter: Duration) -> Result<()> {
        let (d, j) = (format!("{}ms", delay.as_millis()), format!("{}ms", jitter.as_millis()));
        let Some(pid) = self.pid(i)? else { bail!("operator {i}'s container is not running") };
        in_netns(&pid, &["tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", &d, &j])
    }
    fn loss(&mut self, i: usize, permille: u64) -> Result<()> {
        // Real packet loss on the operator port, both ways; TCP retransmits.
        let (p, port) = (format!("{:.3}", permille as f64 / 1000.0), P2P_PORT.to_string());
        let mut rules = vec![];
        for chain in ["OUTPUT", "INPUT"] {
            for side in ["--dport", "--sport"] {
                rules.push(rule(&[
                    "-A",
                    chain,
                    "-p",
                    "tcp",
                    side,
                    &port,
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ]));
            }
        }
        self.iptables(i, &rules)
    }
    fn heal_links(&mut self, i: usize) -> Result<()> {
        if self.disconnected[i] {
            docker(&["network", "connect", &self.network, &self.names[i]])?;
            self.disconnected[i] = false;
        }
        let Some(pid) = self.pid(i)? else { return Ok(()) };
        in_netns(&pid, &["iptables", "-F"])?;
        // Nothing to delete when no delay was set.
        let _ = in_netns(&pid, &["tc", "qdisc", "del", "dev", "eth0", "root"]);
        Ok(())
    }
    fn split(&mut self, on: bool) -> Result<()> {
        let n = self.names.len();
        for i in 0..n {
            if !on {
                self.iptables(i, &[rule(&["-F"])])?;
                continue;
            }
            let mut rules = vec![];
            for j in (0..n).filter(|j| self.half(*j) != self.half(i)) {
                let ip = self.ip(j)?;
                if ip.is_empty() {
                    continue; // not running: it has no address to cut
                }
                rules.push(rule(&["-A", "OUTPUT", "-d", &ip, "-j", "DROP"]));
                rules.push(rule(&["-A", "INPUT", "-s", &ip, "-j", "DROP"]));
            }
            self.iptables(i, &rules)?;
        }
        Ok(())
    }
    fn exited(&mut self, i: usize) -> Option<Exit> {
        let state = docker(&["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", &self.names[i]]).ok()?;
        let (running, code) = state.split_once(' ')?;
        (running == "false").then(|| Exit { code: code.parse().ok(), log: self.logs(i) })
    }
    fn stop(&mut self) {
        for n in &self.names {
            let _ = docker(&["unpause", n]);
            let _ = docker(&["kill", "-s", "INT", n]);
        }
        for n in &self.names {
            let _ = docker(&["stop", "-t", "10", n]);
        }
        // Keep each operator's log beside its data for after the run.
        for (i, n) in self.names.iter().enumerate() {
            if let Some(dir) = self.configs[i].parent() {
                let _ = std::fs::write(dir.join(format!("node{i}.log")), self.logs(i));
            }
            let _ = docker(&["rm", "-f", n]);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn configs_listen_on_container_ports_and_dial_peers_by_name() {
        let text = "data_dir = \"node0\"\n[operators]\nkeys = [\"a\"]\naddrs = [\"127.0.0.1:20545\", \"127.0.0.1:20546\"]\n\n[rpc]\naddr = \"127.0.0.1:19545\"\n\n[network]\nlisten = \"127.0.0.1:20545\"\n\n[btc]\nrpc_url = \"x\"\n";
        let names = vec!["c-0".to_string(), "c-1".to_string()];
        let out = super::containerize(text, &names);
        assert!(out.contains("addrs = [\"c-0:9545\", \"c-1:9545\"]"), "{out}");
        assert!(out.contains("addr = \"0.0.0.0:8545\"") && out.contains("listen = \"0.0.0.0:9545\""), "{out}");
        assert!(out.contains("data_dir = \"node0\"") && out.contains("rpc_url = \"x\""), "{out}");
    }
}
