//! The client transactions of the proxy, keyed by the branch of our Via (RFC 3261 17.1 and
//! 16.7): which answer belongs to which forwarded request, who gets it, when an INVITE is
//! cancelled (by its caller or by Timer C) and when a transaction is given up.
//!
//! Sans-IO: time comes in as an `Instant`, and the table is generic over the connection
//! handle (`Arc<ConnHandle>` in the proxy), so every decision is tested without sockets.
//! Each method returns what must be sent; the caller sends it.

use std::collections::HashMap;
use std::time::Instant;

use crate::conceal;
use crate::conn::Origin;
use crate::timers::{self, Expiry, TimerLimits, TxnClock};

/// What CANCEL and the ACK of a non-2xx answer need from the forwarded INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteCopy {
    pub request_uri: String,
    /// Our Via, as forwarded: CANCEL and ACK must carry the same branch (RFC 3261 9.1, 17.1.1.3).
    pub via: String,
    pub routes: Vec<String>,
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub cseq: u32,
}

impl InviteCopy {
    /// A CANCEL or ACK for the forwarded INVITE, with `to` as its To header.
    pub fn build(&self, method: &str, to: &str) -> Vec<u8> {
        let mut s = format!(
            "{method} {} SIP/2.0\r\nVia: {}\r\n",
            self.request_uri, self.via
        );
        for r in &self.routes {
            s.push_str("Route: ");
            s.push_str(r);
            s.push_str("\r\n");
        }
        s.push_str(&format!(
            "Max-Forwards: 70\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\nContent-Length: 0\r\n\r\n",
            self.from, self.call_id, self.cseq
        ));
        s.into_bytes()
    }
}

/// A forwarded request waiting for its answers.
#[derive(Debug)]
pub struct ClientTxn<C> {
    /// Where answers go; None for our own health checks.
    upstream: Option<C>,
    /// Who the upstream is: answers to federated callers may be concealed.
    upstream_origin: Option<Origin>,
    downstream: Option<C>,
    /// The request as received, to answer it ourselves (408, 503, the uniform 480).
    request: Vec<u8>,
    invite: Option<InviteCopy>,
    clock: TxnClock,
    final_status: Option<u16>,
    /// When the final answer came (or was made up): the transaction lingers from then on to
    /// absorb the ACK of a non-2xx and relay 2xx retransmissions.
    settled: Option<Instant>,
    /// Inbound federated domain, whose outcomes feed the failure ratio.
    partner: Option<String>,
    /// Health check of this next hop.
    health_of: Option<String>,
}

impl<C> ClientTxn<C> {
    /// A request forwarded for `upstream`; `request` is the request as received.
    pub fn forwarded(
        upstream: C,
        upstream_origin: Origin,
        request: Vec<u8>,
        invite: Option<InviteCopy>,
        partner: Option<String>,
        now: Instant,
    ) -> Self {
        ClientTxn {
            upstream: Some(upstream),
            upstream_origin: Some(upstream_origin),
            downstream: None,
            clock: TxnClock::new(now, invite.is_some()),
            request,
            invite,
            final_status: None,
            settled: None,
            partner,
            health_of: None,
        }
    }

    /// Our own OPTIONS to a next hop.
    pub fn health_check(hop: &str, now: Instant) -> Self {
        ClientTxn {
            upstream: None,
            upstream_origin: None,
            downstream: None,
            request: Vec::new(),
            invite: None,
            clock: TxnClock::new(now, false),
            final_status: None,
            settled: None,
            partner: None,
            health_of: Some(hop.to_owned()),
        }
    }

    fn settle(&mut self, code: u16, now: Instant) {
        self.final_status = Some(code);
        self.settled = Some(now);
    }
}

/// What a CANCEL from the caller found.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelMatch<C> {
    /// A pending INVITE: answer the CANCEL 200 and send this CANCEL downstream (when the
    /// INVITE has gone out already).
    Cancelled { forward: Option<(Vec<u8>, C)> },
    /// Nothing pending to cancel: 481.
    Unknown,
}

/// Where an answer goes after it matched a transaction.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery<C> {
    /// Nowhere (100 Trying is hop by hop; a repeated final answer already concealed).
    Nothing,
    /// Our own health check of this next hop was answered: the hop is alive.
    HealthCheck(String),
    /// To the caller, as the uniform 480 built from its own request (`request`, as received).
    Uniform { upstream: C, request: Vec<u8> },
    /// To the caller, relayed with our Via removed.
    Relay(C),
}

