//! Services that must never answer on the external side (the metrics endpoint, the A/V
//! Authentication Service) refuse an address that the external side uses, and the wildcard
//! address, which would put them on every interface, the external one too.

use std::net::IpAddr;

use crate::{Config, ConfigErrors};

/// Every address the external side listens on, with the key that sets it.
fn external_addresses(config: &Config) -> Vec<(IpAddr, &'static str)> {
    let mut out = vec![(config.network.external.address, "network.external.address")];
    for (own, key) in [
        (
            config.access_edge.external_address,
            "access_edge.external_address",
        ),
        (
            config.webconf_edge.external_address,
            "webconf_edge.external_address",
        ),
        (config.av_edge.external_address, "av_edge.external_address"),
    ] {
        if let Some(a) = own {
            out.push((a, key));
        }
    }
    out
}

/// Checks one internal-only service's address (set at `key`).
fn check(config: &Config, service: &str, addr: IpAddr, key: &str, errs: &mut ConfigErrors) {
    if addr.is_unspecified() {
        errs.push(
            key,
            format!(
                "{addr} is a wildcard address: {service} is internal-only and would answer on every interface, the external one too; give the internal side's own address"
            ),
        );
        return;
    }
    if let Some((_, ext_key)) = external_addresses(config)
        .into_iter()
        .find(|(a, _)| *a == addr)
    {
        errs.push(
            key,
            format!(
                "{addr} is also the external side's address ({ext_key}): {service} is internal-only; give the internal side's own address"
            ),
        );
    }
}

pub(crate) fn check_internal_only(config: &Config, errs: &mut ConfigErrors) {
    if config.metrics.enabled {
        check(
            config,
            "the metrics endpoint (metrics.port)",
            config.network.internal.address,
            "network.internal.address",
            errs,
        );
    }
    if config.av_auth.enabled {
        let (addr, key) = match config.av_auth.internal_address {
            Some(a) => (a, "av_auth.internal_address"),
            None => (config.network.internal.address, "network.internal.address"),
        };
        check(
            config,
            "the A/V Authentication Service (av_auth)",
            addr,
            key,
            errs,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn problems(adjust: impl FnOnce(&mut Config)) -> Vec<(String, String)> {
        let mut c = Config::embedded_default();
        adjust(&mut c);
        // Only this check's problems: a wildcard side also makes the sides' ports clash.
        match c.validate() {
            Ok(()) => Vec::new(),
            Err(e) => {
                e.0.into_iter()
                    .filter(|e| e.reason.contains("internal-only"))
                    .map(|e| (e.key, e.reason))
                    .collect()
            }
        }
    }

    #[test]
    fn the_embedded_default_keeps_them_internal() {
        assert!(problems(|_| {}).is_empty());
    }

    #[test]
    fn a_wildcard_internal_side_is_refused_for_metrics_and_av_auth() {
        let p = problems(|c| c.network.internal.address = "0.0.0.0".parse().unwrap());
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().all(|(k, r)| k == "network.internal.address"
            && r.starts_with("0.0.0.0 is a wildcard address")));
        assert!(p.iter().any(|(_, r)| r.contains("metrics.port")));
        assert!(p.iter().any(|(_, r)| r.contains("av_auth")));
        let p = problems(|c| {
            c.metrics.enabled = false;
            c.av_auth.internal_address = Some("::".parse().unwrap());
        });
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "av_auth.internal_address");
    }

    #[test]
    fn an_external_address_is_refused_naming_both_keys() {
        let p = problems(|c| {
            c.metrics.enabled = false;
            c.av_auth.internal_address = Some("127.0.0.1".parse().unwrap());
        });
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "av_auth.internal_address");
        assert!(p[0].1.contains("network.external.address"), "{p:?}");
        let p = problems(|c| {
            c.av_auth.enabled = false;
            c.webconf_edge.external_address = Some("127.0.0.2".parse().unwrap());
        });
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "network.internal.address");
        assert!(p[0].1.contains("webconf_edge.external_address"), "{p:?}");
    }

    #[test]
    fn disabled_services_are_not_checked() {
        assert!(problems(|c| {
            c.metrics.enabled = false;
            c.av_auth.enabled = false;
            c.network.internal.address = "0.0.0.0".parse().unwrap();
        })
        .is_empty());
    }
}
