//! Operator links through TCP proxies the chaos harness controls (the process backend: no root
//! needed). Operator i dials operator j at the proxy of the ordered pair (i, j), which forwards
//! to j's operator port. Per direction the harness can cut the link (connections are closed and
//! new ones refused), drop what i sends while keeping the connection (one-way loss: the peer
//! hears nothing, and the encrypted stream is broken once the link heals, so it redials), or
//! delay every chunk by a fixed time plus jitter, in order.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// What one direction of a link does to the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Pass = 0,
    /// Connections closed, new ones refused.
    Cut = 1,
    /// Bytes read and dropped; the connection stays up.
    Drop = 2,
}

/// The state of the link i → j (bytes i sends to j).
#[derive(Default)]
struct Direction {
    mode: AtomicU8,
    delay_ms: AtomicU64,
    jitter_ms: AtomicU64,
    /// Per thousand chunks, how many are lost and retransmitted (see [`Links::loss`]).
    loss_permille: AtomicU64,
    /// Bumped on every cut: pumps of older connections stop.
    epoch: AtomicU64,
}

/// Every ordered pair's proxy and its controls.
pub struct Links {
    n: usize,
    /// `addrs[i][j]`: where operator i dials operator j.
    pub addrs: Vec<Vec<SocketAddr>>,
    dirs: Vec<Arc<Direction>>,
    stop: Arc<AtomicBool>,
}

impl Links {
    /// Starts a proxy for every ordered pair of `targets` (each operator's listen address).
    pub fn start(targets: &[SocketAddr]) -> std::io::Result<Self> {
        let n = targets.len();
        let dirs: Vec<Arc<Direction>> = (0..n * n).map(|_| Arc::new(Direction::default())).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let mut addrs = vec![vec![]; n];
        for i in 0..n {
            for (j, target) in targets.iter().enumerate() {
                let listener = TcpListener::bind("127.0.0.1:0")?;
                addrs[i].push(listener.local_addr()?);
                if i == j {
                    continue;
                }
                let (to_j, to_i) = (dirs[i * n + j].clone(), dirs[j * n + i].clone());
                let (target, stop) = (*target, stop.clone());
                listener.set_nonblocking(true)?;
                std::thread::Builder::new()
                    .name(format!("link-{i}-{j}"))
                    .spawn(move || accept(listener, target, to_j, to_i, stop))?;
            }
        }
        Ok(Self { n, addrs, dirs, stop })
    }

    fn dir(&self, from: usize, to: usize) -> &Direction {
        &self.dirs[from * self.n + to]
    }

