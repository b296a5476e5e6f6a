//! `make bench-webconf`: edged's Web Conferencing Edge against haproxy doing TLS
//! termination and TCP proxying, side by side in one run, reported as ratios.
//!
//! Processes: this driver (the load), the edge (own process, CPU measured), an echo
//! connector behind it (own process), haproxy (CPU measured) and a TCP echo behind it.
//! Both proxies present a certificate of the same kind from the same CA; both sessions do
//! a full handshake, an echo round trip and a close. haproxy checks no session key; the
//! edge does, so this compares the transport cost with the edge carrying more work.
//!
//! Usage: webconf-bench [--smoke] [--seconds N] [--rounds N]
//!
//! The full run takes three rounds of 10 s phases (about five minutes); `--smoke` one
//! round of 2 s phases.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webconf_connector::bundle::Bundle;
use webconf_connector::client::Client;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: webconf-bench [--smoke] [--seconds N] [--rounds N] [--helper-threads N]");
        println!("  edged's Web Conferencing Edge against haproxy (TLS termination, TCP proxy)");
        println!("  full run: 3 rounds of 10 s phases; --smoke: 1 round of 2 s phases");
        println!("  --helper-threads: runtime workers of the load, connector and echoes (1)");
        return Ok(());
    }
    edged_tls::install_crypto_provider();
    // The edge runs as in edged, on the role's own runtime (`webconf_edge::start`). The
    // load, the connector and the echo backends stand in for hosts that are elsewhere in a
    // deployment; each keeps to `--helper-threads` workers (1), so their wake-ups do not
    // crowd the proxy under test on a small machine. Children get the same flag.
    let helper_threads = arg_value(&args, "--helper-threads")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(helper_threads)
        .enable_all()
        .build()?;
    match args.get(1).map(String::as_str) {
        Some("serve-edge") => rt.block_on(serve_edge(PathBuf::from(
            arg_value(&args, "--dir").ok_or("--dir")?,
        ))),
        Some("serve-connector") => rt.block_on(serve_connector(PathBuf::from(
            arg_value(&args, "--bundle").ok_or("--bundle")?,
        ))),
        Some("serve-tls-echo") => {
            let bundle = Bundle::load(Path::new(&arg_value(&args, "--bundle").ok_or("--bundle")?))?;
            let tls = tls_echo_config(&bundle)?;
            let addr = arg_value(&args, "--addr").ok_or("--addr")?.parse()?;
            rt.block_on(serve_tcp_echo(addr, Some(tls)))
        }
        Some("serve-tcp-echo") => rt.block_on(serve_tcp_echo(
            arg_value(&args, "--addr").ok_or("--addr")?.parse()?,
            None,
        )),
        _ => {
            let smoke = args.iter().any(|a| a == "--smoke");
            let secs = arg_value(&args, "--seconds")
                .and_then(|s| s.parse().ok())
                .unwrap_or(if smoke { 2 } else { 10 });
            let rounds = arg_value(&args, "--rounds")
                .and_then(|s| s.parse().ok())
                .unwrap_or(if smoke { 1 } else { 3 })
                .max(1);
            rt.block_on(drive(Duration::from_secs(secs), rounds, helper_threads))
        }
    }
}

async fn serve_edge(dir: PathBuf) -> Res<()> {
    // Warnings, and why a conferencing server's link ended, reach the run's output: a
    // phase that fails then says what the edge saw.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "warn,webconf_edge=info,webconf_link=info",
        ))
        .init();
    let store = edged_store::Store::open(&dir.join("edge.redb"))?;
    let mut config = edged_config::Config::embedded_default();
    config.webconf_edge.external_port = 0;
    config.webconf_edge.internal_port = 0;
    config.webconf_edge.max_sessions_per_address = 100_000;
    config.webconf_edge.connector_bundle_dir = Some(dir.join("bundle"));
    let ctx = edged_role::RoleContext::for_test_on(&store, config);
    // As edged starts it: on the role's own runtime.
    let _edge = webconf_edge::start(ctx).await?;
    std::fs::write(dir.join("edge.ready"), b"ok")?;
    std::future::pending::<()>().await;
    Ok(())
}

async fn serve_connector(bundle: PathBuf) -> Res<()> {
    let b = Bundle::load(&bundle)?;
    let tls = webconf_connector::pem::client_config(
        &b.ca_pem,
        Some((&b.cert_pem, &b.key_pem)),
        &[session_key::wire::ALPN_INTERNAL],
    )?;
    let c = Arc::new(
        webconf_connector::connector::Connector::connect(b.internal, &b.server_name, tls, &[])
            .await?,
    );
    Err(Box::new(c.serve_echo().await))
}

