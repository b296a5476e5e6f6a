//! ChannelData framing with the channel range of RFC 5766 (0x4000-0x7FFF).
//!
//! RFC 8656 narrowed channel numbers to 0x4000-0x4FFF, but deployed clients (coturn's own
//! test client among them) still pick numbers up to 0x7FFF, and a relay that refuses them
//! breaks those calls. The relay therefore accepts the older, wider range; stun-core
//! implements the narrow one.

/// Lowest and highest channel number accepted.
pub const MIN_CHANNEL: u16 = 0x4000;
pub const MAX_CHANNEL: u16 = 0x7FFF;
pub const HEADER_LEN: usize = 4;

#[inline]
pub fn is_channel(n: u16) -> bool {
    (MIN_CHANNEL..=MAX_CHANNEL).contains(&n)
}

/// First byte 0x40-0x7F: ChannelData (the STUN range is 0x00-0x3F).
#[inline]
pub fn is_channel_data(first_byte: u8) -> bool {
    first_byte >> 6 == 0b01
}

/// Channel and payload of a ChannelData datagram; over UDP up to 3 padding bytes may follow.
#[inline]
pub fn parse_datagram(buf: &[u8]) -> Option<(u16, &[u8])> {
    let h = buf.first_chunk::<HEADER_LEN>()?;
    let channel = u16::from_be_bytes([h[0], h[1]]);
    let len = u16::from_be_bytes([h[2], h[3]]) as usize;
    let available = buf.len() - HEADER_LEN;
    if !is_channel(channel) || len > available || available > (len + 3) & !3 {
        return None;
    }
    Some((channel, &buf[HEADER_LEN..HEADER_LEN + len]))
}

/// Writes a ChannelData header into the first four bytes of `out`.
#[inline]
pub fn write_header(out: &mut [u8], channel: u16, payload_len: usize) -> Option<()> {
    let len = u16::try_from(payload_len).ok()?;
    let h = out.first_chunk_mut::<HEADER_LEN>()?;
    let [c0, c1] = channel.to_be_bytes();
    let [l0, l1] = len.to_be_bytes();
    *h = [c0, c1, l0, l1];
    Some(())
}

/// Frame length on a stream transport, where padding to 4 is mandatory.
#[inline]
pub fn stream_frame_len(payload_len: usize) -> usize {
    HEADER_LEN + ((payload_len + 3) & !3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams() {
        assert_eq!(
            parse_datagram(&[0x40, 0, 0, 2, 9, 8]),
            Some((0x4000, &[9u8, 8][..]))
        );
        assert_eq!(
            parse_datagram(&[0x7f, 0xff, 0, 1, 9, 0, 0, 0]),
            Some((0x7fff, &[9u8][..]))
        );
        assert_eq!(parse_datagram(&[0x40, 0, 0, 3, 9]), None, "truncated");
        assert_eq!(
            parse_datagram(&[0x40, 0, 0, 0, 1, 2, 3, 4]),
            None,
            "beyond padding"
        );
        assert_eq!(parse_datagram(&[0x80, 0, 0, 0]), None);
        assert_eq!(parse_datagram(&[0x40, 0]), None);
        assert!(is_channel_data(0x7f) && !is_channel_data(0x3f) && !is_channel_data(0x80));
    }
}
