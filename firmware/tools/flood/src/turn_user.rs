//! One authenticated TURN user pushing every limit: TCP control connections with TCP
//! allocations and peer connections (RFC 6062), UDP allocations, then permissions and
//! channels on one allocation, each until the server refuses or the run's caps are reached.
//! Everything is held until the end of the run.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use stun_core::{attr, Method};
use turn_load::client::{ClientError, Credentials, TurnClient};

use crate::report::Report;
use crate::sources::{Net, Sources};
use crate::turn_tcp::{refusal_code, TcpTurn};

pub struct Limits {
    pub tcp_connections: u64,
    pub peer_connections: u64,
    pub allocations: u64,
    pub permissions: u64,
    pub channels: u64,
}

pub struct Target {
    pub udp: SocketAddr,
    pub tcp: Option<SocketAddr>,
    /// TCP listeners the relay may connect to: every address of a network, one port.
    pub tcp_peers: Option<(Net, u16)>,
    pub peers: Net,
    pub src: Ipv4Addr,
    pub user: String,
    pub password: String,
}

fn udp_code(e: &ClientError) -> u16 {
    match e {
        ClientError::Refused { code, .. } => *code,
        _ => 0,
    }
}

pub fn run(t: &Target, limits: &Limits, seconds: f64) -> Result<Report> {
    let start = Instant::now();
    let left = || start.elapsed().as_secs_f64() < seconds;
    let mut r = Report::new();

    // TCP control connections, each with a TCP allocation and peer connections.
    let mut tcp = Vec::new();
    let (mut peer_conns, mut tcp_stop, mut peer_stop) = (0u64, "cap", "cap");
    if let Some(server) = t.tcp {
        while (tcp.len() as u64) < limits.tcp_connections && left() {
            let attempt = TcpTurn::connect(t.src, server, &t.user, &t.password)
                .and_then(|mut c| c.allocate_tcp().map(|_| c));
            match attempt {
                Ok(c) => tcp.push(c),
                Err(e) => {
                    tcp_stop = if refusal_code(&e) == 0 {
                        "closed"
                    } else {
                        "refused"
                    };
                    r.add("tcp_refusal_code", refusal_code(&e));
                    break;
                }
            }
        }
        if let (Some((net, port)), Some(first)) = (t.tcp_peers, tcp.first_mut()) {
            // A new peer address each time: a second Connect to one peer is refused (446).
            let peers = Sources::new(net, 0);
            while peer_conns < limits.peer_connections && left() {
                match first.connect_peer(SocketAddr::from((peers.nth(peer_conns), port))) {
                    Ok(()) => peer_conns += 1,
                    Err(e) => {
                        peer_stop = "refused";
                        r.add("peer_refusal_code", refusal_code(&e));
                        break;
                    }
                }
            }
        }
    }
    r.add("tcp_allocations", tcp.len())
        .add("tcp_stop", tcp_stop);
    r.add("peer_connections", peer_conns)
        .add("peer_stop", peer_stop);

    // UDP allocations, one socket each.
    let creds = Credentials::LongTerm {
        user: t.user.clone(),
        password: t.password.clone(),
    };
    let mut udp: Vec<TurnClient> = Vec::new();
    let mut alloc_stop = "cap";
    while (udp.len() as u64) < limits.allocations && left() {
        let socket = Arc::new(UdpSocket::bind((t.src, 0))?);
        let mut c = TurnClient::new(socket, t.udp, &creds)?;
        match c.allocate(600) {
            Ok(_) => udp.push(c),
            Err(e) => {
                alloc_stop = "refused";
                r.add("alloc_refusal_code", udp_code(&e));
                break;
            }
        }
    }
    r.add("udp_allocations", udp.len())
        .add("alloc_stop", alloc_stop);

    // Permissions, then channels, on the first allocation.
    let peers = Sources::new(t.peers, 0);
    let (mut perms, mut chans, mut perm_stop, mut chan_stop) = (0u64, 0u64, "cap", "cap");
    if let Some(c) = udp.first_mut() {
        while perms < limits.permissions && left() {
            let peer = SocketAddr::from((peers.nth(perms), 9));
            let res = c.request(Method::CREATE_PERMISSION, &|e| {
                e.add_xor_address(attr::XOR_PEER_ADDRESS, peer)?;
                Ok(())
            });
            match res {
                Ok(_) => perms += 1,
                Err(e) => {
                    perm_stop = "refused";
                    r.add("perm_refusal_code", udp_code(&e));
                    break;
                }
            }
        }
        while chans < limits.channels.min(0x7fff - 0x4000) && left() {
            let peer = SocketAddr::from((peers.nth(chans), 10));
            match c.bind_channel(0x4000 + chans as u16, peer) {
                Ok(()) => chans += 1,
                Err(e) => {
                    chan_stop = "refused";
                    r.add("chan_refusal_code", udp_code(&e));
                    break;
                }
            }
        }
    }
    r.add("permissions", perms).add("perm_stop", perm_stop);
    r.add("channels", chans).add("chan_stop", chan_stop);
    r.add("setup_s", format!("{:.1}", start.elapsed().as_secs_f64()));

    // Hold it all to the end of the run.
    let rest = seconds - start.elapsed().as_secs_f64();
    if rest > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(rest));
    }
    drop(tcp);
    drop(udp);
    Ok(r)
}
