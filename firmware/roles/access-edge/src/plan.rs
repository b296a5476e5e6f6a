//! The proxy's decisions, sans-IO: what to do with one request, and how an answer is
//! relayed back. No sockets, no tasks, no clock: [`plan`] reads the request, who sent it,
//! the settings and the stateful answers of a [`Gate`], and returns a [`Plan`] that the I/O
//! layer (`proxy.rs`) carries out.
//!
//! Requests from outside (remote users, partners) go to the Director pool; requests from
//! inside go to a partner domain, or back to a remote user's connection named by the flow
//! token in our Record-Route/Path. Nothing is ever sent to an address taken from a Via.

use std::net::SocketAddr;

use sip_core::{EditError, MessageEditor, Request, Response, Via};

use crate::conn::{ConnId, Origin};
use crate::policy::{Admission, PartnerKind};
use crate::route::{
    derive_branch, own_route, pop_own_routes, uri_address, uri_domain, uri_host, FlowKey,
    FlowToken, RouteToken, BRANCH_PREFIX,
};
use crate::settings::{OwnAddrs, Settings};
use crate::tls_peer::name_matches;
use crate::transactions::InviteCopy;

/// Header this edge uses to tell the Director where a request came from (MS-SIPRE 2.2.15).
pub const TRUST_HEADER: &str = "ms-edge-proxy-message-trust";

/// Where a request is going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    NextHopPool,
    Connection(ConnId),
    Partner(String),
}

/// The connection a request came on.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub id: ConnId,
    pub peer: SocketAddr,
    pub origin: Origin,
    /// Names in the peer's certificate (mutual TLS only).
    pub names: &'a [String],
    /// The partner domain this connection already speaks for.
    pub domain: Option<String>,
    /// Hosts vouched to speak for the domain the request claims, found by the I/O layer:
    /// the partner's configured edge FQDN and its SRV targets inside the domain.
    pub vouched: &'a [String],
}

/// What [`plan`] knows of this edge.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    pub settings: &'a Settings,
    /// Every bound listener address (loops and our own Route entries).
    pub listeners: &'a [SocketAddr],
    /// None until the listeners are bound.
    pub own: Option<OwnAddrs>,
    /// Keys our branches, so no peer can forge or predict one.
    pub secret: &'a [u8],
    /// Authenticates the flow tokens of our Record-Route and Path entries.
    pub flow_key: &'a FlowKey,
}

/// The stateful questions [`plan`] asks, each at most once and in this order: the I/O layer
/// answers them from the transaction table and the federation policy (whose counting is
/// part of the answer).
pub trait Gate {
    /// Whether a remote user's connection is within its request rate (takes a token).
    fn request_allowed(&mut self) -> bool;
    /// Whether this is the ACK of an INVITE we already answered with a final non-2xx.
    fn ack_absorbed(&mut self, branch: &str) -> bool;
    /// A request from the partner `from_domain` to the internal `target` (user@host).
    fn admit_inbound(&mut self, from_domain: &str, target: &str) -> Admission;
    /// A request from inside to `domain`.
    fn admit_outbound(&mut self, domain: &str) -> Admission;
}

/// The outcome of [`plan`].
#[derive(Debug)]
pub struct Plan {
    /// The federation connection proved (by its certificate) to speak for this domain: bind
    /// it and make it the domain's pooled connection, whatever the action.
    pub bind_domain: Option<String>,
    pub action: Action,
}

#[derive(Debug)]
pub enum Action {
    /// No answer at all.
    Drop(Silence),
    /// Answer the request ourselves, go no further (never for an ACK: see [`Answer`]).
    Answer(Answer),
    /// A CANCEL: look its INVITE up by this branch.
    Cancel {
        branch: String,
    },
    Forward(Box<Forward>),
}

/// Why a request is dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// A scanner learns nothing, not even that SIP is spoken here.
    Scanner,
    /// The ACK of a non-2xx we answered: it ends here.
    AbsorbedAck,
    /// The listeners are not bound yet.
    NotListening,
}

/// An answer the edge builds itself. An ACK is never answered: the I/O layer drops it, but
/// the refusal is still counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub reason: &'static str,
    pub extra: Vec<(&'static str, String)>,
    /// What to count and log, when the answer is a refusal the role reports.
    pub refusal: Option<Refusal>,
}

impl Answer {
    fn new(status: u16, reason: &'static str) -> Self {
        Answer {
            status,
            reason,
            extra: Vec::new(),
            refusal: None,
        }
    }

    fn refusing(mut self, refusal: Refusal) -> Self {
        self.refusal = Some(refusal);
        self
    }

