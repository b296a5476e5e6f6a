//! Every decision [`plan`] makes, on parsed requests, with the real federation policy.

use std::collections::HashSet;

use edged_config::roles::access_edge::{AccessEdgeConfig, AllowedPartner, FederationConfig};
use sip_core::{parse, Message};

use super::*;
use crate::policy::FederationPolicy;

const SECRET: &[u8] = b"0123456789abcdef";

fn flow_key() -> FlowKey {
    FlowKey::from_bytes([3; 32])
}

fn seal(token: &FlowToken) -> String {
    token.seal(&flow_key())
}
const REMOTE_USERS: &str = "127.0.0.1:10443";
const FEDERATION: &str = "127.0.0.1:10061";
const INTERNAL: &str = "127.0.0.2:15061";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn own() -> OwnAddrs {
    OwnAddrs {
        remote_users: addr(REMOTE_USERS),
        federation: addr(FEDERATION),
        internal: addr(INTERNAL),
    }
}

fn listeners() -> Vec<SocketAddr> {
    vec![addr(REMOTE_USERS), addr(FEDERATION), addr(INTERNAL)]
}

fn settings() -> Settings {
    Settings::from_config(&AccessEdgeConfig {
        sip_domains: vec!["Corp.Test".into()],
        ..AccessEdgeConfig::default()
    })
}

fn federation() -> FederationConfig {
    FederationConfig {
        allow: vec![AllowedPartner {
            domain: "partner.test".into(),
            edge: None,
        }],
        block: vec!["evil.test".into()],
        public_providers: vec!["im.public.test".into()],
        ..FederationConfig::default()
    }
}

/// The real federation policy and a set of absorbed ACK branches, recording what was asked.
struct TestGate {
    policy: FederationPolicy,
    absorbed: HashSet<String>,
    asked: Vec<String>,
    rate_left: u32,
}

impl TestGate {
    fn new(config: FederationConfig) -> Self {
        TestGate {
            policy: FederationPolicy::new(config),
            absorbed: HashSet::new(),
            asked: Vec::new(),
            rate_left: u32::MAX,
        }
    }
}

impl Gate for TestGate {
    fn request_allowed(&mut self) -> bool {
        self.asked.push("rate".into());
        self.rate_left.checked_sub(1).is_some_and(|left| {
            self.rate_left = left;
            true
        })
    }

    fn ack_absorbed(&mut self, branch: &str) -> bool {
        self.asked.push("ack".into());
        self.absorbed.contains(branch)
    }

    fn admit_inbound(&mut self, from_domain: &str, target: &str) -> Admission {
        self.asked.push(format!("in {from_domain} {target}"));
        self.policy.admit_inbound(from_domain, target, 0, 0)
    }

    fn admit_outbound(&mut self, domain: &str) -> Admission {
        self.asked.push(format!("out {domain}"));
        self.policy.admit_outbound(domain, 0, 0)
    }
}

const NO_NAMES: &[String] = &[];

fn remote_user() -> Inbound<'static> {
    Inbound {
        id: 5,
        peer: addr("192.0.2.10:40000"),
        origin: Origin::RemoteUser,
        names: NO_NAMES,
        domain: None,
        vouched: NO_NAMES,
    }
}

fn director() -> Inbound<'static> {
    Inbound {
        id: 7,
        peer: addr("10.0.0.9:50000"),
        origin: Origin::Internal,
        names: NO_NAMES,
        domain: None,
        vouched: NO_NAMES,
    }
}

fn partner_conn<'a>(names: &'a [String], domain: Option<&str>) -> Inbound<'a> {
    Inbound {
        id: 6,
        peer: addr("198.51.100.7:40001"),
        origin: Origin::Federation,
        names,
        domain: domain.map(str::to_owned),
        vouched: NO_NAMES,
    }
}

/// A request; `extra` header lines end in CRLF.
fn request(method: &str, uri: &str, from: &str, to: &str, extra: &str) -> Vec<u8> {
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.10:5061;branch=z9hG4bKc1\r\nMax-Forwards: 70\r\nFrom: {from};tag=f1\r\nTo: {to}\r\nCall-ID: call-1\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn invite(extra: &str) -> Vec<u8> {
    request(
        "INVITE",
        "sip:bob@corp.test",
        "<sip:alice@corp.test>",
        "<sip:bob@corp.test>",
        extra,
    )
}

fn from_partner(method: &str, from_domain: &str, extra: &str) -> Vec<u8> {
    request(
        method,
        "sip:bob@corp.test",
        &format!("<sip:carol@{from_domain}>"),
        "<sip:bob@corp.test>",
        extra,
    )
}

fn to_partner(domain: &str, extra: &str) -> Vec<u8> {
    request(
        "INVITE",
        &format!("sip:carol@{domain}"),
        "<sip:bob@corp.test>",
        &format!("<sip:carol@{domain}>"),
        extra,
    )
}

fn parsed(bytes: &[u8]) -> Request<'_> {
    match parse(bytes) {
        Ok(Message::Request(r)) => r,
        other => panic!("not a request: {other:?}"),
    }
}

