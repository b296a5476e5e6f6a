//! Spoofed-source UDP: IPv4 datagrams built whole (header included) and sent through a raw
//! socket, and a raw receiver that counts the server's answers, whatever address they went
//! to. Needs CAP_NET_RAW: the harness runs it as root inside its flood namespace.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const IP_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
/// IPPROTO_RAW: the caller supplies the IP header (IP_HDRINCL is implied).
const IPPROTO_RAW: i32 = 255;

/// Writes an IPv4 + UDP datagram carrying `payload` into `out` (cleared first). The kernel
/// fills the IP checksum and, when zero, the identification; the UDP checksum is computed.
pub fn build_udp(out: &mut Vec<u8>, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) {
    let udp_len = UDP_HEADER_LEN + payload.len();
    let total = IP_HEADER_LEN + udp_len;
    out.clear();
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&(total as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]); // id, DF, TTL, UDP, checksum
    out.extend_from_slice(&src.ip().octets());
    out.extend_from_slice(&dst.ip().octets());
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&(udp_len as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let sum = udp_checksum(*src.ip(), *dst.ip(), &out[IP_HEADER_LEN..]);
    out[IP_HEADER_LEN + 6..IP_HEADER_LEN + 8].copy_from_slice(&sum.to_be_bytes());
}

fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for pair in b.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&[0, 17]);
    add(&(udp.len() as u16).to_be_bytes());
    add(udp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    match !(sum as u16) {
        0 => 0xffff,
        s => s,
    }
}

/// What an IPv4 packet is, as far as counting answers needs: UDP from where, payload size.
pub fn parse_udp(packet: &[u8]) -> Option<(SocketAddrV4, usize)> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    if packet.len() < ihl + UDP_HEADER_LEN || packet[0] >> 4 != 4 || packet[9] != 17 {
        return None;
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let port = u16::from_be_bytes([packet[ihl], packet[ihl + 1]]);
    Some((
        SocketAddrV4::new(src, port),
        packet.len() - ihl - UDP_HEADER_LEN,
    ))
}

pub struct RawSender {
    socket: Socket,
}

impl RawSender {
    pub fn new() -> std::io::Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))?;
        socket.set_send_buffer_size(4 << 20)?;
        Ok(RawSender { socket })
    }

    /// Sends one datagram built by `build_udp`. A full send buffer (ENOBUFS) counts as not sent.
    pub fn send(&self, packet: &[u8], dst: SocketAddrV4) -> bool {
        self.socket.send_to(packet, &SockAddr::from(dst)).is_ok()
    }
}

/// Answers counted from one server address.
#[derive(Debug, Default, Clone, Copy)]
pub struct Answers {
    pub packets: u64,
    pub payload_bytes: u64,
}

/// Counts every UDP packet from `server` that reaches this namespace until `stop` is set.
pub fn count_answers(
    server: SocketAddrV4,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<Answers>> {
    let mut socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(16 << 20)?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(std::thread::spawn(move || {
        let mut answers = Answers::default();
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            let Ok(n) = socket.read(&mut buf) else {
                continue;
            };
            if let Some((from, len)) = parse_udp(&buf[..n]) {
                if from == server {
                    answers.packets += 1;
                    answers.payload_bytes += len as u64;
                }
            }
        }
        answers
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_datagram_parses_back_and_its_checksum_verifies() {
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 128, 0, 9), 40000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 3478);
        let mut out = Vec::new();
        build_udp(&mut out, src, dst, b"odd-length!");
        assert_eq!(out.len(), 20 + 8 + 11);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]) as usize, out.len());
        assert_eq!(parse_udp(&out), Some((src, 11)));
        // Summing a datagram with its checksum in place gives all ones.
        let mut sum: u32 = 0;
        let mut words = Vec::new();
        words.extend_from_slice(&src.ip().octets());
        words.extend_from_slice(&dst.ip().octets());
        words.extend_from_slice(&[0, 17, 0, 19]);
        words.extend_from_slice(&out[20..]);
        words.push(0);
        for p in words.chunks(2) {
            if p.len() == 2 {
                sum += u32::from(u16::from_be_bytes([p[0], p[1]]));
            }
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }

    #[test]
    fn non_udp_and_truncated_packets_are_not_answers() {
        assert_eq!(parse_udp(&[]), None);
        assert_eq!(parse_udp(&[0x45; 10]), None);
        let mut tcp = vec![0u8; 40];
        tcp[0] = 0x45;
        tcp[9] = 6;
        assert_eq!(parse_udp(&tcp), None);
    }
}