    /// 403 to a federated request, with the reason for the log.
    fn federation(why: &'static str) -> Self {
        Answer::new(403, "Forbidden").refusing(Refusal::Federation(why))
    }
}

/// Refusals the role counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 482: the request carries our own Via.
    Loop,
    /// 503: the partner is over its message rate.
    Throttled,
    /// 403 to a federated request (logged with this reason).
    Federation(&'static str),
    /// 403 to a request from inside for a partner the policy refuses.
    PartnerRefused,
    /// 503: a remote user's connection is over its request rate.
    RateLimited,
    /// 403: one of our Route entries carries a flow token we did not write.
    ForgedFlowToken,
}

/// A request to forward.
#[derive(Debug)]
pub struct Forward {
    pub target: Target,
    /// The branch of our Via: the client transaction's key.
    pub branch: String,
    pub edits: Edits,
    /// The request with the edits applied.
    pub message: Vec<u8>,
    /// Answer 100 Trying first (INVITE, RFC 3261 16.2).
    pub trying: bool,
    /// The client transaction to open; None for the ACK of a 2xx, its own end-to-end
    /// transaction with nothing to wait for.
    pub transaction: Option<NewTransaction>,
}

/// What the transaction table keeps of a forwarded request, beyond the request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransaction {
    /// INVITE only: what its CANCEL and ACK are built from.
    pub invite: Option<InviteCopy>,
    /// The inbound partner domain, whose final answers feed its failure ratio.
    pub partner: Option<String>,
}

/// The changes made to a forwarded request (RFC 3261 16.6), applied in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edits {
    /// Our Via, on top.
    pub via: String,
    /// The sender's Via with `received`/`rport` filled in, when it needs them.
    pub sender_via: Option<String>,
    /// Route after our own entries were popped: Some(rest) replaces every Route.
    pub routes: Option<Vec<String>>,
    /// Record-Route entries, in the order they appear (the first faces the next hop).
    pub record_route: Vec<String>,
    /// Path entry of a remote user's REGISTER (RFC 3327).
    pub path: Option<String>,
    /// Remove trust and identity assertions (from outside, or leaving the perimeter).
    pub strip_assertions: bool,
    /// Our trust header, for requests going to the Director.
    pub trust: Option<String>,
}

impl Edits {
    /// Writes `req` with these edits; Max-Forwards is always decremented (or set to 70).
    pub fn apply(&self, req: &Request<'_>) -> Result<Vec<u8>, EditError> {
        let mut ed = MessageEditor::new(req.parts());
        ed.insert_top("Via", &self.via);
        if let Some(top) = &self.sender_via {
            // The sender's Via exists: plan() refused a request without one.
            let _ = ed.replace_top_value("Via", top);
        }
        ed.decrement_max_forwards();
        if let Some(rest) = &self.routes {
            ed.remove_all("Route");
            if !rest.is_empty() {
                ed.insert_bottom("Route", &rest.join(", "));
            }
        }
        for rr in &self.record_route {
            ed.insert_top("Record-Route", rr);
        }
        if let Some(path) = &self.path {
            ed.insert_top("Path", path);
        }
        if self.strip_assertions {
            ed.remove_all(TRUST_HEADER);
            ed.remove_all("P-Asserted-Identity");
            ed.remove_all("P-Preferred-Identity");
        }
        if let Some(trust) = &self.trust {
            ed.insert_bottom(TRUST_HEADER, trust);
        }
        let mut out = Vec::with_capacity(req.as_bytes().len() + 512);
        ed.write_into(&mut out)?;
        Ok(out)
    }
}

/// Decides what to do with one request.
pub fn plan(
    req: &Request<'_>,
    from: &Inbound<'_>,
    gate: &mut impl Gate,
    setup: &Setup<'_>,
) -> Plan {
    let mut bind_domain = None;
    let action = decide(req, from, gate, setup, &mut bind_domain);
    Plan {
        bind_domain,
        action,
    }
}