/// The outcome of an answer from downstream.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseMatch<C> {
    /// No transaction has this branch: dropped and counted.
    Stray,
    Matched {
        /// The ACK of a non-2xx final answer to an INVITE, for the connection it came on.
        ack: Option<Vec<u8>>,
        /// The inbound partner domain whose failure ratio this final answer feeds.
        outcome_of: Option<String>,
        deliver: Delivery<C>,
    },
}

/// How an answer came in, for the concealment rule.
#[derive(Debug, Clone, Copy)]
pub struct AnswerFrom {
    /// The connection the answer came on.
    pub origin: Origin,
    /// `hide_user_existence` from the settings.
    pub hide_user_existence: bool,
}

/// What the periodic sweep must do.
#[derive(Debug, PartialEq, Eq)]
pub struct Swept<C> {
    /// Timer C fired on these ringing INVITEs: CANCEL each branch downstream.
    pub cancels: Vec<(Vec<u8>, C)>,
    /// Given up: answer 408 upstream (see [`TxnTable::give_up`]).
    pub timeouts: Vec<String>,
    /// Health checks that were never answered: these next hops are down.
    pub dead_hops: Vec<String>,
}

/// The client transactions by branch.
#[derive(Debug)]
pub struct TxnTable<C> {
    txns: HashMap<String, ClientTxn<C>>,
}

impl<C> Default for TxnTable<C> {
    fn default() -> Self {
        TxnTable {
            txns: HashMap::new(),
        }
    }
}

impl<C: Clone> TxnTable<C> {
    /// Starts a transaction; false when `branch` is already there (a retransmission over a
    /// stream: the first copy is on its way and this one is dropped).
    pub fn begin(&mut self, branch: &str, txn: ClientTxn<C>) -> bool {
        if self.txns.contains_key(branch) {
            return false;
        }
        self.txns.insert(branch.to_owned(), txn);
        true
    }

    /// The ACK of an INVITE answered with a final non-2xx ends here (RFC 3261 17.1.1.3: the
    /// proxy sent its own ACK downstream already).
    pub fn ack_absorbed(&self, branch: &str) -> bool {
        self.txns
            .get(branch)
            .is_some_and(|t| t.final_status.is_some_and(|c| c >= 300))
    }

    /// The connection the request went out on, once known.
    pub fn set_downstream(&mut self, branch: &str, downstream: C) {
        if let Some(t) = self.txns.get_mut(branch) {
            t.downstream = Some(downstream);
        }
    }

    /// A CANCEL for the INVITE with this branch (RFC 3261 16.10).
    pub fn cancel(&mut self, branch: &str, now: Instant) -> CancelMatch<C> {
        let Some(t) = self
            .txns
            .get_mut(branch)
            .filter(|t| t.final_status.is_none())
        else {
            return CancelMatch::Unknown;
        };
        let Some(invite) = &t.invite else {
            return CancelMatch::Unknown;
        };
        let forward = t
            .downstream
            .clone()
            .map(|d| (invite.build("CANCEL", &invite.to), d));
        t.clock.cancelled = Some(now);
        CancelMatch::Cancelled { forward }
    }

    /// An answer from downstream with our `branch`. `to` is its To header (the ACK of a
    /// non-2xx repeats it, tag included).
    pub fn on_response(
        &mut self,
        branch: &str,
        code: u16,
        to: Option<&str>,
        from: AnswerFrom,
        now: Instant,
    ) -> ResponseMatch<C> {
        let Some(t) = self.txns.get_mut(branch) else {
            return ResponseMatch::Stray;
        };
        let was_final = t.final_status.is_some();
        let ack = match (&t.invite, code) {
            (Some(inv), 300..) if !was_final => Some(inv.build("ACK", to.unwrap_or(&inv.to))),
            _ => None,
        };
        if (101..200).contains(&code) {
            t.clock.last_provisional = Some(now);
        }
        let concealed = code >= 200 && conceals(t, code, from);
        if concealed && was_final {
            // Already answered with the uniform 480: a repeat would only differ from it.
            return ResponseMatch::Matched {
                ack: None,
                outcome_of: None,
                deliver: Delivery::Nothing,
            };
        }
        let first_final = code >= 200 && !was_final;
        if first_final {
            t.settle(code, now);
        }
        let outcome_of = if first_final { t.partner.clone() } else { None };
        let deliver = if let Some(hop) = &t.health_of {
            Delivery::HealthCheck(hop.clone())
        } else if code == 100 {
            Delivery::Nothing
        } else {
            match t.upstream.clone() {
                None => Delivery::Nothing,
                Some(upstream) if concealed => Delivery::Uniform {
                    upstream,
                    request: t.request.clone(),
                },
                Some(upstream) => Delivery::Relay(upstream),
            }
        };
        ResponseMatch::Matched {
            ack,
            outcome_of,
            deliver,
        }
    }

