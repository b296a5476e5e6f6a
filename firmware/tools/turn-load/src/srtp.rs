//! SRTP mode: every media packet is a real SRTP packet (AES_CM_128_HMAC_SHA1_80, RFC 3711)
//! under fixed test master keys, and the far side decrypts, authenticates and compares each
//! one with what was sent. One flipped bit anywhere in the relay path fails the HMAC, so a
//! run with no failures proves the relay is bit-transparent.
//!
//! Layout of the plaintext RTP payload: the 16-byte measurement stamp (flow, sequence, send
//! time) and then a pattern derived from flow and sequence, so a receiver can check every
//! byte without keeping a copy of what was sent.

use bytes::Bytes;
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

use crate::run::STAMP_LEN;

/// Test master key and salt (never secrets: the point is transparency, not privacy).
pub const MASTER_KEY: [u8; 16] = *b"edged-srtp-mkey1";
pub const MASTER_SALT: [u8; 14] = *b"edged-srtp-slt";
pub const RTP_HEADER_LEN: usize = 12;
/// HMAC-SHA1 truncated to 80 bits.
pub const AUTH_TAG_LEN: usize = 10;
/// The smallest packet that carries the header, the stamp and the tag.
pub const MIN_PACKET: usize = RTP_HEADER_LEN + STAMP_LEN + AUTH_TAG_LEN;
/// PCMU: 160 samples per 20 ms packet, the audio the default size models.
const PAYLOAD_TYPE: u8 = 0;
const SAMPLES_PER_PACKET: u32 = 160;

#[derive(Debug, thiserror::Error)]
pub enum SrtpError {
    #[error("SRTP: {0}")]
    Srtp(#[from] webrtc_srtp::Error),
    #[error("flow {0} does not fit an SSRC")]
    TooManyFlows(u32),
}

/// Flows and directions get distinct SSRCs, so one master key serves all of them without
/// reusing a keystream (RFC 3711 section 9.1).
pub fn ssrc(flow: u32, to_client: bool) -> Result<u32, SrtpError> {
    if flow >= 1 << 23 {
        return Err(SrtpError::TooManyFlows(flow));
    }
    Ok(0x5E00_0000 | (flow << 1) | u32::from(to_client))
}

fn flow_of(ssrc: u32) -> Option<(u32, bool)> {
    (ssrc & 0xFF00_0000 == 0x5E00_0000).then_some(((ssrc & 0x00FF_FFFF) >> 1, ssrc & 1 == 1))
}

/// The filler byte at `index` of the payload of packet `seq` of `flow`.
fn pattern(flow: u32, seq: u32, index: usize) -> u8 {
    let mixed = flow
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(seq.wrapping_mul(0x85EB_CA6B))
        .wrapping_add(index as u32)
        .rotate_left(index as u32 % 29);
    (mixed ^ (mixed >> 16)) as u8
}

fn new_context() -> Result<Context, SrtpError> {
    Ok(Context::new(
        &MASTER_KEY,
        &MASTER_SALT,
        ProtectionProfile::Aes128CmHmacSha1_80,
        None,
        None,
    )?)
}

/// Protects outgoing packets of the flows one sender thread owns.
pub struct SrtpSender {
    context: Context,
    plain: Vec<u8>,
}

impl SrtpSender {
    pub fn new() -> Result<Self, SrtpError> {
        Ok(SrtpSender {
            context: new_context()?,
            plain: Vec::with_capacity(1500),
        })
    }

    /// The SRTP packet for `seq` of `flow`, `wire_len` bytes long (at least [`MIN_PACKET`]),
    /// its payload starting with `stamp`.
    pub fn protect(
        &mut self,
        flow: u32,
        to_client: bool,
        seq: u32,
        stamp: &[u8; STAMP_LEN],
        wire_len: usize,
    ) -> Result<Bytes, SrtpError> {
        let payload_len = wire_len.max(MIN_PACKET) - RTP_HEADER_LEN - AUTH_TAG_LEN;
        self.plain.clear();
        self.plain.push(0x80); // version 2, no padding, extension or CSRC
        self.plain.push(PAYLOAD_TYPE);
        self.plain.extend_from_slice(&(seq as u16).to_be_bytes());
        self.plain
            .extend_from_slice(&seq.wrapping_mul(SAMPLES_PER_PACKET).to_be_bytes());
        self.plain
            .extend_from_slice(&ssrc(flow, to_client)?.to_be_bytes());
        self.plain.extend_from_slice(stamp);
        self.plain
            .extend((STAMP_LEN..payload_len).map(|i| pattern(flow, seq, i)));
        Ok(self.context.encrypt_rtp(&self.plain)?)
    }
}

/// What a receiver made of the packets it was given.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Verdicts {
    /// Decrypted, authenticated, and every byte as sent.
    pub verified: u64,
    /// Refused by SRTP (authentication, length) or different from what was sent.
    pub failures: u64,
}

/// Unprotects and checks incoming packets of every flow.
pub struct SrtpReceiver {
    context: Context,
    pub to_peer: Verdicts,
    pub to_client: Verdicts,
}

impl SrtpReceiver {
    pub fn new() -> Result<Self, SrtpError> {
        Ok(SrtpReceiver {
            context: new_context()?,
            to_peer: Verdicts::default(),
            to_client: Verdicts::default(),
        })
    }