fn decide(
    req: &Request<'_>,
    from: &Inbound<'_>,
    gate: &mut impl Gate,
    setup: &Setup<'_>,
    bind_domain: &mut Option<String>,
) -> Action {
    let s = setup.settings;
    if s.scanners.is_scanner(req.user_agent()) {
        return Action::Drop(Silence::Scanner);
    }
    if from.origin == Origin::RemoteUser && !gate.request_allowed() {
        let mut answer = Answer::new(503, "Service Unavailable").refusing(Refusal::RateLimited);
        answer.extra.push(("Retry-After", "1".to_owned()));
        return Action::Answer(answer);
    }
    if let Err(reject) = sip_core::validate_for_proxy(req) {
        let mut answer = Answer::new(reject.status, reject.reason);
        if !reject.unsupported.is_empty() {
            answer
                .extra
                .push(("Unsupported", reject.unsupported.join(", ")));
        }
        return Action::Answer(answer);
    }
    let Some(top_via) = req.top_via() else {
        // The parser refuses a request without Via already; kept so no path relies on it.
        return Action::Answer(Answer::new(400, "Missing Via"));
    };
    if req.vias().any(|v| is_own_via(&v, setup.listeners)) {
        return Action::Answer(Answer::new(482, "Loop Detected").refusing(Refusal::Loop));
    }
    let method = req.method();
    let branch = transaction_branch(req, &top_via, from.id, setup.secret);
    if method == "CANCEL" {
        return Action::Cancel { branch };
    }
    if method == "ACK" && gate.ack_absorbed(&branch) {
        return Action::Drop(Silence::AbsorbedAck);
    }

    // Source checks and federation policy.
    let (mut partner_kind, inbound_partner) = if from.origin.is_federation() {
        match admit_partner(req, from, gate, bind_domain) {
            Ok((kind, domain)) => (Some(kind), Some(domain)),
            Err(answer) => return Action::Answer(answer),
        }
    } else {
        (None, None)
    };

    // Routing.
    let (popped, token, rest_routes) = pop_own_routes(
        req.header("Route"),
        setup.listeners,
        &s.fqdn,
        setup.flow_key,
    );
    let token = match token {
        RouteToken::Forged => {
            // Never routed: a token we did not write could name anyone's connection.
            return Action::Answer(
                Answer::new(403, "Forbidden").refusing(Refusal::ForgedFlowToken),
            );
        }
        RouteToken::Valid(t) => Some(t),
        RouteToken::Absent => None,
    };
    let target = match route(req, from.origin, token, s) {
        Ok(t) => t,
        Err(answer) => return Action::Answer(answer),
    };
    if let Target::Partner(d) = &target {
        match gate.admit_outbound(d) {
            Admission::Admit(k) => partner_kind = Some(k),
            _ => {
                return Action::Answer(
                    Answer::new(403, "Forbidden").refusing(Refusal::PartnerRefused),
                )
            }
        }
    }
    let Some(own) = setup.own else {
        return Action::Drop(Silence::NotListening);
    };

    let edits = edits(
        req,
        &top_via,
        from,
        &target,
        Hop {
            own,
            fqdn: &s.fqdn,
            flow_key: setup.flow_key,
            branch: &branch,
            popped,
            rest_routes: &rest_routes,
            partner_kind,
            inbound_partner: inbound_partner.as_deref(),
        },
    );
    let Ok(message) = edits.apply(req) else {
        return Action::Answer(Answer::new(500, "Server Internal Error"));
    };
    let transaction = (method != "ACK").then(|| NewTransaction {
        invite: (method == "INVITE").then(|| InviteCopy {
            request_uri: req.uri().as_str().to_owned(),
            via: edits.via.clone(),
            routes: rest_routes.iter().map(|r| (*r).to_owned()).collect(),
            call_id: req.call_id().unwrap_or("").to_owned(),
            from: req.first("From").unwrap_or("").to_owned(),
            to: req.first("To").unwrap_or("").to_owned(),
            cseq: req.cseq().map_or(0, |c| c.number),
        }),
        partner: inbound_partner,
    });
    Action::Forward(Box::new(Forward {
        target,
        branch,
        edits,
        message,
        trying: method == "INVITE",
        transaction,
    }))
}

/// A request from a partner: its From domain must be the one its connection proved (a
/// first proof binds the connection, refused or not), and the policy must admit it.
/// Returns how the partner is federated and its domain.
fn admit_partner(
    req: &Request<'_>,
    from: &Inbound<'_>,
    gate: &mut impl Gate,
    bind_domain: &mut Option<String>,
) -> Result<(PartnerKind, String), Answer> {
    let Some(from_domain) = req.from().and_then(|f| uri_domain(&f.uri)) else {
        return Err(Answer::federation("no From domain"));
    };
    match partner_identity(
        from.domain.as_deref(),
        from.names,
        &from_domain,
        from.vouched,
    ) {
        PartnerIdentity::Known => {}
        PartnerIdentity::Proven => *bind_domain = Some(from_domain.clone()),
        PartnerIdentity::OtherDomain => {
            return Err(Answer::federation(
                "From domain is not the authenticated domain",
            ))
        }
        PartnerIdentity::NotCovered => {
            return Err(Answer::federation(
                "partner certificate does not cover the From domain",
            ))
        }
    }
    let target = req.to().map(|t| uri_address(&t.uri)).unwrap_or_default();
    match gate.admit_inbound(&from_domain, &target) {
        Admission::Admit(kind) => Ok((kind, from_domain)),
        Admission::Throttled => {
            let mut answer = Answer::new(503, "Service Unavailable").refusing(Refusal::Throttled);
            answer.extra.push(("Retry-After", "1".to_owned()));
            Err(answer)
        }
        Admission::Blocked | Admission::NotFederated => {
            Err(Answer::federation("domain not federated"))
        }
    }
}

