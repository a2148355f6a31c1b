//! `bench-auth` (`just bench-auth`): what authentication costs.
//!
//! 1. Microbenchmarks of the auth adapter alone, one thread: verifications per second of an
//!    RS256, an ES256 and an EdDSA login JWT (signature checked every time, and the repeat of a
//!    token already verified), and of an API key (cached, and looked up in the embedded store
//!    every time).
//! 2. Authenticated `GET /api/v1/webhooks` on the embedded store over keep-alive connections,
//!    with each kind of token, on a server with the normal caches and on one with every auth
//!    cache off (so each request verifies a signature or queries the key), plus unauthenticated
//!    `GET /healthz` as the server's ceiling.
//! 3. Authentication's share of a request: the per-verification time over the per-request time.
//!
//! `BENCH_SECS` (default 5) sets each HTTP run's length, `BENCH_CONNECTIONS` (default 16) the
//! concurrency. Client and server share this machine's cores, as in production-like tests here.

use anyhow::{Context, Result};
use herald::config::Config;
use herald_auth::{ApiKeyAuthenticator, BearerAuthenticator, JwksFetcher, JwtConfig, JwtVerifier};
use herald_bench::load::{self, LoadConfig, LoadReport};
use herald_domain::ports::{Authenticator, SystemClock};
use herald_domain::{Capabilities, OrgId};
use herald_testkit::jwks::{claims, jwks};
use herald_testkit::SigningKey;
use http_body_util::Full;
use hyper::body::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ORG: &str = "org_bench";

/// The JWKS as a constant document: the microbenchmarks measure verification, not HTTP.
struct StaticJwks(Vec<u8>);

impl JwksFetcher for StaticJwks {
    fn fetch(&self) -> Result<Vec<u8>, String> {
        Ok(self.0.clone())
    }
}

struct Keys {
    rsa: SigningKey,
    ec: SigningKey,
    ed: SigningKey,
}

impl Keys {
    fn load() -> Self {
        Self {
            rsa: SigningKey::rsa(1),
            ec: SigningKey::ec(1),
            ed: SigningKey::ed(1),
        }
    }

    fn all(&self) -> [(&'static str, &SigningKey); 3] {
        [
            ("RS256", &self.rsa),
            ("ES256", &self.ec),
            ("EdDSA", &self.ed),
        ]
    }
}

async fn verifier(keys: &Keys, cache: usize) -> Result<Arc<JwtVerifier>> {
    let document = serde_json::to_vec(&jwks(&[&keys.rsa, &keys.ec, &keys.ed]))?;
    let mut config = JwtConfig::new("static://bench");
    config.token_cache_capacity = cache;
    let verifier = Arc::new(JwtVerifier::with_fetcher(
        config,
        Arc::new(StaticJwks(document)),
    ));
    verifier.refresh().await.map_err(anyhow::Error::msg)?;
    Ok(verifier)
}

/// Runs `op` until `budget` has passed (at least `min` times) and returns the mean time per op.
async fn time_per_op<F, Fut>(budget: Duration, min: u32, mut op: F) -> Duration
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..min.min(50) {
        op(i).await; // warm-up
    }
    let started = Instant::now();
    let mut n = 0u32;
    while n < min || started.elapsed() < budget {
        op(n).await;
        n += 1;
    }
    started.elapsed() / n
}

fn per_second(d: Duration) -> f64 {
    1.0 / d.as_secs_f64()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A throwaway embedded-store configuration in `dir`.
fn embedded_config(dir: &std::path::Path, jwks_url: Option<String>) -> Config {
    Config {
        database: herald::store::Database::Sqlite(dir.join("herald.db")),
        secrets_key: Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned()),
        listen: ([127, 0, 0, 1], 0).into(),
        jwks_url,
        ..Config::default()
    }
}