    /// Answers a pending transaction ourselves (no route, timeout): settles it with `code`
    /// and returns the caller with its request as received, to build the answer from.
    pub fn give_up(&mut self, branch: &str, code: u16, now: Instant) -> Option<(C, Vec<u8>)> {
        let t = self
            .txns
            .get_mut(branch)
            .filter(|t| t.final_status.is_none())?;
        t.settle(code, now);
        Some((t.upstream.clone()?, t.request.clone()))
    }

    /// Timers B/F and C: cancels ringing INVITEs whose Timer C fired, lists transactions to
    /// give up, forgets settled ones once they stop lingering and dead health checks.
    pub fn sweep(&mut self, now: Instant, limits: &TimerLimits) -> Swept<C> {
        let mut swept = Swept {
            cancels: Vec::new(),
            timeouts: Vec::new(),
            dead_hops: Vec::new(),
        };
        self.txns.retain(|branch, t| {
            if t.final_status.is_none() {
                match timers::due(&t.clock, now, limits) {
                    Some(Expiry::Cancel) => {
                        t.clock.cancelled = Some(now);
                        if let (Some(inv), Some(d)) = (&t.invite, &t.downstream) {
                            swept
                                .cancels
                                .push((inv.build("CANCEL", &inv.to), d.clone()));
                        }
                    }
                    Some(Expiry::Timeout) => match &t.health_of {
                        Some(hop) => {
                            swept.dead_hops.push(hop.clone());
                            return false;
                        }
                        None => swept.timeouts.push(branch.clone()),
                    },
                    None => {}
                }
                return true;
            }
            t.settled
                .is_some_and(|at| now.saturating_duration_since(at) <= limits.transaction)
        });
        swept
    }

    /// Transactions still waiting for a final answer.
    pub fn pending(&self) -> usize {
        self.txns
            .values()
            .filter(|t| t.final_status.is_none())
            .count()
    }

    pub fn len(&self) -> usize {
        self.txns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }
}

