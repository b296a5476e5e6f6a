//! Splits a TCP/TLS byte stream into STUN messages and ChannelData frames (RFC 8656
//! section 12.5: on streams ChannelData is always padded to a multiple of 4).

use crate::channel_data::{self, PacketKind, CHANNEL_DATA_HEADER_LEN};
use crate::header::{HEADER_LEN, MAGIC_COOKIE};
use thiserror::Error;

/// One complete frame at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A STUN message of `len` bytes (header included); decode it with `Message::decode`.
    Stun { len: usize },
    /// A ChannelData frame: payload at `4..4 + payload_len`, frame `len` bytes with padding.
    ChannelData {
        channel: u16,
        payload_len: usize,
        len: usize,
    },
}

impl Frame {
    #[inline]
    pub fn len(&self) -> usize {
        match *self {
            Frame::Stun { len } | Frame::ChannelData { len, .. } => len,
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The stream carries something that is neither; the connection must be closed, since
/// frame boundaries are lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FramerError {
    #[error("byte {0:#04x} starts neither STUN nor ChannelData")]
    Garbage(u8),
    #[error("STUN header with a wrong magic cookie")]
    BadMagicCookie,
    #[error("STUN length {0} is not a multiple of 4")]
    BadStunLength(u16),
    #[error("{0:#06x} is not a channel number")]
    BadChannel(u16),
}

/// Looks at the start of `buf`: `Ok(None)` means more bytes are needed. Garbage is rejected
/// as early as the bytes seen allow, so a peer cannot make us buffer junk.
#[inline]
pub fn next_frame(buf: &[u8]) -> Result<Option<Frame>, FramerError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    match channel_data::classify(first) {
        PacketKind::Stun => {
            if let Some(cookie) = buf.get(4..8) {
                if cookie != MAGIC_COOKIE.to_be_bytes() {
                    return Err(FramerError::BadMagicCookie);
                }
            }
            let Some(l) = buf.get(2..4) else {
                return Ok(None);
            };
            let length = u16::from_be_bytes([l[0], l[1]]);
            if length % 4 != 0 {
                return Err(FramerError::BadStunLength(length));
            }
            let len = HEADER_LEN + length as usize;
            Ok((buf.len() >= len).then_some(Frame::Stun { len }))
        }
        PacketKind::ChannelData => {
            let Some(h) = buf.get(..CHANNEL_DATA_HEADER_LEN) else {
                return Ok(None);
            };
            let (channel, payload_len) = channel_data::parse_header(h)
                .map_err(|_| FramerError::BadChannel(u16::from_be_bytes([h[0], h[1]])))?;
            let len = channel_data::frame_len(payload_len, true);
            Ok((buf.len() >= len).then_some(Frame::ChannelData {
                channel,
                payload_len,
                len,
            }))
        }
        PacketKind::Other => Err(FramerError::Garbage(first)),
    }
}

/// Iterates over the complete frames at the start of `buf`; after the iterator ends,
/// [`Frames::consumed`] is how many bytes the caller may drop from its receive buffer.
pub struct Frames<'a> {
    buf: &'a [u8],
    consumed: usize,
}

impl<'a> Frames<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Frames { buf, consumed: 0 }
    }
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

impl<'a> Iterator for Frames<'a> {
    /// The frame and its bytes (for ChannelData: header, payload and padding).
    type Item = Result<(Frame, &'a [u8]), FramerError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.consumed..];
        match next_frame(rest) {
            Ok(Some(frame)) => {
                self.consumed += frame.len();
                Some(Ok((frame, &rest[..frame.len()])))
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}
