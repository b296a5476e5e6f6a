//! A minimal HTTP/1.1 client over the admin Unix socket: one request per connection,
//! JSON in and out. Small enough to read in one sitting, and it keeps edgectl free of an
//! async runtime.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use edged_admin_api::{Actor, ApiError, ACTOR_HEADER};
use serde::{de::DeserializeOwned, Serialize};

#[derive(Debug)]
pub enum ClientError {
    /// edged is not reachable.
    Connect(String),
    /// edged answered with an error.
    Api(ApiError),
    /// The answer was not understood.
    Protocol(String),
    /// A local problem (file, argument).
    Local(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(m) | ClientError::Protocol(m) | ClientError::Local(m) => {
                f.write_str(m)
            }
            ClientError::Api(e) if e.problems.is_empty() => f.write_str(&e.error),
            // One line even with several problems: each is "key: reason".
            ClientError::Api(e) => write!(
                f,
                "{}",
                e.problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }
}

pub struct Client {
    socket: PathBuf,
}

/// Percent-encodes a query or path component.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.request("GET", path, None)
    }

    pub fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Local(e.to_string()))?;
        self.request(method, path, Some(&body))
    }

    fn request<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<T, ClientError> {
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| {
            ClientError::Connect(format!(
                "cannot reach edged at {}: {e} (is edged running? --socket or EDGED_ADMIN_SOCKET choose the socket)",
                self.socket.display()
            ))
        })?;
        // Reloads generate certificates and fsync the store; allow for that, not forever.
        let timeout = Some(Duration::from_secs(60));
        let _ = stream.set_read_timeout(timeout);
        let _ = stream.set_write_timeout(timeout);
        let body = body.unwrap_or_default();
        // edgectl names itself so the audit log records its changes as edgectl's.
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: edged\r\nConnection: close\r\nAccept: application/json\r\n{ACTOR_HEADER}: {}\r\n",
            Actor::Edgectl
        );
        if method != "GET" {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        // One write for head and body: edged may answer (and close) as soon as it has the
        // head when the endpoint takes no body, and a second write would then meet a closed
        // socket although the answer is already waiting to be read.
        let mut message = req.into_bytes();
        message.extend_from_slice(body);
        let io = |e: std::io::Error| ClientError::Protocol(format!("admin API I/O: {e}"));
        match stream.write_all(&message) {
            Ok(()) => {}
            // The answer may still be in the socket; read it before giving up.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => return Err(io(e)),
        }
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(io)?;
        if raw.is_empty() {
            return Err(ClientError::Protocol(
                "admin API I/O: edged closed the connection without an answer".into(),
            ));
        }
        let (status, body) = parse_response(&raw)?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&body)
                .map_err(|e| ClientError::Protocol(format!("unexpected answer from edged: {e}")))
        } else {
            match serde_json::from_slice::<ApiError>(&body) {
                Ok(e) => Err(ClientError::Api(e)),
                Err(_) => Err(ClientError::Protocol(format!(
                    "edged answered HTTP {status}: {}",
                    String::from_utf8_lossy(&body).trim()
                ))),
            }
        }
    }
}

/// Splits a complete HTTP/1.1 response into status and body (Content-Length, chunked,
/// or until close).
pub fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), ClientError> {
    let bad = |m: &str| ClientError::Protocol(format!("malformed answer from edged: {m}"));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not text"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty"))?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = v.parse::<usize>().ok();
            }
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest).ok_or_else(|| bad("broken chunked body"))?
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or_else(|| bad("body shorter than Content-Length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked() {
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"{}"[..]));
        let (s, b) =
            parse_response(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\"}\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!((s, b.as_slice()), (400, &b"{\"a\"}"[..]));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn encodes_components() {
        assert_eq!(encode("a.b c/d"), "a.b%20c%2Fd");
    }
}