struct Server {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Serves the API the way `herald::App` does, with the auth caches set by the caller (App
/// always uses the defaults; the uncached server exists only to measure).
async fn serve(config: &Config, jwt: Arc<JwtVerifier>, api_key_ttl: Duration) -> Result<Server> {
    let parts = herald::app::assemble(config).await?;
    let api_keys = ApiKeyAuthenticator::new(parts.store.clone(), parts.gateway.clock.clone())
        .with_cache_ttl(api_key_ttl);
    let auth = Arc::new(BearerAuthenticator::new(api_keys).with_jwt(jwt));
    let state = Arc::new(herald::http::AppState::new(parts.gateway.clone(), auth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(herald::http::run(listener, state, async move {
        let _ = stopped.await;
    }));
    Ok(Server { addr, stop, task })
}

impl Server {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn get(path: &'static str, token: Option<String>) -> load::RequestFactory {
    let authorization = token.map(|t| format!("Bearer {t}"));
    Arc::new(move |_| {
        let mut builder = hyper::Request::get(path).header("host", "bench");
        if let Some(a) = &authorization {
            builder = builder.header("authorization", a.as_str());
        }
        builder.body(Full::new(Bytes::new())).expect("request")
    })
}

fn rotating(path: &'static str, tokens: Arc<Vec<String>>) -> load::RequestFactory {
    let headers: Arc<Vec<String>> =
        Arc::new(tokens.iter().map(|t| format!("Bearer {t}")).collect());
    Arc::new(move |n| {
        hyper::Request::get(path)
            .header("host", "bench")
            .header(
                "authorization",
                headers[(n % headers.len() as u64) as usize].as_str(),
            )
            .body(Full::new(Bytes::new()))
            .expect("request")
    })
}

fn print_run(label: &str, report: &LoadReport, cores: usize) {
    println!(
        "  {label:<52} {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   {:>6.1} µs/request{}",
        report.per_second(),
        report.p50.as_secs_f64() * 1e3,
        report.p99.as_secs_f64() * 1e3,
        us(report.cpu_per_request(cores)),
        if report.unexpected > 0 {
            format!("   ({} unexpected statuses!)", report.unexpected)
        } else {
            String::new()
        }
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let connections: usize = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let keys = Keys::load();
    println!("bench-auth: {cores} cores, {connections} connections, {secs} s per HTTP run\n");

    // ---- 1. the adapter alone -------------------------------------------------------------
    println!("1. auth adapter alone (one thread, verifications/s)");
    let budget = Duration::from_millis(1500);
    let uncached = verifier(&keys, 0).await?;
    let cached = verifier(&keys, 10_000).await?;
    let mut micro = Vec::new();
    for (name, key) in keys.all() {
        let token = key.sign(&claims(ORG, "owner"));
        let t_uncached = time_per_op(budget, 200, |_| {
            let (v, t) = (&uncached, &token);
            async move {
                v.verify(t).await.expect("valid token");
            }
        })
        .await;
        let t_cached = time_per_op(budget, 10_000, |_| {
            let (v, t) = (&cached, &token);
            async move {
                v.verify(t).await.expect("valid token");
            }
        })
        .await;
        println!(
            "  {name} JWT   signature checked: {:>9.0}/s ({:>7.1} µs)   repeat token (cached): {:>9.0}/s ({:>5.2} µs)",
            per_second(t_uncached),
            us(t_uncached),
            per_second(t_cached),
            us(t_cached)
        );
        micro.push((name, t_uncached, t_cached));
    }

    let dir = std::env::temp_dir().join(format!("herald-bench-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let micro_config = embedded_config(&dir.join("micro"), None);
    std::fs::create_dir_all(dir.join("micro"))?;
    let parts = herald::app::assemble(&micro_config).await?;
    let minted = parts
        .gateway
        .mint_api_key(
            OrgId::parse(ORG).context("org")?,
            "bench",
            Capabilities::parse_list("manage,read").map_err(anyhow::Error::msg)?,
        )
        .await?;
    let key_cached = BearerAuthenticator::new(ApiKeyAuthenticator::new(
        parts.store.clone(),
        Arc::new(SystemClock),
    ));
    let key_uncached = BearerAuthenticator::new(
        ApiKeyAuthenticator::new(parts.store.clone(), Arc::new(SystemClock))
            .with_cache_ttl(Duration::ZERO),
    );
    let t_key_cached = time_per_op(budget, 10_000, |_| {
        let (a, t) = (&key_cached, &minted.token);
        async move {
            a.authenticate(t).await.expect("valid key");
        }
    })
    .await;
    let t_key_uncached = time_per_op(budget, 500, |_| {
        let (a, t) = (&key_uncached, &minted.token);
        async move {
            a.authenticate(t).await.expect("valid key");
        }
    })
    .await;
    println!(
        "  API key     store lookup:      {:>9.0}/s ({:>7.1} µs)   cached (≤ 2 s):        {:>9.0}/s ({:>5.2} µs)",
        per_second(t_key_uncached),
        us(t_key_uncached),
        per_second(t_key_cached),
        us(t_key_cached)
    );

    // ---- 2. over HTTP -----------------------------------------------------------------------
    println!("\n2. authenticated GET /api/v1/webhooks, embedded store, 10 webhooks in the list");
    let http_dir = dir.join("http");
    std::fs::create_dir_all(&http_dir)?;
    let config = embedded_config(&http_dir, None);
    let setup = herald::app::assemble(&config).await?;
    let org = OrgId::parse(ORG).context("org")?;
    let admin = setup
        .gateway
        .mint_api_key(
            org.clone(),
            "bench",
            Capabilities::parse_list("manage,read").map_err(anyhow::Error::msg)?,
        )
        .await?
        .token;
    let load_config = LoadConfig {
        connections,
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs(secs),
        expect_status: 200,
    };
    let normal = serve(
        &config,
        verifier(&keys, 10_000).await?,
        ApiKeyAuthenticator::CACHE_TTL,
    )
    .await?;
    {
        let client = herald_testkit::Client::new(&format!("http://{}", normal.addr));
        for i in 0..10 {
            let reply = client
                .post(
                    "/api/v1/webhooks",
                    &admin,
                    &serde_json::json!({"url": format!("https://example.com/hook/{i}")}),
                )
                .await;
            anyhow::ensure!(reply.status == 201, "creating a webhook: {:?}", reply.json);
        }
    }
    let mut http = Vec::new();
    let baseline = load::run(normal.addr, get("/healthz", None), &load_config).await?;
    print_run("GET /healthz (no auth, no store)", &baseline, cores);
    let with_key = load::run(
        normal.addr,
        get("/api/v1/webhooks", Some(admin.clone())),
        &load_config,
    )
    .await?;
    print_run("API key (cached)", &with_key, cores);
    http.push(("API key", with_key.clone()));
    for (name, key) in keys.all() {
        let token = key.sign(&claims(ORG, "owner"));
        let report = load::run(
            normal.addr,
            get("/api/v1/webhooks", Some(token)),
            &load_config,
        )
        .await?;
        print_run(
            &format!("{name} JWT (same token each time: cached)"),
            &report,
            cores,
        );
        http.push((name, report));
    }
    normal.shutdown().await;

    let bare = serve(&config, verifier(&keys, 0).await?, Duration::ZERO).await?;
    let bare_key = load::run(
        bare.addr,
        get("/api/v1/webhooks", Some(admin.clone())),
        &load_config,
    )
    .await?;
    print_run(
        "API key (no cache: store lookup every request)",
        &bare_key,
        cores,
    );
    let mut http_uncached = vec![("API key", bare_key)];
    for (name, key) in keys.all() {
        let token = key.sign(&claims(ORG, "owner"));
        let report = load::run(
            bare.addr,
            get("/api/v1/webhooks", Some(token)),
            &load_config,
        )
        .await?;
        print_run(
            &format!("{name} JWT (no cache: signature every request)"),
            &report,
            cores,
        );
        http_uncached.push((name, report));
    }
    // Distinct tokens on the normal cache path: every token is seen once (first use of a token).
    let fresh: Arc<Vec<String>> = Arc::new(
        (0..20_000)
            .map(|_| keys.ed.sign(&claims(ORG, "owner")))
            .collect(),
    );
    bare.shutdown().await;
    let first_use = serve(
        &config,
        verifier(&keys, 10_000).await?,
        ApiKeyAuthenticator::CACHE_TTL,
    )
    .await?;
    let report = load::run(
        first_use.addr,
        rotating("/api/v1/webhooks", fresh),
        &load_config,
    )
    .await?;
    print_run(
        "EdDSA JWT, 20,000 distinct tokens (cache misses)",
        &report,
        cores,
    );
    first_use.shutdown().await;

    // ---- 3. the share ----------------------------------------------------------------------
    println!("\n3. authentication's share of a request (per-verification µs / per-request µs)");
    let request_us = |name: &str, list: &[(&str, LoadReport)]| {
        list.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| us(r.cpu_per_request(cores)))
            .unwrap_or(f64::NAN)
    };
    for (name, t_uncached, t_cached) in &micro {
        let cached_share = us(*t_cached) / request_us(name, &http) * 100.0;
        let uncached_share = us(*t_uncached) / request_us(name, &http_uncached) * 100.0;
        println!(
            "  {name} JWT   cached: {:>5.2} µs of {:>6.1} µs = {cached_share:>5.1}%    signature every time: {:>7.1} µs of {:>6.1} µs = {uncached_share:>5.1}%",
            us(*t_cached),
            request_us(name, &http),
            us(*t_uncached),
            request_us(name, &http_uncached),
        );
    }
    println!(
        "  API key     cached: {:>5.2} µs of {:>6.1} µs = {:>5.1}%    store lookup every time: {:>7.1} µs of {:>6.1} µs = {:>5.1}%",
        us(t_key_cached),
        request_us("API key", &http),
        us(t_key_cached) / request_us("API key", &http) * 100.0,
        us(t_key_uncached),
        request_us("API key", &http_uncached),
        us(t_key_uncached) / request_us("API key", &http_uncached) * 100.0,
    );
    println!(
        "  (per-request µs = {cores} cores × run time ÷ requests; it includes the load generator's share)"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
