//! No `Debug` output of a session secret or the ring holds the secret, neither as the
//! stored hex nor as raw bytes.

use session_key::{KeyRing, SessionSecret};

const SECRET: [u8; 32] = [0x5C; 32];

fn assert_hidden(what: &str, debug: &str) {
    let hex: String = SECRET.iter().map(|b| format!("{b:02x}")).collect();
    for form in [hex.as_str(), "5c5c", "92, 92"] {
        assert!(
            !debug.contains(form),
            "{what}: Debug shows the secret ({form}): {debug}"
        );
    }
}

#[test]
fn session_secret_and_ring_debug_hide_the_secret() {
    let record = SessionSecret::new(7, &SECRET, 1_795_000_000).unwrap();
    assert_hidden("SessionSecret", &format!("{record:?}"));
    assert_hidden("SessionSecret {:#?}", &format!("{record:#?}"));
    let ring = KeyRing::from_records([record]).unwrap();
    let debug = format!("{ring:?}");
    assert_hidden("KeyRing", &debug);
    assert!(debug.contains('7'), "the key id is still shown: {debug}");
}
