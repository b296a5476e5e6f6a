#![no_main]
//! MS-AVEDGEA credential requests (what internal clients post to the A/V Authentication
//! Service) and responses (what a peer relay answers).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mras::parse_request(data);
    let _ = mras::parse_response(data);
});
