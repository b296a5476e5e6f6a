#![no_main]
//! Feeds arbitrary bytes to the ChannelData parser and the stream framer: every frame the
//! framer yields must lie inside the input and, for STUN, reach the message decoder.

use libfuzzer_sys::fuzz_target;
use stun_core::{channel_data, Frame, Frames, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(cd) = channel_data::parse_datagram(data) {
        assert!(cd.data.len() + 4 <= data.len());
    }
    let mut frames = Frames::new(data);
    for item in frames.by_ref() {
        let Ok((frame, bytes)) = item else { break };
        assert_eq!(frame.len(), bytes.len());
        match frame {
            Frame::Stun { .. } => {
                let _ = Message::decode(bytes);
            }
            Frame::ChannelData { payload_len, .. } => assert!(payload_len + 4 <= bytes.len()),
        }
    }
    assert!(frames.consumed() <= data.len());
});
