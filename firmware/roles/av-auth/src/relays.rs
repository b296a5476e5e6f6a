//! The media relay list handed out with credentials, taken from the `av_edge` section.

use std::net::IpAddr;

use edged_config::{Config, Side};
use mras::{Location, MediaRelay};

/// One relay interface: internal (for intranet clients) or external (internet clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub location: Location,
    /// Host name or address literal as clients should use it.
    pub host: String,
    pub udp_port: u16,
    pub tcp_port: u16,
    /// TURN over TLS on its own port, when the relay has one.
    pub tls_port: Option<u16>,
}

impl Relay {
    /// The interface as an MS-AVEDGEA `mediaRelay` names it (no TLS port there).
    pub fn media_relay(&self) -> MediaRelay {
        MediaRelay {
            location: self.location,
            host: self.host.clone(),
            udp_port: self.udp_port,
            tcp_port: self.tcp_port,
        }
    }

    /// The host as it goes into a URI: IPv6 literals in brackets.
    pub fn uri_host(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => self.host.clone(),
        }
    }

    /// TURN URIs (RFC 7065) of this interface.
    pub fn turn_uris(&self) -> Vec<String> {
        let host = self.uri_host();
        let mut uris = vec![
            format!("turn:{host}:{}?transport=udp", self.udp_port),
            format!("turn:{host}:{}?transport=tcp", self.tcp_port),
        ];
        if let Some(tls) = self.tls_port {
            uris.push(format!("turns:{host}:{tls}?transport=tcp"));
        }
        uris
    }
}

/// The relay interfaces of the A/V Edge, internal first. Empty when the A/V Edge is off.
pub fn relays(config: &Config) -> Vec<Relay> {
    let edge = &config.av_edge;
    if !edge.enabled {
        return Vec::new();
    }
    let sockets = config.sockets();
    let address = |side: Side| {
        sockets
            .iter()
            .find(|s| s.owner == "av_edge" && s.side == side && s.key == "av_edge.udp_port")
            .map(|s| s.addr.ip())
    };
    let mut out = Vec::new();
    for (side, location, host_override) in [
        (
            Side::Internal,
            Location::Intranet,
            &config.av_auth.internal_relay_host,
        ),
        (
            Side::External,
            Location::Internet,
            &config.av_auth.external_relay_host,
        ),
    ] {
        let host = match (host_override, address(side)) {
            (Some(h), _) => h.clone(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => continue,
        };
        out.push(Relay {
            location,
            host,
            udp_port: edge.udp_port,
            tcp_port: edge.tcp_port,
            tls_port: (edge.tls_port != 0).then_some(edge.tls_port),
        });
    }
    out
}

/// The relays a client at `location` can reach.
pub fn relays_for(config: &Config, location: Location) -> Vec<Relay> {
    relays(config)
        .into_iter()
        .filter(|r| r.location == location)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_come_from_the_av_edge_section() {
        let mut config = Config::embedded_default();
        let all = relays(&config);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].location, Location::Intranet);
        assert_eq!(all[0].host, config.network.internal.address.to_string());
        assert_eq!(all[1].host, config.network.external.address.to_string());
        assert_eq!(all[0].udp_port, config.av_edge.udp_port);
        assert_eq!(all[0].tcp_port, config.av_edge.tcp_port);
        assert_eq!(
            relays_for(&config, Location::Internet),
            vec![all[1].clone()]
        );

        config.av_auth.external_relay_host = Some("av.example.com".into());
        config.av_edge.tls_port = 0;
        let ext = relays_for(&config, Location::Internet);
        assert_eq!(ext[0].host, "av.example.com");
        assert_eq!(ext[0].turn_uris().len(), 2);

        config.av_edge.enabled = false;
        assert!(relays(&config).is_empty());
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let r = Relay {
            location: Location::Intranet,
            host: "2001:db8::1".into(),
            udp_port: 3478,
            tcp_port: 443,
            tls_port: Some(5349),
        };
        assert_eq!(
            r.turn_uris(),
            [
                "turn:[2001:db8::1]:3478?transport=udp",
                "turn:[2001:db8::1]:443?transport=tcp",
                "turns:[2001:db8::1]:5349?transport=tcp"
            ]
        );
        assert_eq!(
            r.media_relay(),
            MediaRelay {
                location: Location::Intranet,
                host: "2001:db8::1".into(),
                udp_port: 3478,
                tcp_port: 443,
            }
        );
    }
}