    /// Sets what happens to the bytes `from` sends to `to`.
    pub fn set(&self, from: usize, to: usize, mode: Mode) {
        let d = self.dir(from, to);
        d.mode.store(mode as u8, Ordering::SeqCst);
        if mode == Mode::Cut {
            d.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn delay(&self, from: usize, to: usize, delay: Duration, jitter: Duration) {
        let d = self.dir(from, to);
        d.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
        d.jitter_ms.store(jitter.as_millis() as u64, Ordering::SeqCst);
    }

    /// Loses `permille` ‰ of what `from` sends to `to`, as TCP sees loss: a lost segment
    /// arrives after a retransmission timeout (200 ms, doubling while the retransmission is lost
    /// too), and everything behind it waits, in order. (A proxy of a byte stream cannot drop
    /// bytes without breaking the stream; the operators' TCP would retransmit them.)
    pub fn loss(&self, from: usize, to: usize, permille: u64) {
        self.dir(from, to).loss_permille.store(permille.min(900), Ordering::SeqCst);
    }

    /// Sets every link between the two halves {0..n/2} and {n/2..n}, both ways (a split).
    pub fn split(&self, mode: Mode) {
        for a in 0..self.n {
            for b in (0..self.n).filter(|b| (a < self.n / 2) != (*b < self.n / 2)) {
                self.set(a, b, mode);
            }
        }
    }

    /// Heals every link of operator `i`, both ways.
    pub fn heal(&self, i: usize) {
        for j in 0..self.n {
            for (a, b) in [(i, j), (j, i)] {
                self.set(a, b, Mode::Pass);
                self.delay(a, b, Duration::ZERO, Duration::ZERO);
                self.loss(a, b, 0);
            }
        }
    }
}

/// One proxy in front of one service (the Bitcoin node's RPC), whose replies can be slowed.
pub struct Proxy {
    pub addr: SocketAddr,
    requests: Arc<Direction>,
    replies: Arc<Direction>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> std::io::Result<Self> {
        Self::start_on([127, 0, 0, 1].into(), target)
    }

    /// A proxy listening on `ip` (the docker backend's containers reach the host at its
    /// address on their network).
    pub fn start_on(ip: std::net::IpAddr, target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let (requests, replies) = (Arc::new(Direction::default()), Arc::new(Direction::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rq, rp, st) = (requests.clone(), replies.clone(), stop.clone());
        std::thread::Builder::new().name("proxy".into()).spawn(move || accept(listener, target, rq, rp, st))?;
        Ok(Self { addr, requests, replies, stop })
    }

    /// Every reply waits `delay` (zero: none).
    pub fn slow(&self, delay: Duration) {
        self.replies.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
        self.requests.delay_ms.store(0, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn mode(d: &Direction) -> Mode {
    match d.mode.load(Ordering::SeqCst) {
        1 => Mode::Cut,
        2 => Mode::Drop,
        _ => Mode::Pass,
    }
}

fn accept(
    listener: TcpListener,
    target: SocketAddr,
    to_j: Arc<Direction>,
    to_i: Arc<Direction>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                if mode(&to_j) == Mode::Cut || mode(&to_i) == Mode::Cut {
                    let _ = conn.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
                    let _ = conn.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                for (a, b, d, other) in [
                    (conn.try_clone(), upstream.try_clone(), to_j.clone(), to_i.clone()),
                    (upstream.try_clone(), conn.try_clone(), to_i.clone(), to_j.clone()),
                ] {
                    let (Ok(a), Ok(b)) = (a, b) else { continue };
                    let stop = stop.clone();
                    let _ =
                        std::thread::Builder::new().name("link-pump".into()).spawn(move || pump(a, b, d, other, stop));
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Copies `from` → `to` under `d`'s rules, until either side closes or the link is cut.
fn pump(mut from: TcpStream, to: TcpStream, d: Arc<Direction>, other: Arc<Direction>, stop: Arc<AtomicBool>) {
    let epochs = (d.epoch.load(Ordering::SeqCst), other.epoch.load(Ordering::SeqCst));
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    // Delayed chunks go through a queue to a writer, so that delay never reorders bytes.
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = {
        let mut to = match to.try_clone() {
            Ok(t) => t,
            Err(_) => return,
        };
        std::thread::spawn(move || {
            for (at, chunk) in rx {
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                if to.write_all(&chunk).is_err() {
                    return;
                }
            }
        })
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = Instant::now();
    let mut seed = (Instant::now().elapsed().as_nanos() as u64) | 1;
    loop {
        let cut = d.epoch.load(Ordering::SeqCst) != epochs.0 || other.epoch.load(Ordering::SeqCst) != epochs.1;
        if stop.load(Ordering::SeqCst) || cut {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        match mode(&d) {
            Mode::Cut => break,
            Mode::Drop => continue,
            Mode::Pass => {}
        }
        let delay = d.delay_ms.load(Ordering::SeqCst);
        let jitter = d.jitter_ms.load(Ordering::SeqCst);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut extra = if jitter > 0 { seed % (jitter + 1) } else { 0 };
        let loss = d.loss_permille.load(Ordering::SeqCst);
        let mut rto = 200;
        for _ in 0..6 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if seed % 1000 >= loss {
                break;
            }
            extra += rto;
            rto *= 2;
        }
        let at = (Instant::now() + Duration::from_millis(delay + extra)).max(last);
        last = at;
        if tx.send((at, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    let _ = writer.join();
}
