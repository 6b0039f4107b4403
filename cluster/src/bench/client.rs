//! A small keep-alive HTTP/1.1 JSON-RPC client: the load generator must not pay a TCP
//! handshake per request, and must not pull a TLS stack into the build.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct RpcClient {
    addr: String,
    conn: Option<BufReader<TcpStream>>,
}

impl RpcClient {
    pub fn new(addr: &str) -> Self {
        Self { addr: addr.trim_start_matches("http://").trim_end_matches('/').to_string(), conn: None }
    }

    fn connect(&mut self) -> std::io::Result<&mut BufReader<TcpStream>> {
        if self.conn.is_none() {
            let s = TcpStream::connect(&self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
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

    /// Sends a raw JSON body; reconnects once if the kept-alive connection went away.
    pub fn post(&mut self, body: &str) -> std::io::Result<String> {
        match self.roundtrip(body) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.conn = None;
                self.roundtrip(body)
            }
        }
    }

    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let text = self.post(&body).map_err(|e| format!("{}: {e}", self.addr))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("bad response: {e}"))?;
        match v.get("error") {
            Some(e) => Err(e["message"].as_str().unwrap_or("error").to_string()),
            None => Ok(v["result"].clone()),
        }
    }
}

pub fn hex_u64(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}
