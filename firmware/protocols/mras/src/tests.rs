//! The codec against the schema's structure and the spec's examples.

use std::net::IpAddr;

use crate::xml::{is_mras_element, parse_positive_integer};
use crate::*;

/// A request shaped as the spec describes it: XML declaration, default namespace,
/// attributes in schema order, indentation between elements, gruu-style SIP URIs.
const SPEC_SHAPED_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<request requestID="40961235" version="2.0"
    to="sip:edge01.contoso.com@contoso.com;gruu;opaque=srvr:MRAS:Ab12Cd34"
    from="sip:pool01.contoso.com@contoso.com;gruu;opaque=srvr:MRAS:Ef56Gh78"
    xmlns="http://schemas.microsoft.com/2006/09/sip/mrasp">
  <credentialsRequest credentialsRequestID="40961235">
    <identity>alice@contoso.com</identity>
    <location>internet</location>
    <duration>480</duration>
  </credentialsRequest>
</request>
"#;

#[test]
fn locations_parse_without_regard_to_case_or_spaces() {
    assert_eq!(Location::parse(" Intranet "), Some(Location::Intranet));
    assert_eq!(Location::parse("INTERNET"), Some(Location::Internet));
    assert_eq!(Location::parse("moon"), None);
}

fn relay(location: Location, host: &str) -> MediaRelay {
    MediaRelay {
        location,
        host: host.into(),
        udp_port: 3478,
        tcp_port: 443,
    }
}

/// One particle of an `xs:sequence`: any of `names`, between `min` and `max` times.
struct Particle {
    names: &'static [&'static str],
    min: usize,
    max: usize,
}

const fn one(name: &'static [&'static str]) -> Particle {
    Particle {
        names: name,
        min: 1,
        max: 1,
    }
}

const fn optional(name: &'static [&'static str]) -> Particle {
    Particle {
        names: name,
        min: 0,
        max: 1,
    }
}

/// The response side of the [MS-AVEDGEA] schema: element name -> (required attributes,
/// allowed attributes, child sequence). Leaves have an empty sequence.
fn schema(
    name: &str,
) -> (
    &'static [&'static str],
    &'static [&'static str],
    Vec<Particle>,
) {
    match name {
        "response" => (
            &["version", "reasonPhrase"],
            &[
                "requestID",
                "version",
                "serverVersion",
                "to",
                "from",
                "reasonPhrase",
            ],
            vec![Particle {
                names: &["credentialsResponse"],
                min: 0,
                max: 100,
            }],
        ),
        "credentialsResponse" => (
            &["credentialsRequestID"],
            &["credentialsRequestID"],
            vec![one(&["credentials"]), one(&["mediaRelayList"])],
        ),
        "credentials" => (
            &[],
            &[],
            vec![
                one(&["username"]),
                one(&["password"]),
                one(&["duration"]),
                optional(&["realm"]),
            ],
        ),
        "mediaRelayList" => (
            &[],
            &[],
            vec![Particle {
                names: &["mediaRelay"],
                min: 1,
                max: usize::MAX,
            }],
        ),
        "mediaRelay" => (
            &[],
            &[],
            vec![
                one(&["location"]),
                one(&["hostName", "directIPAddress"]),
                optional(&["udpPort"]),
                optional(&["tcpPort"]),
            ],
        ),
        _ => (&[], &[], Vec::new()),
    }
}