fn run_with(bytes: &[u8], from: &Inbound<'_>, gate: &mut TestGate, s: &Settings) -> Plan {
    let listeners = listeners();
    let key = flow_key();
    let setup = Setup {
        settings: s,
        listeners: &listeners,
        own: Some(own()),
        secret: SECRET,
        flow_key: &key,
    };
    plan(&parsed(bytes), from, gate, &setup)
}

fn run(bytes: &[u8], from: &Inbound<'_>, gate: &mut TestGate) -> Plan {
    run_with(bytes, from, gate, &settings())
}

fn answer(p: Plan) -> Answer {
    match p.action {
        Action::Answer(a) => a,
        other => panic!("not an answer: {other:?}"),
    }
}

fn forward(p: Plan) -> Forward {
    match p.action {
        Action::Forward(f) => *f,
        other => panic!("not forwarded: {other:?}"),
    }
}

/// The values of a header in the forwarded message, top first.
fn values(message: &[u8], name: &str) -> Vec<String> {
    parsed(message).header(name).map(str::to_owned).collect()
}

fn text(message: &[u8]) -> String {
    String::from_utf8_lossy(message).into_owned()
}

fn partner_names() -> Vec<String> {
    vec!["sip.partner.test".into(), "partner.test".into()]
}

// --- Refusals before any routing ---------------------------------------------------------

#[test]
fn a_scanner_gets_no_answer_at_all() {
    // Even a request the validation would refuse: the scanner check comes first.
    let bytes = text(&invite("User-Agent: friendly-scanner\r\n"))
        .replace("Max-Forwards: 70", "Max-Forwards: 0")
        .into_bytes();
    let mut gate = TestGate::new(federation());
    let p = run(&bytes, &remote_user(), &mut gate);
    assert!(matches!(p.action, Action::Drop(Silence::Scanner)), "{p:?}");
    assert!(gate.asked.is_empty(), "nothing is looked up for a scanner");
}

