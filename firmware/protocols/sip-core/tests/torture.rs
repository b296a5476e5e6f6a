//! Runs every RFC 4475 / RFC 5118 torture message through datagram parsing,
//! stream framing and proxy validation, and checks the verdict the README
//! of `tests/data` expects from an edge proxy.

use std::path::PathBuf;

use sip_core::{
    parse, parse_datagram, validate_for_proxy, Datagram, FramingError, Host, Limits, Message,
    ParseError, StreamFramer, StreamItem,
};

/// What the edge does with the message received as a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Parsed; a request also passes proxy validation (it is forwarded).
    Accept,
    /// Parser refuses it; a request is answered with `error.status()`.
    Malformed(ParseError, u16),
    /// Parsed, but the proxy answers it itself with this status.
    ProxyReject(u16),
}

/// What the stream framer makes of the file's bytes sent on TLS/TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stream {
    /// Exactly one message, nothing left over.
    One,
    /// One message; the bytes past Content-Length wait as the next message.
    OneWithLeftover,
    /// Two messages back to back, then bytes that cannot start a third
    /// (dblreq's INVITE carries more body than its Content-Length).
    TwoThenFails(FramingError),
    /// Content-Length promises more than was sent: wait for more bytes
    /// (the connection is closed by the read deadline).
    Incomplete,
    Fails(FramingError),
}

use ParseError as E;
use Stream::*;
use Verdict::*;

fn malformed(error: ParseError) -> Verdict {
    let status = error.status();
    Malformed(error, status)
}

fn table() -> Vec<(&'static str, Verdict, Stream)> {
    vec![
        // RFC 4475 3.1.1: valid messages.
        ("rfc4475/wsinv", Accept, One),
        ("rfc4475/intmeth", Accept, One),
        ("rfc4475/esc01", Accept, One),
        ("rfc4475/escnull", Accept, One),
        ("rfc4475/esc02", Accept, One),
        ("rfc4475/lwsdisp", Accept, One),
        ("rfc4475/longreq", Accept, One),
        (
            "rfc4475/dblreq",
            Accept,
            TwoThenFails(FramingError::MissingContentLength),
        ),
        ("rfc4475/semiuri", Accept, One),
        ("rfc4475/transports", Accept, One),
        ("rfc4475/mpart01", Accept, One),
        ("rfc4475/unreason", Accept, One),
        ("rfc4475/noreason", Accept, One),
        // RFC 4475 3.1.2: invalid messages.
        ("rfc4475/badinv01", malformed(E::BadHeaderValue("Via")), One),
        ("rfc4475/clerr", malformed(E::BodyTooShort), Incomplete),
        (
            "rfc4475/ncl",
            malformed(E::BadContentLength),
            Fails(FramingError::BadContentLength),
        ),
        (
            "rfc4475/scalar02",
            malformed(E::BadHeaderValue("CSeq")),
            One,
        ),
        (
            "rfc4475/scalarlg",
            malformed(E::BadHeaderValue("CSeq")),
            One,
        ),
        ("rfc4475/quotbal", malformed(E::UnbalancedQuotes("To")), One),
        ("rfc4475/ltgtruri", malformed(E::BadRequestUri), One),
        ("rfc4475/lwsruri", malformed(E::BadStartLine), One),
        ("rfc4475/lwsstart", malformed(E::BadStartLine), One),
        // Chosen: trailing white space after the version is refused, like
        // any other extra white space in the request line.
        ("rfc4475/trws", malformed(E::BadStartLine), One),
        ("rfc4475/escruri", malformed(E::BadRequestUri), One),
        ("rfc4475/baddate", malformed(E::BadHeaderValue("Date")), One),
        (
            "rfc4475/regbadct",
            malformed(E::BadHeaderValue("Contact")),
            One,
        ),
        ("rfc4475/badaspec", malformed(E::BadHeaderValue("To")), One),
        ("rfc4475/baddn", malformed(E::BadHeaderValue("From")), One),
        (
            "rfc4475/badvers",
            Malformed(E::UnsupportedVersion, 505),
            One,
        ),
        ("rfc4475/mismatch01", malformed(E::CSeqMethodMismatch), One),
        ("rfc4475/mismatch02", malformed(E::CSeqMethodMismatch), One),
        ("rfc4475/bigcode", malformed(E::BadStatusCode), One),
        // RFC 4475 3.2-3.4: transaction and application semantics.
        ("rfc4475/badbranch", Accept, One),
        ("rfc4475/insuf", malformed(E::MissingHeader("To")), One),
        ("rfc4475/unkscm", ProxyReject(416), One),
        ("rfc4475/novelsc", ProxyReject(416), One),
        ("rfc4475/unksm2", Accept, One),
        ("rfc4475/bext01", ProxyReject(420), One),
        ("rfc4475/invut", Accept, One),
        ("rfc4475/regaut01", Accept, One),
        (
            "rfc4475/multi01",
            malformed(E::DuplicateHeader("CSeq")),
            One,
        ),
        (
            "rfc4475/mcl01",
            malformed(E::ConflictingContentLength),
            Fails(FramingError::ConflictingContentLength),
        ),
        ("rfc4475/bcast", Accept, One),
        ("rfc4475/zeromf", ProxyReject(483), One),
        ("rfc4475/cparam01", Accept, One),
        ("rfc4475/cparam02", Accept, One),
        ("rfc4475/regescrt", Accept, One),
        ("rfc4475/sdp01", Accept, One),
        (
            "rfc4475/inv2543",
            Accept,
            Fails(FramingError::MissingContentLength),
        ),
        // RFC 5118: valid.
        ("rfc5118/ipv6-good", Accept, One),
        ("rfc5118/ipv4-mapped-ipv6", Accept, OneWithLeftover),
        ("rfc5118/ipv6-correct-abnf-2-colons", Accept, One),
        ("rfc5118/port-unambiguous", Accept, One),
        ("rfc5118/via-received-param-with-delim", Accept, One),
        ("rfc5118/via-received-param-no-delim", Accept, One),
        ("rfc5118/mult-ip-in-header", Accept, One),
        ("rfc5118/mult-ip-in-sdp", Accept, OneWithLeftover),
        ("rfc5118/ipv6-in-sdp", Accept, OneWithLeftover),
        // RFC 5118: invalid.
        ("rfc5118/ipv6-bad", malformed(E::BadRequestUri), One),
        (
            "rfc5118/ipv6-bug-abnf-3-colons",
            malformed(E::BadRequestUri),
            One,
        ),
        ("rfc5118/port-ambiguous", ProxyReject(400), One),
    ]
}

fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.dat"))
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(data_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn datagram_verdict(bytes: &[u8]) -> Verdict {
    match parse_datagram(bytes, &Limits::default()) {
        Err(error) => {
            let status = error.status();
            Malformed(error, status)
        }
        Ok(Datagram::KeepAlive) => panic!("torture message read as keep-alive"),
        Ok(Datagram::Message(Message::Response(_))) => Accept,
        Ok(Datagram::Message(Message::Request(request))) => match validate_for_proxy(&request) {
            Ok(()) => Accept,
            Err(reject) => ProxyReject(reject.status),
        },
    }
}

fn stream_outcome(bytes: &[u8]) -> (Stream, Vec<Vec<u8>>) {
    let mut framer = StreamFramer::default();
    framer.push(bytes);
    let mut messages = Vec::new();
    loop {
        match framer.next_message() {
            Err(error) if messages.is_empty() => return (Fails(error), messages),
            Err(error) if messages.len() == 2 => return (TwoThenFails(error), messages),
            Err(error) => panic!("{error} after {} messages", messages.len()),
            Ok(Some(StreamItem::Ping)) => panic!("torture message read as ping"),
            Ok(Some(StreamItem::Message(m))) => messages.push(m.to_vec()),
            Ok(None) => break,
        }
    }
    let outcome = match (messages.len(), framer.buffered()) {
        (0, _) => Incomplete,
        (1, 0) => One,
        (1, _) => OneWithLeftover,
        (n, left) => panic!("unexpected: {n} messages, {left} bytes left"),
    };
    (outcome, messages)
}

#[test]
fn every_corpus_file_is_in_the_table() {
    let listed: Vec<&str> = table().iter().map(|(name, _, _)| *name).collect();
    let mut on_disk = 0;
    for dir in ["rfc4475", "rfc5118"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(dir);
        for entry in std::fs::read_dir(path).unwrap() {
            let file = entry.unwrap().file_name().into_string().unwrap();
            let stem = file.strip_suffix(".dat").unwrap();
            assert!(
                listed.contains(&format!("{dir}/{stem}").as_str()),
                "{dir}/{stem} has no verdict"
            );
            on_disk += 1;
        }
    }
    assert_eq!(on_disk, listed.len());
}

#[test]
fn datagram_verdicts_match_the_readme() {
    let mut failures = Vec::new();
    for (name, expected, _) in table() {
        let got = datagram_verdict(&load(name));
        if got != expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn stream_framing_matches_the_readme() {
    let mut failures = Vec::new();
    for (name, verdict, expected) in table() {
        let bytes = load(name);
        let (got, messages) = stream_outcome(&bytes);
        if got != expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
            continue;
        }
        // A framed message gets the same verdict as the datagram, except
        // dblreq whose second message is judged on its own.
        if let Some(first) = messages.first() {
            let framed = datagram_verdict(first);
            if framed != verdict {
                failures.push(format!(
                    "{name}: framed verdict {framed:?}, datagram {verdict:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn dblreq_second_message_is_discarded_on_datagram_and_kept_on_stream() {
    let bytes = load("rfc4475/dblreq");
    let msg = parse(&bytes).unwrap();
    let request = msg.as_request().unwrap();
    assert_eq!(request.method(), "REGISTER");
    assert!(request.body().is_empty());
    assert!(request.as_bytes().len() < bytes.len());

    let (_, messages) = stream_outcome(&bytes);
    let second = parse(&messages[1]).unwrap();
    assert_eq!(second.as_request().unwrap().method(), "INVITE");
    assert_eq!(second.body().len(), 150);
}

#[test]
fn wsinv_values_survive_folding_and_white_space() {
    let bytes = load("rfc4475/wsinv");
    let msg = parse(&bytes).unwrap();
    assert_eq!(msg.max_forwards(), Some(68));
    let cseq = msg.cseq().unwrap();
    assert_eq!((cseq.number, cseq.method), (9, "INVITE"));
    assert_eq!(msg.to().unwrap().tag(), Some("1918181833n"));
    assert_eq!(msg.from().unwrap().tag(), Some("98asjd8"));
    let vias: Vec<(String, String)> = msg
        .vias()
        .map(|v| (v.transport.to_owned(), v.host.to_string()))
        .collect();
    assert_eq!(
        vias,
        [
            ("UDP".to_owned(), "192.0.2.2".to_owned()),
            ("TCP".to_owned(), "spindle.example.com".to_owned()),
            ("UDP".to_owned(), "192.168.255.111".to_owned()),
        ]
    );
    assert_eq!(
        msg.routes()
            .next()
            .unwrap()
            .uri
            .as_sip()
            .unwrap()
            .param("lr"),
        Some(None)
    );
    assert_eq!(msg.contacts().count(), 1);
    assert_eq!(
        msg.first("NewFangledHeader"),
        Some("newfangled value\r\n continued newfangled value")
    );
    assert_eq!(msg.first("s"), Some(""));
    assert_eq!(msg.body().len(), 150);
}

#[test]
fn compact_and_escaped_forms() {
    let bytes = load("rfc4475/esc01");
    let msg = parse(&bytes).unwrap();
    assert_eq!(msg.call_id(), Some("esc01.239409asdfakjkn23onasd0-3234"));
    assert_eq!(msg.content_type(), Some("application/sdp"));
    let request = msg.as_request().unwrap();
    assert_eq!(
        request.uri().as_sip().unwrap().user,
        Some("sips%3Auser%40example.com")
    );

    let bytes = load("rfc4475/esc02");
    let msg = parse(&bytes).unwrap();
    // "C%6Fntact" is an unknown header, not Contact.
    assert_eq!(msg.contacts().count(), 2);
    assert_eq!(msg.as_request().unwrap().method(), "RE%47IST%45R");
}

#[test]
fn ipv6_references_and_received_forms() {
    let bytes = load("rfc5118/mult-ip-in-header");
    let msg = parse(&bytes).unwrap();
    let vias: Vec<_> = msg.vias().collect();
    assert_eq!(vias[0].host.to_string(), "[2001:db8::9:1]");
    assert_eq!(vias[0].port, Some(6050));
    assert_eq!(vias[2].received(), Some("192.0.2.200".parse().unwrap()));

    let with = load("rfc5118/via-received-param-with-delim");
    let without = load("rfc5118/via-received-param-no-delim");
    let a = parse(&with).unwrap().top_via().unwrap().received();
    let b = parse(&without).unwrap().top_via().unwrap().received();
    assert_eq!(a, Some("2001:db8::9:255".parse().unwrap()));
    assert_eq!(a, b);

    let bytes = load("rfc5118/port-unambiguous");
    let msg = parse(&bytes).unwrap();
    let uri = *msg.as_request().unwrap().uri().as_sip().unwrap();
    assert!(matches!(uri.host, Host::V6(_)));
    assert_eq!(uri.port, Some(5070));
}

#[test]
fn unreason_keeps_its_utf8_reason_phrase() {
    let bytes = load("rfc4475/unreason");
    let msg = parse(&bytes).unwrap();
    let response = msg.as_response().unwrap();
    assert_eq!(response.code(), 200);
    assert!(response.reason().starts_with("= 2**3 * 5**2 "));
    assert!(!response.reason().is_ascii());
}
