//! Configuration from the environment, with the documented defaults. Every variable is read
//! here and nowhere else.

pub use herald_http::ConnectionLimits;
use herald_store::Database;
use std::net::SocketAddr;
use std::time::Duration;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Everything the binaries can be told.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the data lives (`DATABASE_URL`; unset = `./data/herald.db`).
    pub database: Database,
    /// The API's address (`HERALD_LISTEN`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// The standalone dispatcher's health/metrics address (`HERALD_DISPATCHER_LISTEN`, default `127.0.0.1:8081`).
    pub dispatcher_listen: SocketAddr,
    /// The base64 key sealing webhook secrets (`HERALD_SECRETS_KEY`).
    pub secrets_key: Option<String>,
    /// Browser origins allowed to call the API (`HERALD_CORS_ORIGINS`, comma-separated).
    pub cors_origins: Vec<String>,
    /// Per-attempt delivery timeout (`HERALD_DELIVERY_TIMEOUT_MS`, default 10 s).
    pub delivery_timeout: Duration,
    /// Whether deliveries may reach private/loopback addresses (`HERALD_DELIVERY_ALLOW_PRIVATE`);
    /// unset = allowed on the embedded store only.
    pub allow_private: Option<bool>,
    /// How long events and deliveries are kept (`HERALD_RETENTION_DAYS`, default 7).
    pub retention_days: u32,
    /// Database connections (`HERALD_DB_POOL_SIZE`, default 16).
    pub pool_size: usize,
    /// The frontend's JWKS (`HERALD_JWKS_URL`); unset = login JWTs are refused, API keys only.
    pub jwks_url: Option<String>,
    /// The `iss` login JWTs must carry (`HERALD_JWT_ISSUER`); unset = not checked.
    pub jwt_issuer: Option<String>,
    /// The `aud` login JWTs must carry (`HERALD_JWT_AUDIENCE`); unset = not checked.
    pub jwt_audience: Option<String>,
    /// The claim naming the organization (`HERALD_JWT_ORG_CLAIM`, default `org`).
    pub jwt_org_claim: String,
    /// The claim naming the role (`HERALD_JWT_ROLE_CLAIM`, default `role`).
    pub jwt_role_claim: String,
    /// How often the JWKS is fetched again (`HERALD_JWKS_REFRESH_SECS`, default 300).
    pub jwks_refresh: Duration,
    /// The least time between two JWKS fetches caused by unknown `kid`s
    /// (`HERALD_JWKS_MIN_REFETCH_SECS`, default 10).
    pub jwks_min_refetch: Duration,
    /// Whether `herald-api` also runs the dispatcher on Postgres (`--with-dispatcher`); the
    /// embedded store always does.
    pub with_dispatcher: bool,
    /// Concurrent first-attempt deliveries per dispatcher (`HERALD_DELIVERY_WORKERS`, default
    /// 64; retries get half as many of their own).
    pub delivery_workers: usize,
    /// Concurrent attempts to one webhook per dispatcher lane (`HERALD_DELIVERY_PER_WEBHOOK`,
    /// default 16).
    pub delivery_per_webhook: usize,
    /// How long an attempt may run before its webhook counts as slow and moves to the slow
    /// lane (`HERALD_DELIVERY_SLOW_MS`, default 1000; at most half the delivery timeout).
    pub delivery_slow_after: Duration,
    /// How much longer than the timeout a delivery lease lasts
    /// (`HERALD_DELIVERY_LEASE_MARGIN_MS`, default 55 s so that, with a 5 s re-check, a dead
    /// dispatcher's work is attempted again within timeout + 60 s; only tests shorten it).
    pub delivery_lease_margin: Duration,
    /// When endpoints are disabled and their breakers open (`HERALD_DISABLE_AFTER_HOURS`,
    /// default 120, fractions accepted; `HERALD_BREAKER_FAILURES`, default 10).
    pub health: herald_domain::health::HealthPolicy,
    /// How log lines are written (`HERALD_LOG_FORMAT`: `text`, the default, or `json`).
    pub log_format: LogFormat,
    /// Connection limits of the HTTP servers (`HERALD_HTTP_*`).
    pub http_limits: ConnectionLimits,
    /// The messaging engine (`HERALD_ENGINE`: `simulator`, the default, or `waha`).
    pub engine: EngineConfig,
}

/// Which messaging engine sessions run on.
#[derive(Clone, Debug, Default)]
pub enum EngineConfig {
    /// The built-in simulator (no network).
    #[default]
    Simulator,
    /// A WAHA server: `HERALD_WAHA_URL`, `HERALD_WAHA_API_KEY`, `HERALD_WAHA_WEBHOOK_KEY`,
    /// `HERALD_PUBLIC_URL`, `HERALD_ENGINE_TIMEOUT_MS` (its `Debug` never shows the keys).
    Waha(herald_engine_waha::WahaConfig),
}

