//! coturn's own test clients against edged: `turnutils_uclient` over UDP, TCP and TLS,
//! with long-term and short-lived (`-W`) credentials, to `turnutils_peer` and client to
//! client. Skipped with a note when coturn is not installed, unless EDGED_REQUIRE_TOOLS=1.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn coturn_present() -> bool {
    edged_test_tools::require(&["turnutils_uclient", "turnutils_peer"], "coturn")
}

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_peer(port: u16) -> Peer {
    let child = Command::new("turnutils_peer")
        .args(["-L", "127.0.0.3", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("turnutils_peer: {e}"));
    let peer = Peer(child);
    edged_test_tools::wait::until("turnutils_peer listening", || {
        edged_test_tools::wait::udp_port_bound(port)
    });
    peer
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.3:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs uclient and returns (packets sent, packets received, lost) from its summary.
fn uclient(args: &[String]) -> (u64, u64, u64) {
    let out = Command::new("timeout")
        .arg("60")
        .arg("turnutils_uclient")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("turnutils_uclient: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let number_after = |marker: &str| -> Option<u64> {
        let at = text.rfind(marker)? + marker.len();
        text[at..]
            .trim_start_matches([' ', ':', '='])
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let sent = number_after("tot_send_msgs=");
    let recv = number_after("tot_recv_msgs=");
    let lost = number_after("Total lost packets");
    match (sent, recv, lost) {
        (Some(s), Some(r), Some(l)) => (s, r, l),
        _ => panic!("uclient {args:?} gave no summary:\n{text}"),
    }
}

fn base(h: &Harness, port: u16) -> Vec<String> {
    let _ = h;
    ["-n", "40", "-m", "2", "-l", "172", "-z", "5", "-c", "-p"]
        .iter()
        .map(|s| s.to_string())
        .chain([port.to_string()])
        .collect()
}

fn check(label: &str, (sent, recv, lost): (u64, u64, u64)) {
    eprintln!("{label}: sent {sent} received {recv} lost {lost}");
    assert!(sent > 0, "{label}: nothing sent");
    assert_eq!(recv, sent, "{label}: not every message came back");
    assert_eq!(lost, 0, "{label}: losses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_over_udp_tcp_and_tls() {
    if !coturn_present() {
        return;
    }
    let h = start(|av| av.max_allocations_per_user = 50).await;
    let peer_port = free_udp_port();
    let _peer = start_peer(peer_port);
    let long_term = |extra: &[&str], port: u16| -> Vec<String> {
        let mut a = base(&h, port);
        a.extend(["-u", USER, "-w", PASSWORD].iter().map(|s| s.to_string()));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let to_peer = [
        "-e".to_string(),
        "127.0.0.3".into(),
        "-r".into(),
        peer_port.to_string(),
    ];
    let run = |label: &str, mut args: Vec<String>, peer: bool| {
        if peer {
            args.extend(to_peer.iter().cloned());
        } else {
            args.push("-y".into());
        }
        args.push("127.0.0.1".into());
        check(label, uclient(&args));
    };
    let (udp, tcp, tls) = (h.udp.port(), h.tcp.port(), h.tls_addr.port());
    run("udp to peer", long_term(&[], udp), true);
    run("udp client to client", long_term(&[], udp), false);
    run("udp send indications", long_term(&["-s"], udp), true);
    run("tcp to peer", long_term(&["-t"], tcp), true);
    run("tcp client to client", long_term(&["-t"], tcp), false);
    run(
        "tls on the shared port",
        long_term(&["-t", "-S"], tcp),
        true,
    );
    run("tls on its own port", long_term(&["-t", "-S"], tls), true);
    let mut rest = base(&h, udp);
    rest.extend(
        ["-u", "carol", "-W", REST_SECRET]
            .iter()
            .map(|s| s.to_string()),
    );
    run("udp short-lived credentials", rest, true);
    let mut rest_tls = base(&h, tls);
    rest_tls.extend(
        ["-t", "-S", "-u", "carol", "-W", REST_SECRET]
            .iter()
            .map(|s| s.to_string()),
    );
    run("tls short-lived credentials", rest_tls, false);
    h.role.drain(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_tcp_relays_dont_fragment_and_ipv6() {
    if !coturn_present() {
        return;
    }
    let v6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    let h = start(|av| {
        av.max_allocations_per_user = 50;
        if v6 {
            av.relay_address_v6 = "::1".parse().ok();
            av.allowed_peer_ranges = vec!["127.0.0.0/8".into(), "::1/128".into()];
        }
    })
    .await;
    let peer_port = free_udp_port();
    let _peer = start_peer(peer_port);
    let args = |extra: &[&str], port: u16| -> Vec<String> {
        let mut a = base(&h, port);
        a.extend(["-u", USER, "-w", PASSWORD].iter().map(|s| s.to_string()));
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push("127.0.0.1".into());
        a
    };
    let (udp, tcp) = (h.udp.port(), h.tcp.port());
    let peer = peer_port.to_string();
    // RFC 6062: -T is client to client over TCP relays (Connect, ConnectionAttempt,
    // ConnectionBind on both sides).
    check("tcp relays (-T)", uclient(&args(&["-T"], tcp)));
    check(
        "tcp relays over tls (-T -S)",
        uclient(&args(&["-T", "-S"], tcp)),
    );
    check(
        "udp DONT-FRAGMENT to peer",
        uclient(&args(&["-g", "-e", "127.0.0.3", "-r", &peer], udp)),
    );
    check(
        "tcp DONT-FRAGMENT client to client",
        uclient(&args(&["-g", "-t", "-y"], tcp)),
    );
    if v6 {
        check(
            "ipv6 relays client to client (-x)",
            uclient(&args(&["-x", "-y"], udp)),
        );
        check("dual allocations (-Z)", uclient(&args(&["-Z", "-y"], udp)));
    } else {
        eprintln!("skipped: IPv6 relays (no ::1 on this host)");
    }
    h.role.drain(Duration::from_millis(10)).await;
}