#[test]
fn a_non_sip_request_uri_is_416() {
    let bytes = request(
        "OPTIONS",
        "tel:+15551234",
        "<sip:alice@corp.test>",
        "<tel:+15551234>",
        "",
    );
    let a = answer(run(
        &bytes,
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    assert_eq!((a.status, a.reason), (416, "Unsupported URI Scheme"));
}

#[test]
fn max_forwards_zero_is_483() {
    let bytes = request(
        "OPTIONS",
        "sip:bob@corp.test",
        "<sip:alice@corp.test>",
        "<sip:bob@corp.test>",
        "",
    );
    let bytes = text(&bytes).replace("Max-Forwards: 70", "Max-Forwards: 0");
    let a = answer(run(
        bytes.as_bytes(),
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    assert_eq!((a.status, a.reason), (483, "Too Many Hops"));
    assert_eq!(a.refusal, None);
}

#[test]
fn an_unknown_proxy_require_is_420_listing_it() {
    let bytes = invite("Proxy-Require: foo, bar\r\n");
    let a = answer(run(
        &bytes,
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    assert_eq!((a.status, a.reason), (420, "Bad Extension"));
    assert_eq!(a.extra, vec![("Unsupported", "foo, bar".to_owned())]);
}

#[test]
fn an_ambiguous_ipv6_request_uri_is_400() {
    let bytes = request(
        "OPTIONS",
        "sip:[2001:db8::5070]",
        "<sip:alice@corp.test>",
        "<sip:bob@corp.test>",
        "",
    );
    let a = answer(run(
        &bytes,
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    assert_eq!((a.status, a.reason), (400, "Ambiguous IPv6 Reference"));
}

#[test]
fn a_request_carrying_our_own_via_is_a_loop() {
    let ours = format!("Via: SIP/2.0/TLS {INTERNAL};branch={BRANCH_PREFIX}0011\r\n");
    let bytes = invite(&ours);
    let a = answer(run(&bytes, &director(), &mut TestGate::new(federation())));
    assert_eq!((a.status, a.reason), (482, "Loop Detected"));
    assert_eq!(a.refusal, Some(Refusal::Loop));
}

#[test]
fn only_our_branch_at_our_address_is_a_loop() {
    let listeners = listeners();
    let via = |raw: &str| {
        let bytes = invite(&format!("Via: {raw}\r\n"));
        let r = parsed(&bytes);
        let v = r.vias().nth(1).unwrap_or_else(|| panic!("second Via"));
        is_own_via(&v, &listeners)
    };
    assert!(via(&format!(
        "SIP/2.0/TLS {REMOTE_USERS};branch={BRANCH_PREFIX}1"
    )));
    // Someone else's branch at our address, our prefix elsewhere, another port of our IP.
    assert!(!via(&format!(
        "SIP/2.0/TLS {REMOTE_USERS};branch=z9hG4bKother"
    )));
    assert!(!via(&format!(
        "SIP/2.0/TLS 192.0.2.99:10443;branch={BRANCH_PREFIX}1"
    )));
    assert!(!via(&format!(
        "SIP/2.0/TLS 127.0.0.1:9999;branch={BRANCH_PREFIX}1"
    )));
    // No port means 5061, which is not ours here.
    assert!(!via(&format!(
        "SIP/2.0/TLS 127.0.0.1;branch={BRANCH_PREFIX}1"
    )));
}

#[test]
fn nothing_is_forwarded_before_the_listeners_are_bound() {
    let bytes = invite("");
    let listeners = listeners();
    let s = settings();
    let key = flow_key();
    let setup = Setup {
        settings: &s,
        listeners: &listeners,
        own: None,
        secret: SECRET,
        flow_key: &key,
    };
    let p = plan(
        &parsed(&bytes),
        &remote_user(),
        &mut TestGate::new(federation()),
        &setup,
    );
    assert!(
        matches!(p.action, Action::Drop(Silence::NotListening)),
        "{p:?}"
    );
}

// --- Transactions: branch, CANCEL, ACK ---------------------------------------------------

#[test]
fn cancel_and_ack_are_looked_up_by_their_invite_branch() {
    let mut gate = TestGate::new(federation());
    let inv = forward(run(&invite(""), &remote_user(), &mut gate));
    let cancel = request(
        "CANCEL",
        "sip:bob@corp.test",
        "<sip:alice@corp.test>",
        "<sip:bob@corp.test>",
        "",
    );
    let p = run(&cancel, &remote_user(), &mut gate);
    assert!(
        matches!(&p.action, Action::Cancel { branch } if *branch == inv.branch),
        "{p:?}"
    );
    // The same INVITE on another connection is another transaction.
    let mut other = remote_user();
    other.id = 99;
    let p = run(&cancel, &other, &mut gate);
    assert!(matches!(&p.action, Action::Cancel { branch } if *branch != inv.branch));
}

#[test]
fn an_rfc2543_transaction_is_told_apart_by_its_dialog_fields() {
    let old_via = |call: &str| {
        let bytes = invite("");
        let bytes = text(&bytes)
            .replace("branch=z9hG4bKc1", "branch=1")
            .replace("call-1", call);
        forward(run(
            bytes.as_bytes(),
            &remote_user(),
            &mut TestGate::new(federation()),
        ))
        .branch
    };
    assert_eq!(old_via("call-1"), old_via("call-1"));
    assert_ne!(old_via("call-1"), old_via("call-2"));
    // With an RFC 3261 branch only the Via (and connection) counts.
    let new_via = |call: &str| {
        let bytes = text(&invite("")).replace("call-1", call);
        forward(run(
            bytes.as_bytes(),
            &remote_user(),
            &mut TestGate::new(federation()),
        ))
        .branch
    };
    assert_eq!(new_via("call-1"), new_via("call-2"));
}

#[test]
fn the_ack_of_a_non_2xx_we_answered_ends_here() {
    let mut gate = TestGate::new(federation());
    let branch = forward(run(&invite(""), &remote_user(), &mut gate)).branch;
    gate.absorbed.insert(branch);
    let ack = request(
        "ACK",
        "sip:bob@corp.test",
        "<sip:alice@corp.test>",
        "<sip:bob@corp.test>;tag=d1",
        "",
    );
    let p = run(&ack, &remote_user(), &mut gate);
    assert!(
        matches!(p.action, Action::Drop(Silence::AbsorbedAck)),
        "{p:?}"
    );
}

#[test]
fn the_ack_of_a_2xx_is_forwarded_without_a_transaction() {
    let ack = request(
        "ACK",
        "sip:bob@corp.test",
        "<sip:alice@corp.test>",
        "<sip:bob@corp.test>",
        "",
    );
    let f = forward(run(&ack, &remote_user(), &mut TestGate::new(federation())));
    assert_eq!(f.target, Target::NextHopPool);
    assert!(f.transaction.is_none());
    assert!(!f.trying);
    assert!(
        f.edits.record_route.is_empty(),
        "an ACK is never record-routed"
    );
}

#[test]
fn an_invite_is_answered_100_and_keeps_what_cancel_and_ack_need() {
    let bytes = invite("Route: <sip:dir.corp.test;lr>\r\n");
    let f = forward(run(
        &bytes,
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    assert!(f.trying);
    let new = f.transaction.unwrap_or_else(|| panic!("a transaction"));
    let copy = new.invite.unwrap_or_else(|| panic!("an INVITE copy"));
    assert_eq!(copy.via, f.edits.via);
    assert_eq!(copy.request_uri, "sip:bob@corp.test");
    assert_eq!(copy.routes, vec!["<sip:dir.corp.test;lr>".to_owned()]);
    assert_eq!((copy.call_id.as_str(), copy.cseq), ("call-1", 1));
    assert_eq!(copy.to, "<sip:bob@corp.test>");
    assert_eq!(new.partner, None);
}

#[test]
fn other_methods_open_a_transaction_without_100_or_invite_copy() {
    let bytes = request(
        "MESSAGE",
        "sip:bob@corp.test",
        "<sip:alice@corp.test>",
        "<sip:bob@corp.test>",
        "",
    );
    let f = forward(run(
        &bytes,
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    assert!(!f.trying);
    let new = f.transaction.unwrap_or_else(|| panic!("a transaction"));
    assert_eq!(new.invite, None);
}

// --- Remote users ------------------------------------------------------------------------

#[test]
fn a_remote_user_goes_to_the_director_pool_without_any_policy_check() {
    let mut gate = TestGate::new(federation());
    let f = forward(run(&invite(""), &remote_user(), &mut gate));
    assert_eq!(f.target, Target::NextHopPool);
    assert_eq!(gate.asked, vec!["rate".to_owned()], "only its request rate");
}

#[test]
fn a_forwarded_request_gets_our_via_on_top_and_one_hop_less() {
    let f = forward(run(
        &invite(""),
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    let vias = values(&f.message, "Via");
    assert_eq!(vias.len(), 2, "{vias:?}");
    assert_eq!(
        vias[0],
        format!("SIP/2.0/TLS {INTERNAL};branch={}", f.branch)
    );
    assert!(f.branch.starts_with(BRANCH_PREFIX));
    assert_eq!(vias[1], "SIP/2.0/TLS 192.0.2.10:5061;branch=z9hG4bKc1");
    assert_eq!(values(&f.message, "Max-Forwards"), vec!["69".to_owned()]);
}

#[test]
fn a_missing_max_forwards_is_set_to_70() {
    let bytes = text(&invite("")).replace("Max-Forwards: 70\r\n", "");
    let f = forward(run(
        bytes.as_bytes(),
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    assert_eq!(values(&f.message, "Max-Forwards"), vec!["70".to_owned()]);
}

#[test]
fn the_senders_via_gets_received_and_rport_filled_in() {
    let bytes = text(&invite("")).replace(
        "192.0.2.10:5061;branch=z9hG4bKc1",
        "10.1.1.1:5061;rport;branch=z9hG4bKc1",
    );
    let f = forward(run(
        bytes.as_bytes(),
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    let vias = values(&f.message, "Via");
    assert_eq!(
        vias[1],
        "SIP/2.0/TLS 10.1.1.1:5061;rport=40000;branch=z9hG4bKc1;received=192.0.2.10"
    );
    // A Via that already names the sender is left alone.
    let f = forward(run(
        &invite(""),
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    assert_eq!(f.edits.sender_via, None);
}

#[test]
fn a_dialog_from_a_remote_user_is_record_routed_twice_with_its_connection_token() {
    let f = forward(run(
        &invite(""),
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    let token = FlowToken::Connection(5);
    let inner = own_route(&seal(&token), "127.0.0.2", 15061);
    let outer = own_route(&seal(&token), "127.0.0.1", 10443);
    // Going inside, the first entry faces the Director.
    assert_eq!(values(&f.message, "Record-Route"), vec![inner, outer]);
    assert_eq!(values(&f.message, "Path"), Vec::<String>::new());
}

#[test]
fn a_request_inside_a_dialog_is_not_record_routed_again() {
    let bytes = request(
        "BYE",
        "sip:bob@corp.test",
        "<sip:alice@corp.test>",
        "<sip:bob@corp.test>;tag=d1",
        "",
    );
    let f = forward(run(
        &bytes,
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    assert!(values(&f.message, "Record-Route").is_empty());
}

#[test]
fn a_remote_users_register_gets_a_path_instead_of_record_route() {
    let bytes = request(
        "REGISTER",
        "sip:corp.test",
        "<sip:alice@corp.test>",
        "<sip:alice@corp.test>",
        "",
    );
    let f = forward(run(
        &bytes,
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    assert!(values(&f.message, "Record-Route").is_empty());
    assert_eq!(
        values(&f.message, "Path"),
        vec![own_route(
            &seal(&FlowToken::Connection(5)),
            "127.0.0.2",
            15061
        )]
    );
}

#[test]
fn assertions_from_outside_are_replaced_by_our_trust_header() {
    let bytes = invite(
        "P-Asserted-Identity: <sip:ceo@corp.test>\r\nP-Preferred-Identity: <sip:ceo@corp.test>\r\nms-edge-proxy-message-trust: ms-source-type=InternalUser\r\n",
    );
    let f = forward(run(
        &bytes,
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    let out = text(&f.message);
    assert!(!out.contains("P-Asserted-Identity"), "{out}");
    assert!(!out.contains("P-Preferred-Identity"), "{out}");
    assert!(!out.contains("InternalUser"), "{out}");
    assert_eq!(
        values(&f.message, TRUST_HEADER),
        vec![format!(
            "ms-source-type=RemoteUser;ms-ep-fqdn=127.0.0.1;ms-source-network=internet"
        )]
    );
}

#[test]
fn with_an_fqdn_our_entries_name_it_instead_of_addresses() {
    let s = Settings::from_config(&AccessEdgeConfig {
        fqdn: "edge.corp.test".into(),
        ..AccessEdgeConfig::default()
    });
    let f = forward(run_with(
        &invite(""),
        &remote_user(),
        &mut TestGate::new(federation()),
        &s,
    ));
    assert!(f
        .edits
        .via
        .starts_with("SIP/2.0/TLS edge.corp.test:15061;branch="));
    assert_eq!(
        f.edits.record_route,
        vec![
            own_route(&seal(&FlowToken::Connection(5)), "edge.corp.test", 15061),
            own_route(&seal(&FlowToken::Connection(5)), "edge.corp.test", 10443),
        ]
    );
    assert!(f
        .edits
        .trust
        .is_some_and(|t| t.contains("ms-ep-fqdn=edge.corp.test;")));
}

#[test]
fn a_remote_users_route_to_somewhere_else_still_goes_to_the_director() {
    let bytes = invite("Route: <sip:elsewhere.test;lr>\r\n");
    let f = forward(run(
        &bytes,
        &remote_user(),
        &mut TestGate::new(federation()),
    ));
    assert_eq!(f.target, Target::NextHopPool);
    assert_eq!(f.edits.routes, None, "a foreign Route is left as it is");
    assert_eq!(
        values(&f.message, "Route"),
        vec!["<sip:elsewhere.test;lr>".to_owned()]
    );
}

// --- The Director ------------------------------------------------------------------------

#[test]
fn the_director_reaches_a_remote_user_by_the_flow_token_of_our_route() {
    let token = FlowToken::Connection(42);
    let ours = own_route(&seal(&token), "127.0.0.2", 15061);
    let bytes = request(
        "BYE",
        "sip:alice@192.0.2.10:5061",
        "<sip:bob@corp.test>",
        "<sip:alice@corp.test>;tag=a1",
        &format!("Route: {ours}, <sip:next.test;lr>\r\n"),
    );
    let mut gate = TestGate::new(federation());
    let f = forward(run(&bytes, &director(), &mut gate));
    assert_eq!(f.target, Target::Connection(42));
    assert!(gate.asked.is_empty(), "no policy for a remote user");
    // Our entry popped, the rest kept.
    assert_eq!(
        values(&f.message, "Route"),
        vec!["<sip:next.test;lr>".to_owned()]
    );
    // Toward the remote user our Via names the remote-users listener.
    assert!(f
        .edits
        .via
        .starts_with(&format!("SIP/2.0/TLS {REMOTE_USERS};")));
}

#[test]
fn the_director_reaches_a_partner_by_a_domain_token() {
    let ours = own_route(
        &seal(&FlowToken::Domain("partner.test".into())),
        "127.0.0.2",
        15061,
    );
    let bytes = request(
        "BYE",
        "sip:carol@sip.partner.test",
        "<sip:bob@corp.test>",
        "<sip:carol@partner.test>;tag=c1",
        &format!("Route: {ours}\r\n"),
    );
    let mut gate = TestGate::new(federation());
    let f = forward(run(&bytes, &director(), &mut gate));
    assert_eq!(f.target, Target::Partner("partner.test".into()));
    assert_eq!(gate.asked, vec!["out partner.test".to_owned()]);
    assert!(values(&f.message, "Route").is_empty());
    assert!(f
        .edits
        .via
        .starts_with(&format!("SIP/2.0/TLS {FEDERATION};")));
}

#[test]
fn without_a_token_the_director_reaches_the_domain_of_the_request_uri() {
    let mut gate = TestGate::new(federation());
    let f = forward(run(&to_partner("Partner.Test", ""), &director(), &mut gate));
    assert_eq!(f.target, Target::Partner("partner.test".into()));
    // Leaving the perimeter: our two entries, the first one facing the partner.
    let token = FlowToken::Domain("partner.test".into());
    assert_eq!(
        f.edits.record_route,
        vec![
            own_route(&seal(&token), "127.0.0.1", 10061),
            own_route(&seal(&token), "127.0.0.2", 15061)
        ]
    );
    assert_eq!(values(&f.message, "Record-Route"), f.edits.record_route);
}

#[test]
fn our_own_domain_is_never_guessed_from_a_request_uri() {
    let bytes = request(
        "INVITE",
        "sip:alice@corp.test",
        "<sip:bob@corp.test>",
        "<sip:alice@corp.test>",
        "",
    );
    let mut gate = TestGate::new(federation());
    let a = answer(run(&bytes, &director(), &mut gate));
    assert_eq!((a.status, a.reason), (480, "Temporarily Unavailable"));
    assert!(gate.asked.is_empty());
}

#[test]
fn a_blocked_or_unfederated_partner_is_403_to_the_director() {
    let mut gate = TestGate::new(federation());
    let a = answer(run(&to_partner("evil.test", ""), &director(), &mut gate));
    assert_eq!((a.status, a.refusal), (403, Some(Refusal::PartnerRefused)));
    let mut closed = TestGate::new(FederationConfig {
        discovery: false,
        ..federation()
    });
    let a = answer(run(&to_partner("other.test", ""), &director(), &mut closed));
    assert_eq!((a.status, a.refusal), (403, Some(Refusal::PartnerRefused)));
    // Allow-listed partners still pass with discovery off.
    let f = forward(run(
        &to_partner("partner.test", ""),
        &director(),
        &mut closed,
    ));
    assert_eq!(f.target, Target::Partner("partner.test".into()));
}

#[test]
fn our_assertions_never_leave_the_perimeter() {
    let bytes = to_partner(
        "partner.test",
        "P-Asserted-Identity: <sip:bob@corp.test>\r\nms-edge-proxy-message-trust: ms-source-type=InternalUser\r\n",
    );
    let f = forward(run(&bytes, &director(), &mut TestGate::new(federation())));
    let out = text(&f.message);
    assert!(!out.contains("P-Asserted-Identity"), "{out}");
    assert!(!out.contains(TRUST_HEADER), "{out}");
    assert!(f.edits.strip_assertions);
    assert_eq!(f.edits.trust, None);
}

#[test]
fn a_partners_assertions_are_replaced_by_ours_going_inside() {
    let names = partner_names();
    let bytes = from_partner(
        "MESSAGE",
        "partner.test",
        "P-Asserted-Identity: <sip:ceo@corp.test>\r\n",
    );
    let f = forward(run(
        &bytes,
        &partner_conn(&names, None),
        &mut TestGate::new(federation()),
    ));
    assert!(!text(&f.message).contains("P-Asserted-Identity"));
    assert_eq!(values(&f.message, TRUST_HEADER).len(), 1);
}

// --- Federation partners -----------------------------------------------------------------

#[test]
fn a_partner_proving_its_domain_is_bound_and_goes_to_the_director() {
    let names = partner_names();
    let mut gate = TestGate::new(federation());
    let p = run(
        &from_partner("INVITE", "partner.test", ""),
        &partner_conn(&names, None),
        &mut gate,
    );
    assert_eq!(p.bind_domain.as_deref(), Some("partner.test"));
    let f = forward(p);
    assert_eq!(f.target, Target::NextHopPool);
    assert_eq!(gate.asked, vec!["in partner.test bob@corp.test".to_owned()]);
    assert_eq!(
        f.edits.trust.as_deref(),
        Some("ms-source-type=AllowListedPartner;ms-ep-fqdn=127.0.0.1;ms-source-network=federation;ms-source-domain=partner.test")
    );
    assert_eq!(
        f.transaction.and_then(|t| t.partner).as_deref(),
        Some("partner.test"),
        "its final answers feed the domain's failure ratio"
    );
    // The Director's answers and requests come back through the partner's domain token, and
    // our entry facing outside names the federation listener.
    let token = FlowToken::Domain("partner.test".into());
    assert_eq!(
        f.edits.record_route,
        vec![
            own_route(&seal(&token), "127.0.0.2", 15061),
            own_route(&seal(&token), "127.0.0.1", 10061)
        ]
    );
}

#[test]
fn a_bound_partner_connection_is_not_bound_again() {
    let names = partner_names();
    let p = run(
        &from_partner("MESSAGE", "partner.test", ""),
        &partner_conn(&names, Some("partner.test")),
        &mut TestGate::new(federation()),
    );
    assert_eq!(p.bind_domain, None);
    assert_eq!(forward(p).target, Target::NextHopPool);
}

#[test]
fn a_partner_speaking_for_another_domain_is_403() {
    let names = partner_names();
    let mut gate = TestGate::new(federation());
    let a = answer(run(
        &from_partner("MESSAGE", "other.test", ""),
        &partner_conn(&names, Some("partner.test")),
        &mut gate,
    ));
    assert_eq!(
        (a.status, a.refusal),
        (
            403,
            Some(Refusal::Federation(
                "From domain is not the authenticated domain"
            ))
        )
    );
    assert!(gate.asked.is_empty(), "refused before the policy counts it");
}

#[test]
fn a_partner_certificate_must_cover_the_from_domain() {
    let names = partner_names();
    let mut gate = TestGate::new(federation());
    let p = run(
        &from_partner("MESSAGE", "other.test", ""),
        &partner_conn(&names, None),
        &mut gate,
    );
    assert_eq!(p.bind_domain, None);
    assert_eq!(
        answer(p).refusal,
        Some(Refusal::Federation(
            "partner certificate does not cover the From domain"
        ))
    );
}

#[test]
fn a_partner_request_without_a_from_domain_is_403() {
    let names = partner_names();
    let bytes = request(
        "MESSAGE",
        "sip:bob@corp.test",
        "<tel:+15551234>",
        "<sip:bob@corp.test>",
        "",
    );
    let a = answer(run(
        &bytes,
        &partner_conn(&names, None),
        &mut TestGate::new(federation()),
    ));
    assert_eq!(a.refusal, Some(Refusal::Federation("no From domain")));
}

#[test]
fn a_blocked_partner_is_refused_after_it_proved_its_domain() {
    let names = vec!["sip.evil.test".to_owned(), "evil.test".to_owned()];
    let p = run(
        &from_partner("MESSAGE", "evil.test", ""),
        &partner_conn(&names, None),
        &mut TestGate::new(federation()),
    );
    assert_eq!(p.bind_domain.as_deref(), Some("evil.test"));
    let a = answer(p);
    assert_eq!(
        (a.status, a.refusal),
        (403, Some(Refusal::Federation("domain not federated")))
    );
}

#[test]
fn without_discovery_an_unlisted_partner_is_not_federated() {
    let names = vec!["sip.other.test".to_owned(), "other.test".to_owned()];
    let mut gate = TestGate::new(FederationConfig {
        discovery: false,
        ..federation()
    });
    let a = answer(run(
        &from_partner("MESSAGE", "other.test", ""),
        &partner_conn(&names, None),
        &mut gate,
    ));
    assert_eq!(a.refusal, Some(Refusal::Federation("domain not federated")));
}

#[test]
fn a_discovered_partner_over_its_rate_is_told_to_retry() {
    let names = vec!["sip.other.test".to_owned(), "other.test".to_owned()];
    let mut gate = TestGate::new(FederationConfig {
        discovered_rate_per_sec: 2,
        ..federation()
    });
    let bytes = from_partner("MESSAGE", "other.test", "");
    let conn = partner_conn(&names, Some("other.test"));
    let first = forward(run(&bytes, &conn, &mut gate));
    assert!(first
        .edits
        .trust
        .is_some_and(|t| t.starts_with("ms-source-type=DiscoveredPartner;")));
    // The clock stands still in the gate, so the bucket empties within a few requests.
    let throttled = (0..10)
        .map(|_| run(&bytes, &conn, &mut gate))
        .find_map(|p| match p.action {
            Action::Answer(a) => Some(a),
            _ => None,
        })
        .unwrap_or_else(|| panic!("never throttled"));
    assert_eq!(
        (throttled.status, throttled.reason),
        (503, "Service Unavailable")
    );
    assert_eq!(throttled.extra, vec![("Retry-After", "1".to_owned())]);
    assert_eq!(throttled.refusal, Some(Refusal::Throttled));
}

#[test]
fn a_public_provider_is_marked_as_public_cloud() {
    let names = vec!["sip.im.public.test".to_owned(), "im.public.test".to_owned()];
    let f = forward(run(
        &from_partner("MESSAGE", "im.public.test", ""),
        &partner_conn(&names, None),
        &mut TestGate::new(federation()),
    ));
    assert_eq!(
        f.edits.trust.as_deref(),
        Some("ms-source-type=PublicProvider;ms-ep-fqdn=127.0.0.1;ms-source-network=publiccloud;ms-source-domain=im.public.test")
    );
}

#[test]
fn a_request_on_our_connection_to_a_partner_is_checked_like_an_inbound_one() {
    let names = partner_names();
    let conn = Inbound {
        origin: Origin::ToPartner,
        ..partner_conn(&names, Some("partner.test"))
    };
    let mut gate = TestGate::new(federation());
    let f = forward(run(
        &from_partner("BYE", "partner.test", ""),
        &conn,
        &mut gate,
    ));
    assert_eq!(f.target, Target::NextHopPool);
    assert_eq!(gate.asked, vec!["in partner.test bob@corp.test".to_owned()]);
    let a = answer(run(
        &from_partner("BYE", "other.test", ""),
        &conn,
        &mut gate,
    ));
    assert_eq!(a.status, 403);
}

#[test]
fn partner_identity_follows_the_certificate_names() {
    let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let none: &[String] = &[];
    use PartnerIdentity::*;
    assert_eq!(
        partner_identity(Some("partner.test"), &[], "partner.test", none),
        Known
    );
    assert_eq!(
        partner_identity(Some("partner.test"), &[], "other.test", none),
        OtherDomain
    );
    assert_eq!(
        partner_identity(None, &names(&["partner.test"]), "partner.test", none),
        Proven
    );
    assert_eq!(
        partner_identity(None, &names(&["*.partner.test"]), "sip.partner.test", none),
        Proven
    );
    assert_eq!(
        partner_identity(None, &names(&["evilpartner.test"]), "partner.test", none),
        NotCovered
    );
    assert_eq!(
        partner_identity(None, &names(&["partner.test"]), "sip.partner.test", none),
        NotCovered
    );
    assert_eq!(
        partner_identity(None, &[], "partner.test", none),
        NotCovered
    );
}

#[test]
fn a_host_under_the_domain_speaks_for_it_only_when_vouched_for() {
    let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let evil = names(&["evil.partner.test"]);
    let edge = names(&["sip.partner.test"]);
    // Nothing vouched: a subdomain's certificate proves nothing about the domain.
    assert!(!certificate_covers(&evil, "partner.test", &[]));
    assert!(!certificate_covers(&edge, "partner.test", &[]));
    // The configured edge or SRV target vouches for its own host, and only for it.
    let vouched = names(&["sip.partner.test"]);
    assert!(certificate_covers(&edge, "partner.test", &vouched));
    assert!(!certificate_covers(&evil, "partner.test", &vouched));
    assert!(certificate_covers(
        &names(&["*.partner.test"]),
        "partner.test",
        &vouched
    ));
    // The plan refuses the impostor, binds the vouched edge.
    let mut gate = TestGate::new(federation());
    let bytes = from_partner("MESSAGE", "partner.test", "");
    let impostor = Inbound {
        vouched: &vouched,
        ..partner_conn(&evil, None)
    };
    let p = run(&bytes, &impostor, &mut gate);
    assert_eq!(p.bind_domain, None);
    assert_eq!(answer(p).status, 403);
    let vouched_edge = Inbound {
        vouched: &vouched,
        ..partner_conn(&edge, None)
    };
    let p = run(&bytes, &vouched_edge, &mut gate);
    assert_eq!(p.bind_domain.as_deref(), Some("partner.test"));
}

#[test]
fn a_remote_user_over_its_request_rate_gets_503_with_retry_after() {
    let mut gate = TestGate::new(federation());
    gate.rate_left = 1;
    let bytes = invite("");
    assert!(matches!(
        run(&bytes, &remote_user(), &mut gate).action,
        Action::Forward(_)
    ));
    let a = answer(run(&bytes, &remote_user(), &mut gate));
    assert_eq!((a.status, a.refusal), (503, Some(Refusal::RateLimited)));
    assert!(a.extra.contains(&("Retry-After", "1".to_owned())));
    // Only remote users are held to it.
    gate.asked.clear();
    let _ = run(&bytes, &director(), &mut gate);
    assert!(!gate.asked.contains(&"rate".to_owned()), "{:?}", gate.asked);
}

#[test]
fn a_forged_flow_token_is_refused_and_never_routed() {
    let mut gate = TestGate::new(federation());
    for user in ["ae.c.5", "ae.c.5.000000000000000000000000"] {
        let route = format!("Route: <sip:{user}@127.0.0.2:15061;transport=tls;lr>\r\n");
        let bytes = request(
            "BYE",
            "sip:alice@192.0.2.10",
            "<sip:bob@corp.test>",
            "<sip:alice@corp.test>;tag=t1",
            &route,
        );
        let a = answer(run(&bytes, &director(), &mut gate));
        assert_eq!((a.status, a.refusal), (403, Some(Refusal::ForgedFlowToken)));
    }
}

// --- Answers -----------------------------------------------------------------------------

fn response(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn parsed_response(bytes: &[u8]) -> Response<'_> {
    match parse(bytes) {
        Ok(Message::Response(r)) => r,
        other => panic!("not a response: {other:?}"),
    }
}

const ANSWER: &str = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 127.0.0.2:15061;branch=z9hG4bKae01\r\nVia: SIP/2.0/TLS 192.0.2.10:5061;branch=z9hG4bKc1\r\nFrom: <sip:alice@corp.test>;tag=f1\r\nTo: <sip:bob@corp.test>;tag=t1\r\nCall-ID: call-1\r\nCSeq: 1 INVITE\r\nP-Asserted-Identity: <sip:bob@corp.test>\r\nms-edge-proxy-message-trust: x\r\nContent-Length: 0\r\n\r\n";

#[test]
fn answers_are_matched_by_the_branch_of_our_via() {
    let bytes = response(ANSWER);
    assert_eq!(
        response_key(&parsed_response(&bytes)),
        ResponseKey::Branch("z9hG4bKae01".into())
    );
    let cancel = response(&ANSWER.replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL"));
    assert_eq!(
        response_key(&parsed_response(&cancel)),
        ResponseKey::CancelAnswer
    );
    let no_branch = response(&ANSWER.replace(";branch=z9hG4bKae01", ""));
    assert_eq!(
        response_key(&parsed_response(&no_branch)),
        ResponseKey::Stray
    );
}

#[test]
fn a_relayed_answer_loses_our_via_and_keeps_the_directors_assertions() {
    let bytes = response(ANSWER);
    let out = relayed_response(&parsed_response(&bytes), Origin::ToNextHop)
        .unwrap_or_else(|| panic!("relayed"));
    let r = parsed_response(&out);
    let vias: Vec<&str> = r.header("Via").collect();
    assert_eq!(vias, vec!["SIP/2.0/TLS 192.0.2.10:5061;branch=z9hG4bKc1"]);
    assert!(r.first("P-Asserted-Identity").is_some());
    assert!(r.first(TRUST_HEADER).is_some());
}

#[test]
fn a_relayed_answer_from_outside_loses_its_assertions() {
    let bytes = response(ANSWER);
    let out = relayed_response(&parsed_response(&bytes), Origin::ToPartner)
        .unwrap_or_else(|| panic!("relayed"));
    let r = parsed_response(&out);
    assert_eq!(r.header("Via").count(), 1);
    assert!(r.first("P-Asserted-Identity").is_none());
    assert!(r.first(TRUST_HEADER).is_none());
}
