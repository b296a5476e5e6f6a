#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::{build_response, parse, MessageEditor, ResponseSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = parse(data) else { return };
    let mut out = Vec::new();
    let mut editor = MessageEditor::new(message.parts());
    editor.insert_top("Via", "SIP/2.0/TLS edge.example.com;branch=z9hG4bKfuzz");
    editor.insert_top("Record-Route", "<sip:edge.example.com;lr>");
    editor.remove_all("P-Asserted-Identity");
    editor.remove_all("ms-edge-proxy-message-trust");
    editor.decrement_max_forwards();
    if editor.write_into(&mut out).is_ok() {
        // Forwarding edits of a valid message must yield a valid message.
        assert!(parse(&out).is_ok());
    }
    let mut editor = MessageEditor::new(message.parts());
    let _ = editor.remove_top_value("Via");
    editor.set_body(Some("application/sdp"), b"v=0\r\n");
    let _ = editor.write_into(&mut out);
    if let Some(request) = message.as_request() {
        let spec = ResponseSpec {
            to_tag: Some("fz"),
            ..ResponseSpec::new(480, "Temporarily Unavailable")
        };
        build_response(request, &spec, &mut out);
        assert!(parse(&out).is_ok());
    }
});