/// The echo server's TLS side (for haproxy re-encrypting to its backend).
fn tls_echo_config(b: &Bundle) -> Res<tokio_rustls::TlsAcceptor> {
    let certs = webconf_connector::pem::certs("cert", &b.cert_pem)?;
    let key = webconf_connector::pem::key("key", &b.key_pem)?;
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

async fn serve_tcp_echo(addr: SocketAddr, tls: Option<tokio_rustls::TlsAcceptor>) -> Res<()> {
    let l = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (s, _) = l.accept().await?;
        let _ = s.set_nodelay(true);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let (mut r, mut w) = tokio::io::split(s);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
                Some(acc) => {
                    if let Ok(t) = acc.accept(s).await {
                        let (mut r, mut w) = tokio::io::split(t);
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = r.read(&mut buf).await {
                            if n == 0
                                || w.write_all(&buf[..n]).await.is_err()
                                || w.flush().await.is_err()
                            {
                                break;
                            }
                        }
                    }
                }
            }
        });
    }
}

/// Starts haproxy terminating TLS on a free port and proxying to `server` (the rest of a
/// haproxy `server` line); returns it and its address.
fn start_haproxy(d: &Path, tag: &str, server: &str) -> Res<(Kill, SocketAddr)> {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let cfg = format!(
        "global\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend fe\n  bind {addr} ssl crt {} alpn edged-webconf/1\n  default_backend be\n\
         backend be\n  server echo {server}\n",
        d.join("haproxy.pem").display()
    );
    let cfg_path = d.join(format!("haproxy-{tag}.cfg"));
    std::fs::write(&cfg_path, cfg)?;
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&cfg_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join(format!("haproxy-{tag}.log")))?)
        .spawn()?;
    Ok((Kill(child), addr))
}

