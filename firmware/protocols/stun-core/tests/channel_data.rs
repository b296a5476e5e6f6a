//! ChannelData parsing/building and the stream framer.

use stun_core::channel_data::{self, classify, ChannelDataError, PacketKind};
use stun_core::framer::next_frame;
use stun_core::*;

#[test]
fn datagram_padding_is_optional_on_receive() {
    let mut buf = [0u8; 64];
    let n = channel_data::encode(&mut buf, 0x4001, b"hello", false).unwrap();
    assert_eq!(n, 9);
    let cd = channel_data::parse_datagram(&buf[..n]).unwrap();
    assert_eq!((cd.channel, cd.data), (0x4001, &b"hello"[..]));
    // Padded to 12: still the same 5-byte payload.
    let n = channel_data::encode(&mut buf, 0x4001, b"hello", true).unwrap();
    assert_eq!(n, 12);
    assert_eq!(&buf[9..12], &[0, 0, 0]);
    assert_eq!(
        channel_data::parse_datagram(&buf[..n]).unwrap().data,
        b"hello"
    );
    // More than the padding after the payload is rejected.
    assert_eq!(
        channel_data::parse_datagram(&buf[..13]),
        Err(ChannelDataError::TrailingBytes { extra: 4 })
    );
    // Shorter than declared.
    assert_eq!(
        channel_data::parse_datagram(&buf[..8]),
        Err(ChannelDataError::Truncated {
            declared: 5,
            available: 4
        })
    );
    assert_eq!(
        channel_data::parse_datagram(&buf[..3]),
        Err(ChannelDataError::TooShort)
    );
    // Empty payload is legal.
    let n = channel_data::encode(&mut buf, 0x4FFF, b"", true).unwrap();
    assert_eq!(n, 4);
    assert_eq!(channel_data::parse_datagram(&buf[..n]).unwrap().data, b"");
}

#[test]
fn channel_numbers_outside_the_range_are_rejected() {
    let mut buf = [0u8; 16];
    for bad in [0x3FFF, 0x5000, 0x7FFF, 0x0001] {
        assert_eq!(
            channel_data::encode(&mut buf, bad, b"x", true),
            Err(ChannelDataError::BadChannel(bad))
        );
        buf[..2].copy_from_slice(&u16::to_be_bytes(bad));
        buf[2..4].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(
            channel_data::parse_datagram(&buf[..5]),
            Err(ChannelDataError::BadChannel(bad))
        );
    }
    assert!(channel_data::is_channel_number(0x4000) && channel_data::is_channel_number(0x4FFF));
    assert_eq!(
        channel_data::encode(&mut buf, 0x4000, &[0; 16], false),
        Err(ChannelDataError::BufferTooSmall)
    );
}

#[test]
fn header_written_in_place_in_front_of_the_payload() {
    // The relay receives the payload at offset 4 and writes only the header.
    let mut buf = [0u8; 4 + 160];
    buf[4..].fill(0xAB);
    channel_data::write_header(&mut buf, 0x4123, 160).unwrap();
    let cd = channel_data::parse_datagram(&buf).unwrap();
    assert_eq!(cd.channel, 0x4123);
    assert_eq!(cd.data.len(), 160);
    assert_eq!(
        channel_data::write_header(&mut buf[..3], 0x4123, 1),
        Err(ChannelDataError::BufferTooSmall)
    );
    assert_eq!(
        channel_data::write_header(&mut buf, 0x4123, 70_000),
        Err(ChannelDataError::BufferTooSmall)
    );
}

#[test]
fn first_byte_demultiplexes() {
    assert_eq!(classify(0x00), PacketKind::Stun);
    assert_eq!(classify(0x01), PacketKind::Stun);
    assert_eq!(classify(0x40), PacketKind::ChannelData);
    assert_eq!(classify(0x4F), PacketKind::ChannelData);
    assert_eq!(classify(0x50), PacketKind::Other);
    assert_eq!(classify(0x80), PacketKind::Other, "RTP");
    assert_eq!(
        classify(0x16),
        PacketKind::Stun,
        "DTLS 0x14-0x3F is left to the STUN header check"
    );
}

