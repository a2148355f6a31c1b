//! Wiring: from a [`Config`] to a running gateway. [`assemble`] builds the parts (store, cipher,
//! authenticator, engine, use cases); [`App`] serves them over HTTP until told to stop.

use crate::config::{Config, ConfigError};
use crate::embed::Herald;
use crate::wake::Wakeups;
use herald_auth::{JwtConfig, JwtVerifier, Sha256Minter};
use herald_domain::gateway::Gateway;
use herald_domain::ports::{Engine, Pause, Store, SystemClock};
use herald_domain::StoreError;
use herald_engine_sim::SimulatorEngine;
use herald_secrets::{KeyError, SecretsKey, XChaChaCipher};
use herald_store::{Database, StoreOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Why Herald could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secrets key is missing or malformed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The assembled parts of a gateway.
pub struct Parts {
    /// The use cases.
    pub gateway: Gateway,
    /// The store they use.
    pub store: Arc<dyn Store>,
    /// In-process wake-ups.
    pub wakeups: Arc<Wakeups>,
    /// The secret cipher.
    pub cipher: Arc<XChaChaCipher>,
    /// Counts of the engine's calls.
    pub engine_metrics: Arc<crate::engine::EngineMetrics>,
}

/// The engine `chosen` by an embedding host, else the configured one; counted either way.
fn choose_engine(
    config: &crate::config::EngineConfig,
    chosen: Option<Arc<dyn Engine>>,
) -> crate::engine::MeteredEngine {
    use crate::config::EngineConfig;
    let inner: Arc<dyn herald_domain::ports::Engine> = match (chosen, config) {
        (Some(chosen), _) => chosen,
        (None, EngineConfig::Simulator) => Arc::new(SimulatorEngine),
        (None, EngineConfig::Waha(waha)) => Arc::new(herald_engine_waha::WahaEngine::new(
            herald_engine_waha::WahaClient::new(waha.clone()),
        )),
    };
    crate::engine::MeteredEngine::new(inner)
}

/// Where the embedded store keeps its generated secrets key: beside the database file.
fn embedded_key_path(database: &Database) -> Option<PathBuf> {
    match database {
        Database::Sqlite(path) => Some(
            path.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("secrets.key"), |d| d.join("secrets.key")),
        ),
        Database::Postgres(_) => None,
    }
}

/// The key sealing webhook secrets: `HERALD_SECRETS_KEY`, else (embedded store only) a key
/// file created beside the database. Postgres without a key refuses to start.
pub fn secrets_key(config: &Config) -> Result<SecretsKey, StartError> {
    if let Some(text) = &config.secrets_key {
        return Ok(SecretsKey::from_base64(text)?);
    }
    match embedded_key_path(&config.database) {
        Some(path) => Ok(SecretsKey::load_or_create(&path)?),
        None => Err(ConfigError(
            "HERALD_SECRETS_KEY is required with Postgres: 32 random bytes, base64 (e.g. `openssl rand -base64 32`); \
             every replica must use the same key"
                .into(),
        )
        .into()),
    }
}

/// Opens the store (running migrations) and builds the use cases.
pub async fn assemble(config: &Config) -> Result<Parts, StartError> {
    assemble_with(config, None).await
}

/// [`assemble`] with `engine` as the messaging network, when given, instead of the configured
/// one.
pub async fn assemble_with(
    config: &Config,
    engine: Option<Arc<dyn Engine>>,
) -> Result<Parts, StartError> {
    let key = secrets_key(config)?;
    let store = herald_store::open(
        &config.database,
        &StoreOptions {
            max_connections: config.pool_size,
        },
    )
    .await?;
    let wakeups = Arc::new(Wakeups::default());
    let cipher = Arc::new(XChaChaCipher::new(&key));
    let engine = choose_engine(&config.engine, engine);
    let engine_metrics = engine.metrics();
    let gateway = Gateway {
        store: store.clone(),
        cipher: cipher.clone(),
        clock: Arc::new(SystemClock),
        pause: Arc::new(TokioPause),
        engine: Arc::new(engine),
        minter: Arc::new(Sha256Minter),
        listener: wakeups.clone(),
        private_destinations_allowed: config.private_destinations_allowed(),
    };
    Ok(Parts {
        gateway,
        store,
        wakeups,
        cipher,
        engine_metrics,
    })
}

/// The use cases' [`Pause`] on the tokio runtime they run on.
struct TokioPause;

