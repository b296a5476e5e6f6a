//! `flood`: hostile load for `make bench-flood` (see README.md beside this file). Every
//! subcommand is bounded in count and in time and ends with one `RESULT key=value ...` line.

mod idle;
mod net;
mod pacing;
mod quic_flood;
mod raw;
mod report;
mod sip;
mod sip_flood;
mod slowloris;
mod sources;
mod stun_flood;
mod tls_flood;
mod turn_tcp;
mod turn_user;
mod webconf_sessions;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use pacing::Budget;
use sources::{Net, Sources};

#[derive(Parser)]
#[command(about = "Bounded hostile load against an edge (namespaces only: see README.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct SourceArgs {
    /// Network the sources are taken from (local to this namespace).
    #[arg(long, default_value = "10.128.0.0/9")]
    sources: Net,
    /// How many of its addresses to use (0: all).
    #[arg(long, default_value_t = 1)]
    source_count: u32,
}

impl SourceArgs {
    fn pool(&self) -> Sources {
        Sources::new(self.sources, self.source_count)
    }
}

#[derive(Args, Clone)]
struct Tls {
    /// CA that issued the server's certificate (PEM).
    #[arg(long)]
    ca: PathBuf,
    #[arg(long, default_value = "edge.flood")]
    server_name: String,
    /// ALPN to offer (repeat).
    #[arg(long)]
    alpn: Vec<String>,
}

impl Tls {
    fn config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let ca = std::fs::read_to_string(&self.ca)
            .with_context(|| format!("reading {}", self.ca.display()))?;
        let alpn: Vec<&[u8]> = self.alpn.iter().map(|a| a.as_bytes()).collect();
        Ok(webconf_connector::pem::client_config(&ca, None, &alpn)?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Idle TCP connections to one listener, held silent (optionally after one byte).
    IdleTcp {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        conns: u64,
        /// One byte sent after connecting (hex, e.g. 00).
        #[arg(long, value_parser = parse_hex_byte)]
        first_byte: Option<u8>,
        #[arg(long, default_value_t = 2000)]
        open_rate: u64,
        #[arg(long)]
        seconds: f64,
        #[command(flatten)]
        from: SourceArgs,
    },
    /// New TLS handshakes at a rate: abandoned after the server's answer, or completed.
    TlsHandshake {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, value_enum, default_value = "abandon")]
        mode: tls_flood::Mode,
        #[arg(long)]
        rate: u64,
        #[arg(long, default_value_t = 1_000_000)]
        max: u64,
        #[arg(long, default_value_t = 64)]
        workers: u64,
        #[arg(long)]
        seconds: f64,
        #[command(flatten)]
        tls: Tls,
        #[command(flatten)]
        from: SourceArgs,
    },
    /// Spoofed-source STUN requests (raw socket; needs CAP_NET_RAW), answers counted.
    Stun {
        #[arg(long)]
        target: SocketAddrV4,
        #[arg(long, value_enum, default_value = "binding")]
        method: stun_flood::StunMethod,
        /// Add USERNAME, REALM, NONCE and a (forged) MESSAGE-INTEGRITY.
        #[arg(long)]
        integrity: bool,
        #[arg(long)]
        rate: u64,
        #[arg(long, default_value_t = 10_000_000)]
        max: u64,
        #[arg(long)]
        seconds: f64,
        #[command(flatten)]
        from: SourceArgs,
    },
    /// Random-source QUIC Initials (raw socket; needs CAP_NET_RAW), answers counted.
    Quic {
        #[arg(long)]
        target: SocketAddrV4,
        #[arg(long)]
        rate: u64,
        #[arg(long, default_value_t = 10_000_000)]
        max: u64,
        #[arg(long)]
        seconds: f64,
        #[command(flatten)]
        tls: Tls,
        #[command(flatten)]
        from: SourceArgs,
    },
    /// SIP INVITEs over TLS at a total rate, one connection per source.
    SipInvite {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        rate: u64,
        #[arg(long, default_value_t = 1)]
        conns_per_source: u64,
        #[arg(long)]
        seconds: f64,
        #[command(flatten)]
        tls: Tls,
        #[command(flatten)]
        from: SourceArgs,
    },
    /// TLS connections that send a valid start one byte every few seconds.
    Slowloris {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, value_enum)]
        kind: slowloris::Kind,
        #[arg(long)]
        conns: u64,
        #[arg(long, default_value_t = 3000)]
        interval_ms: u64,
        #[arg(long)]
        seconds: f64,
        #[command(flatten)]
        tls: Tls,
        #[command(flatten)]
        from: SourceArgs,
    },
    /// One authenticated TURN user opening allocations, permissions and TCP connections to every limit.
    TurnUser {
        #[arg(long)]
        server: SocketAddr,
        /// TURN over TCP (control connections with RFC 6062 TCP allocations).
        #[arg(long)]
        tcp_server: Option<SocketAddr>,
        /// Network of TCP listeners the relay may connect to (RFC 6062 Connect), with --tcp-peer-port.
        #[arg(long)]
        tcp_peers: Option<Net>,
        #[arg(long, default_value_t = 9000)]
        tcp_peer_port: u16,
        /// Network the permission and channel peers are taken from.
        #[arg(long)]
        peers: Net,
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
        #[arg(long)]
        src: Ipv4Addr,
        #[arg(long, default_value_t = 2000)]
        max_tcp: u64,
        #[arg(long, default_value_t = 2000)]
        max_peer_connections: u64,
        #[arg(long, default_value_t = 5000)]
        max_allocations: u64,
        #[arg(long, default_value_t = 2000)]
        max_permissions: u64,
        #[arg(long, default_value_t = 2000)]
        max_channels: u64,
        #[arg(long)]
        seconds: f64,
    },
    /// Legitimate meeting sessions (TLS and QUIC alternately) at a steady rate.
    WebconfSessions {
        #[arg(long)]
        edge: SocketAddr,
        #[arg(long)]
        conference: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        rate: f64,
        #[arg(long)]
        seconds: f64,
        #[command(flatten)]
        tls: Tls,
    },
}

