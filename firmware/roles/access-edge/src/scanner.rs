//! Recognises SIP scanners by their User-Agent.
//!
//! Scanners (SIPVicious' "friendly-scanner" and kin) announce themselves; their requests are
//! dropped without any answer, so they learn nothing, not even that a SIP service exists.

/// Case-insensitive substring match against the configured scanner names.
#[derive(Debug, Clone)]
pub struct ScannerFilter {
    needles: Vec<String>,
}

impl ScannerFilter {
    pub fn new(names: &[String]) -> Self {
        ScannerFilter {
            needles: names
                .iter()
                .filter(|n| !n.is_empty())
                .map(|n| n.to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn is_scanner(&self, user_agent: Option<&str>) -> bool {
        let Some(ua) = user_agent else { return false };
        let ua = ua.to_ascii_lowercase();
        self.needles.iter().any(|n| ua.contains(n.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scanners_match_and_clients_do_not() {
        let f = ScannerFilter::new(&[
            "friendly-scanner".into(),
            "SIPVicious".into(),
            String::new(),
        ]);
        assert!(f.is_scanner(Some("friendly-scanner")));
        assert!(f.is_scanner(Some("sipvicious 0.3.4")));
        assert!(f.is_scanner(Some("Mozilla FRIENDLY-SCANNER x")));
        assert!(!f.is_scanner(Some("UCCAPI/16.0 OC/16.0")));
        assert!(!f.is_scanner(None));
    }
}
