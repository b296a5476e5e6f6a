use relay_credentials::{
    parse_username, password, CredentialError, KeyError, KeyRing, MalformedReason, RelayKey,
};

const NOW: u64 = 1_795_000_000;
const OVERLAP: u64 = 3_600;

fn key(id: &str, fill: u8, created: u64) -> RelayKey {
    RelayKey::new(id, vec![fill; 32], created).unwrap()
}

fn ring() -> KeyRing {
    KeyRing::new(key("k1", 0x11, NOW - 100), OVERLAP).unwrap()
}

#[test]
fn minted_credential_verifies_with_the_minting_key() {
    let ring = ring();
    let cred = ring.mint("alice@example.com", 600, NOW).unwrap();
    assert_eq!(cred.username, format!("{}:alice@example.com", NOW + 600));
    assert_eq!(cred.expires_at, NOW + 600);
    assert_eq!(cred.key_id, "k1");
    assert_eq!(
        ring.verify(&cred.username, &cred.password, NOW).unwrap(),
        "k1"
    );
    let candidates = ring.password_for(&cred.username, NOW).unwrap();
    assert_eq!(candidates, vec![("k1".to_string(), cred.password.clone())]);
}

#[test]
fn expiry_is_strictly_in_the_future() {
    let ring = ring();
    let cred = ring.mint("bob", 60, NOW).unwrap();
    assert!(ring
        .verify(&cred.username, &cred.password, NOW + 59)
        .is_ok());
    let at_expiry = ring.verify(&cred.username, &cred.password, NOW + 60);
    assert_eq!(
        at_expiry,
        Err(CredentialError::Expired {
            expires_at: NOW + 60,
            now: NOW + 60
        })
    );
    assert!(matches!(
        ring.password_for(&cred.username, NOW + 61),
        Err(CredentialError::Expired { .. })
    ));
}

#[test]
fn tampered_username_or_password_is_a_bad_signature() {
    let ring = ring();
    let cred = ring.mint("carol", 600, NOW).unwrap();
    // Extending the expiry by hand must not be accepted.
    let longer = format!("{}:carol", NOW + 6000);
    assert_eq!(
        ring.verify(&longer, &cred.password, NOW),
        Err(CredentialError::BadSignature)
    );
    let other_identity = format!("{}:mallory", NOW + 600);
    assert_eq!(
        ring.verify(&other_identity, &cred.password, NOW),
        Err(CredentialError::BadSignature)
    );
    let mut bad = cred.password.clone().into_bytes();
    bad[0] = if bad[0] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    assert_eq!(
        ring.verify(&cred.username, &bad, NOW),
        Err(CredentialError::BadSignature)
    );
    assert_eq!(
        ring.verify(&cred.username, "", NOW),
        Err(CredentialError::BadSignature)
    );
}

#[test]
fn malformed_usernames_are_told_apart() {
    let ring = ring();
    let cases = [
        ("no-separator", MalformedReason::MissingSeparator),
        (":alice", MalformedReason::BadExpiry),
        ("+1795000600:alice", MalformedReason::BadExpiry),
        ("17950006x0:alice", MalformedReason::BadExpiry),
        ("99999999999999999999999:alice", MalformedReason::BadExpiry),
        ("1795000600:", MalformedReason::EmptyIdentity),
        ("1795000600:ali\nce", MalformedReason::ControlCharacter),
        ("1795000600:ali\u{7f}ce", MalformedReason::ControlCharacter),
    ];
    for (username, reason) in cases {
        assert_eq!(
            ring.verify(username, "x", NOW),
            Err(CredentialError::Malformed(reason)),
            "{username:?}"
        );
    }
    // The identity may itself contain ':' (split at the first one).
    let parsed = parse_username("1795000600:user:with:colons").unwrap();
    assert_eq!(
        (parsed.expires_at, parsed.identity),
        (1_795_000_600, "user:with:colons")
    );
    assert_eq!(
        ring.mint("", 60, NOW),
        Err(CredentialError::Malformed(MalformedReason::EmptyIdentity))
    );
    assert_eq!(
        ring.mint("a\tb", 60, NOW),
        Err(CredentialError::Malformed(
            MalformedReason::ControlCharacter
        ))
    );
    assert_eq!(
        ring.mint("a", 0, NOW),
        Err(CredentialError::Malformed(MalformedReason::BadLifetime))
    );
    assert_eq!(
        ring.mint("a", u64::MAX, NOW),
        Err(CredentialError::Malformed(MalformedReason::BadLifetime))
    );
}

