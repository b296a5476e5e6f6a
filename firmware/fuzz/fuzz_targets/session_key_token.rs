#![no_main]
//! Session-key tokens as a client presents them (text) and as frames carry them (binary),
//! and verification against a key ring: a token that does not verify must never panic.

use libfuzzer_sys::fuzz_target;
use session_key::{token, token::TokenLimits, KeyRing, SessionSecret};

fuzz_target!(|data: &[u8]| {
    let _ = token::parse_binary(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = token::parse(text);
    let Ok(secret) = SessionSecret::new(1, &[7u8; 32], 0) else {
        return;
    };
    let Ok(ring) = KeyRing::from_records(vec![secret]) else {
        return;
    };
    let limits = TokenLimits {
        max_lifetime_secs: 28_800,
        max_clock_skew_secs: 30,
    };
    let _ = ring.verify(text, "conference", 1_000, &limits);
});
