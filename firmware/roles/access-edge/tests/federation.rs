//! Two Access Edges as two companies' edges, federating over mutual TLS: by allow list and
//! by DNS SRV discovery (a small DNS server runs in the test), with MESSAGE across.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use access_edge::AccessEdge;
use common::*;
use edged_config::roles::access_edge::AllowedPartner;
use edged_role::Role;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// Director of `site` connecting to the edge's internal listener with mutual TLS.
async fn director_client(site: &Site, edge: &AccessEdge) -> SipPeer {
    let cfg = site.client_config(Some(("director", &["127.0.0.2"])));
    connect(cfg, listener(edge, "Director pool"), "127.0.0.2").await
}

fn message(from: &str, to: &str, branch: &str) -> String {
    format!(
        "MESSAGE sip:{to} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.2:5061;branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:{from}>;tag=f{branch}\r\nTo: <sip:{to}>\r\nCall-ID: {branch}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    )
}

/// Makes two sites that trust each other's CA for federation.
async fn two_companies() -> ((Site, Director), (Site, Director)) {
    let a0 = Site::new(&["sip.a.test", "a.test", "127.0.0.1", "127.0.0.2"]);
    let b0 = Site::new(&["sip.b.test", "b.test", "127.0.0.1", "127.0.0.2"]);
    let (a_ca, b_ca) = (a0.ca_file(), b0.ca_file());
    // Re-open the same stores so each site keeps the CA its partner now trusts.
    let a = reuse(a0, "a.test", &b_ca).await;
    let b = reuse(b0, "b.test", &a_ca).await;
    (a, b)
}

async fn reuse(mut site: Site, domain: &str, partner_ca: &std::path::Path) -> (Site, Director) {
    site.config.access_edge.sip_domains = vec![domain.to_owned()];
    site.config.tls.federation_ca_files = vec![partner_ca.to_owned()];
    let director = site.director().await;
    site.config.access_edge.next_hops = vec![director.addr.to_string()];
    (site, director)
}

async fn message_across(
    a_site: &Site,
    a: &AccessEdge,
    b_dir: &Director,
    expect_source: &str,
) -> (SipPeer, SipPeer) {
    let mut a_director = director_client(a_site, a).await;
    a_director
        .send(&message("alice@a.test", "bob@b.test", "z9hG4bKfed1"))
        .await;
    let mut b_in = b_dir.accept().await;
    let m = next_request(&mut b_in).await;
    assert!(m.starts_with("MESSAGE sip:bob@b.test"), "{m}");
    assert!(m.ends_with("hello"));
    let trust =
        header(&m, "ms-edge-proxy-message-trust").unwrap_or_else(|| panic!("trust header: {m}"));
    assert!(
        trust.contains(&format!("ms-source-type={expect_source}")),
        "{trust}"
    );
    assert!(trust.contains("ms-source-domain=a.test"), "{trust}");
    assert_eq!(headers(&m, "Via").len(), 3, "{m}");
    b_in.send(&respond(&m, 200, "OK", "")).await;
    let ok = a_director.recv().await;
    assert_eq!(status_of(&ok), 200, "{ok}");
    assert_eq!(headers(&ok, "Via").len(), 1, "{ok}");
    (a_director, b_in)
}

#[tokio::test]
async fn allow_listed_partners_exchange_messages_both_ways_on_one_connection() {
    let ((mut a_site, a_dir), (mut b_site, b_dir)) = two_companies().await;
    b_site.config.access_edge.federation.allow = vec![AllowedPartner {
        domain: "a.test".into(),
        edge: None,
    }];
    let b = b_site.start().await;
    let b_fed = listener(&b, "federation");
    a_site.config.access_edge.federation.allow = vec![AllowedPartner {
        domain: "b.test".into(),
        edge: Some(b_fed.to_string()),
    }];
    a_site.config.access_edge.federation.discovery = false;
    let a = a_site.start().await;

    let (mut a_director, _b_in) = message_across(&a_site, &a, &b_dir, "AllowListedPartner").await;

    // b.test answers back over the connection a.test opened (reuse both ways).
    let connections_before = b.status().counters["connections"];
    let mut b_director = director_client(&b_site, &b).await;
    b_director
        .send(&message("bob@b.test", "alice@a.test", "z9hG4bKback1"))
        .await;
    let mut a_in = a_dir.accept().await;
    let m = next_request(&mut a_in).await;
    assert!(m.starts_with("MESSAGE sip:alice@a.test"), "{m}");
    assert!(
        header(&m, "ms-edge-proxy-message-trust").is_some_and(|t| t.contains("AllowListedPartner"))
    );
    a_in.send(&respond(&m, 200, "OK", "")).await;
    assert_eq!(status_of(&b_director.recv().await), 200);
    // Only the Director's own connection is new on b.
    assert_eq!(b.status().counters["connections"], connections_before + 1);

    // A request whose From is not the authenticated domain is refused by b.
    a_director
        .send(&message("mallory@c.test", "bob@b.test", "z9hG4bKspoof"))
        .await;
    let r = a_director.recv().await;
    assert_eq!(status_of(&r), 403, "{r}");

    // b's operator blocks a.test: refused from then on, and the figures show it.
    b.block("a.test", edged_role::Actor::Edgectl)
        .unwrap_or_else(|e| panic!("{e}"));
    a_director
        .send(&message("alice@a.test", "bob@b.test", "z9hG4bKblk"))
        .await;
    assert_eq!(status_of(&a_director.recv().await), 403);
    let fig = b
        .domains()
        .into_iter()
        .find(|d| d.domain == "a.test")
        .unwrap_or_else(|| panic!("figures"));
    assert_eq!(fig.kind, "blocked");
    assert!(fig.messages >= 1 && fig.blocked >= 1, "{fig:?}");
    let q = b.query("domains").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(q.to_string().contains("a.test"));
    // Persisted for restarts.
    b.drain(Duration::from_millis(100)).await;
    assert!(b_site
        .store
        .list("access_edge")
        .unwrap_or_default()
        .iter()
        .any(|(k, _)| k == "domain.a.test"));

    // a.test cannot reach an unlisted domain with discovery off.
    a_director
        .send(&message("alice@a.test", "carol@c.test", "z9hG4bKnf"))
        .await;
    assert_eq!(status_of(&a_director.recv().await), 403);
}

/// Answers SRV for `_sipfederationtls._tcp.<domain>` and A for `sip.<domain>`.
async fn dns_server(domain: &'static str, port: u16) -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = sock.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        let srv_name = Name::from_ascii(format!("_sipfederationtls._tcp.{domain}."))
            .unwrap_or_else(|e| panic!("{e}"));
        let host = Name::from_ascii(format!("sip.{domain}.")).unwrap_or_else(|e| panic!("{e}"));
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut resp = Message::new();
            resp.set_id(q.id());
            resp.set_message_type(MessageType::Response);
            resp.set_recursion_desired(q.recursion_desired());
            resp.set_recursion_available(true);
            resp.set_authoritative(true);
            resp.add_queries(q.queries().to_vec());
            let mut found = false;
            for query in q.queries() {
                let name = query.name();
                if name == &srv_name && query.query_type() == RecordType::SRV {
                    resp.add_answer(Record::from_rdata(
                        name.clone(),
                        60,
                        RData::SRV(SRV::new(0, 0, port, host.clone())),
                    ));
                    found = true;
                } else if name == &host {
                    found = true;
                    if query.query_type() == RecordType::A {
                        resp.add_answer(Record::from_rdata(
                            name.clone(),
                            60,
                            RData::A(A(Ipv4Addr::LOCALHOST)),
                        ));
                    }
                }
            }
            if !found {
                resp.set_response_code(ResponseCode::NXDomain);
            }
            if let Ok(bytes) = resp.to_vec() {
                let _ = sock.send_to(&bytes, from).await;
            }
        }
    });
    addr
}

