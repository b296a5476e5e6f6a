//! Answers one SIP message received on the SERVICE listener (MS-AVEDGEA).
//!
//! Status choices:
//! - 405 (with `Allow: SERVICE`) for any other method; ACK is never answered.
//! - 415 (with `Accept`) for a body that is not `application/msrtc-media-relay-auth+xml`.
//! - 400 for malformed SIP or XML, with a `Warning` naming the fault.
//! - 403 when the identity does not match `av_auth.allowed_identities`.
//! - 503 with `Retry-After` when the identity's issuance rate is exhausted: SIP has no
//!   "too many requests" code (SIP's 429 means "Provide Referrer Identity", RFC 3892), and
//!   503 + Retry-After is what RFC 3261 21.5.4 gives a server to make a client back off.
//! - 500 when the store cannot record the issuance (credentials are never handed out
//!   unaudited).

use edged_tls::PeerIdentity;
use mras::{Grant, MediaRelay, ReasonPhrase};
use sip_core::{build_response, parse, Message, Request, ResponseSpec};

use crate::issuer::{IssueError, IssueRequest};
use crate::metrics::Endpoint;
use crate::relays::{relays, relays_for, Relay};
use crate::service::Service;

/// A response for a message that could not be parsed: no headers can be echoed, but the
/// stream is still framed, so the peer learns why and the connection stays usable.
pub fn bare_error(status: u16, reason: &str) -> Vec<u8> {
    format!("SIP/2.0 {status} {reason}\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

/// Text for a Warning header (RFC 3261 20.43): quoted, so no quotes or control characters.
fn warning(text: &str) -> String {
    let clean: String = text
        .chars()
        .take(200)
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '\''
            } else {
                c
            }
        })
        .collect();
    format!("399 edged \"{clean}\"")
}

fn respond(
    req: &Request<'_>,
    status: u16,
    reason: &str,
    extra: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let tag = format!("{:016x}", rand::random::<u64>());
    let spec = ResponseSpec {
        to_tag: Some(&tag),
        extra_headers: extra,
        body,
        ..ResponseSpec::new(status, reason)
    };
    let mut out = Vec::with_capacity(1024);
    build_response(req, &spec, &mut out);
    out
}

/// Whether a Content-Type value names the MS-AVEDGEA media type (parameters ignored).
fn is_mras_type(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(mras::CONTENT_TYPE))
}