/// Checks one element and its subtree against [`schema`]: namespace, attributes, child
/// order and counts, and the simple types of the leaves.
fn check_against_schema(n: roxmltree::Node<'_, '_>) {
    let name = n.tag_name().name();
    assert_eq!(
        n.tag_name().namespace(),
        Some(NAMESPACE),
        "<{name}> namespace"
    );
    let (required, allowed, sequence) = schema(name);
    for a in required {
        assert!(n.attribute(*a).is_some(), "<{name}> lacks required {a}");
    }
    for a in n.attributes() {
        assert!(
            allowed.contains(&a.name()),
            "<{name}> has unexpected {}",
            a.name()
        );
    }
    let children: Vec<_> = n.children().filter(|c| c.is_element()).collect();
    let mut at = 0;
    for particle in &sequence {
        let mut count = 0;
        while at < children.len()
            && count < particle.max
            && particle.names.contains(&children[at].tag_name().name())
        {
            check_against_schema(children[at]);
            at += 1;
            count += 1;
        }
        assert!(count >= particle.min, "<{name}> lacks {:?}", particle.names);
    }
    assert_eq!(
        at,
        children.len(),
        "<{name}> has children out of order or unknown"
    );
    let text = n.text().unwrap_or("");
    match name {
        "duration" => assert!(parse_positive_integer(text).is_some(), "duration {text:?}"),
        "udpPort" | "tcpPort" => assert!(text.parse::<u16>().is_ok(), "{name} {text:?}"),
        "location" => assert!(
            ["intranet", "internet"].contains(&text),
            "location {text:?}"
        ),
        "directIPAddress" => assert!(text.parse::<IpAddr>().is_ok(), "address {text:?}"),
        "username" | "password" | "hostName" => assert!(!text.is_empty(), "empty <{name}>"),
        _ => {}
    }
    if let Some(reason) = n.attribute("reasonPhrase") {
        assert!(
            ReasonPhrase::parse(reason).is_some(),
            "reasonPhrase {reason:?}"
        );
    }
    if let Some(id) = n.attribute("requestID") {
        assert!(id.chars().count() <= 64);
    }
}

fn check_response_document(body: &str) -> roxmltree::Document<'_> {
    let doc = roxmltree::Document::parse(body).expect("well-formed response");
    assert_eq!(doc.root_element().tag_name().name(), "response");
    check_against_schema(doc.root_element());
    doc
}

#[test]
fn spec_shaped_request_parses() {
    let req = parse_request(SPEC_SHAPED_REQUEST.as_bytes()).unwrap();
    assert_eq!(
        req,
        CredentialsRequest {
            request_id: "40961235".into(),
            version: "2.0".into(),
            to: "sip:edge01.contoso.com@contoso.com;gruu;opaque=srvr:MRAS:Ab12Cd34".into(),
            from: "sip:pool01.contoso.com@contoso.com;gruu;opaque=srvr:MRAS:Ef56Gh78".into(),
            route: Route::LoadBalanced,
            credentials_request_id: "40961235".into(),
            identity: "alice@contoso.com".into(),
            location: Some(Location::Internet),
            duration_minutes: Some(480),
        }
    );
}

#[test]
fn response_to_the_spec_shaped_request_follows_the_schema() {
    let req = parse_request(SPEC_SHAPED_REQUEST.as_bytes()).unwrap();
    let relays = [relay(Location::Internet, "av.contoso.com")];
    let body = build_response(
        &req,
        &Grant {
            username: "1700000000:alice@contoso.com",
            password: "c2VjcmV0",
            duration_minutes: 480,
            relays: &relays,
        },
    );
    let doc = check_response_document(&body);
    let root = doc.root_element();
    // Echoed as received: to stays to, from stays from (2.2.3.1.2).
    assert_eq!(root.attribute("to"), Some(req.to.as_str()));
    assert_eq!(root.attribute("from"), Some(req.from.as_str()));
    assert_eq!(root.attribute("requestID"), Some("40961235"));
    assert_eq!(root.attribute("version"), Some("2.0"));
    assert_eq!(root.attribute("serverVersion"), Some(SERVER_VERSION));
    assert_eq!(root.attribute("reasonPhrase"), Some("OK"));
    let cr = root.first_element_child().unwrap();
    assert_eq!(cr.attribute("credentialsRequestID"), Some("40961235"));
    let names: Vec<_> = root
        .descendants()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(
        names,
        [
            "response",
            "credentialsResponse",
            "credentials",
            "username",
            "password",
            "duration",
            "mediaRelayList",
            "mediaRelay",
            "location",
            "hostName",
            "udpPort",
            "tcpPort"
        ]
    );
    let parsed = parse_response(body.as_bytes()).unwrap();
    assert_eq!(parsed.reason_phrase, "OK");
    assert_eq!(parsed.duration_minutes, 480);
    assert_eq!(
        parsed.relays,
        [("internet".into(), "av.contoso.com".into(), 3478, 443)]
    );
}