#[tokio::test]
async fn discovered_partner_is_found_by_dns_srv() {
    let ((mut a_site, _a_dir), (b_site, b_dir)) = two_companies().await;
    let b = b_site.start().await;
    let dns = dns_server("b.test", listener(&b, "federation").port()).await;
    a_site.config.access_edge.federation.dns_servers = vec![dns];
    let a = a_site.start().await;
    let _ = message_across(&a_site, &a, &b_dir, "DiscoveredPartner").await;
    let fig = b
        .domains()
        .into_iter()
        .find(|d| d.domain == "a.test")
        .unwrap_or_else(|| panic!("figures"));
    assert_eq!(
        (fig.kind.as_str(), fig.messages, fig.internal_addresses),
        ("discovered", 1, 1)
    );
    assert_eq!(b.status().counters["federation_domains"], 1);
    let out = a
        .domains()
        .into_iter()
        .find(|d| d.domain == "b.test")
        .unwrap_or_else(|| panic!("a figures"));
    assert_eq!(out.kind, "discovered");

    // An unknown domain has no SRV record: the edge answers 504 without connecting anywhere.
    let mut a_director = director_client(&a_site, &a).await;
    a_director
        .send(&message("alice@a.test", "x@nowhere.test", "z9hG4bKnx"))
        .await;
    let r = a_director
        .recv_within(Duration::from_secs(8))
        .await
        .unwrap_or_default();
    assert_eq!(status_of(&r), 504, "{r}");
    let _ = Arc::clone(&a);
}

