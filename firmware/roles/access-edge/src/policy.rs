//! Federation policy, sans-IO: who may talk to us and how fast.
//!
//! Allow list, block list, public IM providers and discovery decide whether a partner domain
//! is federated at all; partners found by discovery get the OCS limits (a message rate, a
//! lower rate once their failure ratio is suspicious, and a watch list once they contact too
//! many distinct internal addresses). Time comes in as milliseconds from the caller so the
//! whole module is tested without clocks.
//!
//! State is kept only for domains that are configured, that an operator acted on, or that
//! the policy federates with; of those found by discovery at most `max_tracked_domains`,
//! the least recently seen forgotten first. A partner naming endless domains cannot grow
//! the table, nor the store it is persisted to.

use std::collections::{BTreeMap, HashSet};

use edged_config::roles::access_edge::FederationConfig;
use serde::{Deserialize, Serialize};

/// How a partner domain is federated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerKind {
    AllowListed,
    Discovered,
    PublicProvider,
}

impl PartnerKind {
    /// The value of `ms-source-type` in our trust header.
    pub fn trust_source(self) -> &'static str {
        match self {
            PartnerKind::AllowListed => "AllowListedPartner",
            PartnerKind::Discovered => "DiscoveredPartner",
            PartnerKind::PublicProvider => "PublicProvider",
        }
    }
}

/// The decision for one message from or to a partner domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admit(PartnerKind),
    /// On the block list, blocked by an operator, or watched.
    Blocked,
    /// Over its message rate.
    Throttled,
    /// Not allow-listed and discovery is off.
    NotFederated,
}

/// Live figures of one partner domain (admin API and `edgectl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainFigures {
    pub domain: String,
    /// `allow_listed`, `discovered`, `public_provider`, or `blocked`.
    pub kind: String,
    pub messages: u64,
    pub internal_addresses: u64,
    pub throttled: u64,
    pub blocked: u64,
    pub failures: u64,
    pub suspicious: bool,
    pub watched: bool,
    pub last_seen_unix: u64,
}

/// What the store keeps per domain, so operator actions and the watch list survive restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDomain {
    pub promoted: bool,
    pub operator_blocked: bool,
    pub watched: bool,
    pub messages: u64,
    pub throttled: u64,
    pub blocked: u64,
    pub failures: u64,
    pub last_seen_unix: u64,
}

/// A token bucket in milli-tokens so refill needs no floating point.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    milli_tokens: u64,
    last_ms: u64,
    /// Seconds of the rate the bucket holds when full.
    burst_secs: u32,
}

impl Bucket {
    fn full(rate: u32, now_ms: u64) -> Self {
        Self::with_burst(rate, 1, now_ms)
    }

    /// A full bucket holding `burst_secs` seconds' worth of `rate`.
    pub fn with_burst(rate: u32, burst_secs: u32, now_ms: u64) -> Self {
        Bucket {
            milli_tokens: u64::from(rate) * 1000 * u64::from(burst_secs),
            last_ms: now_ms,
            burst_secs,
        }
    }

    /// Takes one token at `rate` per second; false when empty.
    pub fn take(&mut self, rate: u32, now_ms: u64) -> bool {
        let cap = u64::from(rate) * 1000 * u64::from(self.burst_secs);
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = now_ms.max(self.last_ms);
        self.milli_tokens = (self.milli_tokens + elapsed * u64::from(rate)).min(cap);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone)]
struct DomainState {
    stored: StoredDomain,
    /// Requests answered (final response seen) and how many of them failed, for the ratio.
    answered: u64,
    internal_addresses: HashSet<String>,
    bucket: Bucket,
    dirty: bool,
    /// When the domain was last asked about, for forgetting the least recently seen.
    last_ms: u64,
}

/// The federation policy and its per-domain state.
#[derive(Debug)]
pub struct FederationPolicy {
    config: FederationConfig,
    domains: BTreeMap<String, DomainState>,
    /// Domains forgotten since the last [`FederationPolicy::take_dirty`], to remove from
    /// the store.
    forgotten: Vec<String>,
}

