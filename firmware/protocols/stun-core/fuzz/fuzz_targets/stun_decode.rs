#![no_main]
//! Decodes arbitrary bytes as a STUN message and exercises every accessor; a decoded
//! message must re-encode attribute by attribute without error.

use libfuzzer_sys::fuzz_target;
use stun_core::{verify_integrity, verify_integrity_sha256, Attribute, Message, MessageEncoder};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::decode(data) else {
        return;
    };
    let mut buf = Vec::new();
    let mut enc = MessageEncoder::new(&mut buf, msg.method(), msg.class(), *msg.transaction_id());
    for raw in msg.attributes() {
        if let Ok(attribute) = Attribute::decode(raw.attr_type, raw.value, msg.transaction_id()) {
            if let Attribute::PasswordAlgorithms(list) = attribute {
                let _ = list.iter().count();
            }
            if let Attribute::UnknownAttributes(list) = attribute {
                let _ = list.iter().count();
            }
            let _ = enc.add(&attribute);
        }
    }
    let _ = msg.unknown_comprehension_required().count();
    let _ = verify_integrity(&msg, b"key");
    let _ = verify_integrity_sha256(&msg, b"key");
});