/// Status line and header names in order, with the values that are per-request anyway
/// (branch, tags, Call-ID, CSeq number) left out: what an outsider can compare.
fn shape(resp: &str) -> Vec<String> {
    let mut lines = resp.split("\r\n");
    let mut out = vec![lines.next().unwrap_or("").to_owned()];
    out.extend(
        lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, _)| n.trim().to_ascii_lowercase()),
    );
    out
}

#[tokio::test]
async fn federated_callers_cannot_tell_unknown_users_from_offline_ones() {
    let ((mut a_site, _a_dir), (mut b_site, b_dir)) = two_companies().await;
    b_site.config.access_edge.federation.allow = vec![AllowedPartner {
        domain: "a.test".into(),
        edge: None,
    }];
    let b = b_site.start().await;
    a_site.config.access_edge.federation.allow = vec![AllowedPartner {
        domain: "b.test".into(),
        edge: Some(listener(&b, "federation").to_string()),
    }];
    a_site.config.access_edge.federation.discovery = false;
    let a = a_site.start().await;
    let (mut a_director, mut b_in) =
        message_across(&a_site, &a, &b_dir, "AllowListedPartner").await;

    // b's Director: "no such user" for ghost, "offline" for bob, each its own way.
    let director_answers = [
        (
            "ghost@b.test",
            "z9hG4bKghost",
            404,
            "Not Found",
            "Warning: 399 dir.b.test \"User does not exist\"\r\nServer: Director/4.0\r\n",
        ),
        (
            "bob@b.test",
            "z9hG4bKbob",
            480,
            "Temporarily Unavailable",
            "Warning: 399 dir.b.test \"User is offline\"\r\n",
        ),
        ("gone@b.test", "z9hG4bKgone", 410, "Gone", ""),
        (
            "x@b.test",
            "z9hG4bKamb",
            484,
            "Address Incomplete",
            "Server: Director/4.0\r\n",
        ),
        (
            "nobody@b.test",
            "z9hG4bKnone",
            604,
            "Does Not Exist Anywhere",
            "",
        ),
    ];
    let mut seen = Vec::new();
    for (to, branch, code, reason, extra) in director_answers {
        a_director.send(&message("alice@a.test", to, branch)).await;
        let m = next_request(&mut b_in).await;
        assert!(m.starts_with(&format!("MESSAGE sip:{to}")), "{m}");
        b_in.send(&respond(&m, code, reason, extra)).await;
        let r = a_director.recv().await;
        assert_eq!(
            r.lines().next(),
            Some("SIP/2.0 480 Temporarily Unavailable"),
            "{code} reaches the partner as the uniform 480: {r}"
        );
        assert!(header(&r, "Warning").is_none(), "{r}");
        assert!(header(&r, "Server").is_none(), "{r}");
        assert!(
            header(&r, "To").is_some_and(|t| !t.contains("tag=uas1")),
            "the Director's tag does not leak: {r}"
        );
        seen.push(shape(&r));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:#?}");
    assert_eq!(b.status().counters["concealed_answers"], 5);

    // The edge's own 480 (a request from inside to one of its own domains) looks the same.
    let mut b_director = director_client(&b_site, &b).await;
    b_director
        .send(&message("bob@b.test", "carol@b.test", "z9hG4bKown"))
        .await;
    let own = b_director.recv().await;
    assert_eq!(shape(&own), seen[0], "{own}");

    // Answers that say nothing about the address pass untouched.
    a_director
        .send(&message("alice@a.test", "bob@b.test", "z9hG4bKbusy"))
        .await;
    let m = next_request(&mut b_in).await;
    b_in.send(&respond(&m, 486, "Busy Here", "")).await;
    assert_eq!(status_of(&a_director.recv().await), 486);

    // The operator can switch it off (live): the Director's 404 then passes as it is.
    let mut config = b_site.config.clone();
    config.access_edge.hide_user_existence = false;
    let tls = std::sync::Arc::new(b_site.tls());
    let old = edged_role::Setup {
        config: std::sync::Arc::new(b_site.config.clone()),
        tls: tls.clone(),
    };
    let new = edged_role::Setup {
        config: std::sync::Arc::new(config),
        tls,
    };
    b.apply(&old, &new).await;
    a_director
        .send(&message("alice@a.test", "ghost@b.test", "z9hG4bKghost2"))
        .await;
    let m = next_request(&mut b_in).await;
    b_in.send(&respond(
        &m,
        404,
        "Not Found",
        "Warning: 399 dir.b.test \"User does not exist\"\r\n",
    ))
    .await;
    let r = a_director.recv().await;
    assert_eq!(status_of(&r), 404, "{r}");
    assert!(header(&r, "Warning").is_some(), "{r}");
}

#[tokio::test]
async fn remote_users_still_get_the_directors_own_answer() {
    let mut site = Site::new(&["127.0.0.1", "127.0.0.2"]);
    let director = site.director().await;
    site.config.access_edge.next_hops = vec![director.addr.to_string()];
    let edge = site.start().await;
    let mut alice = connect(
        site.client_config(None),
        listener(&edge, "remote users"),
        "127.0.0.1",
    )
    .await;
    alice
        .send(&request("MESSAGE", "z9hG4bKru404", "ru-404", ""))
        .await;
    let mut dir = director.accept().await;
    let m = next_request(&mut dir).await;
    dir.send(&respond(&m, 404, "Not Found", "")).await;
    // Signed-in remote users are authenticated by the Director, which decides what they see.
    assert_eq!(status_of(&alice.recv().await), 404);
    assert_eq!(edge.status().counters["concealed_answers"], 0);
}

/// A partner's connection as a client with its own certificate (issued by `issuer`'s CA,
/// which the edge trusts for federation), to the edge's federation listener.
async fn partner_client(
    issuer: &Site,
    edge_site: &Site,
    edge: &AccessEdge,
    sans: &[&str],
) -> SipPeer {
    let cfg = edge_site.client_config_issued_by(issuer, "partner", sans);
    connect(cfg, listener(edge, "federation"), "127.0.0.1").await
}

#[tokio::test]
async fn a_certificate_for_a_subdomain_does_not_speak_for_the_partner_domain() {
    let ((a_site, a_dir), (mut b_site, b_dir)) = two_companies().await;
    let a = a_site.start().await;
    // b allow-lists a.test at a's real edge (an address: only the domain name vouches).
    b_site.config.access_edge.federation.allow = vec![AllowedPartner {
        domain: "a.test".into(),
        edge: Some(listener(&a, "federation").to_string()),
    }];
    b_site.config.access_edge.federation.discovery = false;
    let b = b_site.start().await;

    // Anyone holding a certificate for a host under a.test claims to be a.test.
    let mut evil = partner_client(&a_site, &b_site, &b, &["evil.a.test"]).await;
    evil.send(&message("mallory@a.test", "bob@b.test", "z9hG4bKevil1"))
        .await;
    let r = evil.recv().await;
    assert_eq!(status_of(&r), 403, "{r}");

    // b's users writing to a.test reach a's own edge, never the impostor's connection.
    let mut b_director = director_client(&b_site, &b).await;
    b_director
        .send(&message("bob@b.test", "alice@a.test", "z9hG4bKtoa"))
        .await;
    let mut a_in = a_dir.accept().await;
    let m = next_request(&mut a_in).await;
    assert!(m.starts_with("MESSAGE sip:alice@a.test"), "{m}");
    a_in.send(&respond(&m, 200, "OK", "")).await;
    assert_eq!(status_of(&b_director.recv().await), 200);
    let leaked = evil.recv_within(Duration::from_millis(300)).await;
    assert!(leaked.is_none(), "the impostor received: {leaked:?}");
    let _ = (&b_dir, &a);
}

#[tokio::test]
async fn a_discovered_partner_is_vouched_for_by_its_srv_target_only() {
    let ((a_site, _a_dir), (mut b_site, b_dir)) = two_companies().await;
    let a = a_site.start().await;
    // a.test publishes _sipfederationtls._tcp.a.test -> sip.a.test (this host).
    let dns = dns_server("a.test", listener(&a, "federation").port()).await;
    b_site.config.access_edge.federation.dns_servers = vec![dns];
    let b = b_site.start().await;

    let mut evil = partner_client(&a_site, &b_site, &b, &["evil.a.test"]).await;
    evil.send(&message("mallory@a.test", "bob@b.test", "z9hG4bKevil2"))
        .await;
    let r = evil.recv().await;
    assert_eq!(status_of(&r), 403, "{r}");

    // The host the domain's SRV record names speaks for it.
    let mut edge = partner_client(&a_site, &b_site, &b, &["sip.a.test"]).await;
    edge.send(&message("alice@a.test", "bob@b.test", "z9hG4bKsrv1"))
        .await;
    let mut b_in = b_dir.accept().await;
    let m = next_request(&mut b_in).await;
    assert!(m.starts_with("MESSAGE sip:bob@b.test"), "{m}");
    b_in.send(&respond(&m, 200, "OK", "")).await;
    assert_eq!(status_of(&edge.recv().await), 200);
}
