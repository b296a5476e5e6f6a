//! SIPp (from Debian's `sip-tester`, which has no TLS: `stunnel4` adds it on both ends) as a
//! remote user's client through the edge to a SIPp server playing the Director.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use edged_role::Role;
use tokio::process::{Child, Command};

/// SIPp and stunnel, or the test is skipped (failed under `EDGED_REQUIRE_TOOLS=1`).
fn tools_present() -> bool {
    edged_test_tools::require(&["sipp", "stunnel4"], "sip-tester stunnel4")
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// Kills the programs this test started (by their own handle) when it ends.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.start_kill();
        }
    }
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

fn stunnel(dir: &Path, name: &str, body: &str) -> Child {
    let conf = dir.join(format!("{name}.conf"));
    let text = format!(
        "foreground = yes\npid =\ndebug = 3\noutput = {}\n{body}",
        dir.join(format!("{name}.log")).display()
    );
    std::fs::write(&conf, text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    Command::new("stunnel4")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("stunnel4: {e}"))
}

async fn wait_port(addr: &str) {
    let deadline = tokio::time::Instant::now() + edged_test_tools::wait::WAIT;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{addr} never listened");
}

/// Runs one SIPp client scenario against one SIPp server scenario through the edge.
async fn through_the_edge(uac: &[&str], uas: &[&str], calls: u32) {
    let mut site = Site::new(&["127.0.0.1", "127.0.0.2"]);
    let dir = site.dir.path().to_owned();
    let tls = site.tls();
    std::fs::write(dir.join("ca.pem"), tls.ca_pem().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let director =
        edged_tls::issue_client_certificate(&site.store, "director", &["127.0.0.2".into()])
            .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("director.pem"), &director.chain_pem).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("director.key"), &director.key_pem).unwrap_or_else(|e| panic!("{e}"));

    // SIPp's own socket defaults to 5060, so the client gets a free port too: the tests of
    // this file run in parallel.
    let (uas_port, dir_tls_port, user_port, uac_port) = (
        free_port("127.0.0.2"),
        free_port("127.0.0.2"),
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
    );
    site.config.access_edge.next_hops = vec![format!("127.0.0.2:{dir_tls_port}")];
    site.config.access_edge.health_check_interval_secs = 3600;
    let edge = site.start().await;
    let edge_addr = listener(&edge, "remote users");

    let mut procs = Procs(Vec::new());
    let mut uas_cmd = Command::new("sipp");
    uas_cmd
        .args(uas)
        .args([
            "-t",
            "t1",
            "-i",
            "127.0.0.2",
            "-p",
            &uas_port.to_string(),
            "-m",
            &calls.to_string(),
        ])
        .args(["-timeout", "30s", "-nostdin", "-trace_err", "-error_file"])
        .arg(dir.join("uas_err.log"))
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    procs
        .0
        .push(uas_cmd.spawn().unwrap_or_else(|e| panic!("sipp: {e}")));
    procs.0.push(stunnel(
        &dir,
        "director",
        &format!(
            "[director]\naccept = 127.0.0.2:{dir_tls_port}\nconnect = 127.0.0.2:{uas_port}\ncert = {}\nkey = {}\nCAfile = {}\nverifyChain = yes\n",
            dir.join("director.pem").display(),
            dir.join("director.key").display(),
            dir.join("ca.pem").display()
        ),
    ));
    procs.0.push(stunnel(
        &dir,
        "user",
        &format!(
            "[user]\nclient = yes\naccept = 127.0.0.1:{user_port}\nconnect = {edge_addr}\nCAfile = {}\nverifyChain = yes\n",
            dir.join("ca.pem").display()
        ),
    ));
    wait_port(&format!("127.0.0.2:{dir_tls_port}")).await;
    wait_port(&format!("127.0.0.1:{user_port}")).await;
    wait_port(&format!("127.0.0.2:{uas_port}")).await;

    let status = Command::new("sipp")
        .args(uac)
        .arg(format!("127.0.0.1:{user_port}"))
        .args([
            "-t",
            "t1",
            "-i",
            "127.0.0.1",
            "-p",
            &uac_port.to_string(),
            "-m",
            &calls.to_string(),
            "-r",
            "5",
        ])
        .args(["-timeout", "30s", "-nostdin", "-trace_err", "-error_file"])
        .arg(dir.join("uac_err.log"))
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(40), status)
        .await
        .unwrap_or_else(|_| panic!("sipp client did not finish"))
        .unwrap_or_else(|e| panic!("sipp: {e}"));
    let errors = std::fs::read_to_string(dir.join("uac_err.log")).unwrap_or_default();
    let uas_errors = std::fs::read_to_string(dir.join("uas_err.log")).unwrap_or_default();
    assert!(
        status.success(),
        "sipp client failed ({status}):\n{errors}\nserver side:\n{uas_errors}\nedge: {:?}",
        edge.status().counters
    );
    let c = edge.status().counters;
    assert!(c["requests"] >= u64::from(calls) * 2, "{c:?}");
    drop(procs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_invite_ack_bye_through_the_edge() {
    if !tools_present() {
        return;
    }
    through_the_edge(&["-sn", "uac"], &["-sn", "uas"], 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_cancel_through_the_edge() {
    if !tools_present() {
        return;
    }
    let (uac, uas) = (scenario("cancel_uac.xml"), scenario("cancel_uas.xml"));
    through_the_edge(
        &["-sf", &uac.to_string_lossy()],
        &["-sf", &uas.to_string_lossy()],
        3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_register_digest_challenge_through_the_edge() {
    if !tools_present() {
        return;
    }
    let (uac, uas) = (scenario("register_uac.xml"), scenario("register_uas.xml"));
    through_the_edge(
        &["-sf", &uac.to_string_lossy()],
        &["-sf", &uas.to_string_lossy()],
        3,
    )
    .await;
}
