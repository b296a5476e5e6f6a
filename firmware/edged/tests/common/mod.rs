//! Helpers shared by edged's integration tests: start the real binary with a config on
//! loopback addresses of its own, and speak the admin API over the Unix socket.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const EDGED: &str = env!("CARGO_BIN_EXE_edged");

/// The embedded default moved onto loopback addresses unique to one test (127.0.N.1
/// external, 127.0.N.2 internal), so tests run in parallel without port clashes.
pub fn config_for(n: u8) -> String {
    let text = edged_config::EMBEDDED_DEFAULT
        .replace(
            "address = \"127.0.0.1\"",
            &format!("address = \"127.0.{n}.1\""),
        )
        .replace(
            "address = \"127.0.0.2\"",
            &format!("address = \"127.0.{n}.2\""),
        )
        .replace("\"127.0.0.2:15060\"", &format!("\"127.0.{n}.2:15060\""));
    // Keep the demo's self-signed certificate valid for the test's addresses too.
    text.replace(
        "sans = [\"localhost\", \"edge.localhost\", \"127.0.0.1\", \"127.0.0.2\"]",
        &format!("sans = [\"localhost\", \"edge.localhost\", \"127.0.{n}.1\", \"127.0.{n}.2\"]"),
    )
}

/// A config with every role and the metrics endpoint off: the daemon, store and admin API only.
pub fn bare_config() -> String {
    let mut c = edged_config::Config::embedded_default();
    c.access_edge.enabled = false;
    c.webconf_edge.enabled = false;
    c.av_edge.enabled = false;
    c.av_auth.enabled = false;
    c.metrics.enabled = false;
    c.to_toml()
}

pub struct Edged {
    pub child: Child,
    pub dir: PathBuf,
    pub socket: PathBuf,
}

impl Edged {
    /// Starts edged on `dir` (store and admin socket inside), with `config` if given.
    pub fn start(dir: &Path, config: Option<&Path>) -> Edged {
        Edged::start_with_socket(dir, &dir.join("admin.sock"), config)
    }

    /// Starts edged on `dir` with its admin socket at `socket`.
    pub fn start_with_socket(dir: &Path, socket: &Path, config: Option<&Path>) -> Edged {
        let socket = socket.to_owned();
        let mut cmd = Command::new(EDGED);
        cmd.arg("--data-dir")
            .arg(dir)
            .arg("--admin-socket")
            .arg(&socket)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let child = cmd.spawn().expect("spawn edged");
        Edged {
            child,
            dir: dir.to_owned(),
            socket,
        }
    }

    /// Waits until the admin API answers (edged is up), or panics with edged's stderr.
    pub fn wait_ready(&mut self, within: Duration) {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("edged exited early with {status}: {err}");
            }
            if let Ok((200, _)) = request(&self.socket, "GET", "/api/v1/status", None) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("edged did not become ready within {within:?}");
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig)
            .expect("signal edged");
    }

    /// Waits for exit, returning the exit code (None if killed by a signal).
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        panic!("edged did not exit within {within:?}");
    }
}

impl Drop for Edged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP request over the admin socket; returns status and JSON body.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> std::io::Result<(u16, serde_json::Value)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: edged\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

pub fn set(socket: &Path, key: &str, value: &str) -> std::io::Result<(u16, serde_json::Value)> {
    request(
        socket,
        "PATCH",
        "/api/v1/config",
        Some(&serde_json::json!({"key": key, "value": value})),
    )
}

/// Path of edgectl, built beside edged by `cargo build --workspace` (make test does that).
pub fn edgectl() -> PathBuf {
    let p = Path::new(EDGED).with_file_name("edgectl");
    assert!(
        p.exists(),
        "edgectl is not built at {}: run `cargo build --workspace` first",
        p.display()
    );
    p
}
