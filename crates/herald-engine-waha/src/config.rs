//! How Herald reaches WAHA and how WAHA reaches Herald: WAHA's base URL, the API key sent as
//! `X-Api-Key`, the HMAC key configured on every WAHA session's webhook, Herald's public URL
//! (where WAHA posts its events) and the timeout of one call. Everything is checked once, here,
//! so the client never meets a malformed URL or an API key that cannot be sent as a header.

use http::HeaderValue;
use std::fmt;
use std::time::Duration;

/// Where WAHA posts its events, below Herald's public URL.
pub const EVENTS_PATH: &str = "/api/v1/engines/waha/events";

/// A secret string (the API key or the webhook key). Its `Debug` shows `***`, it has no
/// `Display`, and it leaves the process only in the request that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends or uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A setting that cannot work; the message names the setting and never shows a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{setting}: {reason}")]
pub struct ConfigError {
    /// The setting, as the operator knows it (e.g. `HERALD_WAHA_URL`).
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

/// The WAHA engine's settings, valid by construction.
#[derive(Clone)]
pub struct WahaConfig {
    base_url: String,
    api_key: Option<HeaderValue>,
    webhook_key: Secret,
    events_url: String,
    timeout: Duration,
}

impl fmt::Debug for WahaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WahaConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("webhook_key", &self.webhook_key)
            .field("events_url", &self.events_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl WahaConfig {
    /// The timeout of one call when none is set.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Settings from WAHA's base URL (`HERALD_WAHA_URL`, `http://` only: Herald speaks plain
    /// HTTP to WAHA, which normally runs beside it), Herald's public base URL
    /// (`HERALD_PUBLIC_URL`, `http://` or `https://`) and the webhook HMAC key
    /// (`HERALD_WAHA_WEBHOOK_KEY`, not empty). No API key; the default timeout.
    pub fn new(waha_url: &str, public_url: &str, webhook_key: Secret) -> Result<Self, ConfigError> {
        let base_url = checked_base_url("HERALD_WAHA_URL", waha_url, &["http"])?;
        let public = checked_base_url("HERALD_PUBLIC_URL", public_url, &["http", "https"])?;
        if webhook_key.expose().is_empty() {
            return Err(ConfigError::new(
                "HERALD_WAHA_WEBHOOK_KEY",
                "must not be empty",
            ));
        }
        Ok(Self {
            base_url,
            api_key: None,
            webhook_key,
            events_url: format!("{public}{EVENTS_PATH}"),
            timeout: Self::DEFAULT_TIMEOUT,
        })
    }

    /// Sends `key` as `X-Api-Key` on every call (`HERALD_WAHA_API_KEY`); it must be printable
    /// ASCII, since it travels as a header.
    pub fn with_api_key(mut self, key: Secret) -> Result<Self, ConfigError> {
        let mut value = HeaderValue::from_str(key.expose())
            .ok()
            .filter(|_| !key.expose().is_empty())
            .ok_or_else(|| {
                ConfigError::new(
                    "HERALD_WAHA_API_KEY",
                    "must be non-empty printable ASCII (it is sent as a header)",
                )
            })?;
        value.set_sensitive(true);
        self.api_key = Some(value);
        Ok(self)
    }

    /// Gives every call at most `timeout` (`HERALD_ENGINE_TIMEOUT_MS`), from connecting to the
    /// last byte of the answer; zero is refused.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::new(
                "HERALD_ENGINE_TIMEOUT_MS",
                "must be above 0",
            ));
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// WAHA's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The URL configured on WAHA's webhooks: Herald's public URL + [`EVENTS_PATH`].
    pub fn events_url(&self) -> &str {
        &self.events_url
    }

    /// The HMAC key of WAHA's webhooks.
    pub fn webhook_key(&self) -> &Secret {
        &self.webhook_key
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn api_key_header(&self) -> Option<&HeaderValue> {
        self.api_key.as_ref()
    }
}

/// A base URL with one of `schemes`, a host, no query or fragment, returned without its
/// trailing slash so paths can be appended.
fn checked_base_url(
    setting: &'static str,
    text: &str,
    schemes: &[&str],
) -> Result<String, ConfigError> {
    let url = url::Url::parse(text.trim())
        .map_err(|e| ConfigError::new(setting, format!("not a URL ({e})")))?;
    if !schemes.contains(&url.scheme()) {
        let allowed: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(ConfigError::new(
            setting,
            format!("must start with {}", allowed.join(" or ")),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(setting, "must name a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            setting,
            "must not have a query or a fragment",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            setting,
            "must not carry credentials (use the API key setting)",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Secret {
        Secret::new("webhook-key")
    }

    #[test]
    fn urls_are_checked_and_the_events_url_is_derived() {
        let config =
            WahaConfig::new("http://waha:3000/", "https://herald.example/", key()).unwrap();
        assert_eq!(config.base_url(), "http://waha:3000");
        assert_eq!(
            config.events_url(),
            "https://herald.example/api/v1/engines/waha/events"
        );
        assert_eq!(config.timeout(), Duration::from_secs(10));
        let prefixed = WahaConfig::new("http://proxy/waha", "http://h:8080/base/", key()).unwrap();
        assert_eq!(prefixed.base_url(), "http://proxy/waha");
        assert_eq!(
            prefixed.events_url(),
            "http://h:8080/base/api/v1/engines/waha/events"
        );
    }

    #[test]
    fn bad_settings_name_themselves() {
        let setting = |r: Result<WahaConfig, ConfigError>| r.unwrap_err().setting;
        assert_eq!(
            setting(WahaConfig::new("waha:3000", "http://h", key())),
            "HERALD_WAHA_URL"
        );
        assert_eq!(
            setting(WahaConfig::new("https://waha", "http://h", key())),
            "HERALD_WAHA_URL"
        );
        assert_eq!(
            setting(WahaConfig::new("http://u:p@waha", "http://h", key())),
            "HERALD_WAHA_URL"
        );
        assert_eq!(
            setting(WahaConfig::new("http://waha", "ftp://h", key())),
            "HERALD_PUBLIC_URL"
        );
        assert_eq!(
            setting(WahaConfig::new("http://waha", "http://h?x=1", key())),
            "HERALD_PUBLIC_URL"
        );
        assert_eq!(
            setting(WahaConfig::new("http://waha", "http://h", Secret::new(""))),
            "HERALD_WAHA_WEBHOOK_KEY"
        );
        let ok = WahaConfig::new("http://waha", "http://h", key()).unwrap();
        assert_eq!(
            ok.clone()
                .with_api_key(Secret::new("line\nbreak"))
                .unwrap_err()
                .setting,
            "HERALD_WAHA_API_KEY"
        );
        assert_eq!(
            ok.with_timeout(Duration::ZERO).unwrap_err().setting,
            "HERALD_ENGINE_TIMEOUT_MS"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let config = WahaConfig::new("http://waha", "http://h", Secret::new("hook-secret-1"))
            .unwrap()
            .with_api_key(Secret::new("api-secret-2"))
            .unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hook-secret-1") && !shown.contains("api-secret-2"),
            "{shown}"
        );
        let error = WahaConfig::new("http://waha", "http://h", Secret::new("x"))
            .unwrap()
            .with_api_key(Secret::new("secret\u{7f}"))
            .unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
