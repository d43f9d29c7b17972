//! Alerts as they travel from rule evaluation to notification, in
//! Alertmanager's data model: labels identify an alert, annotations
//! describe it, `starts_at`/`ends_at` bound it in time.

use std::collections::BTreeMap;

use super::{Labels, Timestamp};

/// One alert instance. An alert is resolved once `ends_at` is at or before
/// the current time; a firing alert carries an `ends_at` in the future that
/// its sender keeps pushing forward (Alertmanager's resolve_timeout
/// semantics).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
    /// When the alert stops (resolved) or is assumed to stop unless
    /// refreshed (firing). `None` means "until further notice".
    pub ends_at: Option<Timestamp>,
    /// When this alert instance was last updated by its source.
    pub updated_at: Timestamp,
    /// Link back to the expression that produced the alert.
    pub generator_url: String,
}

impl Alert {
    /// Stable identity of the alert: the hash of its label set.
    pub fn fingerprint(&self) -> u64 {
        self.labels.stable_hash()
    }

    /// The alert name (`alertname` label), or "".
    pub fn name(&self) -> &str {
        self.labels.get_or_empty("alertname")
    }

    /// Whether the alert is resolved at `now`.
    pub fn resolved_at(&self, now: Timestamp) -> bool {
        self.ends_at.is_some_and(|e| e <= now)
    }
}

/// Formats a fingerprint the way Alertmanager prints it: 16 hex digits.
pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_follows_ends_at() {
        let a = Alert {
            labels: Labels::from_pairs([("alertname", "Down")]),
            annotations: BTreeMap::new(),
            starts_at: 0,
            ends_at: Some(100),
            updated_at: 0,
            generator_url: String::new(),
        };
        assert!(!a.resolved_at(99));
        assert!(a.resolved_at(100));
        assert_eq!(a.name(), "Down");
        assert_eq!(fingerprint_hex(0xab), "00000000000000ab");
    }
}
