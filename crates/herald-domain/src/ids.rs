//! Identifiers. Each kind of resource has its own type so an event id can never be passed where
//! a webhook id is expected; all but organizations are ULIDs, most with a readable prefix
//! (`wh_`, `evt_`, `dlv_`, `key_`), sessions bare. Parsing is strict: a malformed id simply
//! names no resource.

use serde::{Deserialize, Serialize};
use std::fmt;
use ulid::Ulid;

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Ulid);

        impl $name {
            /// The textual prefix before the ULID (may be empty).
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(Ulid::new())
            }

            /// Parses the textual form (`PREFIX` + 26-char ULID); `None` for anything else.
            pub fn parse(text: &str) -> Option<Self> {
                let rest = text.strip_prefix($prefix)?;
                if rest.len() != 26 {
                    return None;
                }
                Ulid::from_string(rest).ok().map(Self)
            }

            /// The millisecond timestamp embedded in the ULID.
            pub fn timestamp_ms(&self) -> u64 {
                self.0.timestamp_ms()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(concat!("not a valid ", stringify!($name)))
                })
            }
        }
    };
}

ulid_id!(
    /// A messaging session: a bare 26-character ULID.
    SessionId, ""
);
ulid_id!(
    /// A webhook endpoint: `wh_<ULID>`.
    WebhookId, "wh_"
);
ulid_id!(
    /// An event: `evt_<ULID>`.
    EventId, "evt_"
);
ulid_id!(
    /// One delivery of one event to one webhook: `dlv_<ULID>`.
    DeliveryId, "dlv_"
);
ulid_id!(
    /// An API key: `key_<ULID>`.
    ApiKeyId, "key_"
);

/// An organization. Tokens name organizations, and any non-empty string a trusted token carries
/// is accepted (the frontend owns organization ids), so this is a validated string, not a ULID.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl OrgId {
    /// Longest organization id accepted from a token.
    pub const MAX_LEN: usize = 256;

    /// Accepts any non-empty string of at most [`Self::MAX_LEN`] bytes without control characters.
    pub fn parse(text: &str) -> Option<Self> {
        let ok =
            !text.is_empty() && text.len() <= Self::MAX_LEN && !text.chars().any(char::is_control);
        ok.then(|| Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for OrgId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("not a valid organization id"))
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_ids_round_trip_and_reject_other_kinds() {
        let id = WebhookId::generate();
        let text = id.to_string();
        assert!(text.starts_with("wh_") && text.len() == 29);
        assert_eq!(WebhookId::parse(&text), Some(id));
        assert_eq!(EventId::parse(&text), None);
        assert_eq!(WebhookId::parse("wh_nope"), None);
        assert_eq!(WebhookId::parse(&text[3..]), None);
    }

    #[test]
    fn session_ids_are_bare_ulids() {
        let id = SessionId::generate();
        assert_eq!(id.to_string().len(), 26);
        assert_eq!(
            SessionId::parse("01J9ZX8K2QHV0M3T6R7P4N5W8C")
                .map(|s| s.to_string())
                .as_deref(),
            Some("01J9ZX8K2QHV0M3T6R7P4N5W8C")
        );
        assert_eq!(SessionId::parse("wh_01J9ZX8K2QHV0M3T6R7P4N5W8C"), None);
    }

    #[test]
    fn org_ids_are_any_sane_string() {
        assert!(OrgId::parse("org_acme").is_some());
        assert!(OrgId::parse("").is_none());
        assert!(OrgId::parse("a\nb").is_none());
        assert!(OrgId::parse(&"x".repeat(257)).is_none());
    }
}
