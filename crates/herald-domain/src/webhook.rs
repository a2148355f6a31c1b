//! Webhook endpoints and their always-valid parts: the target URL, the event filter, the
//! optional session scope, custom headers, the write-only secret and the retry policy. Values
//! are parsed once at the edge; a `Webhook` cannot hold an invalid one.

use crate::error::DomainError;
use crate::event::{Envelope, EventType};
use crate::ids::{OrgId, SessionId, WebhookId};
use crate::retry::{Backoff, RetryPolicy};
use crate::Millis;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// An absolute `http`/`https` URL of at most 2048 characters, with a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// Longest URL accepted.
    pub const MAX_LEN: usize = 2048;

    /// Parses and checks a target URL; 422 on `url` otherwise.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let invalid = |why: &str| DomainError::invalid("url", format!("url {why}"));
        if text.len() > Self::MAX_LEN {
            return Err(invalid("must be at most 2048 characters"));
        }
        let url = url::Url::parse(text).map_err(|_| invalid("must be an absolute http(s) URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("must use http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("must name a host"));
        }
        // Normalizing can lengthen a URL (`http://a.b` becomes `http://a.b/`); what is stored
        // must parse again when read back.
        if url.as_str().len() > Self::MAX_LEN {
            return Err(invalid("must be at most 2048 characters"));
        }
        Ok(Self(url))
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL.
    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

impl Serialize for WebhookUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Which event types a webhook receives: all (`["*"]`) or a non-empty set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventFilter {
    /// Every type.
    All,
    /// Only these types.
    Only(Vec<EventType>),
}

impl EventFilter {
    /// Parses the `events` list: non-empty, each a known type or `*`.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, DomainError> {
        if names.is_empty() {
            return Err(DomainError::invalid(
                "events",
                "events must not be empty (use [\"*\"] for all)",
            ));
        }
        let mut types = Vec::new();
        for name in names {
            let name = name.as_ref();
            if name == "*" {
                return Ok(Self::All);
            }
            let t = EventType::parse(name).ok_or_else(|| {
                DomainError::invalid("events", format!("unknown event type `{name}`"))
            })?;
            if !types.contains(&t) {
                types.push(t);
            }
        }
        Ok(Self::Only(types))
    }

    /// Whether events of type `t` pass.
    pub fn accepts(&self, t: EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.contains(&t),
        }
    }

    /// The wire names (`["*"]` for all).
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            Self::All => vec!["*"],
            Self::Only(types) => types.iter().map(|t| t.as_str()).collect(),
        }
    }
}

impl Serialize for EventFilter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// Extra headers sent with every delivery; names and values are valid HTTP, and the names a
/// client must not control (`Host`, `Content-Length`, `Transfer-Encoding`, `Connection`) are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CustomHeaders(BTreeMap<String, String>);

impl CustomHeaders {
    const FORBIDDEN: [&'static str; 4] =
        ["host", "content-length", "transfer-encoding", "connection"];
    /// Most headers a webhook may carry.
    pub const MAX_HEADERS: usize = 32;
    /// Longest header value, in characters.
    pub const MAX_VALUE_LEN: usize = 4096;

    /// Checks every pair; 422 on `customHeaders` otherwise.
    pub fn parse(pairs: Vec<(String, String)>) -> Result<Self, DomainError> {
        if pairs.len() > Self::MAX_HEADERS {
            return Err(DomainError::invalid(
                "customHeaders",
                "customHeaders may hold at most 32 headers",
            ));
        }
        let mut map = BTreeMap::new();
        for (name, value) in pairs {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(DomainError::invalid(
                    "customHeaders",
                    format!("`{name}` is not a valid header name"),
                ));
            }
            if Self::FORBIDDEN.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(DomainError::invalid(
                    "customHeaders",
                    format!("header `{name}` cannot be set"),
                ));
            }
            if value.chars().count() > Self::MAX_VALUE_LEN
                || http::HeaderValue::from_str(&value).is_err()
            {
                return Err(DomainError::invalid(
                    "customHeaders",
                    format!("the value of `{name}` is not a valid header value"),
                ));
            }
            map.insert(name, value);
        }
        Ok(Self(map))
    }

    /// The pairs, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A signing secret: 16 to 256 characters. Never serialized, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Checks the length; 422 on `secret` otherwise.
    pub fn parse(text: String) -> Result<Self, DomainError> {
        let n = text.chars().count();
        if !(16..=256).contains(&n) {
            return Err(DomainError::invalid(
                "secret",
                "secret must be 16 to 256 characters",
            ));
        }
        Ok(Self(text))
    }

    /// The secret's bytes, for signing and sealing.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// A configured webhook endpoint, as stored and shown (the secret stays elsewhere).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// `wh_…`.
    pub id: WebhookId,
    /// The owner.
    pub organization_id: OrgId,
    /// Where deliveries go.
    pub url: WebhookUrl,
    /// Which event types it receives.
    pub events: EventFilter,
    /// Only this session's events, or all of the organization's when `None`.
    pub session_id: Option<SessionId>,
    /// Inactive webhooks receive nothing.
    pub active: bool,
    /// Extra headers on every delivery.
    pub custom_headers: CustomHeaders,
    /// How failed deliveries are retried.
    pub retry_policy: RetryPolicy,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

