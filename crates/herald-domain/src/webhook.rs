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

/// How deliveries are signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningScheme {
    /// WAHA's scheme: lowercase hex HMAC-SHA512 of the body under the secret's text, in
    /// `X-Webhook-Hmac`.
    #[default]
    Waha,
    /// Standard Webhooks v1: base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the
    /// secret's decoded bytes, in `webhook-signature`.
    Standard,
}

impl SigningScheme {
    /// Both schemes.
    pub const ALL: [SigningScheme; 2] = [Self::Waha, Self::Standard];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waha => "waha",
            Self::Standard => "standard",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The HMAC key of a secret's text under this scheme: the text itself for `waha`, the
    /// base64-decoded part after `whsec_` for `standard`. `None` when the text is not a secret
    /// of this scheme.
    pub fn key(self, secret: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::Waha => Some(secret.to_vec()),
            Self::Standard => {
                use base64::Engine as _;
                let encoded = secret.strip_prefix(WebhookSecret::STANDARD_PREFIX.as_bytes())?;
                let key = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()?;
                WebhookSecret::STANDARD_KEY_BYTES
                    .contains(&key.len())
                    .then_some(key)
            }
        }
    }
}

/// A signing secret. Never serialized, never shown (except once, when Herald generated it).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// The prefix of Standard Webhooks secrets (and of the secrets Herald generates).
    pub const STANDARD_PREFIX: &'static str = "whsec_";
    /// How many key bytes a standard secret encodes.
    pub const STANDARD_KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
    /// How many characters a `waha` secret has.
    pub const WAHA_LEN: std::ops::RangeInclusive<usize> = 16..=256;
    /// How many random bytes a generated secret encodes.
    pub const GENERATED_BYTES: usize = 32;

    /// Checks a secret for `scheme`; 422 on `secret` otherwise.
    pub fn parse(scheme: SigningScheme, text: String) -> Result<Self, DomainError> {
        match scheme {
            SigningScheme::Waha => {
                if !Self::WAHA_LEN.contains(&text.chars().count()) {
                    return Err(DomainError::invalid(
                        "secret",
                        "secret must be 16 to 256 characters",
                    ));
                }
            }
            SigningScheme::Standard => {
                if SigningScheme::Standard.key(text.as_bytes()).is_none() {
                    return Err(DomainError::invalid(
                        "secret",
                        "a standard secret must be whsec_ followed by the base64 of 24 to 64 bytes",
                    ));
                }
            }
        }
        Ok(Self(text))
    }

    /// Whether `text` is a secret of at least one scheme (checked before the webhook is looked
    /// up, so a malformed secret is a 422 even for a webhook that does not exist).
    pub fn plausible(text: &str) -> Result<(), DomainError> {
        if SigningScheme::ALL
            .into_iter()
            .any(|s| Self::parse(s, text.to_owned()).is_ok())
        {
            Ok(())
        } else {
            Self::parse(SigningScheme::Waha, text.to_owned()).map(drop)
        }
    }

    /// A secret made of fresh random bytes: `whsec_` and their base64, valid under both
    /// schemes (under `waha` the whole text is the key).
    pub fn generate(random: &[u8; Self::GENERATED_BYTES]) -> Self {
        use base64::Engine as _;
        Self(format!(
            "{}{}",
            Self::STANDARD_PREFIX,
            base64::engine::general_purpose::STANDARD.encode(random)
        ))
    }

    /// The secret's text as bytes, for sealing (the key is derived from it when signing).
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The secret's text, for the one answer that shows a generated secret.
    pub fn reveal(&self) -> &str {
        &self.0
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
    /// How deliveries are signed.
    pub signing: SigningScheme,
    /// Until when secrets replaced by a rotation still sign deliveries too; `None` when none do.
    pub previous_secrets_valid_until: Option<Millis>,
    /// Why it is inactive (`None` while active).
    pub disabled_reason: Option<crate::health::DisabledReason>,
    /// Most deliveries per second, `None` for no limit.
    pub rate_limit: Option<u32>,
    /// How its deliveries have been going.
    pub health: crate::health::Health,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

impl Webhook {
    /// The bounds of `rateLimit` (deliveries per second).
    pub const RATE_LIMIT: std::ops::RangeInclusive<u32> = 1..=10_000;

    /// Whether this webhook receives `event`: active, the type passes the filter, and the
    /// session scope is unset or equal to the event's session.
    pub fn receives(&self, event: &Envelope) -> bool {
        self.active
            && event.organization_id == self.organization_id
            && self.events.accepts(event.event)
            && self.session_id.is_none_or(|s| event.session == Some(s))
            && !(event.event.is_operational()
                && event.payload["webhookId"].as_str() == Some(&self.id.to_string()))
    }

    /// When a new delivery to this webhook is first due: now, or — while its breaker holds
    /// deliveries — after the probe has had time to report (its success releases them sooner).
    pub fn first_attempt_at(&self, now: Millis) -> Millis {
        self.health.paused_until.map_or(now, |until| {
            let margin = self.health.cooldown_ms.unwrap_or(0).max(0) * 2;
            now.max(until + margin.max(1_000))
        })
    }

    /// This webhook as shown at `now`: a grace period that has ended is not shown.
    pub fn as_of(mut self, now: Millis) -> Self {
        self.previous_secrets_valid_until = self.previous_secrets_valid_until.filter(|u| *u > now);
        self
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
    /// `signing`.
    pub signing: Option<String>,
    /// `rateLimit` (`Some(None)` = explicitly null: no limit).
    pub rate_limit: Option<Option<i64>>,
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
    /// Whether the signing scheme changed (secrets in grace, of the old scheme, are dropped,
    /// and a kept secret must suit the new scheme).
    pub scheme_changed: bool,
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
            signing: SigningScheme::default(),
            previous_secrets_valid_until: None,
            disabled_reason: None,
            rate_limit: None,
            health: crate::health::Health::default(),
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
        if let Some(limit) = self.rate_limit {
            webhook.rate_limit = match limit {
                None => None,
                Some(n) => Some(
                    u32::try_from(n)
                        .ok()
                        .filter(|n| Webhook::RATE_LIMIT.contains(n))
                        .ok_or_else(|| {
                            DomainError::invalid(
                                "rateLimit",
                                "rateLimit must be an integer from 1 to 10000, or null",
                            )
                        })?,
                ),
            };
        }
        match self.active {
            // Deactivating by hand says so; reactivating clears the reason and the streak.
            Some(false) if webhook.active => {
                webhook.active = false;
                webhook.disabled_reason = Some(crate::health::DisabledReason::Manual);
            }
            Some(true) if !webhook.active => {
                webhook.active = true;
                webhook.disabled_reason = None;
                webhook.health = crate::health::Health {
                    last_success_at: webhook.health.last_success_at,
                    ..Default::default()
                };
            }
            _ => {}
        }
        let before = webhook.signing;
        if let Some(name) = &self.signing {
            webhook.signing = SigningScheme::parse(name).ok_or_else(|| {
                DomainError::invalid("signing", "signing must be waha or standard")
            })?;
        }
        let scheme_changed = webhook.signing != before;
        let secret = match self.secret {
            None => SecretChange::Keep,
            Some(None) if webhook.signing == SigningScheme::Standard => {
                return Err(DomainError::invalid(
                    "secret",
                    "a webhook with standard signing always has a secret",
                ))
            }
            Some(None) => SecretChange::Remove,
            Some(Some(text)) => SecretChange::Set(WebhookSecret::parse(webhook.signing, text)?),
        };
        if scheme_changed || matches!(secret, SecretChange::Remove) {
            webhook.previous_secrets_valid_until = None;
        }
        webhook.updated_at = now;
        Ok(WebhookChange {
            webhook,
            secret,
            scheme_changed,
        })
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
