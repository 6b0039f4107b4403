//! A small keep-alive HTTP/1.1 JSON-RPC client: the load generator must not pay a TCP
//! handshake per request, and must not pull a TLS stack into the build.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct RpcClient {
    addr: String,
    conn: Option<BufReader<TcpStream>>,
    timeout: Duration,
    next_id: u64,
}

impl RpcClient {
    pub fn new(addr: &str) -> Self {
        Self::with_timeout(addr, Duration::from_secs(30))
    }

    /// A client whose reads give up after `timeout` (a paused server must not hold a poller).
    pub fn with_timeout(addr: &str, timeout: Duration) -> Self {
        let addr = addr.trim_start_matches("http://").trim_end_matches('/').to_string();
        Self { addr, conn: None, timeout, next_id: 1 }
    }

    fn connect(&mut self) -> std::io::Result<&mut BufReader<TcpStream>> {
        if self.conn.is_none() {
            let s = TcpStream::connect(&self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(self.timeout))?;
            self.conn = Some(BufReader::new(s));
        }
        self.conn.as_mut().ok_or_else(|| std::io::Error::other("not connected"))
    }

    fn roundtrip(&mut self, body: &str) -> std::io::Result<String> {
        let addr = self.addr.clone();
        let conn = self.connect()?;
        let req = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        let mut length = None;
        loop {
            line.clear();
            if conn.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                }
            }
        }
        let len = length.ok_or_else(|| std::io::Error::other("response without content-length"))?;
        let mut buf = vec![0u8; len];
        conn.read_exact(&mut buf)?;
        String::from_utf8(buf).map_err(std::io::Error::other)
    }

    /// Sends a raw JSON body; reconnects once if the kept-alive connection went away. A
    /// connection that failed mid-exchange is dropped, never reused: its late answer would
    /// otherwise be read as the answer to the next request (found by `bss chaos`: a paused
    /// operator's late replies shifted every later answer by one).
    pub fn post(&mut self, body: &str) -> std::io::Result<String> {
        match self.roundtrip(body) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.conn = None;
                let r = self.roundtrip(body);
                if r.is_err() {
                    self.conn = None;
                }
                r
            }
        }
    }

    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let text = self.post(&body).map_err(|e| format!("{}: {e}", self.addr))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("bad response: {e}"))?;
        if v.get("id") != Some(&json!(id)) {
            self.conn = None;
            return Err(format!("{}: answer for request {} to request {id}", self.addr, v["id"]));
        }
        match v.get("error") {
            Some(e) => Err(e["message"].as_str().unwrap_or("error").to_string()),
            None => Ok(v["result"].clone()),
        }
    }
}

pub fn hex_u64(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn respond(stream: &mut TcpStream, body: &str) {
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut len = 0;
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("read");
            if line.trim_end().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
        }
        let mut req = vec![0u8; len];
        reader.read_exact(&mut req).expect("body");
        let id: Value = serde_json::from_slice::<Value>(&req).expect("json")["id"].clone();
        let answer = json!({"jsonrpc": "2.0", "id": id, "result": body}).to_string();
        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}", answer.len());
    }

    /// A server that answers the first request late, after the client gave up: the client's
    /// next call must get its own answer, not the late one.
    #[test]
    fn a_late_answer_is_never_taken_for_the_next_one() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let server = std::thread::spawn(move || {
            let mut handlers = vec![];
            for (i, s) in listener.incoming().take(3).enumerate() {
                let mut s = s.expect("accept");
                handlers.push(std::thread::spawn(move || {
                    if i < 2 {
                        // Both tries of the first call: answered after the client's deadline.
                        std::thread::sleep(Duration::from_millis(200));
                        respond(&mut s, "late");
                    } else {
                        respond(&mut s, "fresh");
                    }
                }));
            }
            handlers.into_iter().for_each(|h| h.join().expect("handler"));
        });
        let mut c = RpcClient::with_timeout(&addr, Duration::from_millis(150));
        assert!(c.call("eth_blockNumber", json!([])).is_err(), "the first call times out");
        assert_eq!(c.call("eth_blockNumber", json!([])), Ok(json!("fresh")));
        server.join().expect("server");
    }
}
