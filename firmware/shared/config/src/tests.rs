use super::*;

#[test]
fn embedded_default_is_valid_and_round_trips() {
    let c = Config::embedded_default();
    assert_eq!(c.network.external.address.to_string(), "127.0.0.1");
    let again = Config::from_toml(&c.to_toml()).expect("round trip");
    assert_eq!(c, again);
}

#[test]
fn production_defaults_are_the_ocs_ports() {
    let c = Config::default();
    assert_eq!(c.access_edge.remote_users_port, 443);
    assert_eq!(c.access_edge.federation_port, 5061);
    assert_eq!(c.access_edge.internal_port, 5061);
    assert_eq!(c.webconf_edge.external_port, 443);
    assert_eq!(c.webconf_edge.internal_port, 8057);
    assert_eq!(c.av_edge.udp_port, 3478);
    assert_eq!(c.av_edge.tcp_port, 443);
    assert_eq!(
        (c.av_edge.relay_port_min, c.av_edge.relay_port_max),
        (50000, 59999)
    );
    assert_eq!(c.av_auth.sip_port, 5062);
}

#[test]
fn wrong_type_names_the_key() {
    let text = EMBEDDED_DEFAULT.replace("remote_users_port = 10443", "remote_users_port = \"ten\"");
    let errs = Config::from_toml(&text).unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].key, "access_edge.remote_users_port");
    // In words, located by line in the document the operator can open.
    let line = EMBEDDED_DEFAULT
        .lines()
        .position(|l| l.starts_with("remote_users_port"))
        .unwrap()
        + 1;
    assert_eq!(
        errs.0[0].reason,
        format!("expected a whole number from 0 to 65535, not \"ten\" (line {line})")
    );
}

#[test]
fn unknown_key_is_refused() {
    let text = EMBEDDED_DEFAULT.replace("[webconf_edge]\n", "[webconf_edge]\nexternal_prot = 1\n");
    let errs = Config::from_toml(&text).unwrap_err();
    assert_eq!(errs.0[0].key, "webconf_edge.external_prot", "{errs}");
    assert!(
        errs.0[0]
            .reason
            .starts_with("no such key (did you mean webconf_edge.external_port?) (line "),
        "{errs}"
    );
}

#[test]
fn port_clash_names_both_keys() {
    let text = EMBEDDED_DEFAULT.replace("external_port = 11443", "external_port = 10443");
    let errs = Config::from_toml(&text).unwrap_err();
    let line = errs.to_string();
    assert!(
        line.contains("webconf_edge.external_port: port clash: TCP 127.0.0.1:10443"),
        "{line}"
    );
    assert!(line.contains("access_edge.remote_users_port"), "{line}");
}

#[test]
fn wildcard_address_clashes_with_specific_address() {
    let mut c = Config::embedded_default();
    c.webconf_edge.external_address = Some("0.0.0.0".parse().unwrap());
    c.webconf_edge.external_port = 10443;
    let errs = c.validate().unwrap_err();
    assert!(errs.to_string().contains("port clash"), "{errs}");
}

#[test]
fn listener_inside_relay_range_is_refused() {
    let mut c = Config::embedded_default();
    c.webconf_edge.external_port = 50001;
    let errs = c.validate().unwrap_err();
    assert!(
        errs.to_string().contains("inside the relay port range"),
        "{errs}"
    );
}

#[test]
fn missing_certificate_file_names_the_key() {
    let text = EMBEDDED_DEFAULT.replace(
        "self_signed = true\nsans",
        "cert_file = \"/nonexistent/edge.pem\"\nkey_file = \"/nonexistent/edge.key\"\nsans",
    );
    let errs = Config::from_toml(&text).unwrap_err();
    let s = errs.to_string();
    assert!(
        s.contains("certificates.default.cert_file: cannot read /nonexistent/edge.pem"),
        "{s}"
    );
    assert!(s.contains("certificates.default.key_file"), "{s}");
}

#[test]
fn undefined_certificate_name_is_reported_per_role() {
    let mut c = Config::embedded_default();
    c.av_auth.certificate = "internal".into();
    let errs = c.validate().unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].key, "av_auth.certificate");
}

#[test]
fn several_problems_are_all_reported() {
    let mut c = Config::embedded_default();
    c.logging.level = "loud".into();
    c.av_edge.relay_port_min = 60000;
    c.access_edge.next_hops = vec!["director".into()];
    let errs = c.validate().unwrap_err();
    let keys: Vec<&str> = errs.0.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"logging.level"), "{keys:?}");
    assert!(keys.contains(&"av_edge.relay_port_min"), "{keys:?}");
    assert!(keys.contains(&"access_edge.next_hops[0]"), "{keys:?}");
}

#[test]
fn set_and_get_by_path() {
    let c = Config::embedded_default();
    let c2 = c
        .with_value("access_edge.federation.discovery", "false")
        .unwrap();
    assert!(!c2.access_edge.federation.discovery);
    assert_eq!(
        c2.get_value("access_edge.federation.discovery").unwrap(),
        "false"
    );
    let c3 = c2.with_value("appliance.name", "edge-01").unwrap();
    assert_eq!(c3.appliance.name, "edge-01");
    let c4 = c3.with_value("logging.roles.access_edge", "debug").unwrap();
    assert_eq!(
        c4.logging.roles.get("access_edge").map(String::as_str),
        Some("debug")
    );
    let c5 = c4
        .with_value(
            "access_edge.next_hops",
            r#"["10.0.0.5:5061", "dir.corp.example:5061"]"#,
        )
        .unwrap();
    assert_eq!(c5.access_edge.next_hops.len(), 2);
}

