//! Spoofed-source STUN: Binding or Allocate requests from random sources, with or without a
//! MESSAGE-INTEGRITY (made with a key the server cannot know), and the amplification the
//! server gives them: answer bytes per request byte, counted where the answers land.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use stun_core::{Attribute, Class, MessageEncoder, Method, TransactionId};

use crate::pacing::{paced, Budget};
use crate::raw::{build_udp, count_answers, RawSender};
use crate::report::Report;
use crate::sources::Sources;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StunMethod {
    Binding,
    Allocate,
}

/// One request as a client without credentials (or with forged ones) would send it.
pub fn request(out: &mut Vec<u8>, method: StunMethod, integrity: bool, id: [u8; 12]) -> Result<()> {
    let m = match method {
        StunMethod::Binding => Method::BINDING,
        StunMethod::Allocate => Method::ALLOCATE,
    };
    let mut enc = MessageEncoder::new(out, m, Class::Request, TransactionId(id));
    if let StunMethod::Allocate = method {
        enc.add(&Attribute::RequestedTransport(stun_core::TRANSPORT_UDP))?;
    }
    if integrity {
        // A plausible user with a forged key: the server must answer 400/401, not relay.
        enc.add(&Attribute::Username("flood"))?
            .add(&Attribute::Realm("flood"))?
            .add(&Attribute::Nonce("0123456789abcdef"))?
            .add_message_integrity(&id)?;
    }
    enc.add_fingerprint()?;
    Ok(())
}

pub fn run(
    target: SocketAddrV4,
    sources: Sources,
    method: StunMethod,
    integrity: bool,
    budget: Budget,
) -> Result<Report> {
    let sender = RawSender::new()?;
    let stop = Arc::new(AtomicBool::new(false));
    let counter = count_answers(target, stop.clone())?;
    let mut rng = rand::thread_rng();
    let (mut msg, mut packet) = (Vec::with_capacity(256), Vec::with_capacity(300));
    let (mut sent_bytes, mut failed) = (0u64, 0u64);
    let mut result = Ok(());
    let sent = paced(budget, |_| {
        if let Err(e) = request(&mut msg, method, integrity, rand::Rng::gen(&mut rng)) {
            result = Err(e);
            return;
        }
        let src = SocketAddrV4::new(
            sources.random(&mut rng),
            rand::Rng::gen_range(&mut rng, 1024..65535),
        );
        build_udp(&mut packet, src, target, &msg);
        if sender.send(&packet, target) {
            sent_bytes += msg.len() as u64;
        } else {
            failed += 1;
        }
    });
    result?;
    // Answers still in flight when the last request left.
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let answers = counter
        .join()
        .map_err(|_| anyhow::anyhow!("answer counter panicked"))?;
    let mut r = Report::new();
    r.add("sent", sent - failed)
        .add("send_failed", failed)
        .add("sent_bytes", sent_bytes)
        .add("answers", answers.packets)
        .add("answer_bytes", answers.payload_bytes)
        .ratio("bytes_out_per_in", answers.payload_bytes, sent_bytes)
        .ratio("answers_per_request", answers.packets, sent - failed);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun_core::{attr, Message};

    #[test]
    fn requests_decode_and_carry_integrity_only_when_asked() {
        let mut out = Vec::new();
        for method in [StunMethod::Binding, StunMethod::Allocate] {
            request(&mut out, method, false, [7; 12]).unwrap();
            let m = Message::decode(&out).unwrap();
            assert!(m.get(attr::MESSAGE_INTEGRITY).unwrap().is_none());
            request(&mut out, method, true, [7; 12]).unwrap();
            let m = Message::decode(&out).unwrap();
            assert!(m.get(attr::MESSAGE_INTEGRITY).unwrap().is_some());
            assert_eq!(m.class(), Class::Request);
        }
    }
}