    /// Checks one packet received in direction `to_client`; returns its stamp when it
    /// decrypted, authenticated and matched what the sender built, and counts the verdict.
    pub fn check(&mut self, packet: &[u8], to_client: bool) -> Option<[u8; STAMP_LEN]> {
        let stamp = self.verify(packet, to_client);
        let verdicts = if to_client {
            &mut self.to_client
        } else {
            &mut self.to_peer
        };
        match stamp {
            Some(_) => verdicts.verified += 1,
            None => verdicts.failures += 1,
        }
        stamp
    }

    fn verify(&mut self, packet: &[u8], to_client: bool) -> Option<[u8; STAMP_LEN]> {
        let ssrc = u32::from_be_bytes(packet.get(8..12)?.try_into().ok()?);
        let (flow, direction) = flow_of(ssrc)?;
        if direction != to_client {
            return None;
        }
        let plain = self.context.decrypt_rtp(packet).ok()?;
        let payload = plain.get(RTP_HEADER_LEN..)?;
        let stamp: [u8; STAMP_LEN] = payload.get(..STAMP_LEN)?.try_into().ok()?;
        let stamped_flow = u32::from_be_bytes(stamp[0..4].try_into().ok()?);
        let seq = u32::from_be_bytes(stamp[4..8].try_into().ok()?);
        let rtp_seq = u16::from_be_bytes(plain.get(2..4)?.try_into().ok()?);
        if stamped_flow != flow || rtp_seq != seq as u16 {
            return None;
        }
        let intact = payload[STAMP_LEN..]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == pattern(flow, seq, STAMP_LEN + i));
        intact.then_some(stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(flow: u32, seq: u32) -> [u8; STAMP_LEN] {
        let mut s = [0u8; STAMP_LEN];
        s[0..4].copy_from_slice(&flow.to_be_bytes());
        s[4..8].copy_from_slice(&seq.to_be_bytes());
        s[8..16].copy_from_slice(&u64::from(seq * 1000).to_be_bytes());
        s
    }

    #[test]
    fn packets_round_trip_at_the_requested_size() {
        let mut tx = SrtpSender::new().expect("sender");
        let mut rx = SrtpReceiver::new().expect("receiver");
        for (flow, to_client, size) in [(0, false, 172), (7, true, 1200), (3, false, 10)] {
            for seq in 0..20 {
                let packet = tx
                    .protect(flow, to_client, seq, &stamp(flow, seq), size)
                    .expect("protect");
                assert_eq!(packet.len(), size.max(MIN_PACKET));
                assert_eq!(rx.check(&packet, to_client), Some(stamp(flow, seq)));
            }
        }
        assert_eq!(rx.to_peer.verified, 40);
        assert_eq!(rx.to_client.verified, 20);
        assert_eq!(rx.to_peer.failures + rx.to_client.failures, 0);
    }

    #[test]
    fn payload_is_encrypted_on_the_wire() {
        let mut tx = SrtpSender::new().expect("sender");
        let s = stamp(1, 1);
        let packet = tx.protect(1, false, 1, &s, 172).expect("protect");
        assert!(!packet.windows(STAMP_LEN).any(|w| w == s));
    }

    #[test]
    fn every_flipped_bit_is_a_failure() {
        let mut tx = SrtpSender::new().expect("sender");
        let mut rx = SrtpReceiver::new().expect("receiver");
        let packet = tx.protect(2, true, 0, &stamp(2, 0), 60).expect("protect");
        let mut refused = 0;
        for byte in 0..packet.len() {
            for bit in 0..8 {
                let mut bad = packet.to_vec();
                bad[byte] ^= 1 << bit;
                if rx.check(&bad, true).is_none() {
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, packet.len() * 8);
        assert_eq!(rx.to_client.failures, refused as u64);
        assert_eq!(rx.to_client.verified, 0);
        // The intact packet still verifies afterwards.
        assert!(rx.check(&packet, true).is_some());
    }

    #[test]
    fn truncated_foreign_and_misdirected_packets_fail() {
        let mut tx = SrtpSender::new().expect("sender");
        let mut rx = SrtpReceiver::new().expect("receiver");
        let packet = tx.protect(4, false, 9, &stamp(4, 9), 100).expect("protect");
        assert!(rx.check(&packet[..50], false).is_none());
        assert!(rx.check(&[], false).is_none());
        assert!(rx.check(&packet, true).is_none(), "wrong direction");
        let mut foreign = packet.to_vec();
        foreign[8] = 0x11; // an SSRC this run never uses
        assert!(rx.check(&foreign, false).is_none());
        assert_eq!(rx.to_peer.failures, 3);
        assert_eq!(rx.to_client.failures, 1);
    }

    #[test]
    fn a_packet_built_under_another_key_fails() {
        let mut other = Context::new(
            &[7u8; 16],
            &MASTER_SALT,
            ProtectionProfile::Aes128CmHmacSha1_80,
            None,
            None,
        )
        .expect("context");
        let mut plain = vec![0x80, 0, 0, 1, 0, 0, 0, 160];
        plain.extend_from_slice(&ssrc(5, false).expect("ssrc").to_be_bytes());
        plain.extend_from_slice(&stamp(5, 1));
        let packet = other.encrypt_rtp(&plain).expect("encrypt");
        let mut rx = SrtpReceiver::new().expect("receiver");
        assert!(rx.check(&packet, false).is_none());
    }

    #[test]
    fn ssrcs_are_distinct_and_bounded() {
        assert_ne!(ssrc(1, false).ok(), ssrc(1, true).ok());
        assert_ne!(ssrc(1, true).ok(), ssrc(2, false).ok());
        assert_eq!(
            flow_of(ssrc(12345, true).expect("ssrc")),
            Some((12345, true))
        );
        assert!(ssrc(1 << 23, false).is_err());
    }
}