fn stun_message(data: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(
        &mut buf,
        Method::SEND,
        Class::Indication,
        TransactionId([3; 12]),
    );
    enc.add(&Attribute::Data(data)).unwrap();
    enc.add_fingerprint().unwrap();
    enc.finish().to_vec()
}

#[test]
fn stream_framer_splits_interleaved_frames_at_any_boundary() {
    let mut stream = Vec::new();
    let m1 = stun_message(b"first");
    stream.extend_from_slice(&m1);
    let mut frame = [0u8; 32];
    let n = channel_data::encode(&mut frame, 0x4002, b"rtp-1", true).unwrap();
    stream.extend_from_slice(&frame[..n]);
    let m2 = stun_message(b"second one");
    stream.extend_from_slice(&m2);
    let n = channel_data::encode(&mut frame, 0x4003, b"rtcp", true).unwrap();
    stream.extend_from_slice(&frame[..n]);

    // Feed the stream in every possible split position and re-assemble.
    for split in 0..=stream.len() {
        let mut pending = Vec::new();
        let mut seen = Vec::new();
        for chunk in [&stream[..split], &stream[split..]] {
            pending.extend_from_slice(chunk);
            let mut frames = Frames::new(&pending);
            for f in frames.by_ref() {
                let (frame, bytes) = f.unwrap();
                match frame {
                    Frame::Stun { .. } => {
                        let msg = Message::decode(bytes).unwrap();
                        seen.push(msg.data().unwrap().to_vec());
                    }
                    Frame::ChannelData {
                        channel,
                        payload_len,
                        ..
                    } => {
                        assert!(channel == 0x4002 || channel == 0x4003);
                        seen.push(bytes[4..4 + payload_len].to_vec());
                    }
                }
            }
            let consumed = frames.consumed();
            pending.drain(..consumed);
        }
        assert!(pending.is_empty(), "split {split}");
        assert_eq!(
            seen,
            [&b"first"[..], b"rtp-1", b"second one", b"rtcp"],
            "split {split}"
        );
    }
}

#[test]
fn stream_framer_rejects_garbage_early() {
    assert_eq!(next_frame(&[]), Ok(None));
    assert_eq!(next_frame(&[0x80, 0, 0]), Err(FramerError::Garbage(0x80)));
    assert_eq!(
        next_frame(b"POST / HTTP/1.1\r\n"),
        Err(FramerError::Garbage(b'P'))
    );
    // "GE" reads as channel 0x4745: framing alone cannot refuse it, but the channel is not
    // bound, so the relay drops the frame (and "T " asks for 21536 bytes, bounded by u16).
    assert_eq!(next_frame(b"GET / HTTP/1.1\r\n"), Ok(None));
    assert_eq!(
        next_frame(&[0x16, 0x03, 0x01, 0x00, 0xA5]),
        Ok(None),
        "needs the cookie to decide"
    );
    assert_eq!(
        next_frame(&[0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0, 0]),
        Err(FramerError::BadMagicCookie),
        "a TLS ClientHello is not STUN"
    );
    let mut m = stun_message(b"x");
    m[3] = 0x0A;
    assert_eq!(next_frame(&m), Err(FramerError::BadStunLength(0x0A)));
    assert_eq!(
        next_frame(&[0x50, 0, 0, 4]),
        Err(FramerError::Garbage(0x50))
    );
    // A complete STUN header with zero-length body is a frame.
    let m = MessageEncoder::new(
        &mut Vec::new(),
        Method::BINDING,
        Class::Request,
        TransactionId([1; 12]),
    )
    .finish()
    .to_vec();
    assert_eq!(next_frame(&m), Ok(Some(Frame::Stun { len: 20 })));
    // ChannelData on a stream waits for the padding too.
    assert_eq!(
        next_frame(&[0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5]),
        Ok(None)
    );
    assert_eq!(
        next_frame(&[0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0]),
        Ok(Some(Frame::ChannelData {
            channel: 0x4000,
            payload_len: 5,
            len: 12
        }))
    );
}
