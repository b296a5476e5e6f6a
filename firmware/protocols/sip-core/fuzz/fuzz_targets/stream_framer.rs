#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::{parse, Limits, StreamFramer, StreamItem};

// The first byte picks the segment size so the same stream is also cut at
// awkward places.
fuzz_target!(|data: &[u8]| {
    let Some((&seg, stream)) = data.split_first() else {
        return;
    };
    let segment = usize::from(seg).max(1);
    let mut framer = StreamFramer::new(Limits {
        max_message_size: 4096,
        max_headers: 32,
        max_line_len: 512,
    });
    for chunk in stream.chunks(segment) {
        framer.push(chunk);
        loop {
            match framer.next_message() {
                Ok(Some(StreamItem::Message(m))) => {
                    assert!(m.len() <= 4096);
                    let _ = parse(m);
                }
                Ok(Some(StreamItem::Ping)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