/// Our own Via (our branch prefix at one of our listener addresses): the request came back
/// to us, a loop.
pub fn is_own_via(v: &Via<'_>, listeners: &[SocketAddr]) -> bool {
    let port = v.port.unwrap_or(5061);
    v.branch().is_some_and(|b| b.starts_with(BRANCH_PREFIX))
        && v.host
            .ip()
            .is_some_and(|ip| listeners.iter().any(|l| l.ip() == ip && l.port() == port))
}

/// The branch of our Via for this request. The connection is part of the key: on a stream a
/// retransmission, CANCEL or ACK comes on the INVITE's connection, and one peer can never
/// match (or cancel) another's transaction by copying its branch.
pub fn transaction_branch(
    req: &Request<'_>,
    top_via: &Via<'_>,
    conn: ConnId,
    secret: &[u8],
) -> String {
    let conn_key = conn.to_string();
    let mut extra: Vec<&str> = vec![&conn_key];
    if !top_via.has_rfc3261_branch() {
        // RFC 2543 peers: the transaction is identified by the dialog fields.
        extra.extend([
            req.call_id().unwrap_or(""),
            req.first("CSeq").unwrap_or(""),
            req.uri().as_str(),
        ]);
    }
    derive_branch(secret, top_via.raw, req.method(), &extra)
}

/// How a federated request's From domain relates to what its connection proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerIdentity {
    /// The connection already speaks for this domain.
    Known,
    /// First request on the connection, and its certificate covers the domain: bind it.
    Proven,
    /// The connection speaks for another domain.
    OtherDomain,
    /// The certificate names neither the domain nor a host vouched for it.
    NotCovered,
}

/// Whether a partner connection may send a request From `from_domain`: see
/// [`certificate_covers`].
pub fn partner_identity(
    bound: Option<&str>,
    names: &[String],
    from_domain: &str,
    vouched: &[String],
) -> PartnerIdentity {
    match bound {
        Some(d) if d == from_domain => PartnerIdentity::Known,
        Some(_) => PartnerIdentity::OtherDomain,
        None => {
            if certificate_covers(names, from_domain, vouched) {
                PartnerIdentity::Proven
            } else {
                PartnerIdentity::NotCovered
            }
        }
    }
}

/// A certificate speaks for `domain` when one of its names is the domain itself, or matches
/// a host vouched for it (the partner's configured edge, an SRV target inside the domain).
/// A name merely under the domain proves nothing: any host of the partner's may hold one.
pub fn certificate_covers(names: &[String], domain: &str, vouched: &[String]) -> bool {
    names
        .iter()
        .any(|n| name_matches(n, domain) || vouched.iter().any(|h| name_matches(n, h)))
}

/// Where a request goes: from outside always to the Director pool; from inside to the flow
/// token of our Route entry, else to the domain of its Request-URI.
fn route(
    req: &Request<'_>,
    origin: Origin,
    token: Option<FlowToken>,
    s: &Settings,
) -> Result<Target, Answer> {
    if origin.is_external() {
        return Ok(Target::NextHopPool);
    }
    match token {
        Some(FlowToken::Connection(id)) => Ok(Target::Connection(id)),
        Some(FlowToken::Domain(d)) => Ok(Target::Partner(d)),
        None => {
            let Some(domain) = uri_domain(req.uri()) else {
                return Err(Answer::new(416, "Unsupported URI Scheme"));
            };
            if s.sip_domains.contains(&domain) {
                // Our own users are reached through the Director, never by guessing.
                return Err(Answer::new(480, "Temporarily Unavailable"));
            }
            Ok(Target::Partner(domain))
        }
    }
}

/// What [`edits`] needs beyond the request.
struct Hop<'a> {
    own: OwnAddrs,
    fqdn: &'a str,
    flow_key: &'a FlowKey,
    branch: &'a str,
    popped: usize,
    rest_routes: &'a [&'a str],
    partner_kind: Option<PartnerKind>,
    inbound_partner: Option<&'a str>,
}