#[test]
fn rotation_mints_with_the_new_key_and_the_old_key_verifies_within_the_overlap() {
    let mut ring = ring();
    let old = ring.mint("dave", 7_200, NOW).unwrap();
    ring.rotate(key("k2", 0x22, NOW + 10), NOW + 10).unwrap();
    let new = ring.mint("dave", 7_200, NOW + 10).unwrap();
    assert_eq!(new.key_id, "k2");
    assert_ne!(new.password, old.password);
    assert_eq!(
        ring.verify(&new.username, &new.password, NOW + 20).unwrap(),
        "k2"
    );
    // Retired at NOW+10: accepted strictly before NOW+10+OVERLAP.
    assert_eq!(
        ring.verify(&old.username, &old.password, NOW + 10 + OVERLAP - 1)
            .unwrap(),
        "k1"
    );
    let candidates = ring.password_for(&old.username, NOW + 20).unwrap();
    let ids: Vec<&str> = candidates.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["k2", "k1"]);
    assert!(candidates.iter().any(|(_, p)| *p == old.password));
    // After the overlap the retired key is refused, with its own error.
    assert_eq!(
        ring.verify(&old.username, &old.password, NOW + 10 + OVERLAP),
        Err(CredentialError::UnknownOrRetiredKey)
    );
    let candidates = ring
        .password_for(&old.username, NOW + 10 + OVERLAP)
        .unwrap();
    assert_eq!(
        candidates.len(),
        1,
        "only the current key is offered after the overlap"
    );
    // Pruning forgets the key entirely: now it is just a bad signature.
    ring.prune(NOW + 10 + OVERLAP);
    assert_eq!(
        ring.verify(&old.username, &old.password, NOW + 10 + OVERLAP),
        Err(CredentialError::BadSignature)
    );
}

#[test]
fn key_material_is_validated() {
    assert!(matches!(
        RelayKey::new("short", vec![1; 31], NOW),
        Err(KeyError::SecretTooShort { len: 31, .. })
    ));
    assert_eq!(RelayKey::new("", vec![1; 32], NOW), Err(KeyError::EmptyId));
    let mut ring = ring();
    assert_eq!(
        ring.rotate(key("k1", 0x33, NOW), NOW),
        Err(KeyError::DuplicateId("k1".into()))
    );
    let generated = RelayKey::generate("g", NOW).unwrap();
    assert_eq!(generated.secret.len(), 32);
    assert_ne!(generated.secret, vec![0u8; 32]);
    assert!(
        !format!("{generated:?}").contains("secret"),
        "Debug must not print the secret"
    );
}

#[test]
fn key_ring_round_trips_through_serde_and_rejects_short_secrets() {
    let mut ring = ring();
    ring.rotate(key("k2", 0x22, NOW), NOW).unwrap();
    let json = serde_json::to_string(&ring).unwrap();
    let back: KeyRing = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ring);
    let cred = ring.mint("erin", 60, NOW).unwrap();
    let json = serde_json::to_string(&cred).unwrap();
    assert_eq!(
        serde_json::from_str::<relay_credentials::Credential>(&json).unwrap(),
        cred
    );

    let short = r#"{"id":"k","secret":[1,2,3],"created":0,"retired_at":null}"#;
    let err = serde_json::from_str::<RelayKey>(short)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 32"), "{err}");
}

/// coturn `--use-auth-secret` compatibility: the expected value was computed independently
/// with
/// python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
///   b"north-edge-static-secret-0123456789", b"1795392000:alice@example.com",
///   hashlib.sha1).digest()).decode())'
#[test]
fn password_matches_coturn_rest_api_computation() {
    let secret = b"north-edge-static-secret-0123456789";
    let username = "1795392000:alice@example.com";
    assert_eq!(password(secret, username), "ObiYuDDfxCwrH9qlA9bkwz9K/48=");
    let ring = KeyRing::new(RelayKey::new("static", secret.to_vec(), 0).unwrap(), 0).unwrap();
    assert_eq!(
        ring.verify(username, "ObiYuDDfxCwrH9qlA9bkwz9K/48=", 1_795_391_999)
            .unwrap(),
        "static"
    );
}
