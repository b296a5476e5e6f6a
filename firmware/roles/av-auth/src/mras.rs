//! MS-AVEDGEA credential request and response bodies
//! (`application/msrtc-media-relay-auth+xml`). Pure: bytes in, bytes out.

use std::fmt::Write as _;

use crate::relays::{Location, Relay};

pub const CONTENT_TYPE: &str = "application/msrtc-media-relay-auth+xml";
pub const NAMESPACE: &str = "http://schemas.microsoft.com/2006/09/sip/mrasp";
/// Longest body accepted; a real request is a few hundred bytes.
pub const MAX_BODY: usize = 8 * 1024;

/// A parsed credentials request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsRequest {
    pub request_id: String,
    pub credentials_request_id: String,
    /// The `to`/`from` attributes, echoed (swapped) in the response.
    pub to: String,
    pub from: String,
    pub identity: String,
    pub location: Location,
    /// Minutes; `None` asks for the default.
    pub duration_minutes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MrasError {
    #[error("body is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("body is not well-formed XML: {0}")]
    Xml(String),
    #[error("root element must be <request> in namespace {NAMESPACE}")]
    NotARequest,
    #[error("request has no <credentialsRequest>")]
    NoCredentialsRequest,
    #[error("<credentialsRequest> has no <{0}>")]
    Missing(&'static str),
    #[error("<location> must be intranet or internet")]
    BadLocation,
    #[error("<duration> must be a number of minutes")]
    BadDuration,
}

/// Parses a request body. DTDs are refused (roxmltree's default), so entity expansion
/// cannot be used to blow up memory.
pub fn parse_request(body: &[u8]) -> Result<CredentialsRequest, MrasError> {
    if body.len() > MAX_BODY {
        return Err(MrasError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| MrasError::NotUtf8)?;
    let doc = roxmltree::Document::parse(text).map_err(|e| MrasError::Xml(e.to_string()))?;
    let root = doc.root_element();
    let in_ns = |n: &roxmltree::Node<'_, '_>, name: &str| {
        n.is_element()
            && n.tag_name().name() == name
            && n.tag_name().namespace().is_none_or(|ns| ns == NAMESPACE)
    };
    if !in_ns(&root, "request") {
        return Err(MrasError::NotARequest);
    }
    let cr = root
        .children()
        .find(|n| in_ns(n, "credentialsRequest"))
        .ok_or(MrasError::NoCredentialsRequest)?;
    let child_text = |name: &'static str| -> Option<String> {
        cr.children()
            .find(|n| in_ns(n, name))
            .map(|n| n.text().unwrap_or("").trim().to_owned())
    };
    let identity = child_text("identity")
        .filter(|s| !s.is_empty())
        .ok_or(MrasError::Missing("identity"))?;
    let location = child_text("location").ok_or(MrasError::Missing("location"))?;
    let location = Location::parse(&location).ok_or(MrasError::BadLocation)?;
    let duration_minutes = match child_text("duration") {
        None => None,
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => {
            Some(d.parse::<u64>().map_err(|_| MrasError::BadDuration)?)
        }
        Some(_) => return Err(MrasError::BadDuration),
    };
    let attr = |n: &roxmltree::Node<'_, '_>, name: &str| n.attribute(name).unwrap_or("").to_owned();
    Ok(CredentialsRequest {
        request_id: attr(&root, "requestID"),
        credentials_request_id: attr(&cr, "credentialsRequestID"),
        to: attr(&root, "to"),
        from: attr(&root, "from"),
        identity,
        location,
        duration_minutes,
    })
}

/// What goes into a successful response.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub duration_minutes: u64,
    pub relays: &'a [Relay],
}

/// Escapes text for element content and double-quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The response body for a granted request.
pub fn build_response(req: &CredentialsRequest, grant: &Grant<'_>) -> String {
    let mut x = String::with_capacity(1024);
    // Writing into a String cannot fail.
    let _ = write!(
        x,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n\
         <response xmlns=\"{NAMESPACE}\" requestID=\"{}\" version=\"1.0\" serverVersion=\"2\" to=\"{}\" from=\"{}\" reasonPhrase=\"OK\">\
         <credentialsResponse credentialsRequestID=\"{}\">\
         <credentials><username>{}</username><password>{}</password><duration>{}</duration></credentials>\
         <mediaRelayList>",
        escape(&req.request_id),
        escape(&req.from),
        escape(&req.to),
        escape(&req.credentials_request_id),
        escape(grant.username),
        escape(grant.password),
        grant.duration_minutes,
    );
    for r in grant.relays {
        let _ = write!(
            x,
            "<mediaRelay><location>{}</location><hostName>{}</hostName><udpPort>{}</udpPort><tcpPort>{}</tcpPort></mediaRelay>",
            r.location.as_str(),
            escape(&r.host),
            r.udp_port,
            r.tcp_port
        );
    }
    x.push_str("</mediaRelayList></credentialsResponse></response>\r\n");
    x
}

