//! Deterministic "never panics" checks: random bytes and mutated torture
//! messages go through every entry point. The fuzz targets in `fuzz/`
//! explore the same entry points without a fixed budget.

use std::path::PathBuf;

use sip_core::{
    build_response, parse, parse_datagram, validate_for_proxy, Limits, Message, MessageEditor,
    ResponseSpec, StreamFramer, StreamItem,
};

/// xorshift64*: reproducible without an external crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files = Vec::new();
    for dir in ["rfc4475", "rfc5118"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            files.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
    }
    assert!(files.len() > 60);
    files
}

/// Bytes that matter to the grammar, so mutations reach deep branches.
const INTERESTING: &[u8] = b"\r\n \t:;,=\"<>[]@?%/\\0123456789abcfilmtvSIP\x00\xff";

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            1 => out.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if at < out.len() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            3 => out.truncate(at),
            4 if at < out.len() => {
                let end = (at + 1 + rng.below(64)).min(out.len());
                let copy = out[at..end].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, copy);
            }
            _ => {
                let i = at.min(out.len().saturating_sub(1));
                if let Some(b) = out.get_mut(i) {
                    *b = rng.next() as u8;
                }
            }
        }
    }
    out
}

/// Runs every entry point; parsed messages must also survive editing and
/// the edited output must parse again.
fn exercise(rng: &mut Rng, bytes: &[u8]) {
    let _ = parse_datagram(bytes, &Limits::default());
    if let Ok(message) = parse(bytes) {
        let mut out = Vec::new();
        let mut editor = MessageEditor::new(message.parts());
        editor.insert_top("Via", "SIP/2.0/TLS edge.example.com;branch=z9hG4bKedge");
        editor.remove_all("P-Asserted-Identity");
        editor.decrement_max_forwards();
        editor.write_into(&mut out).expect("edits do not overlap");
        let again = parse(&out);
        assert!(
            again.is_ok(),
            "edited message no longer parses: {again:?}\n{}",
            String::from_utf8_lossy(&out)
        );

        let mut editor = MessageEditor::new(message.parts());
        let _ = editor.remove_top_value("Via");
        editor.set_body(Some("text/plain"), b"hello");
        editor.write_into(&mut out).expect("edits do not overlap");
        let _ = parse(&out);

        if let Message::Request(request) = &message {
            let _ = validate_for_proxy(request);
            build_response(
                request,
                &ResponseSpec {
                    to_tag: Some("t1"),
                    ..ResponseSpec::new(400, "Bad Request")
                },
                &mut out,
            );
            assert!(
                parse(&out).is_ok(),
                "built response does not parse:\n{}",
                String::from_utf8_lossy(&out)
            );
        }
        for via in message.vias() {
            let _ = via.response_target();
        }
        let _ = (
            message.from(),
            message.to(),
            message.cseq(),
            message.contacts().count(),
            message.routes().count(),
        );
    }
    let mut framer = StreamFramer::default();
    let mut fed = 0;
    while fed < bytes.len() {
        let take = (1 + rng.below(200)).min(bytes.len() - fed);
        framer.push(&bytes[fed..fed + take]);
        fed += take;
        loop {
            match framer.next_message() {
                Ok(Some(StreamItem::Message(m))) => {
                    let _ = parse(m);
                }
                Ok(Some(StreamItem::Ping)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[test]
fn mutated_torture_messages_never_panic() {
    let files = corpus();
    let mut rng = Rng(0x005E_ED0F_ED6E);
    for round in 0..150 {
        for file in &files {
            let mutated = mutate(&mut rng, file);
            exercise(&mut rng, &mutated);
        }
        // Keep the unmutated corpus in the mix once.
        if round == 0 {
            for file in &files {
                exercise(&mut rng, file);
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0xC0FF_EE12_3456_789A);
    for _ in 0..3000 {
        let len = rng.below(600);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(3) == 0 {
                    INTERESTING[rng.below(INTERESTING.len())]
                } else {
                    rng.next() as u8
                }
            })
            .collect();
        exercise(&mut rng, &bytes);
    }
}
