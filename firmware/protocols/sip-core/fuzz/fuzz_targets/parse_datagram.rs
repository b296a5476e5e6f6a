#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::{parse_datagram, validate_for_proxy, Datagram, Limits, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(Datagram::Message(message)) = parse_datagram(data, &Limits::default()) {
        // Typed accessors re-parse values the parser accepted: they must agree.
        assert!(message.from().is_some() && message.to().is_some() && message.cseq().is_some());
        assert!(message.top_via().is_some());
        let _ = (
            message.contacts().count(),
            message.routes().count(),
            message.record_routes().count(),
        );
        if let Message::Request(request) = &message {
            let _ = validate_for_proxy(request);
        }
    }
});
