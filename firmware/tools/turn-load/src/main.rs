//! `turn-load`: TURN clients offering media flows to a relay; prints loss, latency and
//! jitter per direction, and one machine-readable `RESULT` line.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use turn_load::client::Credentials;
use turn_load::run::{run_with, LoadConfig, Media, Report};

#[derive(Parser, Debug)]
#[command(about = "TURN load generator: allocations, channels, timed flows both ways")]
struct Args {
    /// The relay's UDP listener.
    #[arg(long, default_value = "127.0.0.1:3478")]
    server: SocketAddr,
    #[arg(long, default_value = "demo")]
    user: String,
    /// Long-term password (or use --secret for short-lived credentials).
    #[arg(long)]
    password: Option<String>,
    /// TURN REST shared secret: the username and password are derived from it.
    #[arg(long)]
    secret: Option<String>,
    #[arg(long, default_value_t = 100)]
    allocations: usize,
    /// Packets per second per flow and direction; 0 sends as fast as possible.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Payload bytes per packet (172: G.711 20 ms with RTP and SRTP overhead).
    #[arg(long, default_value_t = 172)]
    size: usize,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[arg(long, default_value = "127.0.0.1")]
    client_ip: IpAddr,
    /// Where the peer sockets live (must be a peer the relay allows).
    #[arg(long, default_value = "127.0.0.3")]
    peer_ip: IpAddr,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Client to peer only.
    #[arg(long)]
    one_way: bool,
    /// Send real SRTP (AES_CM_128_HMAC_SHA1_80, fixed test keys) and check at the far side
    /// that every packet decrypts, authenticates and matches what was sent; any failure
    /// makes the run fail.
    #[arg(long)]
    srtp: bool,
}

/// Prints the table and the RESULT line; in SRTP mode returns the failures (packets that
/// did not decrypt, authenticate or match) and the verified packets.
fn print(report: &mut Report) -> Option<(u64, u64)> {
    let setup_rate = report.allocations as f64 / report.setup.as_secs_f64().max(1e-9);
    println!(
        "{} allocations set up in {:.2} s ({:.0} allocations/s)",
        report.allocations,
        report.setup.as_secs_f64(),
        setup_rate
    );
    println!(
        "{:<10} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>10}",
        "direction", "sent", "received", "loss %", "p50 us", "p99 us", "max us", "jitter us"
    );
    let secs = report.sending.as_secs_f64().max(1e-9);
    let mut total_received = 0;
    let mut worst_loss: f64 = 0.0;
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    let (mut verified, mut failures) = (0, 0);
    for (name, d) in [
        ("to peer", &mut report.to_peer),
        ("to client", &mut report.to_client),
    ] {
        if d.sent == 0 {
            continue;
        }
        let (p50, p99, max) = (d.percentile(50.0), d.percentile(99.0), d.percentile(100.0));
        let show = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        println!(
            "{:<10} {:>10} {:>10} {:>8.3} {:>9} {:>9} {:>9} {:>10.1}",
            name,
            d.sent,
            d.received,
            d.loss_percent(),
            show(p50),
            show(p99),
            show(max),
            d.mean_jitter_us()
        );
        total_received += d.received;
        verified += d.srtp_verified;
        failures += d.srtp_failures;
        worst_loss = worst_loss.max(d.loss_percent());
        p50s.extend(p50);
        p99s.extend(p99);
    }
    // Scripts parse this line: new fields go at the end only.
    let srtp = report.media == Media::Srtp;
    let srtp_fields = if srtp {
        format!(" srtp_verified={verified} srtp_failures={failures}")
    } else {
        String::new()
    };
    println!(
        "RESULT allocations={} alloc_per_sec={:.0} received={} received_per_sec={:.0} loss_pct={:.3} p50_us={} p99_us={}{srtp_fields}",
        report.allocations,
        setup_rate,
        total_received,
        total_received as f64 / secs,
        worst_loss,
        p50s.iter().max().copied().unwrap_or(0),
        p99s.iter().max().copied().unwrap_or(0),
    );
    srtp.then_some((failures, verified))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let credentials = match (args.password, args.secret) {
        (Some(password), None) => Credentials::LongTerm {
            user: args.user,
            password,
        },
        (None, Some(secret)) => Credentials::Rest {
            user: args.user,
            secret,
            ttl: 3600,
        },
        _ => {
            eprintln!("turn-load: give exactly one of --password and --secret");
            return ExitCode::from(2);
        }
    };
    if !(0.1..=3600.0).contains(&args.seconds) {
        eprintln!("turn-load: --seconds must be between 0.1 and 3600");
        return ExitCode::from(2);
    }
    let cfg = LoadConfig {
        server: args.server,
        credentials,
        allocations: args.allocations,
        rate_pps: args.rate,
        size: args.size.clamp(turn_load::run::STAMP_LEN, 1400),
        duration: Duration::from_secs_f64(args.seconds),
        client_ip: args.client_ip,
        peer_ip: args.peer_ip,
        sender_threads: args.threads,
        one_way: args.one_way,
    };
    let media = if args.srtp { Media::Srtp } else { Media::Plain };
    match run_with(&cfg, media) {
        Ok(mut report) => {
            match print(&mut report) {
                Some((failures, _)) if failures > 0 => {
                    eprintln!("turn-load: {failures} SRTP packet(s) failed to decrypt, authenticate or match");
                    ExitCode::FAILURE
                }
                Some((_, 0)) => {
                    eprintln!("turn-load: no SRTP packet arrived to verify");
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("turn-load: {e}");
            ExitCode::FAILURE
        }
    }
}