fn edits(
    req: &Request<'_>,
    top_via: &Via<'_>,
    from: &Inbound<'_>,
    target: &Target,
    hop: Hop<'_>,
) -> Edits {
    let going_inside = matches!(target, Target::NextHopPool);
    let int_addr = hop.own.internal;
    // Remote users come back on their own connection, partners connect to the federation port.
    let ext_addr = if from.origin == Origin::RemoteUser || matches!(target, Target::Connection(_)) {
        hop.own.remote_users
    } else {
        hop.own.federation
    };
    let out_addr = if going_inside { int_addr } else { ext_addr };
    let host_of = |a: &SocketAddr| {
        if hop.fqdn.is_empty() {
            uri_host(a)
        } else {
            hop.fqdn.to_owned()
        }
    };
    let via = format!(
        "SIP/2.0/TLS {}:{};branch={}",
        host_of(&out_addr),
        out_addr.port(),
        hop.branch
    );

    let mut sender = top_via.raw.to_owned();
    let mut changed = false;
    if top_via.needs_received(from.peer.ip()) && top_via.received().is_none() {
        sender.push_str(&format!(";received={}", from.peer.ip()));
        changed = true;
    }
    if top_via.rport() == Some(None) {
        sender = sender.replacen(";rport", &format!(";rport={}", from.peer.port()), 1);
        changed = true;
    }

    let method = req.method();
    let in_dialog = req.to().is_some_and(|t| t.tag().is_some());
    let ext_token = match (target, hop.inbound_partner) {
        (Target::Partner(d), _) => FlowToken::Domain(d.clone()),
        (_, Some(d)) => FlowToken::Domain(d.to_owned()),
        _ => FlowToken::Connection(from.id),
    };
    let sealed = ext_token.seal(hop.flow_key);
    let inner = own_route(&sealed, &host_of(&int_addr), int_addr.port());
    let outer = own_route(&sealed, &host_of(&ext_addr), ext_addr.port());
    let record_route = if in_dialog || method == "REGISTER" || method == "ACK" {
        Vec::new()
    } else if going_inside {
        // Two entries, one per side: the first faces the next hop the request goes to.
        vec![inner.clone(), outer]
    } else {
        vec![outer, inner.clone()]
    };
    let path = (method == "REGISTER" && from.origin == Origin::RemoteUser).then_some(inner);

    let trust = going_inside.then(|| {
        let source = match (from.origin, hop.partner_kind) {
            (Origin::RemoteUser, _) => "RemoteUser",
            (_, Some(k)) => k.trust_source(),
            _ => "Unknown",
        };
        let network = if from.origin == Origin::RemoteUser {
            "internet"
        } else if hop.partner_kind == Some(PartnerKind::PublicProvider) {
            "publiccloud"
        } else {
            "federation"
        };
        let mut trust = format!(
            "ms-source-type={source};ms-ep-fqdn={};ms-source-network={network}",
            host_of(&ext_addr)
        );
        if let Some(d) = hop.inbound_partner {
            trust.push_str(&format!(";ms-source-domain={d}"));
        }
        trust
    });

    Edits {
        via,
        sender_via: changed.then_some(sender),
        routes: (hop.popped > 0).then(|| hop.rest_routes.iter().map(|r| (*r).to_owned()).collect()),
        record_route,
        path,
        // Assertions from outside are never trusted, and ours never leave.
        strip_assertions: from.origin.is_external() || !going_inside,
        trust,
    }
}

/// What an answer from a next hop or a partner is matched by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseKey {
    /// No branch in its top Via: matches nothing, dropped and counted.
    Stray,
    /// The answer to a CANCEL we sent: we answered the caller's CANCEL ourselves, so it ends
    /// here.
    CancelAnswer,
    /// Our branch, the client transaction's key.
    Branch(String),
}

pub fn response_key(resp: &Response<'_>) -> ResponseKey {
    let Some(branch) = resp.top_via().and_then(|v| v.branch().map(str::to_owned)) else {
        return ResponseKey::Stray;
    };
    if resp.cseq().is_some_and(|c| c.method == "CANCEL") {
        return ResponseKey::CancelAnswer;
    }
    ResponseKey::Branch(branch)
}

/// An answer relayed upstream: our Via removed, and assertions from outside stripped. None
/// when it has no Via to remove or cannot be written.
pub fn relayed_response(resp: &Response<'_>, came_from: Origin) -> Option<Vec<u8>> {
    let mut ed = MessageEditor::new(resp.parts());
    ed.remove_top_value("Via").ok()?;
    if came_from.is_external() {
        ed.remove_all(TRUST_HEADER);
        ed.remove_all("P-Asserted-Identity");
    }
    let mut out = Vec::with_capacity(resp.as_bytes().len());
    ed.write_into(&mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests;
