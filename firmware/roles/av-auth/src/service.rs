//! What both endpoints share: the live configuration, the issuer and the API keys.

use arc_swap::ArcSwap;
use edged_config::Config;

use std::sync::Arc;

use crate::api_keys::ApiKeys;
use crate::issuer::Issuer;
use crate::key_checks::KeyCheckGate;
use crate::metrics::Metrics;

pub struct Service {
    /// Replaced whole on reload; each request reads it once.
    pub config: ArcSwap<Config>,
    pub issuer: Issuer,
    pub api_keys: ApiKeys,
    /// API-key checks running now (`av_auth.max_concurrent_key_checks`).
    pub key_checks: Arc<KeyCheckGate>,
    pub metrics: Metrics,
}
