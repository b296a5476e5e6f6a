//! ChannelData messages (RFC 8656 section 12.4): a 4-byte header (channel number, length)
//! in front of application data. This is the media hot path: no allocation, few branches.

use thiserror::Error;

pub const CHANNEL_DATA_HEADER_LEN: usize = 4;
pub const MIN_CHANNEL: u16 = 0x4000;
pub const MAX_CHANNEL: u16 = 0x4FFF;

/// A ChannelData message borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    pub channel: u16,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ChannelDataError {
    #[error("shorter than the 4-byte ChannelData header")]
    TooShort,
    #[error("{0:#06x} is not a channel number (0x4000-0x4FFF)")]
    BadChannel(u16),
    #[error("declared length {declared} exceeds the {available} bytes present")]
    Truncated { declared: usize, available: usize },
    #[error("{extra} bytes after the payload exceed the padding")]
    TrailingBytes { extra: usize },
    #[error("buffer too small for the frame")]
    BufferTooSmall,
}

/// What the first byte of a packet on a TURN port says it is (RFC 7983 style demux,
/// narrowed to what a relay receives).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Stun,
    ChannelData,
    Other,
}

#[inline]
pub fn classify(first_byte: u8) -> PacketKind {
    match first_byte >> 6 {
        0b00 => PacketKind::Stun,
        // 0x40-0x4F carry channels 0x4000-0x4FFF; 0x50-0x7F are reserved.
        0b01 if first_byte < 0x50 => PacketKind::ChannelData,
        _ => PacketKind::Other,
    }
}

#[inline]
pub fn is_channel_number(n: u16) -> bool {
    (MIN_CHANNEL..=MAX_CHANNEL).contains(&n)
}

#[inline]
fn padded(len: usize) -> usize {
    (len + 3) & !3
}

/// Reads channel number and payload length, checking only the channel range.
#[inline]
pub fn parse_header(buf: &[u8]) -> Result<(u16, usize), ChannelDataError> {
    let Some(h) = buf.first_chunk::<CHANNEL_DATA_HEADER_LEN>() else {
        return Err(ChannelDataError::TooShort);
    };
    let channel = u16::from_be_bytes([h[0], h[1]]);
    if !is_channel_number(channel) {
        return Err(ChannelDataError::BadChannel(channel));
    }
    Ok((channel, u16::from_be_bytes([h[2], h[3]]) as usize))
}

/// Parses a ChannelData datagram. Over UDP the padding is optional, so the datagram may end
/// right after the payload or carry up to 3 padding bytes; anything beyond is rejected.
#[inline]
pub fn parse_datagram(buf: &[u8]) -> Result<ChannelData<'_>, ChannelDataError> {
    let (channel, len) = parse_header(buf)?;
    let available = buf.len() - CHANNEL_DATA_HEADER_LEN;
    if len > available {
        return Err(ChannelDataError::Truncated {
            declared: len,
            available,
        });
    }
    if available > padded(len) {
        return Err(ChannelDataError::TrailingBytes {
            extra: available - len,
        });
    }
    Ok(ChannelData {
        channel,
        data: &buf[CHANNEL_DATA_HEADER_LEN..CHANNEL_DATA_HEADER_LEN + len],
    })
}

/// Bytes a frame with `payload_len` bytes occupies; stream transports always pad.
#[inline]
pub fn frame_len(payload_len: usize, padded_to_four: bool) -> usize {
    let body = if padded_to_four {
        padded(payload_len)
    } else {
        payload_len
    };
    CHANNEL_DATA_HEADER_LEN + body
}

/// Writes the 4-byte header in place, for relays that receive the payload at offset 4 of
/// their send buffer and so forward without copying it.
#[inline]
pub fn write_header(
    out: &mut [u8],
    channel: u16,
    payload_len: usize,
) -> Result<(), ChannelDataError> {
    if !is_channel_number(channel) {
        return Err(ChannelDataError::BadChannel(channel));
    }
    let Ok(len) = u16::try_from(payload_len) else {
        return Err(ChannelDataError::BufferTooSmall);
    };
    let Some(h) = out.first_chunk_mut::<CHANNEL_DATA_HEADER_LEN>() else {
        return Err(ChannelDataError::BufferTooSmall);
    };
    let [c0, c1] = channel.to_be_bytes();
    let [l0, l1] = len.to_be_bytes();
    *h = [c0, c1, l0, l1];
    Ok(())
}

/// Writes a whole frame into `out`, returning its length. With `pad`, zero padding up to a
/// multiple of 4 is appended (required on TCP/TLS).
#[inline]
pub fn encode(
    out: &mut [u8],
    channel: u16,
    payload: &[u8],
    pad: bool,
) -> Result<usize, ChannelDataError> {
    let total = frame_len(payload.len(), pad);
    let Some(frame) = out.get_mut(..total) else {
        return Err(ChannelDataError::BufferTooSmall);
    };
    write_header(frame, channel, payload.len())?;
    let end = CHANNEL_DATA_HEADER_LEN + payload.len();
    frame[CHANNEL_DATA_HEADER_LEN..end].copy_from_slice(payload);
    frame[end..].fill(0);
    Ok(total)
}