#[test]
fn set_bad_value_fails_and_names_key() {
    let c = Config::embedded_default();
    let errs = c
        .with_value("access_edge.remote_users_port", "70000")
        .unwrap_err();
    assert_eq!(errs.0[0].key, "access_edge.remote_users_port");
    let errs = c.with_value("access_edge.no_such_thing", "1").unwrap_err();
    assert_eq!(
        errs.to_string(),
        "access_edge.no_such_thing: no such key in [access_edge] (edgectl config get access_edge lists them)"
    );
    let errs = c.with_value("appliance.name.inner", "1").unwrap_err();
    assert_eq!(errs.0[0].key, "appliance.name");
    assert!(c.get_value("nope").is_err());
}

#[test]
fn disabled_roles_free_their_ports() {
    let mut c = Config::embedded_default();
    c.webconf_edge.enabled = false;
    c.access_edge.remote_users_port = 11443;
    c.validate().expect("webconf is off, so its port is free");
}

#[test]
fn newer_schema_is_refused() {
    let text = EMBEDDED_DEFAULT.replace("schema_version = 1", "schema_version = 2");
    let errs = Config::from_toml(&text).unwrap_err();
    assert_eq!(errs.0[0].key, "schema_version");
}

#[test]
fn relay_pacing_is_bounded_and_ordered() {
    let mut c = Config::embedded_default();
    assert_eq!(
        (c.av_edge.relay_pacing_us, c.av_edge.relay_pacing_max_us),
        (300, 2_000)
    );
    c.av_edge.relay_pacing_us = 0;
    c.av_edge.relay_pacing_max_us = 0;
    assert!(c.validate().is_ok(), "pacing off is valid");
    c.av_edge.relay_pacing_us = 800;
    c.av_edge.relay_pacing_max_us = 500;
    let errs = c.validate().unwrap_err();
    let keys: Vec<&str> = errs.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["av_edge.relay_pacing_max_us"]);
    c.av_edge.relay_pacing_us = 6_000;
    c.av_edge.relay_pacing_max_us = 6_000;
    let errs = c.validate().unwrap_err();
    let keys: Vec<&str> = errs.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["av_edge.relay_pacing_us", "av_edge.relay_pacing_max_us"]
    );
}

/// `config set KEY VALUE` problems, one per kind, as the operator reads them: the key they
/// typed and the allowed range or kind of value, never a position in a generated document.
mod set_by_key {
    use super::*;

    fn set_error(key: &str, value: &str) -> String {
        let errs = Config::embedded_default()
            .with_value(key, value)
            .unwrap_err();
        assert_eq!(errs.0.len(), 1, "{errs}");
        errs.to_string()
    }

    #[test]
    fn out_of_range() {
        assert_eq!(
            set_error("av_edge.relay_port_min", "70000"),
            "av_edge.relay_port_min: 70000 is out of range (0-65535)"
        );
        assert_eq!(
            set_error("av_edge.relay_realtime_priority", "-1"),
            "av_edge.relay_realtime_priority: -1 is out of range (0-255)"
        );
    }

    #[test]
    fn wrong_type() {
        assert_eq!(
            set_error("access_edge.remote_users_port", "many"),
            "access_edge.remote_users_port: expected a whole number from 0 to 65535, not \"many\""
        );
        assert_eq!(
            set_error("access_edge.federation.discovery", "maybe"),
            "access_edge.federation.discovery: expected true or false, not \"maybe\""
        );
        assert_eq!(
            set_error("access_edge.next_hops", "7"),
            "access_edge.next_hops: expected a list such as [\"a\", \"b\"], not 7"
        );
        assert_eq!(
            set_error("av_edge", "7"),
            "av_edge: expected a section of keys, not 7"
        );
    }

    #[test]
    fn unknown_key_suggests_the_near_one() {
        assert_eq!(
            set_error("av_edge.relay_port_mn", "50000"),
            "av_edge.relay_port_mn: no such key (did you mean av_edge.relay_port_min?)"
        );
        // A typo in the section: the suggestion keeps the rest of the typed key.
        assert_eq!(
            set_error("av_edg.relay_port_min", "50000"),
            "av_edg.relay_port_min: no such key (did you mean av_edge.relay_port_min?)"
        );
        assert_eq!(set_error("colour", "blue"), "colour: no such key");
    }

    #[test]
    fn bad_enum_value() {
        assert_eq!(
            set_error("logging.level", "loud"),
            "logging.level: \"loud\" is not a log level; expected one of: error, warn, info, debug, trace, off"
        );
    }

    #[test]
    fn bad_address() {
        assert_eq!(
            set_error("network.external.address", "nowhere"),
            "network.external.address: expected an IP address such as 192.0.2.10 or 2001:db8::10"
        );
        assert_eq!(
            set_error("access_edge.federation.dns_servers", r#"["192.0.2.53"]"#),
            "access_edge.federation.dns_servers[0]: expected an address with a port such as 192.0.2.53:53 or [2001:db8::53]:53"
        );
    }
}
