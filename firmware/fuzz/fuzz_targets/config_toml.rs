#![no_main]
//! The configuration an admin uploads or a provisioning file carries: parsing and the
//! validator must answer with problems, never panic; what validates must survive a round
//! trip through its own TOML unchanged.

use edged_config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text) {
        let again = Config::from_toml(&config.to_toml()).expect("a valid config re-parses");
        assert_eq!(again.to_toml(), config.to_toml());
    }
});
