#![no_main]
//! The web conferencing wire: a stream of frames cut at awkward places, each payload handed
//! to the parser its kind selects (what both the external and the internal listener do).

use libfuzzer_sys::fuzz_target;
use session_key::wire;

fuzz_target!(|data: &[u8]| {
    let Some((&seg, stream)) = data.split_first() else {
        return;
    };
    let segment = usize::from(seg).max(1);
    let mut buf = Vec::new();
    for chunk in stream.chunks(segment) {
        buf.extend_from_slice(chunk);
        let _ = wire::decode_hello(&buf);
        loop {
            match wire::decode(&buf, wire::MAX_PAYLOAD) {
                Ok(Some((frame, used))) => {
                    assert!(used <= buf.len() && frame.payload.len() <= wire::MAX_PAYLOAD);
                    match frame.kind {
                        wire::HELLO => drop(wire::Hello::parse(frame.payload)),
                        wire::CLOSE => drop(wire::parse_close(frame.payload)),
                        wire::REGISTER => drop(wire::parse_register(frame.payload)),
                        wire::KEYS => drop(wire::parse_keys(frame.payload)),
                        wire::SESSION => drop(wire::SessionHeader::parse(frame.payload)),
                        _ => {}
                    }
                    buf.drain(..used);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