/// A parsed response, for clients and tests of this appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedResponse {
    pub request_id: String,
    pub username: String,
    pub password: String,
    pub duration_minutes: u64,
    /// (location, host, udp port, tcp port)
    pub relays: Vec<(String, String, u16, u16)>,
}

pub fn parse_response(body: &[u8]) -> Result<ParsedResponse, MrasError> {
    let text = std::str::from_utf8(body).map_err(|_| MrasError::NotUtf8)?;
    let doc = roxmltree::Document::parse(text).map_err(|e| MrasError::Xml(e.to_string()))?;
    let root = doc.root_element();
    fn find<'a, 'i>(
        n: roxmltree::Node<'a, 'i>,
        name: &'static str,
    ) -> Result<roxmltree::Node<'a, 'i>, MrasError> {
        n.descendants()
            .find(|d| d.is_element() && d.tag_name().name() == name)
            .ok_or(MrasError::Missing(name))
    }
    fn text_of(n: roxmltree::Node<'_, '_>, name: &'static str) -> Result<String, MrasError> {
        Ok(find(n, name)?.text().unwrap_or("").to_owned())
    }
    let num = |s: String| s.parse::<u64>().map_err(|_| MrasError::BadDuration);
    let port = |s: String| s.parse::<u16>().map_err(|_| MrasError::Missing("port"));
    let creds = find(root, "credentials")?;
    let mut relays = Vec::new();
    for r in root
        .descendants()
        .filter(|d| d.tag_name().name() == "mediaRelay")
    {
        relays.push((
            text_of(r, "location")?,
            text_of(r, "hostName")?,
            port(text_of(r, "udpPort")?)?,
            port(text_of(r, "tcpPort")?)?,
        ));
    }
    Ok(ParsedResponse {
        request_id: root.attribute("requestID").unwrap_or("").to_owned(),
        username: text_of(creds, "username")?,
        password: text_of(creds, "password")?,
        duration_minutes: num(text_of(creds, "duration")?)?,
        relays,
    })
}

/// A request body as an internal server would send it.
pub fn build_request(
    request_id: &str,
    identity: &str,
    location: Location,
    duration_minutes: Option<u64>,
) -> String {
    let duration = duration_minutes.map_or(String::new(), |d| format!("<duration>{d}</duration>"));
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <request requestID=\"{}\" version=\"1.0\" to=\"sip:edge\" from=\"sip:pool\" xmlns=\"{NAMESPACE}\">\
         <credentialsRequest credentialsRequestID=\"{}\"><identity>{}</identity><location>{}</location>{duration}</credentialsRequest></request>",
        escape(request_id),
        escape(request_id),
        escape(identity),
        location.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let body = build_request("r1", "alice@example.com", Location::Internet, Some(60));
        let req = parse_request(body.as_bytes()).unwrap();
        assert_eq!(req.identity, "alice@example.com");
        assert_eq!(req.location, Location::Internet);
        assert_eq!(req.duration_minutes, Some(60));
        assert_eq!(req.request_id, "r1");
        let req2 =
            parse_request(build_request("r2", "bob", Location::Intranet, None).as_bytes()).unwrap();
        assert_eq!(req2.duration_minutes, None);
    }

    #[test]
    fn response_round_trip_escapes() {
        let req = parse_request(build_request("<&>", "a@b", Location::Intranet, None).as_bytes())
            .unwrap();
        assert_eq!(req.request_id, "<&>");
        let relays = [Relay {
            location: Location::Intranet,
            host: "edge.example.com".into(),
            udp_port: 3478,
            tcp_port: 443,
            tls_port: None,
        }];
        let body = build_response(
            &req,
            &Grant {
                username: "1700000000:a@b",
                password: "pa<ss>&",
                duration_minutes: 480,
                relays: &relays,
            },
        );
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
        let cases: Vec<(String, MrasError)> = vec![
            ("<request".into(), MrasError::Xml(String::new())),
            ("<other/>".into(), MrasError::NotARequest),
            ("<request xmlns=\"urn:other\"><credentialsRequest/></request>".to_owned(), MrasError::NotARequest),
            (format!("<request xmlns=\"{ns}\"/>"), MrasError::NoCredentialsRequest),
            (format!("<request xmlns=\"{ns}\"><credentialsRequest><location>intranet</location></credentialsRequest></request>"), MrasError::Missing("identity")),
            (format!("<request xmlns=\"{ns}\"><credentialsRequest><identity>a</identity></credentialsRequest></request>"), MrasError::Missing("location")),
            (format!("<request xmlns=\"{ns}\"><credentialsRequest><identity>a</identity><location>moon</location></credentialsRequest></request>"), MrasError::BadLocation),
            (format!("<request xmlns=\"{ns}\"><credentialsRequest><identity>a</identity><location>intranet</location><duration>-5</duration></credentialsRequest></request>"), MrasError::BadDuration),
            (format!("<request xmlns=\"{ns}\"><credentialsRequest><identity>a</identity><location>intranet</location><duration>99999999999999999999999</duration></credentialsRequest></request>"), MrasError::BadDuration),
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
    }
}
