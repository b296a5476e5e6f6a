//! Credentials from both endpoints used with coturn's `turnutils_uclient` against the A/V
//! Edge started in the same process on the same store: the relay verifies them statelessly
//! from the shared key ring. Skipped with a note when coturn is not installed, unless
//! EDGED_REQUIRE_TOOLS=1 (Debian package coturn).

mod support;

use edged_role::test_support::TestSite;
use edged_role::{Side, Transport};
use mras::{build_request, parse_response, Location};
use std::process::{Child, Command, Stdio};
use support::*;

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

/// Runs uclient; (messages sent, messages received) from its summary, `None` when it
/// printed none (refused before sending).
fn uclient(args: &[String]) -> (Option<(u64, u64)>, String) {
    let out = Command::new("timeout")
        .arg("30")
        .arg("turnutils_uclient")
        .args(args)
        .output()
        .expect("turnutils_uclient runs");
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
    let summary = number_after("tot_send_msgs=").zip(number_after("tot_recv_msgs="));
    (summary, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_credentials_work_at_the_relay_and_bad_ones_do_not() {
    if !coturn_present() {
        return;
    }
    let config = relay_and_service_config();

    let site = TestSite::new();
    // The relay starts first and creates the ring; the service signs with it.
    let edge = av_edge::start(site.context(config.clone()))
        .await
        .expect("av_edge starts");
    let h = start_with(config, site).await;
    let relay_udp: std::net::SocketAddr = edge
        .status()
        .listeners
        .iter()
        .find(|l| l.transport == Transport::Udp && l.side == Side::External)
        .expect("relay UDP listener")
        .address
        .parse()
        .expect("address");

    let peer_port = std::net::UdpSocket::bind("127.0.0.3:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let _peer = Peer(
        Command::new("turnutils_peer")
            .args(["-L", "127.0.0.3", "-p", &peer_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnutils_peer"),
    );
    edged_test_tools::wait::until("turnutils_peer listening", || {
        edged_test_tools::wait::udp_port_bound(peer_port)
    });

    let args = |user: &str, password: &str| -> Vec<String> {
        [
            "-n",
            "10",
            "-m",
            "1",
            "-l",
            "172",
            "-z",
            "5",
            "-c",
            "-u",
            user,
            "-w",
            password,
            "-e",
            "127.0.0.3",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "-r".into(),
            peer_port.to_string(),
            "-p".into(),
            relay_udp.port().to_string(),
            relay_udp.ip().to_string(),
        ])
        .collect()
    };
    let run = |label: &'static str, user: String, password: String| {
        let a = args(&user, &password);
        async move {
            tokio::task::spawn_blocking(move || (label, uclient(&a)))
                .await
                .expect("uclient task")
        }
    };

    // From SIP SERVICE.
    let mut sip = SipClient::connect(&h, Some("pool1")).await.unwrap();
    let body = build_request("e2e", "alice@example.test", Location::Internet, Some(10));
    let (status, resp) = sip
        .service(mras::CONTENT_TYPE, body.as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 200);
    let grant = parse_response(&body_of(&resp)).unwrap();
    // From REST.
    let key = create_api_key(&h, "e2e").await;
    let mut rest = RestClient::connect(&h, None).await.unwrap();
    let r = rest
        .get(
            "/api/v1/turn-credentials?username=bob@example.test&ttl=600",
            &[("x-api-key", &key)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let (ru, rp) = (
        r.json["username"].as_str().unwrap().to_owned(),
        r.json["password"].as_str().unwrap().to_owned(),
    );

    for (label, user, password) in [
        (
            "SIP credential",
            grant.username.clone(),
            grant.password.clone(),
        ),
        ("REST credential", ru, rp),
    ] {
        let (label, (summary, text)) = run(label, user, password).await;
        let (sent, recv) =
            summary.unwrap_or_else(|| panic!("{label}: uclient gave no summary:\n{text}"));
        eprintln!("{label}: sent {sent} received {recv}");
        assert!(
            sent > 0 && recv == sent,
            "{label}: {sent} sent, {recv} received:\n{text}"
        );
    }

    // Tampered password, tampered identity, and an expired credential signed with the
    // right key: the relay refuses all three (401), so nothing is relayed.
    let mut bad_pw = grant.password.clone().into_bytes();
    bad_pw[0] = if bad_pw[0] == b'A' { b'B' } else { b'A' };
    let ring = h.ring();
    let now = av_auth::keys::unix_now();
    let expired = ring
        .mint("alice@example.test", 10, now - 100)
        .expect("mint");
    for (label, user, password) in [
        (
            "tampered password",
            grant.username.clone(),
            String::from_utf8(bad_pw).unwrap(),
        ),
        (
            "tampered identity",
            grant.username.replace("alice", "mallory"),
            grant.password.clone(),
        ),
        (
            "expired",
            expired.username.clone(),
            expired.password.clone(),
        ),
    ] {
        let (label, (summary, text)) = run(label, user, password).await;
        let recv = summary.map_or(0, |(_, r)| r);
        assert!(
            text.contains("Cannot complete Allocation"),
            "{label}: not refused at allocation:\n{text}"
        );
        assert_eq!(recv, 0, "{label}: the relay accepted it:\n{text}");
    }
}
