//! In-place framing for the media path: Data indications are built around a payload that
//! was received at a fixed offset, Send indications are read without copying.

use std::net::{IpAddr, SocketAddr};

use stun_core::{attr, Class, Message, Method, MAGIC_COOKIE};

/// Where a relay socket receives its payload, leaving room for the largest Data indication
/// head (20 header + 24 XOR-PEER-ADDRESS for IPv6 + 4 DATA header).
pub(crate) const PAYLOAD_OFFSET: usize = 48;

/// STUN message type of a Data indication (method 0x007, class indication).
const DATA_INDICATION: u16 = 0x0017;

/// Writes a Data indication head before `buf[PAYLOAD_OFFSET..PAYLOAD_OFFSET + len]` and
/// zero padding after it; returns the message's range in `buf`. `None` if the buffer
/// cannot hold the padding.
#[inline]
pub(crate) fn build_data_indication(
    buf: &mut [u8],
    len: usize,
    peer: SocketAddr,
    transaction_id: &[u8; 12],
) -> Option<std::ops::Range<usize>> {
    let address_len = match peer.ip() {
        IpAddr::V4(_) => 8,
        IpAddr::V6(_) => 20,
    };
    let head = 20 + 4 + address_len + 4;
    let start = PAYLOAD_OFFSET - head;
    let padded = (len + 3) & !3;
    let end = PAYLOAD_OFFSET + padded;
    let body_len = head - 20 + padded;
    let body_len = u16::try_from(body_len).ok()?;
    let data_len = u16::try_from(len).ok()?;
    buf.get_mut(PAYLOAD_OFFSET + len..end)?.fill(0);
    let h = buf.get_mut(start..PAYLOAD_OFFSET)?;
    h[0..2].copy_from_slice(&DATA_INDICATION.to_be_bytes());
    h[2..4].copy_from_slice(&body_len.to_be_bytes());
    h[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    h[8..20].copy_from_slice(transaction_id);
    h[20..22].copy_from_slice(&attr::XOR_PEER_ADDRESS.to_be_bytes());
    h[22..24].copy_from_slice(&(address_len as u16).to_be_bytes());
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let a = &mut h[24..24 + address_len];
    a[0] = 0;
    a[2..4].copy_from_slice(&(peer.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
    match peer.ip() {
        IpAddr::V4(v4) => {
            a[1] = 0x01;
            for (i, o) in v4.octets().iter().enumerate() {
                a[4 + i] = o ^ cookie[i];
            }
        }
        IpAddr::V6(v6) => {
            a[1] = 0x02;
            let mask = cookie.iter().chain(transaction_id.iter());
            for (i, (o, m)) in v6.octets().iter().zip(mask).enumerate() {
                a[4 + i] = o ^ m;
            }
        }
    }
    let d = &mut h[24 + address_len..];
    d[0..2].copy_from_slice(&attr::DATA.to_be_bytes());
    d[2..4].copy_from_slice(&data_len.to_be_bytes());
    Some(start..end)
}

/// What a datagram from a client is, as far as the data plane cares.
pub(crate) enum ClientPacket<'a> {
    /// A Send indication: peer, payload and whether it carries DONT-FRAGMENT.
    Send(SocketAddr, &'a [u8], bool),
    /// A Send indication without a usable peer or data: dropped (indications get no
    /// error response).
    BadSend,
    /// Any other STUN message: for the control plane.
    Control,
}

/// Classifies a STUN datagram (first two bits zero) from a client.
#[inline]
pub(crate) fn classify_stun(bytes: &[u8]) -> ClientPacket<'_> {
    // Cheap pre-check on the message type so only Send indications are decoded here.
    if bytes.len() < 20 || u16::from_be_bytes([bytes[0], bytes[1]]) != 0x0016 {
        return ClientPacket::Control;
    }
    let Ok(msg) = Message::decode(bytes) else {
        return ClientPacket::BadSend;
    };
    if msg.method() != Method::SEND || msg.class() != Class::Indication {
        return ClientPacket::Control;
    }
    match (msg.address(attr::XOR_PEER_ADDRESS), msg.data()) {
        (Ok(Some(peer)), Some(data)) => {
            ClientPacket::Send(peer, data, msg.raw(attr::DONT_FRAGMENT).is_some())
        }
        _ => ClientPacket::BadSend,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_indication_decodes_with_stun_core() {
        for peer in ["192.0.2.7:4000", "[2001:db8::9]:5000"] {
            let peer: SocketAddr = peer.parse().unwrap_or_else(|_| unreachable!());
            let mut buf = vec![0xAAu8; 2048];
            let payload = b"hello media";
            buf[PAYLOAD_OFFSET..PAYLOAD_OFFSET + payload.len()].copy_from_slice(payload);
            let tid = [7u8; 12];
            let range = build_data_indication(&mut buf, payload.len(), peer, &tid);
            let Some(range) = range else {
                panic!("no room");
            };
            let msg = Message::decode(&buf[range]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(msg.method(), Method::DATA);
            assert_eq!(msg.class(), Class::Indication);
            assert_eq!(msg.address(attr::XOR_PEER_ADDRESS), Ok(Some(peer)));
            assert_eq!(msg.data(), Some(&payload[..]));
        }
    }

    #[test]
    fn send_indication_is_recognised() {
        let peer: SocketAddr = "198.51.100.1:9".parse().unwrap_or_else(|_| unreachable!());
        let send = |dont_fragment: bool| {
            let mut out = Vec::new();
            let mut enc = stun_core::MessageEncoder::new(
                &mut out,
                Method::SEND,
                Class::Indication,
                stun_core::TransactionId([1; 12]),
            );
            enc.add_xor_address(attr::XOR_PEER_ADDRESS, peer)
                .and_then(|e| {
                    if dont_fragment {
                        e.add_raw(attr::DONT_FRAGMENT, &[])
                    } else {
                        Ok(e)
                    }
                })
                .and_then(|e| e.add_raw(attr::DATA, b"abc"))
                .unwrap_or_else(|e| panic!("{e}"));
            enc.finish().to_vec()
        };
        let bytes = send(false);
        match classify_stun(&bytes) {
            ClientPacket::Send(p, d, df) => {
                assert_eq!(p, peer);
                assert_eq!(d, b"abc");
                assert!(!df);
            }
            _ => panic!("not a send"),
        }
        // The same with DONT-FRAGMENT.
        assert!(matches!(
            classify_stun(&send(true)),
            ClientPacket::Send(_, b"abc", true)
        ));
        // A Binding request goes to the control plane; a truncated Send is dropped.
        let mut binding = bytes.clone();
        binding[0..2].copy_from_slice(&0x0001u16.to_be_bytes());
        assert!(matches!(classify_stun(&binding), ClientPacket::Control));
        assert!(matches!(
            classify_stun(&bytes[..bytes.len() - 4]),
            ClientPacket::BadSend
        ));
    }
}