impl Webhook {
    /// Whether this webhook receives `event`: active, the type passes the filter, and the
    /// session scope is unset or equal to the event's session.
    pub fn receives(&self, event: &Envelope) -> bool {
        self.active
            && event.organization_id == self.organization_id
            && self.events.accepts(event.event)
            && self.session_id.is_none_or(|s| event.session == Some(s))
    }
}

/// The fields of a create or patch request, as plain values; `None` means "not given".
#[derive(Clone, Debug, Default)]
pub struct WebhookFields {
    /// `url`.
    pub url: Option<String>,
    /// `events`.
    pub events: Option<Vec<String>>,
    /// `sessionId` (`Some(None)` = explicitly null).
    pub session_id: Option<Option<String>>,
    /// `secret` (`Some(None)` = explicitly null: remove).
    pub secret: Option<Option<String>>,
    /// `customHeaders`.
    pub custom_headers: Option<Vec<(String, String)>>,
    /// `retryPolicy`, each part optional.
    pub retry_policy: Option<RetryPolicyFields>,
    /// `active`.
    pub active: Option<bool>,
}

/// The parts of a `retryPolicy` object; missing parts keep their previous (or default) value.
#[derive(Clone, Debug, Default)]
pub struct RetryPolicyFields {
    /// `policy`.
    pub policy: Option<String>,
    /// `delaySeconds`.
    pub delay_seconds: Option<i64>,
    /// `attempts`.
    pub attempts: Option<i64>,
}

impl RetryPolicyFields {
    /// Applies these parts over `base`, checking every bound.
    pub fn apply_to(&self, base: RetryPolicy) -> Result<RetryPolicy, DomainError> {
        let policy = match &self.policy {
            None => base.policy(),
            Some(name) => Backoff::parse(name).ok_or_else(|| {
                DomainError::invalid(
                    "retryPolicy.policy",
                    "retryPolicy.policy must be exponential, linear or constant",
                )
            })?,
        };
        let clamp =
            |v: Option<i64>, current: u32| v.map_or(current, |v| u32::try_from(v).unwrap_or(0));
        RetryPolicy::new(
            policy,
            clamp(self.delay_seconds, base.delay_seconds()),
            clamp(self.attempts, base.attempts()),
        )
    }
}

/// What changes about the stored secret.
#[derive(Clone, Debug)]
pub enum SecretChange {
    /// Leave it as it is.
    Keep,
    /// Remove it: deliveries go unsigned.
    Remove,
    /// Replace it.
    Set(WebhookSecret),
}

/// The checked result of applying request fields: the webhook and what to do with its secret.
#[derive(Clone, Debug)]
pub struct WebhookChange {
    /// The webhook as it will be stored.
    pub webhook: Webhook,
    /// The secret's fate.
    pub secret: SecretChange,
}

impl WebhookFields {
    /// Builds a new webhook for `org` from create-request fields (defaults applied).
    pub fn create(
        self,
        id: WebhookId,
        org: OrgId,
        now: Millis,
    ) -> Result<WebhookChange, DomainError> {
        let url = WebhookUrl::parse(
            self.url
                .as_deref()
                .ok_or_else(|| DomainError::invalid("url", "url is required"))?,
        )?;
        let seed = Webhook {
            id,
            organization_id: org,
            url,
            events: EventFilter::All,
            session_id: None,
            active: true,
            custom_headers: CustomHeaders::default(),
            retry_policy: RetryPolicy::default(),
            created_at: now,
            updated_at: now,
        };
        self.apply(seed, now)
    }