#[async_trait::async_trait]
impl Pause for TokioPause {
    async fn pause(&self, ms: u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// A running gateway: a [`Herald`] served on a listener of its own (what the binaries run).
pub struct App {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    herald: Option<Herald>,
}

impl App {
    /// Binds `config.listen` and serves.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        Self::start_on(config, listener).await
    }

    /// Serves on an already-bound listener (tests bind `127.0.0.1:0`).
    pub async fn start_on(config: Config, listener: TcpListener) -> Result<Self, StartError> {
        let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let herald = Herald::builder(config).build().await?;
        let state = herald.state();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            herald_http::run(listener, state, async move {
                let _ = stopped.await;
            })
            .await
        });
        tracing::info!(addr = %local_addr, "Herald is serving");
        Ok(Self {
            local_addr,
            stop: Some(stop),
            server,
            herald: Some(herald),
        })
    }

    /// The address it serves on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish, and returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.server).await;
        if let Some(herald) = self.herald.take() {
            herald.shutdown().await;
        }
    }

    /// Serves until `signal` resolves, then shuts down gracefully.
    pub async fn serve_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// The login-token verifier for `config`, when a JWKS is configured (`HERALD_JWKS_URL`).
pub fn jwt_verifier(config: &Config) -> Option<Arc<JwtVerifier>> {
    let url = config.jwks_url.as_ref()?;
    let mut jwt = JwtConfig::new(url.clone());
    jwt.issuer = config.jwt_issuer.clone();
    jwt.audience = config.jwt_audience.clone();
    jwt.org_claim = config.jwt_org_claim.clone();
    jwt.role_claim = config.jwt_role_claim.clone();
    jwt.refresh_interval = config.jwks_refresh;
    jwt.min_refetch_interval = config.jwks_min_refetch;
    Some(Arc::new(JwtVerifier::new(jwt)))
}

/// Loads the JWKS (waiting at most a few seconds: a slow or absent frontend must not keep the
/// API from serving API keys) and starts the periodic refresh.
pub(crate) async fn start_jwks(verifier: &Arc<JwtVerifier>) {
    let first = {
        let verifier = verifier.clone();
        tokio::spawn(async move { verifier.refresh().await })
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), first).await {
        Ok(Ok(Ok(keys))) => tracing::info!(keys, url = %verifier.config().jwks_url, "JWKS loaded"),
        Ok(Ok(Err(error))) => tracing::warn!(
            %error,
            url = %verifier.config().jwks_url,
            "JWKS not loaded at start-up; login tokens are refused until it is (retrying)"
        ),
        Ok(Err(error)) => tracing::warn!(%error, "JWKS start-up fetch failed"),
        Err(_) => tracing::warn!("JWKS still loading after 5 s; serving meanwhile"),
    }
    verifier.spawn_refresher();
}

/// `/readyz` line for the JWKS: reports it stale or unavailable without marking the replica
/// unready — every replica shares the same frontend, so taking them out of rotation would turn
/// a JWKS outage into a full outage while API keys and the last good keys still work.
pub(crate) struct JwksReadiness(pub(crate) Arc<JwtVerifier>);

#[async_trait::async_trait]
impl herald_http::ReadinessCheck for JwksReadiness {
    fn name(&self) -> &'static str {
        "jwks"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.health()
    }

    fn required(&self) -> bool {
        false
    }
}

impl herald_http::MetricsSource for JwksReadiness {
    fn render(&self, out: &mut String) {
        let status = self.0.status();
        let stale = u8::from(self.0.health().is_err());
        out.push_str(&format!(
            "# HELP herald_jwks_keys Usable keys in the cached JWKS.\n\
             # TYPE herald_jwks_keys gauge\n\
             herald_jwks_keys {}\n\
             # HELP herald_jwks_fetches_total JWKS fetches attempted.\n\
             # TYPE herald_jwks_fetches_total counter\n\
             herald_jwks_fetches_total {}\n\
             # HELP herald_jwks_stale 1 when the JWKS could not be refreshed (last good keys in use).\n\
             # TYPE herald_jwks_stale gauge\n\
             herald_jwks_stale {stale}\n\
             # HELP herald_jwks_last_success_timestamp_seconds When the JWKS was last fetched.\n\
             # TYPE herald_jwks_last_success_timestamp_seconds gauge\n\
             herald_jwks_last_success_timestamp_seconds {}\n",
            status.keys,
            status.fetches,
            status.last_success_ms.map_or(0, |ms| ms / 1000),
        ));
    }
}

/// Aborts a background task when dropped, tying its life to its owner's.
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