#[test]
fn the_schema_checker_rejects_what_the_schema_forbids() {
    let ns = NAMESPACE;
    let bad = [
            // Elements of credentials out of order.
            format!("<response xmlns=\"{ns}\" version=\"2.0\" reasonPhrase=\"OK\"><credentialsResponse credentialsRequestID=\"1\"><credentials><password>p</password><username>u</username><duration>1</duration></credentials><mediaRelayList><mediaRelay><location>intranet</location><hostName>h</hostName></mediaRelay></mediaRelayList></credentialsResponse></response>"),
            // No reasonPhrase.
            format!("<response xmlns=\"{ns}\" version=\"2.0\"/>"),
            // A reasonPhrase outside the enumeration.
            format!("<response xmlns=\"{ns}\" version=\"2.0\" reasonPhrase=\"Bad Request\"/>"),
            // Zero is not a positiveInteger.
            format!("<response xmlns=\"{ns}\" version=\"2.0\" reasonPhrase=\"OK\"><credentialsResponse credentialsRequestID=\"1\"><credentials><username>u</username><password>p</password><duration>0</duration></credentials><mediaRelayList><mediaRelay><location>intranet</location><hostName>h</hostName></mediaRelay></mediaRelayList></credentialsResponse></response>"),
            // Both hostName and directIPAddress.
            format!("<response xmlns=\"{ns}\" version=\"2.0\" reasonPhrase=\"OK\"><credentialsResponse credentialsRequestID=\"1\"><credentials><username>u</username><password>p</password><duration>1</duration></credentials><mediaRelayList><mediaRelay><location>intranet</location><hostName>h</hostName><directIPAddress>10.0.0.1</directIPAddress></mediaRelay></mediaRelayList></credentialsResponse></response>"),
            // Wrong namespace.
            "<response xmlns=\"urn:other\" version=\"2.0\" reasonPhrase=\"OK\"/>".to_owned(),
        ];
    for body in bad {
        let outcome = std::panic::catch_unwind(|| {
            check_response_document(&body);
        });
        assert!(outcome.is_err(), "accepted: {body}");
    }
}

#[test]
fn request_round_trip() {
    let body = build_request("r1", "alice@example.com", Location::Internet, Some(60));
    let req = parse_request(body.as_bytes()).unwrap();
    assert_eq!(req.identity, "alice@example.com");
    assert_eq!(req.location, Some(Location::Internet));
    assert_eq!(req.duration_minutes, Some(60));
    assert_eq!(req.request_id, "r1");
    assert_eq!(req.version, PROTOCOL_VERSION);
    let req2 =
        parse_request(build_request("r2", "bob", Location::Intranet, None).as_bytes()).unwrap();
    assert_eq!(req2.duration_minutes, None);
}

#[test]
fn optional_elements_may_be_absent_and_positive_integers_take_a_sign() {
    let ns = NAMESPACE;
    let body = format!(
            "<request xmlns=\"{ns}\" requestID=\"a\" version=\"1.0\" to=\"sip:e\" from=\"SIPS:p\">\
             <credentialsRequest credentialsRequestID=\"b\"><identity> bob@x </identity><extension/></credentialsRequest></request>"
        );
    let req = parse_request(body.as_bytes()).unwrap();
    assert_eq!(req.identity, "bob@x");
    assert_eq!(req.location, None);
    assert_eq!(req.duration_minutes, None);
    assert_eq!(req.version, "1.0");
    let body = format!(
            "<request xmlns=\"{ns}\" requestID=\"a\" version=\"2.0\" to=\"sip:e\" from=\"sip:p\" route=\"directip\">\
             <credentialsRequest credentialsRequestID=\"b\"><identity>bob@x</identity><duration>+015</duration></credentialsRequest></request>"
        );
    let req = parse_request(body.as_bytes()).unwrap();
    assert_eq!(req.duration_minutes, Some(15));
    assert_eq!(req.route, Route::DirectIp);
}