    /// Applies patch-request fields over an existing webhook.
    pub fn apply(self, mut webhook: Webhook, now: Millis) -> Result<WebhookChange, DomainError> {
        if let Some(url) = &self.url {
            webhook.url = WebhookUrl::parse(url)?;
        }
        if let Some(events) = &self.events {
            webhook.events = EventFilter::parse(events)?;
        }
        if let Some(session) = &self.session_id {
            webhook.session_id = match session {
                None => None,
                // A malformed id names no session of the caller's: the same 404 as a foreign one.
                Some(text) => Some(SessionId::parse(text).ok_or(DomainError::NotFound("session"))?),
            };
        }
        if let Some(headers) = self.custom_headers {
            webhook.custom_headers = CustomHeaders::parse(headers)?;
        }
        if let Some(parts) = &self.retry_policy {
            webhook.retry_policy = parts.apply_to(webhook.retry_policy)?;
        }
        if let Some(active) = self.active {
            webhook.active = active;
        }
        let secret = match self.secret {
            None => SecretChange::Keep,
            Some(None) => SecretChange::Remove,
            Some(Some(text)) => SecretChange::Set(WebhookSecret::parse(text)?),
        };
        webhook.updated_at = now;
        Ok(WebhookChange { webhook, secret })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Envelope;

    fn org() -> OrgId {
        OrgId::parse("org_a").unwrap()
    }

    fn field_of(result: Result<WebhookChange, DomainError>) -> String {
        match result {
            Err(DomainError::Invalid { field, .. }) => field,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    fn create(fields: WebhookFields) -> Result<WebhookChange, DomainError> {
        fields.create(WebhookId::generate(), org(), 1)
    }

    fn with_url(url: &str) -> WebhookFields {
        WebhookFields {
            url: Some(url.into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let w = create(with_url("https://example.com/hook"))
            .unwrap()
            .webhook;
        assert_eq!(w.events, EventFilter::All);
        assert!(w.active && w.session_id.is_none());
        assert_eq!(w.retry_policy, RetryPolicy::default());
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(
            json["retryPolicy"],
            serde_json::json!({"policy":"exponential","delaySeconds":2,"attempts":15})
        );
        assert_eq!(json["events"], serde_json::json!(["*"]));
        assert!(json.get("secret").is_none());
    }

    #[test]
    fn urls_must_be_absolute_http_and_short() {
        for bad in [
            "",
            "not a url",
            "ftp://example.com/x",
            "/relative",
            "mailto:a@b.c",
            "http://",
        ] {
            assert_eq!(field_of(create(with_url(bad))), "url", "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert_eq!(field_of(create(with_url(&long))), "url");
        assert_eq!(field_of(create(WebhookFields::default())), "url");
    }

    #[test]
    fn a_stored_url_always_parses_again() {
        // 2048 characters as written, 2049 once normalized (the empty path becomes `/`).
        let edge = format!("http://0.a?{}", "0".repeat(2048 - "http://0.a?".len()));
        assert_eq!(edge.len(), 2048);
        assert_eq!(field_of(create(with_url(&edge))), "url");
        let fits = format!("http://0.a/?{}", "0".repeat(2048 - "http://0.a/?".len()));
        let stored = create(with_url(&fits)).unwrap().webhook.url;
        assert_eq!(WebhookUrl::parse(stored.as_str()).unwrap(), stored);
    }

    #[test]
    fn event_filters_reject_unknown_and_empty() {
        let mut f = with_url("https://e.com");
        f.events = Some(vec!["message".into(), "nope".into()]);
        assert_eq!(field_of(create(f.clone())), "events");
        f.events = Some(vec![]);
        assert_eq!(field_of(create(f)), "events");
    }

    #[test]
    fn custom_headers_refuse_framing_names_and_crlf() {
        for (name, value) in [
            ("Host", "x"),
            ("content-length", "1"),
            ("Transfer-Encoding", "x"),
            ("Connection", "x"),
            ("Bad Name", "x"),
            ("X-Ok", "a\r\nInjected: 1"),
        ] {
            let mut f = with_url("https://e.com");
            f.custom_headers = Some(vec![(name.into(), value.into())]);
            assert_eq!(field_of(create(f)), "customHeaders", "{name}");
        }
    }

    #[test]
    fn secrets_have_bounded_length_and_null_removes() {
        let mut f = with_url("https://e.com");
        f.secret = Some(Some("short".into()));
        assert_eq!(field_of(create(f.clone())), "secret");
        f.secret = Some(Some("x".repeat(16)));
        assert!(matches!(
            create(f.clone()).unwrap().secret,
            SecretChange::Set(_)
        ));
        f.secret = Some(None);
        assert!(matches!(create(f).unwrap().secret, SecretChange::Remove));
    }

    #[test]
    fn patching_a_retry_policy_keeps_unnamed_parts() {
        let w = create(with_url("https://e.com")).unwrap().webhook;
        let patch = WebhookFields {
            retry_policy: Some(RetryPolicyFields {
                attempts: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = patch.apply(w, 2).unwrap().webhook.retry_policy;
        assert_eq!(
            (p.policy(), p.delay_seconds(), p.attempts()),
            (Backoff::Exponential, 2, 3)
        );
        let bad = RetryPolicyFields {
            delay_seconds: Some(-5),
            ..Default::default()
        };
        assert!(bad.apply_to(p).is_err());
    }

    #[test]
    fn matching_honours_activity_filter_and_session_scope() {
        let session = SessionId::generate();
        let mut w = create(with_url("https://e.com")).unwrap().webhook;
        w.events = EventFilter::parse(&["poll.vote"]).unwrap();
        w.session_id = Some(session);
        let vote = Envelope::new(
            EventType::PollVote,
            org(),
            Some(session),
            None,
            1,
            serde_json::json!({}),
        );
        assert!(w.receives(&vote));
        let other_session = Envelope {
            session: Some(SessionId::generate()),
            ..vote.clone()
        };
        assert!(!w.receives(&other_session));
        let other_type = Envelope {
            event: EventType::Message,
            ..vote.clone()
        };
        assert!(!w.receives(&other_type));
        let other_org = Envelope {
            organization_id: OrgId::parse("org_b").unwrap(),
            ..vote.clone()
        };
        assert!(!w.receives(&other_org));
        w.active = false;
        assert!(!w.receives(&vote));
    }
}
