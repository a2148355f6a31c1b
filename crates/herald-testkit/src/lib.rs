//! Test support shared by Herald's integration tests: a throwaway database of either kind
//! ([`TestDb`]: a temp SQLite file, or a fresh database on the real Postgres named by
//! `HERALD_TEST_DATABASE_URL`), the real server on `127.0.0.1:0` ([`TestServer`]), a small HTTP
//! client ([`Client`]), a local webhook receiver ([`Receiver`]) and [`eventually`] for waiting on
//! a condition with a deadline instead of sleeping; login-token support ([`jwks`]: test signing
//! keys, a local JWKS server, token minting); and replicas ([`TestServer::start_replica`]: a
//! second server on the same database, as several `herald-api` processes share one Postgres);
//! a real headless browser ([`browser`]: Chromium through ChromeDriver) for the console; a WAHA
//! double ([`waha::WahaDouble`]) for Herald's WAHA engine; and [`openapi::Conformance`], which
//! checks real answers against the served OpenAPI document.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use herald::config::Config;
use herald::App;
use herald_domain::{Capabilities, OrgId};
use herald_store::Database;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub mod browser;
pub mod jwks;
pub mod openapi;
mod receiver;
pub use browser::Browser;
pub use jwks::{JwksServer, SigningKey};
pub mod waha;
mod ws;
pub use receiver::{Behaviour, Received, Receiver};
pub use ws::{WsClient, WsNext, WsRefused};

/// The `p`th percentile (0..=100) of `sorted` (ascending), by the nearest rank on the
/// 0-based scale (`p50` of 1..=4 is the 3rd); `None` when empty. The benches' one rule.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    let rank = ((p / 100.0) * last as f64).round() as usize;
    Some(sorted[rank.min(last)])
}

/// The Postgres server tests use (a database is created on it per test).
pub fn postgres_admin_url() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh database on the real Postgres.
    Postgres,
}

/// Runs a scenario once per backend as two separate tests, so a failure names its store.
///
/// `per_backend!(webhooks_round_trip);` next to `async fn webhooks_round_trip(backend: Backend)`
/// generates the tests `webhooks_round_trip::sqlite` and `webhooks_round_trip::postgres` (a
/// module and a function may share a name). Several scenarios may be listed at once.
#[macro_export]
macro_rules! per_backend {
    ($($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$scenario($crate::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$scenario($crate::Backend::Postgres).await
                }
            }
        )+
    };
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDb {
    /// Where it is.
    pub database: Database,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    PgDatabase {
        admin_url: String,
        name: String,
    },
    /// Someone else's database (a replica's view of it): left alone.
    Borrowed,
}

fn unique_name() -> String {
    format!("herald_t_{}", ulid::Ulid::new().to_string().to_lowercase())
}

impl TestDb {
    /// The same database as `self`, for a second server; dropping it removes nothing.
    pub fn borrow(&self) -> Self {
        Self {
            database: self.database.clone(),
            cleanup: Cleanup::Borrowed,
        }
    }

    /// A new, empty database of `backend`.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(unique_name());
                std::fs::create_dir_all(&dir).expect("temp dir");
                Self {
                    database: Database::Sqlite(dir.join("herald.db")),
                    cleanup: Cleanup::Dir(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = unique_name();
                let mut conn = AsyncPgConnection::establish(&admin_url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("Postgres at {admin_url} is needed for this test: {e}")
                    });
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let url = match admin_url.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => panic!("HERALD_TEST_DATABASE_URL must end with /<database>"),
                };
                Self {
                    database: Database::Postgres(url),
                    cleanup: Cleanup::PgDatabase { admin_url, name },
                }
            }
        }
    }

    /// A configuration on this database with a fixed secrets key and defaults otherwise.
    pub fn config(&self) -> Config {
        Config {
            database: self.database.clone(),
            secrets_key: Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned()),
            listen: ([127, 0, 0, 1], 0).into(),
            dispatcher_listen: ([127, 0, 0, 1], 0).into(),
            pool_size: 4,
            ..Config::default()
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Borrowed => {}
            Cleanup::PgDatabase { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime; a thread of its own may block.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    runtime.block_on(async {
                        let mut conn = AsyncPgConnection::establish(&admin_url).await.ok()?;
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await
                            .ok()
                    })
                })
                .join();
            }
        }
    }
}

/// The WAHA API key [`TestServer::start_waha`] configures.
pub const WAHA_API_KEY: &str = "waha-test-api-key";

/// The WAHA webhook key [`TestServer::start_waha`] configures.
pub const WAHA_WEBHOOK_KEY: &str = "waha-test-webhook-key";

/// The real server, serving on `127.0.0.1:0`, with its database.
pub struct TestServer {
    /// The running app.
    pub app: Option<App>,
    /// Its configuration.
    pub config: Config,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// A client for it.
    pub client: Client,
    /// The database (dropped after the server).
    pub db: TestDb,
}

