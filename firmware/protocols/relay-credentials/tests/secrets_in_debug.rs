//! No `Debug` output of a key, a ring or a minted credential holds the secret it carries,
//! in any of the forms it could be logged (raw bytes as a list, hex, base64).

use base64::Engine as _;
use relay_credentials::{KeyRing, RelayKey};

const NOW: u64 = 1_795_000_000;
const SECRET: [u8; 32] = [0xA7; 32];

fn forms_of(secret: &[u8]) -> Vec<String> {
    vec![
        format!("{secret:?}"),
        secret.iter().map(|b| format!("{b:02x}")).collect(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        // One byte as a list element is enough to betray a Vec<u8> field.
        format!("{}, {}", secret[0], secret[1]),
    ]
}

fn assert_hidden(what: &str, debug: &str, secret_forms: &[String]) {
    for form in secret_forms {
        assert!(
            !debug.contains(form.as_str()),
            "{what}: Debug shows the secret ({form}): {debug}"
        );
    }
}

#[test]
fn relay_key_and_ring_debug_hide_the_secret() {
    let key = RelayKey::new("k1", SECRET.to_vec(), NOW).unwrap();
    let forms = forms_of(&SECRET);
    assert_hidden("RelayKey", &format!("{key:?}"), &forms);
    assert_hidden("RelayKey {:#?}", &format!("{key:#?}"), &forms);
    let mut ring = KeyRing::new(key, 3600).unwrap();
    ring.rotate(
        RelayKey::new("k2", vec![0xB3; 32], NOW + 1).unwrap(),
        NOW + 1,
    )
    .unwrap();
    let debug = format!("{ring:?}");
    assert_hidden("KeyRing", &debug, &forms);
    assert_hidden("KeyRing", &debug, &forms_of(&[0xB3; 32]));
    assert!(debug.contains("k1") && debug.contains("k2"), "{debug}");
}

#[test]
fn credential_debug_hides_the_password() {
    let ring = KeyRing::new(RelayKey::new("k1", SECRET.to_vec(), NOW).unwrap(), 3600).unwrap();
    let cred = ring.mint("alice", 600, NOW).unwrap();
    let debug = format!("{cred:?}");
    assert!(!cred.password.is_empty());
    assert!(
        !debug.contains(&cred.password),
        "Credential: Debug shows the password: {debug}"
    );
    assert!(debug.contains("alice"), "{debug}");
}
