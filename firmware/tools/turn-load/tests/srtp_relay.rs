//! SRTP through a real A/V Edge relay: every packet of every flow, both ways, arrives,
//! decrypts and authenticates (AES_CM_128_HMAC_SHA1_80) and matches what was sent, so the
//! relay changed no bit. Runs the `turn-load` binary as `make bench-turn` does, and the
//! library for the per-direction counts.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edged_role::test_support::TestSite;
use edged_role::{Role, Side, Transport};
use turn_load::client::Credentials;
use turn_load::run::{run_with, LoadConfig, Media};

/// The ring secret, as text: `turn-load --secret` signs with the same bytes.
const SECRET: &str = "srtp-through-the-relay-0123456789";
/// Loopback addresses of this test alone: relay on .1, clients on .3, peers on .4.
const NET: [u8; 3] = [127, 0, 51];

fn ip(last: u8) -> IpAddr {
    IpAddr::from([NET[0], NET[1], NET[2], last])
}

struct Relay {
    role: Arc<dyn Role>,
    udp: SocketAddr,
    _dir: TestSite,
}

async fn start_relay() -> Relay {
    let site = TestSite::new();
    let store = &site.store;
    let mut config = edged_config::Config::embedded_default();
    config.network.external.address = ip(1);
    config.network.internal.address = ip(2);
    config.access_edge.enabled = false;
    config.webconf_edge.enabled = false;
    config.av_auth.enabled = false;
    config.metrics.enabled = false;
    let av = &mut config.av_edge;
    av.udp_port = 0;
    av.tcp_port = 0;
    av.tls_port = std::net::TcpListener::bind((ip(1), 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    av.relay_threads = 1;
    // Below the kernel's ephemeral range, so no listener bound to port 0 lands inside it.
    av.relay_port_min = 30000;
    av.relay_port_max = 31999;
    av.demo_user = false;
    av.max_allocations_per_user = 100;
    av.allowed_peer_ranges = vec!["127.0.0.0/8".into()];
    let key =
        relay_credentials::RelayKey::new("srtp", SECRET.as_bytes().to_vec(), 0).expect("relay key");
    let ring = relay_credentials::KeyRing::new(key, 3600).expect("ring");
    let stored = relay_credentials::stored::encode(&ring).expect("ring encoded");
    store
        .write(|tx| {
            tx.put(
                relay_credentials::stored::STORE_NAMESPACE,
                relay_credentials::stored::STORE_KEY,
                &stored,
            )
        })
        .expect("ring stored");
    let role = av_edge::start(site.context(config))
        .await
        .expect("av_edge starts");
    let udp = role
        .status()
        .listeners
        .iter()
        .find(|l| l.side == Side::External && l.transport == Transport::Udp)
        .and_then(|l| l.address.parse().ok())
        .expect("external UDP listener");
    Relay {
        role,
        udp,
        _dir: site,
    }
}

/// Runs the binary, killed if it outlives `limit`; returns (success, stdout, stderr).
fn turn_load(args: &[String], limit: Duration) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_turn-load"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("turn-load starts");
    let started = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("turn-load output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The binary's arguments for an SRTP run of audio-sized packets (172 bytes, 50 per second)
/// from this test's client and peer addresses, signed with the test's ring secret.
fn srtp_run_args(server: SocketAddr, user: &str, allocations: u32, seconds: &str) -> Vec<String> {
    let allocations = allocations.to_string();
    [
        "--server",
        &server.to_string(),
        "--user",
        user,
        "--secret",
        SECRET,
        "--allocations",
        &allocations,
        "--rate",
        "50",
        "--size",
        "172",
        "--seconds",
        seconds,
        "--client-ip",
        &ip(3).to_string(),
        "--peer-ip",
        &ip(4).to_string(),
        "--srtp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs the binary off the async runtime (at most 60 s), echoing what it printed.
async fn run_binary(args: Vec<String>) -> (bool, String, String) {
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || turn_load(&args, Duration::from_secs(60)))
            .await
            .expect("turn-load task");
    eprintln!("{stdout}{stderr}");
    (ok, stdout, stderr)
}

fn result_field(stdout: &str, key: &str) -> Option<u64> {
    let line = stdout.lines().find(|l| l.starts_with("RESULT "))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_flows_cross_the_relay_bit_for_bit() {
    let relay = start_relay().await;

    // The binary, audio-sized packets, 20 flows both ways.
    let (ok, stdout, stderr) = run_binary(srtp_run_args(relay.udp, "srtp-check", 20, "1.5")).await;
    assert!(ok, "turn-load --srtp failed:\n{stdout}{stderr}");
    let received = result_field(&stdout, "received").expect("received in RESULT");
    let verified = result_field(&stdout, "srtp_verified").expect("srtp_verified in RESULT");
    let failures = result_field(&stdout, "srtp_failures").expect("srtp_failures in RESULT");
    // 20 flows x 50 packets/s x 1.5 s x 2 directions = 3000, less scheduling slack.
    assert!(received >= 2500, "too few packets: {stdout}");
    assert_eq!(failures, 0, "{stdout}");
    assert_eq!(verified, received, "{stdout}");
    assert!(
        stdout.contains(" loss_pct=0.000 "),
        "loss through the relay: {stdout}"
    );

    // The library, large packets: each direction accounts for every packet it sent.
    let cfg = LoadConfig {
        server: relay.udp,
        credentials: Credentials::Rest {
            user: "srtp-large".into(),
            secret: SECRET.into(),
            ttl: 600,
        },
        allocations: 10,
        rate_pps: 100,
        size: 1200,
        duration: Duration::from_secs(1),
        client_ip: ip(3),
        peer_ip: ip(4),
        sender_threads: 1,
        one_way: false,
    };
    let report = tokio::task::spawn_blocking(move || run_with(&cfg, Media::Srtp))
        .await
        .expect("load task")
        .expect("turn-load run");
    for (name, d) in [
        ("to peer", &report.to_peer),
        ("to client", &report.to_client),
    ] {
        assert!(
            d.sent >= 10 * 80,
            "{name}: too few packets sent: {}",
            d.sent
        );
        assert_eq!(d.srtp_failures, 0, "{name}: SRTP failures");
        assert_eq!(d.srtp_verified, d.sent, "{name}: not every packet verified");
        assert_eq!(d.received, d.sent, "{name}: loss");
    }
    relay.role.drain(Duration::from_millis(10)).await;
}

/// A UDP hop between the clients and the relay that flips one payload bit in every
/// ChannelData frame going to the relay: the damage a relay that is not bit-transparent
/// would do. STUN passes untouched, so allocations and channels still work.
struct Corrupter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    flipped: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Corrupter {
    fn start(relay: SocketAddr) -> Corrupter {
        let front = Arc::new(UdpSocket::bind((ip(5), 0)).expect("front socket"));
        front
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let addr = front.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let flipped = Arc::new(AtomicU64::new(0));
        let (stop2, flipped2) = (stop.clone(), flipped.clone());
        let thread = std::thread::spawn(move || {
            // One relay-facing socket per client, so each keeps its own allocation.
            let mut upstream: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut backs = Vec::new();
            let mut buf = vec![0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, client)) = front.recv_from(&mut buf) else {
                    continue;
                };
                let up = match upstream.get(&client) {
                    Some(up) => up.clone(),
                    None => {
                        let Ok(up) = UdpSocket::bind((ip(5), 0)) else {
                            continue;
                        };
                        let _ = up.set_read_timeout(Some(Duration::from_millis(20)));
                        let up = Arc::new(up);
                        let (up2, front2, stop3) = (up.clone(), front.clone(), stop2.clone());
                        backs.push(std::thread::spawn(move || {
                            let mut back = vec![0u8; 2048];
                            while !stop3.load(Ordering::Relaxed) {
                                if let Ok(m) = up2.recv(&mut back) {
                                    let _ = front2.send_to(&back[..m], client);
                                }
                            }
                        }));
                        upstream.insert(client, up.clone());
                        up
                    }
                };
                // ChannelData (first byte 0x40-0x4f) with a payload past the RTP header.
                if n > 40 && buf[0] & 0xF0 == 0x40 {
                    buf[30] ^= 0x01;
                    flipped2.fetch_add(1, Ordering::Relaxed);
                }
                let _ = up.send_to(&buf[..n], relay);
            }
            for b in backs {
                let _ = b.join();
            }
        });
        Corrupter {
            addr,
            stop,
            flipped,
            thread: Some(thread),
        }
    }
}

impl Drop for Corrupter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flipped_bit_per_packet_fails_the_srtp_run() {
    let relay = start_relay().await;
    let corrupter = Corrupter::start(relay.udp);
    let (ok, stdout, stderr) =
        run_binary(srtp_run_args(corrupter.addr, "srtp-corrupted", 2, "0.5")).await;
    let flipped = corrupter.flipped.load(Ordering::Relaxed);
    drop(corrupter);
    assert!(flipped > 0, "the corrupter saw no ChannelData");
    assert!(
        !ok,
        "a run with corrupted packets must fail:\n{stdout}{stderr}"
    );
    let failures = result_field(&stdout, "srtp_failures").expect("srtp_failures in RESULT");
    let verified = result_field(&stdout, "srtp_verified").expect("srtp_verified in RESULT");
    // Every corrupted packet that reached a peer failed; the untouched direction verified.
    assert!(failures > 0 && failures <= flipped, "{stdout}");
    assert!(
        verified > 0,
        "the peer-to-client direction is untouched: {stdout}"
    );
    assert!(
        stderr.contains("failed to decrypt, authenticate or match"),
        "{stderr}"
    );
    relay.role.drain(Duration::from_millis(10)).await;
}