impl TestServer {
    /// Starts a server on a fresh database of `backend`.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server on a fresh database of `backend`, after `adjust` edits the configuration.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new(backend).await;
        let mut config = db.config();
        adjust(&mut config);
        Self::start_on(db, config).await
    }

    /// Starts a server with `config` on `db`.
    pub async fn start_on(db: TestDb, config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::start_on_listener(db, config, listener).await
    }

    /// Starts a server on a fresh database of `backend` with the WAHA engine calling the WAHA
    /// (double) at `waha_url` with [`WAHA_API_KEY`], signing with [`WAHA_WEBHOOK_KEY`], its
    /// public URL its own address (so the double's webhooks reach it), a 1 s engine timeout
    /// and deliveries allowed to loopback receivers.
    pub async fn start_waha(backend: Backend, waha_url: &str) -> Self {
        Self::start_waha_with(backend, waha_url, |_| {}).await
    }

    /// [`Self::start_waha`], after `adjust` edits the configuration.
    pub async fn start_waha_with(
        backend: Backend,
        waha_url: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        use herald::waha::{Secret, WahaConfig};
        let db = TestDb::new(backend).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let public = format!("http://{}", listener.local_addr().expect("addr"));
        let waha = WahaConfig::new(waha_url, &public, Secret::new(WAHA_WEBHOOK_KEY))
            .and_then(|c| c.with_api_key(Secret::new(WAHA_API_KEY)))
            .and_then(|c| c.with_timeout(Duration::from_secs(1)))
            .expect("WAHA settings");
        let mut config = db.config();
        config.engine = herald::config::EngineConfig::Waha(waha);
        // Receivers and the double live on loopback, on Postgres too.
        config.allow_private = Some(true);
        adjust(&mut config);
        Self::start_on_listener(db, config, listener).await
    }

    /// Starts a server with `config` on `db`, serving on `listener`.
    pub async fn start_on_listener(
        db: TestDb,
        config: Config,
        listener: tokio::net::TcpListener,
    ) -> Self {
        let app = App::start_on(config.clone(), listener)
            .await
            .expect("server starts");
        let base_url = format!("http://{}", app.local_addr());
        Self {
            client: Client::new(&base_url),
            app: Some(app),
            config,
            base_url,
            db,
        }
    }

    /// Another server on this server's database and configuration (a second replica). Drop it
    /// (or [`Self::stop`] it) before the first: the first owns the database.
    pub async fn start_replica(&self) -> Self {
        Self::start_on(self.db.borrow(), self.config.clone()).await
    }

    /// The address served on.
    pub fn addr(&self) -> SocketAddr {
        self.app.as_ref().expect("running").local_addr()
    }

    /// Mints an API key for `org` with `capabilities` (comma-separated) straight in the store,
    /// as the admin CLI does, and returns its token.
    pub async fn api_key(&self, org: &str, capabilities: &str) -> String {
        let parts = herald::app::assemble(&self.config).await.expect("assemble");
        let caps = Capabilities::parse_list(capabilities).expect("capabilities");
        parts
            .gateway
            .mint_api_key(OrgId::parse(org).expect("org"), "test", caps)
            .await
            .expect("mint")
            .token
    }

    /// Sends a `webhook.test` to `webhook` (asserting the documented 202) and returns the
    /// event id and the delivery id.
    pub async fn ping_webhook(&self, token: &str, webhook: &str) -> (String, String) {
        let path = format!("/api/v1/webhooks/{webhook}/test");
        let reply = self.client.post(&path, token, &serde_json::json!({})).await;
        assert_eq!(reply.status, 202, "{:?}", reply.json);
        let id = |field: &str| reply.json[field].as_str().expect(field).to_owned();
        (id("eventId"), id("deliveryId"))
    }

    /// Stops the server gracefully.
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
    }
}

/// A response: status, headers and the body parsed as JSON (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body as JSON.
    pub json: Value,
    /// The raw body.
    pub body: Bytes,
}

impl Reply {
    /// The error code of an error body.
    pub fn error_code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

/// A keep-alive HTTP/1 client bound to one base URL.
#[derive(Clone)]
pub struct Client {
    base: String,
    inner: HyperClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Client {
    /// A client for `base` (`http://host:port`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            inner: HyperClient::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends a request with an optional bearer token and raw body.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.try_send_raw(method, path, token, body, headers)
            .await
            .unwrap_or_else(|error| panic!("the server answers: {error}"))
    }

    /// POSTs JSON; `None` when no answer came (the server is gone or cut the connection).
    pub async fn try_post(&self, path: &str, token: &str, body: &Value) -> Option<Reply> {
        let body = serde_json::to_vec(body).expect("json");
        self.try_send_raw("POST", path, Some(token), Some(body), &[])
            .await
            .ok()
    }

    /// [`Self::send_raw`], with a transport failure returned instead of panicking.
    pub async fn try_send_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let response = self
            .inner
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            json,
            body,
        })
    }

    /// Sends JSON.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        self.send_raw(
            method,
            path,
            token,
            body.map(|b| serde_json::to_vec(b).expect("json")),
            &[],
        )
        .await
    }

    /// `GET`.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send("GET", path, Some(token), None).await
    }

    /// `POST` with JSON.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send("POST", path, Some(token), Some(body)).await
    }

    /// `PATCH` with JSON.
    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send("PATCH", path, Some(token), Some(body)).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.send("DELETE", path, Some(token), None).await
    }
}

/// Polls `probe` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod percentile_tests {
    #[test]
    fn nearest_rank_on_the_zero_based_scale() {
        let sorted = [1, 2, 3, 4];
        assert_eq!(super::percentile(&sorted, 0.0), Some(1));
        assert_eq!(super::percentile(&sorted, 50.0), Some(3));
        assert_eq!(super::percentile(&sorted, 99.0), Some(4));
        assert_eq!(super::percentile(&sorted, 100.0), Some(4));
        assert_eq!(super::percentile::<u8>(&[], 50.0), None);
    }
}