/// The answer to one framed message; `None` when nothing is to be sent (ACK, responses).
pub async fn answer(
    service: &Service,
    bytes: &[u8],
    requester: &str,
    client: Option<&PeerIdentity>,
) -> Option<Vec<u8>> {
    let message = match parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            service.metrics.bad_requests.inc();
            tracing::debug!(target: "av_auth", peer = requester, error = %e, "malformed SIP message");
            return Some(bare_error(e.status(), e.reason()));
        }
    };
    let Message::Request(req) = &message else {
        return None;
    };
    if req.method() == "ACK" {
        return None;
    }
    if req.method() != "SERVICE" {
        return Some(respond(
            req,
            405,
            "Method Not Allowed",
            &[("Allow", "SERVICE")],
            None,
        ));
    }
    if !is_mras_type(req.content_type()) {
        service.metrics.bad_requests.inc();
        return Some(respond(
            req,
            415,
            "Unsupported Media Type",
            &[("Accept", mras::CONTENT_TYPE)],
            None,
        ));
    }
    let creq = match mras::parse_request(req.body()) {
        Ok(c) => c,
        Err(e) => {
            service.metrics.bad_requests.inc();
            tracing::debug!(target: "av_auth", peer = requester, error = %e, "malformed credentials request");
            let w = warning(&e.to_string());
            let body = mras::build_error_response(None, e.reason_phrase());
            return Some(respond(
                req,
                400,
                "Malformed Credentials Request",
                &[("Warning", &w)],
                Some((mras::CONTENT_TYPE, body.as_bytes())),
            ));
        }
    };
    let config = service.config.load_full();
    // No <location> in the request (it is optional): offer every relay.
    let relays = match creq.location {
        Some(location) => relays_for(&config, location),
        None => relays(&config),
    };
    if relays.is_empty() {
        // The schema needs at least one mediaRelay: with no relay to offer (A/V Edge off or
        // not on that side) there is nothing to hand out, and no credential is issued.
        let body = mras::build_error_response(Some(&creq), ReasonPhrase::OtherFailure);
        return Some(respond(
            req,
            503,
            "No Media Relay Available",
            &[],
            Some((mras::CONTENT_TYPE, body.as_bytes())),
        ));
    }
    let issued = service
        .issuer
        .issue(
            &config.av_auth,
            IssueRequest {
                identity: &creq.identity,
                lifetime_secs: creq.duration_minutes.map(|m| m.saturating_mul(60)),
                clamp_lifetime: true,
                endpoint: Endpoint::Sip,
                requester,
                client,
            },
        )
        .await;
    match issued {
        Ok(issued) => {
            let media_relays: Vec<MediaRelay> = relays.iter().map(Relay::media_relay).collect();
            let body = mras::build_response(
                &creq,
                &Grant {
                    username: &issued.credential.username,
                    password: &issued.credential.password,
                    duration_minutes: issued.lifetime_secs / 60,
                    relays: &media_relays,
                },
            );
            Some(respond(
                req,
                200,
                "OK",
                &[],
                Some((mras::CONTENT_TYPE, body.as_bytes())),
            ))
        }
        // MS-AVEDGEA 3.1.5.1: every failure past the Content-Type check carries a response
        // body whose reasonPhrase says what went wrong.
        Err(e @ (IssueError::BadIdentity(_) | IssueError::BadLifetime(_))) => {
            let w = warning(&e.to_string());
            let body = mras::build_error_response(Some(&creq), ReasonPhrase::RequestMalformed);
            Some(respond(
                req,
                400,
                "Malformed Credentials Request",
                &[("Warning", &w)],
                Some((mras::CONTENT_TYPE, body.as_bytes())),
            ))
        }
        Err(IssueError::NotAllowed) => {
            let body = mras::build_error_response(Some(&creq), ReasonPhrase::Forbidden);
            Some(respond(
                req,
                403,
                "Identity Not Allowed",
                &[],
                Some((mras::CONTENT_TYPE, body.as_bytes())),
            ))
        }
        Err(IssueError::RateLimited { retry_after }) => {
            let secs = retry_after.as_secs().max(1).to_string();
            let body = mras::build_error_response(Some(&creq), ReasonPhrase::ServerBusy);
            Some(respond(
                req,
                503,
                "Issuance Rate Limited",
                &[("Retry-After", &secs)],
                Some((mras::CONTENT_TYPE, body.as_bytes())),
            ))
        }
        Err(IssueError::Unavailable(e)) => {
            tracing::warn!(target: "av_auth", error = %e, "credential issuance failed");
            let body = mras::build_error_response(Some(&creq), ReasonPhrase::InternalServerError);
            Some(respond(
                req,
                500,
                "Credentials Unavailable",
                &[],
                Some((mras::CONTENT_TYPE, body.as_bytes())),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_match_ignores_case_and_parameters() {
        assert!(is_mras_type(Some("application/msrtc-media-relay-auth+xml")));
        assert!(is_mras_type(Some(
            "Application/MSRTC-Media-Relay-Auth+XML; charset=utf-8"
        )));
        assert!(!is_mras_type(Some("application/sdp")));
        assert!(!is_mras_type(Some(
            "application/msrtc-media-relay-auth+xml-evil"
        )));
        assert!(!is_mras_type(None));
    }

    #[test]
    fn warnings_cannot_break_out_of_their_quotes() {
        let w = warning("bad \"quote\" \\ and\r\nnew line");
        assert_eq!(w, "399 edged \"bad 'quote' ' and''new line\"");
        assert!(warning(&"x".repeat(1000)).len() < 230);
    }

    #[test]
    fn bare_errors_are_framed() {
        let out = bare_error(400, "Malformed Request Line");
        let mut framer = sip_core::StreamFramer::new(sip_core::Limits::default());
        framer.push(&out);
        assert!(matches!(
            framer.next_message(),
            Ok(Some(sip_core::StreamItem::Message(_)))
        ));
        assert_eq!(framer.buffered(), 0);
    }
}