impl EngineConfig {
    /// The engine's name (`simulator` or `waha`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Simulator => "simulator",
            Self::Waha(_) => "waha",
        }
    }

    /// Reads `HERALD_ENGINE` and, when it is `waha`, the WAHA settings (only then).
    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use herald_engine_waha::{Secret, WahaConfig};
        match get("HERALD_ENGINE").as_deref() {
            None | Some("simulator") => Ok(Self::Simulator),
            Some("waha") => {
                let required = |name: &str, what: &str| {
                    get(name).ok_or_else(|| {
                        ConfigError(format!(
                            "{name} is required when HERALD_ENGINE=waha ({what})"
                        ))
                    })
                };
                let url = required(
                    "HERALD_WAHA_URL",
                    "WAHA's base URL, e.g. http://127.0.0.1:3000",
                )?;
                let key = required(
                    "HERALD_WAHA_WEBHOOK_KEY",
                    "the HMAC key of WAHA's webhooks to Herald",
                )?;
                let public = required(
                    "HERALD_PUBLIC_URL",
                    "the base URL at which WAHA reaches Herald, e.g. http://herald:8080",
                )?;
                let invalid = |e: herald_engine_waha::ConfigError| ConfigError(e.to_string());
                let mut waha = WahaConfig::new(&url, &public, Secret::new(key)).map_err(invalid)?;
                if let Some(api_key) = get("HERALD_WAHA_API_KEY") {
                    waha = waha.with_api_key(Secret::new(api_key)).map_err(invalid)?;
                }
                if let Some(ms) = get("HERALD_ENGINE_TIMEOUT_MS") {
                    let ms: u64 = ms.parse().map_err(|_| {
                        ConfigError(format!(
                            "HERALD_ENGINE_TIMEOUT_MS={ms} is not a whole number"
                        ))
                    })?;
                    waha = waha
                        .with_timeout(Duration::from_millis(ms))
                        .map_err(invalid)?;
                }
                Ok(Self::Waha(waha))
            }
            Some(other) => Err(ConfigError(format!(
                "HERALD_ENGINE={other} must be simulator or waha"
            ))),
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (coloured only on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Reads `HERALD_LOG_FORMAT` from the process environment (logging starts before the rest
    /// of the configuration is read, so that its errors can be logged).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        match lookup("HERALD_LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("" | "text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(ConfigError(format!(
                "HERALD_LOG_FORMAT={other} must be text or json"
            ))),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database: Database::Sqlite(Database::DEFAULT_SQLITE_PATH.into()),
            listen: ([127, 0, 0, 1], 8080).into(),
            dispatcher_listen: ([127, 0, 0, 1], 8081).into(),
            secrets_key: None,
            cors_origins: Vec::new(),
            delivery_timeout: Duration::from_secs(10),
            allow_private: None,
            retention_days: 7,
            pool_size: 16,
            jwks_url: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_org_claim: "org".into(),
            jwt_role_claim: "role".into(),
            jwks_refresh: Duration::from_secs(300),
            jwks_min_refetch: Duration::from_secs(10),
            with_dispatcher: false,
            delivery_workers: 64,
            delivery_per_webhook: 16,
            delivery_slow_after: Duration::from_millis(1_000),
            delivery_lease_margin: Duration::from_secs(55),
            health: herald_domain::health::HealthPolicy::default(),
            log_format: LogFormat::Text,
            http_limits: ConnectionLimits::default(),
            engine: EngineConfig::Simulator,
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let defaults = Self::default();
        let parse_addr = |name: &str, default: SocketAddr| -> Result<SocketAddr, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| ConfigError(format!("{name}={v} is not a host:port address")))
            })
        };
        let parse_num = |name: &str, default: u64| -> Result<u64, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| ConfigError(format!("{name}={v} is not a whole number")))
            })
        };
        let allow_private = match get("HERALD_DELIVERY_ALLOW_PRIVATE").as_deref() {
            None => None,
            Some("true" | "1" | "yes") => Some(true),
            Some("false" | "0" | "no") => Some(false),
            Some(other) => {
                return Err(ConfigError(format!(
                    "HERALD_DELIVERY_ALLOW_PRIVATE={other} must be true or false"
                )))
            }
        };
        let disable_after_hours = match get("HERALD_DISABLE_AFTER_HOURS") {
            None => 120.0,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|h| h.is_finite() && *h > 0.0 && *h <= 100_000.0)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "HERALD_DISABLE_AFTER_HOURS={v} must be a positive number of hours"
                    ))
                })?,
        };
        let jwks_url = get("HERALD_JWKS_URL");
        if let Some(url) = &jwks_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "HERALD_JWKS_URL={url} must be an http:// or https:// URL"
                )));
            }
        }
        Ok(Self {
            engine: EngineConfig::from_lookup(get)?,
            jwks_url,
            jwt_issuer: get("HERALD_JWT_ISSUER"),
            jwt_audience: get("HERALD_JWT_AUDIENCE"),
            jwt_org_claim: get("HERALD_JWT_ORG_CLAIM").unwrap_or(defaults.jwt_org_claim),
            jwt_role_claim: get("HERALD_JWT_ROLE_CLAIM").unwrap_or(defaults.jwt_role_claim),
            jwks_refresh: Duration::from_secs(parse_num("HERALD_JWKS_REFRESH_SECS", 300)?.max(1)),
            jwks_min_refetch: Duration::from_secs(parse_num("HERALD_JWKS_MIN_REFETCH_SECS", 10)?),
            database: Database::from_url(get("DATABASE_URL").as_deref())
                .map_err(|e| ConfigError(e.message))?,
            listen: parse_addr("HERALD_LISTEN", defaults.listen)?,
            dispatcher_listen: parse_addr("HERALD_DISPATCHER_LISTEN", defaults.dispatcher_listen)?,
            secrets_key: get("HERALD_SECRETS_KEY"),
            cors_origins: get("HERALD_CORS_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            delivery_timeout: Duration::from_millis(
                parse_num("HERALD_DELIVERY_TIMEOUT_MS", 10_000)?.max(1),
            ),
            allow_private,
            retention_days: parse_num("HERALD_RETENTION_DAYS", 7)?.clamp(1, 3650) as u32,
            pool_size: parse_num("HERALD_DB_POOL_SIZE", 16)?.clamp(1, 256) as usize,
            with_dispatcher: false,
            delivery_workers: parse_num("HERALD_DELIVERY_WORKERS", 64)?.clamp(1, 1024) as usize,
            delivery_per_webhook: parse_num("HERALD_DELIVERY_PER_WEBHOOK", 16)?.clamp(1, 1024)
                as usize,
            delivery_slow_after: Duration::from_millis(
                parse_num("HERALD_DELIVERY_SLOW_MS", 1_000)?.max(1),
            ),
            delivery_lease_margin: Duration::from_millis(
                parse_num("HERALD_DELIVERY_LEASE_MARGIN_MS", 55_000)?.max(1_000),
            ),
            health: herald_domain::health::HealthPolicy {
                disable_after_ms: (disable_after_hours * 3_600_000.0).round() as i64,
                breaker_failures: parse_num("HERALD_BREAKER_FAILURES", 10)?.clamp(1, 1_000_000)
                    as u32,
                ..defaults.health
            },
            log_format: LogFormat::from_lookup(&lookup)?,
            http_limits: ConnectionLimits {
                header_timeout: Duration::from_millis(
                    parse_num(
                        "HERALD_HTTP_HEADER_TIMEOUT_MS",
                        millis(defaults.http_limits.header_timeout),
                    )?
                    .max(1),
                ),
                idle_timeout: Duration::from_millis(
                    parse_num(
                        "HERALD_HTTP_IDLE_TIMEOUT_MS",
                        millis(defaults.http_limits.idle_timeout),
                    )?
                    .max(1),
                ),
                max_connections: parse_num(
                    "HERALD_HTTP_MAX_CONNECTIONS",
                    defaults.http_limits.max_connections as u64,
                )?
                .clamp(1, 1 << 20) as usize,
            },
        })
    }

    /// Whether deliveries may reach private addresses: as configured, else only on the
    /// embedded store.
    pub fn private_destinations_allowed(&self) -> bool {
        self.allow_private.unwrap_or(self.database.is_embedded())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database, Database::Sqlite("./data/herald.db".into()));
        assert_eq!(c.delivery_timeout, Duration::from_secs(10));
        assert!(c.private_destinations_allowed());
    }

    #[test]
    fn endpoint_health_settings_accept_fractions_and_refuse_nonsense() {
        let c = config(&[]).unwrap();
        assert_eq!(c.health.disable_after_ms, 120 * 3_600_000);
        assert_eq!(c.health.breaker_failures, 10);
        let c = config(&[
            ("HERALD_DISABLE_AFTER_HOURS", "0.5"),
            ("HERALD_BREAKER_FAILURES", "3"),
        ])
        .unwrap();
        assert_eq!(
            (c.health.disable_after_ms, c.health.breaker_failures),
            (1_800_000, 3)
        );
        for bad in ["0", "-1", "soon", "NaN"] {
            assert!(
                config(&[("HERALD_DISABLE_AFTER_HOURS", bad)]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn log_format_and_connection_limits_are_read() {
        let c = config(&[]).unwrap();
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.http_limits, ConnectionLimits::default());
        let c = config(&[
            ("HERALD_LOG_FORMAT", "json"),
            ("HERALD_HTTP_HEADER_TIMEOUT_MS", "500"),
            ("HERALD_HTTP_IDLE_TIMEOUT_MS", "2000"),
            ("HERALD_HTTP_MAX_CONNECTIONS", "10"),
        ])
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(
            c.http_limits,
            ConnectionLimits {
                header_timeout: Duration::from_millis(500),
                idle_timeout: Duration::from_secs(2),
                max_connections: 10,
            }
        );
        assert!(config(&[("HERALD_LOG_FORMAT", "xml")])
            .unwrap_err()
            .0
            .contains("HERALD_LOG_FORMAT"));
        assert!(config(&[("HERALD_HTTP_MAX_CONNECTIONS", "many")]).is_err());
    }

    #[test]
    fn the_engine_is_the_simulator_unless_waha_is_configured_completely() {
        assert_eq!(config(&[]).unwrap().engine.name(), "simulator");
        assert!(config(&[("HERALD_ENGINE", "carrier-pigeon")]).is_err());
        let waha = [
            ("HERALD_ENGINE", "waha"),
            ("HERALD_WAHA_URL", "http://waha:3000"),
            ("HERALD_WAHA_API_KEY", "api-secret"),
            ("HERALD_WAHA_WEBHOOK_KEY", "hook-secret"),
            ("HERALD_PUBLIC_URL", "http://herald:8080"),
            ("HERALD_ENGINE_TIMEOUT_MS", "2500"),
        ];
        let EngineConfig::Waha(c) = config(&waha).unwrap().engine else {
            panic!("not waha")
        };
        assert_eq!(c.timeout(), Duration::from_millis(2500));
        assert_eq!(
            c.events_url(),
            "http://herald:8080/api/v1/engines/waha/events"
        );
        let shown = format!("{:?}", config(&waha).unwrap());
        assert!(
            !shown.contains("api-secret") && !shown.contains("hook-secret"),
            "{shown}"
        );
        for missing in [
            "HERALD_WAHA_URL",
            "HERALD_WAHA_WEBHOOK_KEY",
            "HERALD_PUBLIC_URL",
        ] {
            let partial: Vec<_> = waha
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let error = config(&partial).unwrap_err().0;
            assert!(error.contains(missing), "{error}");
        }
        // The WAHA settings are not read for the simulator.
        assert!(config(&[("HERALD_WAHA_URL", "nonsense")]).is_ok());
    }

    #[test]
    fn postgres_refuses_private_destinations_unless_allowed() {
        let c = config(&[("DATABASE_URL", "postgres://localhost/test")]).unwrap();
        assert!(!c.private_destinations_allowed());
        let c = config(&[
            ("DATABASE_URL", "postgres://localhost/test"),
            ("HERALD_DELIVERY_ALLOW_PRIVATE", "true"),
        ])
        .unwrap();
        assert!(c.private_destinations_allowed());
    }

    #[test]
    fn bad_values_are_refused_with_their_name() {
        assert!(config(&[("HERALD_LISTEN", "nope")])
            .unwrap_err()
            .0
            .contains("HERALD_LISTEN"));
        assert!(config(&[("DATABASE_URL", "mysql://x")]).is_err());
        assert!(config(&[("HERALD_DELIVERY_ALLOW_PRIVATE", "maybe")]).is_err());
        assert!(config(&[("HERALD_JWKS_URL", "file:///etc/passwd")])
            .unwrap_err()
            .0
            .contains("HERALD_JWKS_URL"));
    }

    #[test]
    fn login_token_settings_default_to_org_and_role_claims() {
        let c = config(&[]).unwrap();
        assert_eq!(c.jwks_url, None);
        assert_eq!(
            (c.jwt_org_claim.as_str(), c.jwt_role_claim.as_str()),
            ("org", "role")
        );
        assert_eq!(c.jwks_refresh, Duration::from_secs(300));
        assert_eq!(c.jwks_min_refetch, Duration::from_secs(10));
        let c = config(&[
            (
                "HERALD_JWKS_URL",
                "https://app.example.com/.well-known/jwks.json",
            ),
            ("HERALD_JWT_ISSUER", "https://app.example.com"),
            ("HERALD_JWT_AUDIENCE", "herald"),
            ("HERALD_JWT_ORG_CLAIM", "org_id"),
            ("HERALD_JWT_ROLE_CLAIM", "org_role"),
        ])
        .unwrap();
        assert_eq!(
            c.jwks_url.as_deref(),
            Some("https://app.example.com/.well-known/jwks.json")
        );
        assert_eq!(c.jwt_issuer.as_deref(), Some("https://app.example.com"));
        assert_eq!(c.jwt_audience.as_deref(), Some("herald"));
        assert_eq!(
            (c.jwt_org_claim.as_str(), c.jwt_role_claim.as_str()),
            ("org_id", "org_role")
        );
    }
}