fn key(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

fn listed(list: &[String], domain: &str) -> bool {
    list.iter().any(|d| key(d) == domain)
}

impl FederationPolicy {
    pub fn new(config: FederationConfig) -> Self {
        FederationPolicy {
            config,
            domains: BTreeMap::new(),
            forgotten: Vec::new(),
        }
    }

    /// Takes a reloaded configuration; per-domain figures are kept.
    pub fn set_config(&mut self, config: FederationConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &FederationConfig {
        &self.config
    }

    /// Restores a domain's persisted state (at start); one over the bound is forgotten.
    pub fn restore(&mut self, domain: &str, stored: StoredDomain, now_ms: u64) {
        let rate = self.config.discovered_rate_per_sec;
        let d = key(domain);
        let sticky = self.is_sticky(&d, &stored);
        if !sticky && !self.make_room(&d) {
            self.forgotten.push(d);
            return;
        }
        self.domains.insert(
            d,
            DomainState {
                stored,
                answered: 0,
                internal_addresses: HashSet::new(),
                bucket: Bucket::full(rate, now_ms),
                dirty: false,
                last_ms: now_ms,
            },
        );
    }

    /// Kept whatever the bound: configured domains, and those whose stored state is an
    /// operator's decision or a watch-list entry (forgetting it would lift the watch).
    fn is_sticky(&self, d: &str, stored: &StoredDomain) -> bool {
        stored.promoted
            || stored.operator_blocked
            || stored.watched
            || listed(&self.config.block, d)
            || listed(&self.config.public_providers, d)
            || self.config.allow.iter().any(|p| key(&p.domain) == d)
    }

    /// Whether a new, not sticky domain `d` fits, forgetting the least recently seen
    /// other one when the table is full.
    fn make_room(&mut self, d: &str) -> bool {
        if self.domains.contains_key(d) {
            return true;
        }
        let max = self.config.max_tracked_domains as usize;
        let evictable: Vec<(&String, u64)> = self
            .domains
            .iter()
            .filter(|(name, st)| !self.is_sticky(name, &st.stored))
            .map(|(name, st)| (name, st.last_ms))
            .collect();
        if evictable.len() < max {
            return true;
        }
        let Some(oldest) = evictable
            .iter()
            .min_by_key(|(_, last)| *last)
            .map(|(name, _)| (*name).clone())
        else {
            return false;
        };
        self.domains.remove(&oldest);
        self.forgotten.push(oldest);
        true
    }

    /// Domains whose state is kept.
    pub fn tracked(&self) -> usize {
        self.domains.len()
    }

    /// How the domain is federated, ignoring rates: None when it is not.
    pub fn classify(&self, domain: &str) -> Option<PartnerKind> {
        let d = key(domain);
        let state = self.domains.get(&d);
        if listed(&self.config.block, &d) || state.is_some_and(|s| s.stored.operator_blocked) {
            return None;
        }
        if self.config.allow.iter().any(|p| key(&p.domain) == d)
            || state.is_some_and(|s| s.stored.promoted)
        {
            return Some(PartnerKind::AllowListed);
        }
        if state.is_some_and(|s| s.stored.watched) {
            return None;
        }
        if listed(&self.config.public_providers, &d) {
            return Some(PartnerKind::PublicProvider);
        }
        self.config.discovery.then_some(PartnerKind::Discovered)
    }

    /// The allow-listed edge (`host[:port]`) of a domain, if configured.
    pub fn allowed_edge(&self, domain: &str) -> Option<&str> {
        let d = key(domain);
        self.config
            .allow
            .iter()
            .find(|p| key(&p.domain) == d)
            .and_then(|p| p.edge.as_deref())
    }

    fn state(&mut self, domain: &str, now_ms: u64) -> &mut DomainState {
        let rate = self.config.discovered_rate_per_sec;
        let d = key(domain);
        if !self.is_sticky(&d, &StoredDomain::default()) {
            // A new domain always fits: at worst the least recently seen one goes.
            let _ = self.make_room(&d);
        }
        let st = self.domains.entry(d).or_insert_with(|| DomainState {
            stored: StoredDomain::default(),
            answered: 0,
            internal_addresses: HashSet::new(),
            bucket: Bucket::full(rate, now_ms),
            dirty: true,
            last_ms: now_ms,
        });
        st.last_ms = st.last_ms.max(now_ms);
        st
    }

    fn is_suspicious(&self, s: &DomainState) -> bool {
        s.answered >= u64::from(self.config.suspicious_min_requests)
            && s.answered > 0
            && s.stored.failures * 100
                >= s.answered * u64::from(self.config.suspicious_failure_percent)
    }

    /// Decides on a request from `domain` addressed to the internal `target` (user@host),
    /// and counts it.
    pub fn admit_inbound(
        &mut self,
        domain: &str,
        target: &str,
        now_ms: u64,
        unix: u64,
    ) -> Admission {
        self.admit(domain, Some(target), now_ms, unix)
    }

    /// Decides on a request from inside to `domain`, and counts it. Outgoing traffic is
    /// our own users', so it is never throttled, only refused for blocked domains.
    pub fn admit_outbound(&mut self, domain: &str, now_ms: u64, unix: u64) -> Admission {
        self.admit(domain, None, now_ms, unix)
    }

    fn admit(&mut self, domain: &str, target: Option<&str>, now_ms: u64, unix: u64) -> Admission {
        let kind = self.classify(domain);
        let watch_threshold = self.config.watch_threshold as usize;
        let discovered_rate = self.config.discovered_rate_per_sec;
        let suspicious_rate = self.config.suspicious_rate_per_sec;
        let on_block_list = listed(&self.config.block, &key(domain));
        if kind.is_none() && !on_block_list && !self.domains.contains_key(&key(domain)) {
            // Neither configured nor federated: nothing of it is kept.
            return Admission::NotFederated;
        }
        let st = self.state(domain, now_ms);
        st.dirty = true;
        st.stored.last_seen_unix = unix;
        let Some(kind) = kind else {
            st.stored.blocked += 1;
            return if on_block_list || st.stored.operator_blocked || st.stored.watched {
                Admission::Blocked
            } else {
                Admission::NotFederated
            };
        };
        if kind != PartnerKind::Discovered || target.is_none() {
            st.stored.messages += 1;
            return Admission::Admit(kind);
        }
        if let Some(t) = target {
            // Bounded: once over the threshold the domain is watched and never admitted again.
            if st.internal_addresses.len() <= watch_threshold {
                st.internal_addresses.insert(t.to_ascii_lowercase());
            }
            if st.internal_addresses.len() > watch_threshold {
                st.stored.watched = true;
                st.stored.blocked += 1;
                return Admission::Blocked;
            }
        }
        let snapshot = st.clone();
        let rate = if self.is_suspicious(&snapshot) {
            suspicious_rate
        } else {
            discovered_rate
        };
        let st = self.state(domain, now_ms);
        if st.bucket.take(rate, now_ms) {
            st.stored.messages += 1;
            Admission::Admit(kind)
        } else {
            st.stored.throttled += 1;
            Admission::Throttled
        }
    }

    /// Records the final status answered to a request from `domain`: failures (other than
    /// authentication challenges) feed the suspicious ratio.
    pub fn record_outcome(&mut self, domain: &str, status: u16, now_ms: u64) {
        // Only a domain still tracked: an answer never brings a forgotten one back.
        let Some(st) = self.domains.get_mut(&key(domain)) else {
            return;
        };
        st.last_ms = st.last_ms.max(now_ms);
        st.answered += 1;
        if status >= 400 && status != 401 && status != 407 {
            st.stored.failures += 1;
        }
        st.dirty = true;
    }

    /// Operator action: treat the domain as allow-listed (clears watch and block).
    pub fn promote(&mut self, domain: &str, now_ms: u64) -> StoredDomain {
        let st = self.state(domain, now_ms);
        st.stored.promoted = true;
        st.stored.operator_blocked = false;
        st.stored.watched = false;
        st.internal_addresses.clear();
        st.dirty = true;
        st.stored.clone()
    }

    /// Operator action: block the domain.
    pub fn block(&mut self, domain: &str, now_ms: u64) -> StoredDomain {
        let st = self.state(domain, now_ms);
        st.stored.operator_blocked = true;
        st.stored.promoted = false;
        st.dirty = true;
        st.stored.clone()
    }

    /// Domains forgotten since the last call, to remove from the store.
    pub fn take_forgotten(&mut self) -> Vec<String> {
        std::mem::take(&mut self.forgotten)
    }

    /// Domains changed since the last call, with the state to persist.
    pub fn take_dirty(&mut self) -> Vec<(String, StoredDomain)> {
        self.domains
            .iter_mut()
            .filter(|(_, s)| s.dirty)
            .map(|(d, s)| {
                s.dirty = false;
                (d.clone(), s.stored.clone())
            })
            .collect()
    }

    pub fn figures(&self) -> Vec<DomainFigures> {
        self.domains
            .iter()
            .map(|(d, s)| DomainFigures {
                domain: d.clone(),
                kind: match self.classify(d) {
                    Some(PartnerKind::AllowListed) => "allow_listed",
                    Some(PartnerKind::Discovered) => "discovered",
                    Some(PartnerKind::PublicProvider) => "public_provider",
                    None => "blocked",
                }
                .into(),
                messages: s.stored.messages,
                internal_addresses: s.internal_addresses.len() as u64,
                throttled: s.stored.throttled,
                blocked: s.stored.blocked,
                failures: s.stored.failures,
                suspicious: self.is_suspicious(s),
                watched: s.stored.watched,
                last_seen_unix: s.stored.last_seen_unix,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edged_config::roles::access_edge::AllowedPartner;

    fn config() -> FederationConfig {
        FederationConfig {
            allow: vec![AllowedPartner {
                domain: "partner.test".into(),
                edge: Some("sip.partner.test".into()),
            }],
            block: vec!["evil.test".into()],
            public_providers: vec!["im.public.test".into()],
            ..FederationConfig::default()
        }
    }

    #[test]
    fn lists_decide_the_kind() {
        let p = FederationPolicy::new(config());
        assert_eq!(p.classify("Partner.Test."), Some(PartnerKind::AllowListed));
        assert_eq!(
            p.classify("im.public.test"),
            Some(PartnerKind::PublicProvider)
        );
        assert_eq!(p.classify("other.test"), Some(PartnerKind::Discovered));
        assert_eq!(p.classify("evil.test"), None);
        assert_eq!(p.allowed_edge("partner.test"), Some("sip.partner.test"));
        let mut off = config();
        off.discovery = false;
        let mut p = FederationPolicy::new(off);
        assert_eq!(p.classify("other.test"), None);
        assert_eq!(
            p.admit_inbound("other.test", "a@us", 0, 0),
            Admission::NotFederated
        );
        assert_eq!(
            p.admit_inbound("evil.test", "a@us", 0, 0),
            Admission::Blocked
        );
    }

    #[test]
    fn discovered_domain_is_held_to_its_rate_and_refills() {
        let mut p = FederationPolicy::new(config());
        let admitted = (0..50)
            .filter(|i| {
                matches!(
                    p.admit_inbound("other.test", &format!("u{}@us", i % 5), 0, 1),
                    Admission::Admit(_)
                )
            })
            .count();
        assert_eq!(admitted, 20);
        // Half a second later half the rate is back.
        let later = (0..50)
            .filter(|_| {
                matches!(
                    p.admit_inbound("other.test", "u1@us", 500, 1),
                    Admission::Admit(_)
                )
            })
            .count();
        assert_eq!(later, 10);
        // Allow-listed partners are not limited.
        assert!(
            (0..100).all(|_| p.admit_inbound("partner.test", "u@us", 0, 1)
                == Admission::Admit(PartnerKind::AllowListed))
        );
        let f = p
            .figures()
            .into_iter()
            .find(|f| f.domain == "other.test")
            .unwrap_or_else(|| panic!("no figures"));
        assert_eq!((f.messages, f.throttled, f.internal_addresses), (30, 70, 5));
    }

    #[test]
    fn suspicious_failure_ratio_lowers_the_rate() {
        let mut p = FederationPolicy::new(config());
        for i in 0..20u64 {
            assert!(matches!(
                p.admit_inbound("scan.test", "a@us", i * 1000, 1),
                Admission::Admit(_)
            ));
            p.record_outcome("scan.test", 404, i * 1000);
        }
        assert!(p.figures()[0].suspicious);
        let t = 100_000;
        let admitted = (0..10)
            .filter(|_| {
                matches!(
                    p.admit_inbound("scan.test", "a@us", t, 1),
                    Admission::Admit(_)
                )
            })
            .count();
        assert_eq!(admitted, 1);
        // Challenges are not failures.
        let mut q = FederationPolicy::new(config());
        for i in 0..30u64 {
            let _ = q.admit_inbound("ok.test", "a@us", i * 1000, 1);
            q.record_outcome("ok.test", 401, i * 1000);
        }
        assert!(!q.figures()[0].suspicious);
    }

    #[test]
    fn too_many_internal_addresses_puts_domain_on_watch_list() {
        let mut c = config();
        c.watch_threshold = 10;
        c.discovered_rate_per_sec = 1000;
        let mut p = FederationPolicy::new(c);
        for i in 0..10 {
            assert!(matches!(
                p.admit_inbound("harvest.test", &format!("u{i}@us"), 0, 1),
                Admission::Admit(_)
            ));
        }
        // Repeating a known address is fine; the eleventh distinct one is not.
        assert!(matches!(
            p.admit_inbound("harvest.test", "u3@us", 0, 1),
            Admission::Admit(_)
        ));
        assert_eq!(
            p.admit_inbound("harvest.test", "u10@us", 0, 1),
            Admission::Blocked
        );
        assert_eq!(
            p.admit_inbound("harvest.test", "u0@us", 0, 1),
            Admission::Blocked
        );
        assert_eq!(p.classify("harvest.test"), None);
        let f = &p.figures()[0];
        assert!(f.watched);
        assert_eq!(f.kind, "blocked");
        // The operator promotes it: allowed again, unlimited.
        let stored = p.promote("harvest.test", 0);
        assert!(stored.promoted && !stored.watched);
        assert_eq!(
            p.admit_inbound("harvest.test", "u99@us", 0, 1),
            Admission::Admit(PartnerKind::AllowListed)
        );
    }

    #[test]
    fn a_partner_naming_endless_domains_leaves_the_table_bounded() {
        let mut c = config();
        c.max_tracked_domains = 100;
        let mut p = FederationPolicy::new(c);
        p.block("operator.test", 0);
        for i in 0..10_000u64 {
            let _ = p.admit_inbound(&format!("d{i}.claimed.test"), "a@us", i, 1);
            p.record_outcome(&format!("d{i}.claimed.test"), 404, i);
        }
        // The bound, plus the operator's decision, which is never forgotten.
        assert_eq!(p.tracked(), 101);
        assert!(p.figures().iter().any(|f| f.domain == "operator.test"));
        // The most recent are kept.
        assert!(p.figures().iter().any(|f| f.domain == "d9999.claimed.test"));
        assert_eq!(p.take_forgotten().len(), 10_000 - 100);
        // Not federated at all (discovery off): nothing is kept.
        let mut off = config();
        off.discovery = false;
        let mut q = FederationPolicy::new(off);
        for i in 0..1000u64 {
            let _ = q.admit_inbound(&format!("d{i}.claimed.test"), "a@us", i, 1);
        }
        assert_eq!(q.tracked(), 0);
        // A store full of old claims is cut to the bound at start.
        let mut c = config();
        c.max_tracked_domains = 10;
        let mut r = FederationPolicy::new(c);
        for i in 0..50 {
            r.restore(&format!("d{i}.claimed.test"), StoredDomain::default(), i);
        }
        assert_eq!(r.tracked(), 10);
        assert_eq!(r.take_forgotten().len(), 40);
    }

    #[test]
    fn operator_block_and_restore() {
        let mut p = FederationPolicy::new(config());
        let stored = p.block("partner.test", 0);
        assert_eq!(p.admit_outbound("partner.test", 0, 5), Admission::Blocked);
        let dirty = p.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert!(p.take_dirty().is_empty());
        let mut q = FederationPolicy::new(config());
        q.restore("partner.test", stored, 0);
        assert_eq!(q.classify("partner.test"), None);
    }
}