fn parse_hex_byte(s: &str) -> Result<u8, String> {
    u8::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| format!("{s}: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn main() -> Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    net::raise_nofile();
    let report = match Cli::parse().command {
        Command::IdleTcp {
            target,
            conns,
            first_byte,
            open_rate,
            seconds,
            from,
        } => runtime()?.block_on(idle::run(
            target,
            from.pool(),
            conns,
            first_byte,
            seconds,
            open_rate,
        ))?,
        Command::TlsHandshake {
            target,
            mode,
            rate,
            max,
            workers,
            seconds,
            tls,
            from,
        } => {
            let budget = Budget { rate, seconds, max };
            runtime()?.block_on(tls_flood::run(
                target,
                from.pool(),
                tls.config()?,
                &tls.server_name,
                mode,
                budget,
                workers,
            ))?
        }
        Command::Stun {
            target,
            method,
            integrity,
            rate,
            max,
            seconds,
            from,
        } => stun_flood::run(
            target,
            from.pool(),
            method,
            integrity,
            Budget { rate, seconds, max },
        )?,
        Command::Quic {
            target,
            rate,
            max,
            seconds,
            tls,
            from,
        } => {
            let mut t = tls.clone();
            if t.alpn.is_empty() {
                t.alpn
                    .push(String::from_utf8_lossy(session_key::wire::ALPN_CLIENT).into_owned());
            }
            quic_flood::run(
                target,
                from.pool(),
                t.config()?,
                &tls.server_name,
                Budget { rate, seconds, max },
            )?
        }
        Command::SipInvite {
            target,
            rate,
            conns_per_source,
            seconds,
            tls,
            from,
        } => runtime()?.block_on(sip_flood::run(
            target,
            from.pool(),
            conns_per_source,
            tls.config()?,
            &tls.server_name,
            rate,
            seconds,
        ))?,
        Command::Slowloris {
            target,
            kind,
            conns,
            interval_ms,
            seconds,
            tls,
            from,
        } => {
            let mut t = tls.clone();
            if matches!(kind, slowloris::Kind::Webconf) && t.alpn.is_empty() {
                t.alpn
                    .push(String::from_utf8_lossy(session_key::wire::ALPN_CLIENT).into_owned());
            }
            let interval = Duration::from_millis(interval_ms);
            runtime()?.block_on(slowloris::run(
                target,
                from.pool(),
                t.config()?,
                &tls.server_name,
                kind,
                conns,
                interval,
                seconds,
            ))?
        }
        Command::TurnUser {
            server,
            tcp_server,
            tcp_peers,
            tcp_peer_port,
            peers,
            user,
            password,
            src,
            max_tcp,
            max_peer_connections,
            max_allocations,
            max_permissions,
            max_channels,
            seconds,
        } => {
            let target = turn_user::Target {
                udp: server,
                tcp: tcp_server,
                tcp_peers: tcp_peers.map(|n| (n, tcp_peer_port)),
                peers,
                src,
                user,
                password,
            };
            let limits = turn_user::Limits {
                tcp_connections: max_tcp,
                peer_connections: max_peer_connections,
                allocations: max_allocations,
                permissions: max_permissions,
                channels: max_channels,
            };
            turn_user::run(&target, &limits, seconds)?
        }
        Command::WebconfSessions {
            edge,
            conference,
            token,
            rate,
            seconds,
            tls,
        } => {
            let rt = runtime()?;
            let config = tls.config()?;
            let client = rt.block_on(async {
                webconf_connector::client::Client::new(&config, &tls.server_name)
            })?;
            rt.block_on(webconf_sessions::run(
                client, edge, conference, token, rate, seconds,
            ))?
        }
    };
    println!("{}", report.line());
    Ok(())
}