/// Whether the final answer `code` must reach the caller as the uniform 480: it would tell
/// whether an internal address exists, it comes from inside, and the caller is federated.
fn conceals<C>(t: &ClientTxn<C>, code: u16, from: AnswerFrom) -> bool {
    conceal::reveals_user(code)
        && !from.origin.is_external()
        && t.upstream.is_some()
        && t.upstream_origin.is_some_and(Origin::is_federation)
        && from.hide_user_existence
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMITS: TimerLimits = TimerLimits {
        transaction: Duration::from_secs(32),
        timer_c: Duration::from_secs(181),
    };

    const FROM_DIRECTOR: AnswerFrom = AnswerFrom {
        origin: Origin::ToNextHop,
        hide_user_existence: true,
    };

    fn invite_copy() -> InviteCopy {
        InviteCopy {
            request_uri: "sip:bob@corp.test".into(),
            via: "SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bKae1".into(),
            routes: vec!["<sip:dir.corp.test;lr>".into()],
            call_id: "call-1".into(),
            from: "<sip:alice@partner.test>;tag=a".into(),
            to: "<sip:bob@corp.test>".into(),
            cseq: 7,
        }
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    fn invite_from(origin: Origin, t0: Instant) -> ClientTxn<&'static str> {
        ClientTxn::forwarded(
            "caller",
            origin,
            b"INVITE sip:bob@corp.test SIP/2.0\r\n\r\n".to_vec(),
            Some(invite_copy()),
            Some("partner.test".into()),
            t0,
        )
    }

    fn table_with_invite(origin: Origin, t0: Instant) -> TxnTable<&'static str> {
        let mut t = TxnTable::default();
        assert!(t.begin("b1", invite_from(origin, t0)));
        t.set_downstream("b1", "director");
        t
    }

    #[test]
    fn cancel_and_ack_copies_repeat_the_invite_branch_and_cseq() {
        let cancel = text(&invite_copy().build("CANCEL", "<sip:bob@corp.test>"));
        assert!(cancel.starts_with("CANCEL sip:bob@corp.test SIP/2.0\r\n"));
        assert!(cancel.contains("Via: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bKae1\r\n"));
        assert!(cancel.contains("Route: <sip:dir.corp.test;lr>\r\n"));
        assert!(cancel.contains("CSeq: 7 CANCEL\r\n"));
        let ack = text(&invite_copy().build("ACK", "<sip:bob@corp.test>;tag=d"));
        assert!(ack.contains("To: <sip:bob@corp.test>;tag=d\r\n"));
        assert!(ack.contains("CSeq: 7 ACK\r\n"));
    }

    #[test]
    fn a_retransmission_does_not_start_a_second_transaction() {
        let t0 = Instant::now();
        let mut t = table_with_invite(Origin::RemoteUser, t0);
        assert!(!t.begin("b1", invite_from(Origin::RemoteUser, t0)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.pending(), 1);
    }

    #[test]
    fn a_response_for_no_branch_is_stray() {
        let mut t = table_with_invite(Origin::RemoteUser, Instant::now());
        let m = t.on_response("other", 200, None, FROM_DIRECTOR, Instant::now());
        assert_eq!(m, ResponseMatch::Stray);
    }

    #[test]
    fn answers_go_back_to_the_connection_the_request_came_on() {
        let t0 = Instant::now();
        let mut t = table_with_invite(Origin::RemoteUser, t0);
        let m = t.on_response("b1", 180, None, FROM_DIRECTOR, t0);
        assert_eq!(
            m,
            ResponseMatch::Matched {
                ack: None,
                outcome_of: None,
                deliver: Delivery::Relay("caller")
            }
        );
        assert_eq!(t.pending(), 1, "a provisional answer is not final");
        let m = t.on_response("b1", 200, None, FROM_DIRECTOR, t0);
        assert!(matches!(
            m,
            ResponseMatch::Matched {
                ack: None,
                deliver: Delivery::Relay("caller"),
                ..
            }
        ));
        assert_eq!(t.pending(), 0);
        // A 2xx retransmission is relayed too (the caller's ACK is end to end).
        let m = t.on_response("b1", 200, None, FROM_DIRECTOR, t0);
        assert!(matches!(
            m,
            ResponseMatch::Matched {
                deliver: Delivery::Relay("caller"),
                outcome_of: None,
                ..
            }
        ));
    }

    #[test]
    fn trying_from_downstream_is_not_relayed() {
        let t0 = Instant::now();
        let mut t = table_with_invite(Origin::RemoteUser, t0);
        let m = t.on_response("b1", 100, None, FROM_DIRECTOR, t0);
        assert!(matches!(
            m,
            ResponseMatch::Matched {
                deliver: Delivery::Nothing,
                ..
            }
        ));
    }

    #[test]
    fn a_non_2xx_final_answer_to_an_invite_is_acked_here_once() {
        let t0 = Instant::now();
        let mut t = table_with_invite(Origin::RemoteUser, t0);
        let to = "<sip:bob@corp.test>;tag=dir1";
        let ResponseMatch::Matched { ack, .. } =
            t.on_response("b1", 486, Some(to), FROM_DIRECTOR, t0)
        else {
            panic!("not matched");
        };
        let ack = text(&ack.unwrap_or_default());
        assert!(
            ack.starts_with("ACK sip:bob@corp.test SIP/2.0\r\n"),
            "{ack}"
        );
        assert!(ack.contains("To: <sip:bob@corp.test>;tag=dir1\r\n"));
        // The retransmitted 486 is relayed but not acked again by us... nor re-settled.
        let ResponseMatch::Matched { ack, .. } =
            t.on_response("b1", 486, Some(to), FROM_DIRECTOR, t0)
        else {
            panic!("not matched");
        };
        assert_eq!(ack, None);
        // The caller's own ACK for it ends here.
        assert!(t.ack_absorbed("b1"));
    }

    #[test]
    fn a_2xx_leaves_the_ack_to_the_caller() {
        let t0 = Instant::now();
        let mut t = table_with_invite(Origin::RemoteUser, t0);
        let ResponseMatch::Matched { ack, .. } = t.on_response("b1", 200, None, FROM_DIRECTOR, t0)
        else {
            panic!("not matched");
        };
        assert_eq!(ack, None);
        assert!(!t.ack_absorbed("b1"), "the ACK of a 2xx is forwarded");
    }

    #[test]
    fn only_the_first_final_answer_feeds_the_partner_outcome() {
        let t0 = Instant::now();
        let mut t = table_with_invite(Origin::Federation, t0);
        let no_hide = AnswerFrom {
            hide_user_existence: false,
            ..FROM_DIRECTOR
        };
        let m = t.on_response("b1", 180, None, no_hide, t0);
        assert!(matches!(
            m,
            ResponseMatch::Matched {
                outcome_of: None,
                ..
            }
        ));
        let m = t.on_response("b1", 404, None, no_hide, t0);
        assert!(matches!(
            m,
            ResponseMatch::Matched { outcome_of: Some(ref d), .. } if d == "partner.test"
        ));
        let m = t.on_response("b1", 404, None, no_hide, t0);
        assert!(matches!(
            m,
            ResponseMatch::Matched {
                outcome_of: None,
                ..
            }
        ));
    }

    #[test]
    fn a_no_such_user_answer_to_a_partner_becomes_the_uniform_480_once() {
        let t0 = Instant::now();
        let mut t = table_with_invite(Origin::Federation, t0);
        let m = t.on_response("b1", 404, None, FROM_DIRECTOR, t0);
        let ResponseMatch::Matched { deliver, .. } = m else {
            panic!("not matched")
        };
        assert_eq!(
            deliver,
            Delivery::Uniform {
                upstream: "caller",
                request: b"INVITE sip:bob@corp.test SIP/2.0\r\n\r\n".to_vec()
            }
        );
        // The retransmitted 404 is swallowed: a second answer would only differ.
        let m = t.on_response("b1", 404, None, FROM_DIRECTOR, t0);
        assert_eq!(
            m,
            ResponseMatch::Matched {
                ack: None,
                outcome_of: None,
                deliver: Delivery::Nothing
            }
        );
    }

    #[test]
    fn concealment_needs_the_setting_a_federated_caller_and_an_answer_from_inside() {
        let t0 = Instant::now();
        let uniform = |origin: Origin, from: AnswerFrom, code: u16| {
            let mut t = table_with_invite(origin, t0);
            matches!(
                t.on_response("b1", code, None, from, t0),
                ResponseMatch::Matched {
                    deliver: Delivery::Uniform { .. },
                    ..
                }
            )
        };
        assert!(uniform(Origin::Federation, FROM_DIRECTOR, 404));
        assert!(uniform(Origin::ToPartner, FROM_DIRECTOR, 604));
        assert!(uniform(Origin::Federation, FROM_DIRECTOR, 480));
        // Remote users and the Director itself get the real answer.
        assert!(!uniform(Origin::RemoteUser, FROM_DIRECTOR, 404));
        assert!(!uniform(Origin::Internal, FROM_DIRECTOR, 404));
        // Answers that say nothing about the address pass.
        assert!(!uniform(Origin::Federation, FROM_DIRECTOR, 486));
        // The setting off.
        let off = AnswerFrom {
            hide_user_existence: false,
            ..FROM_DIRECTOR
        };
        assert!(!uniform(Origin::Federation, off, 404));
        // An answer from a partner (a request from inside to it) is not ours to hide.
        let from_partner = AnswerFrom {
            origin: Origin::ToPartner,
            hide_user_existence: true,
        };
        assert!(!uniform(Origin::Federation, from_partner, 404));
    }

    #[test]
    fn cancel_of_a_pending_invite_goes_downstream_and_then_nothing_is_left_to_cancel() {
        let t0 = Instant::now();
        let mut t = table_with_invite(Origin::RemoteUser, t0);
        let CancelMatch::Cancelled {
            forward: Some((cancel, to)),
        } = t.cancel("b1", t0)
        else {
            panic!("not cancelled");
        };
        assert_eq!(to, "director");
        assert!(text(&cancel).contains("CSeq: 7 CANCEL\r\n"));
        // The 487 settles it; a late CANCEL finds nothing.
        let _ = t.on_response("b1", 487, None, FROM_DIRECTOR, t0);
        assert_eq!(t.cancel("b1", t0), CancelMatch::Unknown);
        assert_eq!(t.cancel("unknown", t0), CancelMatch::Unknown);
    }

    #[test]
    fn cancel_before_the_invite_went_out_is_answered_but_sends_nothing() {
        let t0 = Instant::now();
        let mut t = TxnTable::default();
        assert!(t.begin("b1", invite_from(Origin::RemoteUser, t0)));
        assert_eq!(t.cancel("b1", t0), CancelMatch::Cancelled { forward: None });
    }

    #[test]
    fn only_an_invite_can_be_cancelled() {
        let t0 = Instant::now();
        let mut t = TxnTable::default();
        let options =
            ClientTxn::forwarded("caller", Origin::RemoteUser, Vec::new(), None, None, t0);
        assert!(t.begin("b1", options));
        assert_eq!(t.cancel("b1", t0), CancelMatch::Unknown);
    }

    #[test]
    fn giving_up_answers_the_caller_once() {
        let t0 = Instant::now();
        let mut t = table_with_invite(Origin::RemoteUser, t0);
        let (caller, request) = t
            .give_up("b1", 503, t0)
            .unwrap_or_else(|| panic!("pending"));
        assert_eq!(caller, "caller");
        assert!(request.starts_with(b"INVITE "));
        assert_eq!(t.give_up("b1", 503, t0), None);
        assert_eq!(t.pending(), 0);
        // A late answer from downstream still matches, but is no longer the first final one.
        let m = t.on_response("b1", 200, None, FROM_DIRECTOR, t0);
        assert!(matches!(
            m,
            ResponseMatch::Matched {
                outcome_of: None,
                ..
            }
        ));
    }

    #[test]
    fn timer_c_cancels_a_ringing_invite_once_and_its_408_follows() {
        let t0 = Instant::now();
        let mut t = table_with_invite(Origin::RemoteUser, t0);
        let _ = t.on_response("b1", 180, None, FROM_DIRECTOR, t0);
        let s = t.sweep(t0 + Duration::from_secs(100), &LIMITS);
        assert!(s.cancels.is_empty() && s.timeouts.is_empty());
        let s = t.sweep(t0 + Duration::from_secs(182), &LIMITS);
        assert_eq!(s.cancels.len(), 1);
        assert_eq!(s.cancels[0].1, "director");
        assert!(text(&s.cancels[0].0).starts_with("CANCEL "));
        // No second CANCEL; without a 487 the caller gets 408 a transaction time later.
        let s = t.sweep(t0 + Duration::from_secs(200), &LIMITS);
        assert!(s.cancels.is_empty() && s.timeouts.is_empty());
        let s = t.sweep(t0 + Duration::from_secs(215), &LIMITS);
        assert_eq!(s.timeouts, vec!["b1".to_owned()]);
    }

    #[test]
    fn a_settled_transaction_lingers_one_transaction_time() {
        let t0 = Instant::now();
        let mut t = table_with_invite(Origin::RemoteUser, t0);
        let _ = t.on_response("b1", 486, None, FROM_DIRECTOR, t0);
        let _ = t.sweep(t0 + Duration::from_secs(32), &LIMITS);
        assert!(t.ack_absorbed("b1"), "still absorbing the caller's ACK");
        let s = t.sweep(t0 + Duration::from_secs(33), &LIMITS);
        assert!(
            s.timeouts.is_empty(),
            "a settled transaction never times out"
        );
        assert!(t.is_empty());
    }

    #[test]
    fn health_checks_report_their_hop_alive_or_dead() {
        let t0 = Instant::now();
        let mut t: TxnTable<&str> = TxnTable::default();
        assert!(t.begin("h1", ClientTxn::health_check("10.0.0.1:5061", t0)));
        assert!(t.begin("h2", ClientTxn::health_check("10.0.0.2:5061", t0)));
        let m = t.on_response("h1", 200, None, FROM_DIRECTOR, t0);
        assert!(matches!(
            m,
            ResponseMatch::Matched { deliver: Delivery::HealthCheck(ref h), .. } if h == "10.0.0.1:5061"
        ));
        let s = t.sweep(t0 + Duration::from_secs(33), &LIMITS);
        assert_eq!(s.dead_hops, vec!["10.0.0.2:5061".to_owned()]);
        assert!(
            s.timeouts.is_empty(),
            "nobody waits for a health check's 408"
        );
        assert_eq!(t.pending(), 0);
    }
}