/// CPU seconds used so far by a process (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    ticks / hz
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this binary again as one of the bench's processes, with the run's
/// `--helper-threads`.
fn spawn_self(args: &[&str], helper_threads: usize) -> Res<Kill> {
    Ok(Kill(
        Command::new(std::env::current_exe()?)
            .args(args)
            .args(["--helper-threads", &helper_threads.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?,
    ))
}

async fn wait_file(p: &Path) -> Res<()> {
    for _ in 0..500 {
        if p.exists() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{} did not appear", p.display()).into())
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One proxy under test: how to open a session and echo through it.
#[derive(Clone)]
enum Target {
    Edge {
        client: Client,
        addr: SocketAddr,
        token: String,
    },
    Haproxy {
        tls: tokio_rustls::TlsConnector,
        addr: SocketAddr,
    },
}

const CONFERENCE: &str = "bench";
const CHUNK: usize = 16 * 1024;

impl Target {
    /// Opens a session and runs `rounds` echo round trips of `len` bytes; returns bytes echoed.
    async fn session(&self, rounds: usize, len: usize, until: Option<Instant>) -> Res<u64> {
        let msg = vec![0x5au8; len];
        let mut done = 0u64;
        let keep_going = |i: usize| i < rounds || until.is_some_and(|u| Instant::now() < u);
        match self {
            Target::Edge {
                client,
                addr,
                token,
            } => {
                let mut s = step("connect", client.connect_tls(*addr, CONFERENCE, token)).await?;
                let mut i = 0;
                while keep_going(i) {
                    step("send", s.send(&msg)).await?;
                    step("recv", s.recv_exact(len)).await?;
                    done += len as u64;
                    i += 1;
                }
                step("close", s.close()).await?;
            }
            Target::Haproxy { tls, addr } => {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let name = rustls::pki_types::ServerName::try_from("webconf-connector.localhost")?;
                let mut s = tls.connect(name, tcp).await?;
                let mut back = vec![0u8; len];
                let mut i = 0;
                while keep_going(i) {
                    s.write_all(&msg).await?;
                    s.flush().await?;
                    s.read_exact(&mut back).await?;
                    done += len as u64;
                    i += 1;
                }
                s.shutdown().await?;
            }
        }
        Ok(done)
    }
}

/// Bounds one step of a session so a stall is reported, never hangs the run.
async fn step<T, E: std::error::Error + Send + Sync + 'static>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Res<T> {
    match tokio::time::timeout(Duration::from_secs(10), f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(format!("{what}: no progress in 10 s").into()),
    }
}

/// What one phase moved and what it cost; phases of several rounds add up.
#[derive(Clone, Copy, Default)]
struct Measure {
    /// Bytes or sessions.
    done: f64,
    wall_s: f64,
    /// CPU-seconds of the proxy process.
    cpu_s: f64,
    /// CPU-seconds of the proxy and its backend together (the whole server side).
    chain_cpu_s: f64,
}

impl Measure {
    fn add(&mut self, o: Measure) {
        self.done += o.done;
        self.wall_s += o.wall_s;
        self.cpu_s += o.cpu_s;
        self.chain_cpu_s += o.chain_cpu_s;
    }
    fn per_sec(&self) -> f64 {
        self.done / self.wall_s
    }
    fn per_cpu_sec(&self) -> f64 {
        self.done / self.cpu_s
    }
    fn per_chain_cpu_sec(&self) -> f64 {
        self.done / self.chain_cpu_s
    }
}

/// Runs `workers` loops for `dur`; each loop repeats `job` and adds what it returns.
async fn measure<F, Fut>(pids: [u32; 2], workers: usize, dur: Duration, job: F) -> Res<Measure>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Res<u64>> + Send,
{
    let total = Arc::new(AtomicU64::new(0));
    let [pid, backend] = pids;
    let cpu0 = cpu_seconds(pid);
    let backend0 = cpu_seconds(backend);
    let t0 = Instant::now();
    let end = t0 + dur;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (job, total) = (job.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                total.fetch_add(job().await?, Ordering::Relaxed);
            }
            Res::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid) - cpu0).max(0.001);
    let chain = cpu + (cpu_seconds(backend) - backend0).max(0.0);
    Ok(Measure {
        done: total.load(Ordering::Relaxed) as f64,
        wall_s: wall,
        cpu_s: cpu,
        chain_cpu_s: chain,
    })
}

async fn drive(dur: Duration, rounds: usize, helper_threads: usize) -> Res<()> {
    if !edged_test_tools::require(&["haproxy"], "haproxy") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let edge = spawn_self(
        &["serve-edge", "--dir", &d.to_string_lossy()],
        helper_threads,
    )?;
    wait_file(&d.join("edge.ready")).await?;
    let bundle_dir = d.join("bundle");
    let connector = spawn_self(
        &["serve-connector", "--bundle", &bundle_dir.to_string_lossy()],
        helper_threads,
    )?;
    let b = Bundle::load(&bundle_dir)?;

    std::fs::write(
        d.join("haproxy.pem"),
        format!("{}{}", b.cert_pem, b.key_pem),
    )?;
    std::fs::write(d.join("ca.pem"), &b.ca_pem)?;
    let echo_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let echo = spawn_self(
        &["serve-tcp-echo", "--addr", &echo_addr.to_string()],
        helper_threads,
    )?;
    let tls_echo_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let bundle_arg = bundle_dir.to_string_lossy().into_owned();
    let tls_echo = spawn_self(
        &[
            "serve-tls-echo",
            "--addr",
            &tls_echo_addr.to_string(),
            "--bundle",
            &bundle_arg,
        ],
        helper_threads,
    )?;
    let (haproxy, hap_addr) = start_haproxy(d, "plain", &echo_addr.to_string())?;
    let backend_tls = format!(
        "{tls_echo_addr} ssl verify required ca-file {} sni str(webconf-connector.localhost)",
        d.join("ca.pem").display()
    );
    let (haproxy_tls, hap_tls_addr) = start_haproxy(d, "tls", &backend_tls)?;

    let client_tls =
        webconf_connector::pem::client_config(&b.ca_pem, None, &[session_key::wire::ALPN_CLIENT])?;
    let ring = session_key::KeyRing::from_records(b.keys.clone())?;
    let now = webconf_edge::keys::unix_now();
    let edge_t = Target::Edge {
        client: Client::new(&client_tls, &b.server_name)?,
        addr: b.external,
        token: ring.mint(
            CONFERENCE,
            session_key::ParticipantRole::Attendee,
            3600,
            now,
        )?,
    };
    let connector_tls = tokio_rustls::TlsConnector::from(client_tls.clone());
    let hap_t = Target::Haproxy {
        tls: connector_tls.clone(),
        addr: hap_addr,
    };
    let hap_tls_t = Target::Haproxy {
        tls: connector_tls,
        addr: hap_tls_addr,
    };
    // All ready: one session each before measuring.
    let mut ready = Err("not tried".into());
    for _ in 0..100 {
        ready = async {
            hap_t.session(1, 8, None).await?;
            hap_tls_t.session(1, 8, None).await?;
            edge_t.session(1, 8, None).await
        }
        .await;
        if ready.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Err(e) = ready {
        let log = std::fs::read_to_string(d.join("haproxy-plain.log")).unwrap_or_default()
            + &std::fs::read_to_string(d.join("haproxy-tls.log")).unwrap_or_default();
        return Err(format!("proxies not ready: {e}; haproxy says: {log}").into());
    }

    let targets = [
        ("haproxy", hap_t, [haproxy.0.id(), echo.0.id()]),
        (
            "haproxy+tls",
            hap_tls_t,
            [haproxy_tls.0.id(), tls_echo.0.id()],
        ),
        ("edged", edge_t, [edge.0.id(), connector.0.id()]),
    ];
    // Sums over the rounds, per target: (throughput, new sessions).
    let mut rows = [(Measure::default(), Measure::default()); 3];
    // This machine's speed drifts by tens of percent over a minute: the targets take turns,
    // each round starting with a different one, and the table compares the sums. The
    // per-round ratios show the spread.
    let mut round_ratios = Vec::new();
    for round in 0..rounds {
        let mut this_round = [(Measure::default(), Measure::default()); 3];
        for k in 0..targets.len() {
            let i = (k + round) % targets.len();
            let (name, target, pids) = &targets[i];
            eprintln!("round {}/{rounds}, {name}: throughput", round + 1);
            let t = target.clone();
            let thr = measure(*pids, 8, dur, move || {
                let t = t.clone();
                async move {
                    t.session(
                        0,
                        4 * CHUNK,
                        Some(Instant::now() + Duration::from_millis(500)),
                    )
                    .await
                }
            })
            .await?;
            eprintln!("round {}/{rounds}, {name}: new sessions", round + 1);
            let t = target.clone();
            let sess = measure(*pids, 16, dur, move || {
                let t = t.clone();
                async move { t.session(1, 32, None).await.map(|_| 1) }
            })
            .await?;
            this_round[i] = (thr, sess);
            rows[i].0.add(thr);
            rows[i].1.add(sess);
        }
        let [h, _, e] = this_round;
        round_ratios.push((
            e.0.per_cpu_sec() / h.0.per_cpu_sec(),
            e.1.per_cpu_sec() / h.1.per_cpu_sec(),
        ));
    }
    let [h, ht, e] = rows;
    println!(
        "webconf-bench: {} s per phase, {rounds} round(s) summed, loopback, TLS 1.3 from the clients",
        dur.as_secs()
    );
    println!("runtime workers: edge as in edged; load, connector and echoes {helper_threads} each");
    println!(
        "{:<30} {:>10} {:>12} {:>10} {:>8} {:>10}",
        "metric", "haproxy", "haproxy+tls", "edged", "ratio", "ratio-tls"
    );
    let line = |m: &str, a: f64, at: f64, b: f64| {
        println!(
            "{m:<30} {a:>10.1} {at:>12.1} {b:>10.1} {:>8.2} {:>10.2}",
            b / a,
            b / at
        )
    };
    line(
        "throughput MB/s (8 sessions)",
        h.0.per_sec() / 1e6,
        ht.0.per_sec() / 1e6,
        e.0.per_sec() / 1e6,
    );
    line(
        "throughput MB per CPU-s",
        h.0.per_cpu_sec() / 1e6,
        ht.0.per_cpu_sec() / 1e6,
        e.0.per_cpu_sec() / 1e6,
    );
    line(
        "throughput MB/CPU-s +backend",
        h.0.per_chain_cpu_sec() / 1e6,
        ht.0.per_chain_cpu_sec() / 1e6,
        e.0.per_chain_cpu_sec() / 1e6,
    );
    line(
        "new sessions/s (16 loops)",
        h.1.per_sec(),
        ht.1.per_sec(),
        e.1.per_sec(),
    );
    line(
        "new sessions per CPU-s",
        h.1.per_cpu_sec(),
        ht.1.per_cpu_sec(),
        e.1.per_cpu_sec(),
    );
    println!("ratio = edged / haproxy with plain TCP to the echo; ratio-tls = edged / haproxy");
    println!("re-encrypting to a TLS echo (the work of edged's mutual-TLS internal leg).");
    println!(">= 1.00 meets the target. CPU is the proxy process only, except \"+backend\":");
    println!("proxy and its backend (edged: the echo connector; haproxy: the TCP or TLS echo).");
    if rounds > 1 {
        let list = |f: fn(&(f64, f64)) -> f64| {
            round_ratios
                .iter()
                .map(|r| format!("{:.2}", f(r)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "per-round ratio, throughput per CPU-s: {}; new sessions per CPU-s: {}",
            list(|r| r.0),
            list(|r| r.1)
        );
    }
    Ok(())
}
