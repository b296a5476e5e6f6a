#![no_main]
//! Bodies of the admin API's writes: `config set` (a key path and a value applied to the
//! running configuration), a whole-configuration upload, and a log-level change.

use edged_admin_api::{ConfigUpload, LogLevelRequest, SetRequest};
use edged_config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = serde_json::from_slice::<SetRequest>(data) {
        let base = Config::embedded_default();
        let _ = base.get_value(&set.key);
        let _ = base.with_value(&set.key, &set.value);
    }
    if let Ok(upload) = serde_json::from_slice::<ConfigUpload>(data) {
        let _ = Config::from_toml(&upload.toml);
    }
    let _ = serde_json::from_slice::<LogLevelRequest>(data);
});