#[test]
fn direct_ip_route_names_address_relays_by_address() {
    let mut req = parse_request(SPEC_SHAPED_REQUEST.as_bytes()).unwrap();
    req.route = Route::DirectIp;
    let relays = [
        relay(Location::Intranet, "192.0.2.10"),
        relay(Location::Internet, "2001:db8::10"),
        relay(Location::Internet, "av.contoso.com"),
    ];
    let body = build_response(
        &req,
        &Grant {
            username: "u",
            password: "p",
            duration_minutes: 0,
            relays: &relays,
        },
    );
    let doc = check_response_document(&body);
    let hosts: Vec<_> = doc
        .descendants()
        .filter(|n| is_mras_element(*n, "mediaRelay"))
        .map(|r| {
            let host = r.children().filter(|c| c.is_element()).nth(1).unwrap();
            (host.tag_name().name(), host.text().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        hosts,
        [
            ("directIPAddress", "192.0.2.10"),
            ("directIPAddress", "2001:db8::10"),
            ("hostName", "av.contoso.com")
        ]
    );
    // A lifetime under a minute still writes a positiveInteger.
    assert_eq!(parse_response(body.as_bytes()).unwrap().duration_minutes, 1);
}

#[test]
fn error_responses_follow_the_schema() {
    let req = parse_request(SPEC_SHAPED_REQUEST.as_bytes()).unwrap();
    let body = build_error_response(Some(&req), ReasonPhrase::Forbidden);
    let doc = check_response_document(&body);
    let root = doc.root_element();
    assert_eq!(root.attribute("reasonPhrase"), Some("Forbidden"));
    assert_eq!(root.attribute("requestID"), Some("40961235"));
    assert_eq!(root.attribute("to"), Some(req.to.as_str()));
    assert!(root.first_element_child().is_none());

    // Malformed: nothing of the request is echoed.
    let err = parse_request(b"<request").unwrap_err();
    let body = build_error_response(None, err.reason_phrase());
    let doc = check_response_document(&body);
    let root = doc.root_element();
    assert_eq!(root.attribute("reasonPhrase"), Some("Request Malformed"));
    for absent in ["requestID", "to", "from"] {
        assert_eq!(root.attribute(absent), None);
    }
    assert_eq!(root.attribute("version"), Some(PROTOCOL_VERSION));

    for r in ReasonPhrase::ALL {
        assert_eq!(ReasonPhrase::parse(r.as_str()), Some(r));
    }
    assert_eq!(ReasonPhrase::parse("ok"), None);
}

#[test]
fn response_round_trip_escapes() {
    let req =
        parse_request(build_request("<&>", "a@b", Location::Intranet, None).as_bytes()).unwrap();
    assert_eq!(req.request_id, "<&>");
    let relays = [relay(Location::Intranet, "edge.example.com")];
    let body = build_response(
        &req,
        &Grant {
            username: "1700000000:a@b",
            password: "pa<ss>&",
            duration_minutes: 480,
            relays: &relays,
        },
    );
    check_response_document(&body);
    let parsed = parse_response(body.as_bytes()).unwrap();
    assert_eq!(parsed.request_id, "<&>");
    assert_eq!(parsed.password, "pa<ss>&");
    assert_eq!(parsed.duration_minutes, 480);
    assert_eq!(
        parsed.relays,
        [("intranet".into(), "edge.example.com".into(), 3478, 443)]
    );
}

#[test]
fn malformed_bodies_get_distinct_errors() {
    let ns = NAMESPACE;
    let head = format!(
        "<request xmlns=\"{ns}\" requestID=\"r\" version=\"2.0\" to=\"sip:e\" from=\"sip:p\">"
    );
    let cr = |inner: &str| {
        format!("{head}<credentialsRequest credentialsRequestID=\"c\">{inner}</credentialsRequest></request>")
    };
    let many = |n: usize| format!("{head}{}</request>", "<credentialsRequest/>".repeat(n));
    let cases: Vec<(String, MrasError)> = vec![
            ("<request".into(), MrasError::Xml(String::new())),
            ("<other/>".into(), MrasError::NotARequest),
            ("<request xmlns=\"urn:other\"><credentialsRequest/></request>".to_owned(), MrasError::NotARequest),
            (format!("<request xmlns=\"{ns}\"/>"), MrasError::MissingAttribute("requestID")),
            (format!("<request xmlns=\"{ns}\" requestID=\"{}\"/>", "x".repeat(65)), MrasError::BadAttribute("requestID")),
            (format!("<request xmlns=\"{ns}\" requestID=\"r\" to=\"sip:e\" from=\"sip:p\"/>"), MrasError::MissingAttribute("version")),
            (format!("<request xmlns=\"{ns}\" requestID=\"r\" version=\"two\" to=\"sip:e\" from=\"sip:p\"/>"), MrasError::BadAttribute("version")),
            (format!("<request xmlns=\"{ns}\" requestID=\"r\" version=\"2.0\" to=\"tel:+1\" from=\"sip:p\"/>"), MrasError::BadAttribute("to")),
            (format!("<request xmlns=\"{ns}\" requestID=\"r\" version=\"2.0\" to=\"sip:e\"/>"), MrasError::MissingAttribute("from")),
            (format!("<request xmlns=\"{ns}\" requestID=\"r\" version=\"2.0\" to=\"sip:e\" from=\"sip:p\" route=\"anycast\"/>"), MrasError::BadRoute),
            (format!("{head}</request>"), MrasError::NoCredentialsRequest),
            (many(2), MrasError::SeveralCredentialsRequests(2)),
            (many(101), MrasError::TooManyCredentialsRequests(101)),
            (format!("{head}<credentialsRequest><identity>a</identity></credentialsRequest></request>"), MrasError::MissingAttribute("credentialsRequestID")),
            (cr("<location>intranet</location>"), MrasError::Missing("identity")),
            (cr("<identity>a</identity><location>moon</location>"), MrasError::BadLocation),
            (cr("<identity>a</identity><duration>-5</duration>"), MrasError::BadDuration),
            (cr("<identity>a</identity><duration>0</duration>"), MrasError::BadDuration),
            (cr("<identity>a</identity><duration>99999999999999999999999</duration>"), MrasError::BadDuration),
            ("<!DOCTYPE r [<!ENTITY a \"aaaa\">]><request/>".into(), MrasError::Xml(String::new())),
        ];
    for (body, want) in cases {
        let got = parse_request(body.as_bytes()).unwrap_err();
        match (&got, &want) {
            (MrasError::Xml(_), MrasError::Xml(_)) => {}
            _ => assert_eq!(got, want, "{body}"),
        }
    }
    assert_eq!(
        parse_request(&[0xff, 0xfe]).unwrap_err(),
        MrasError::NotUtf8
    );
    assert_eq!(
        parse_request(&vec![b' '; MAX_BODY + 1]).unwrap_err(),
        MrasError::TooLarge
    );
    assert_eq!(
        MrasError::TooManyCredentialsRequests(101).reason_phrase(),
        ReasonPhrase::RequestTooLarge
    );
    assert_eq!(
        MrasError::TooLarge.reason_phrase(),
        ReasonPhrase::RequestTooLarge
    );
    assert_eq!(
        MrasError::SeveralCredentialsRequests(2).reason_phrase(),
        ReasonPhrase::NotSupported
    );
    assert_eq!(
        MrasError::BadDuration.reason_phrase(),
        ReasonPhrase::RequestMalformed
    );
}
