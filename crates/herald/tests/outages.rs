//! Store outages look like outages: with Postgres refusing connections, or the embedded store's
//! disk full, writes answer `503 unavailable` with `Retry-After` and a generic message,
//! `/readyz` (of the API and of the standalone dispatcher) answers 503 without driver text while
//! `/healthz` still answers 200, and everything recovers by itself when the store does.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use herald_store::Database;
use herald_testkit::openapi::Conformance;
use herald_testkit::{eventually, postgres_admin_url, Backend, Reply, TestDb, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Words of driver and OS errors that must never reach a client.
const DRIVER_WORDS: &[&str] = &[
    "error occurred",
    "connect",
    "database",
    "postgres",
    "sqlite",
    "disk",
    "space",
    "pool",
];

fn assert_generic(reply: &Reply, what: &str) {
    let text = String::from_utf8_lossy(&reply.body).to_ascii_lowercase();
    for word in DRIVER_WORDS {
        assert!(!text.contains(word), "{what} shows `{word}`: {text}");
    }
}

/// The answer is documented for the route (a 503 with its `Retry-After`).
fn assert_documented(method: &str, path: &str, reply: &Reply) {
    static DOCUMENT: std::sync::OnceLock<Conformance> = std::sync::OnceLock::new();
    DOCUMENT
        .get_or_init(|| Conformance::new(herald_http::openapi::document().clone()))
        .assert(method, path, reply);
}

fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {:?}", reply.json);
    assert_eq!(reply.error_code(), "unavailable", "{what}");
    assert_eq!(
        reply
            .headers
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("5"),
        "{what} says when to retry"
    );
    assert_generic(reply, what);
}

fn assert_not_ready(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {:?}", reply.json);
    assert_eq!(reply.json["status"], "unavailable", "{what}");
    assert_eq!(reply.json["checks"]["store"], "unavailable", "{what}");
    assert_generic(reply, what);
}

async fn admin(sql: &str) {
    let mut conn = AsyncPgConnection::establish(&postgres_admin_url())
        .await
        .expect("admin connection");
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The test database's name.
fn database_name(server: &TestServer) -> String {
    let Database::Postgres(url) = &server.config.database else {
        panic!("a Postgres test");
    };
    url.rsplit('/').next().unwrap().to_owned()
}

/// The standalone dispatcher on the server's database, serving its operations endpoints.
struct Dispatcher {
    client: herald_testkit::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Dispatcher {
    async fn start(server: &TestServer) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client =
            herald_testkit::Client::new(&format!("http://{}", listener.local_addr().unwrap()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = server.config.clone();
        let task = tokio::spawn(async move {
            herald::dispatch::run_dispatcher_on(config, listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("the dispatcher runs");
        });
        Self {
            client,
            stop: Some(stop),
            task,
        }
    }

    async fn readyz(&self) -> Reply {
        self.client.send("GET", "/readyz", None, None).await
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = (&mut self.task).await;
    }
}

fn webhook(n: usize) -> Value {
    json!({"url": format!("https://example.com/hook/{n}"), "events": ["*"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refusing_connections_is_a_503_and_not_ready_until_it_is_back() {
    let server = TestServer::start(Backend::Postgres).await;
    let token = server.api_key("org_outage", "manage,read").await;
    let dispatcher = Dispatcher::start(&server).await;
    let created = server
        .client
        .post("/api/v1/webhooks", &token, &webhook(0))
        .await;
    assert_eq!(created.status, 201);
    eventually("the dispatcher to be ready", WAIT, || async {
        (dispatcher.readyz().await.status == 200).then_some(())
    })
    .await;

    // Cut the database off: new connections refused, existing ones terminated.
    let name = database_name(&server);
    admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .await;

    let write = eventually("a write to fail with 503", WAIT, || async {
        let reply = server
            .client
            .post("/api/v1/webhooks", &token, &webhook(1))
            .await;
        (reply.status != 201).then_some(reply)
    })
    .await;
    assert_unavailable(&write, "a write during the outage");
    assert_documented("POST", "/api/v1/webhooks", &write);
    assert_unavailable(
        &server.client.get("/api/v1/webhooks", &token).await,
        "a read during the outage",
    );
    let ready = eventually("/readyz to report the outage", WAIT, || async {
        let reply = server.client.send("GET", "/readyz", None, None).await;
        (reply.status != 200).then_some(reply)
    })
    .await;
    assert_not_ready(&ready, "the API's /readyz");
    assert_documented("GET", "/readyz", &ready);
    let ready = eventually("the dispatcher's /readyz to report it", WAIT, || async {
        let reply = dispatcher.readyz().await;
        (reply.status != 200).then_some(reply)
    })
    .await;
    assert_not_ready(&ready, "the dispatcher's /readyz");
    let health = server.client.send("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200, "the process itself is fine");

    admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    eventually("writes to work again", WAIT, || async {
        let reply = server
            .client
            .post("/api/v1/webhooks", &token, &webhook(2))
            .await;
        (reply.status == 201).then_some(())
    })
    .await;
    eventually("/readyz to be ready again", WAIT, || async {
        let api = server.client.send("GET", "/readyz", None, None).await;
        let dispatcher = dispatcher.readyz().await;
        (api.status == 200 && dispatcher.status == 200).then_some(())
    })
    .await;
    dispatcher.stop().await;
}

/// A small tmpfs holding the embedded store, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// `None` when this machine does not let the test mount one (not root, no `mount`).
    fn mount(size: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "herald-tmpfs-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            Some(Self(dir))
        } else {
            let _ = std::fs::remove_dir(&dir);
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fills the file system holding `path` with `path` itself, until it is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("filler file");
    let chunk = vec![0xA5u8; 16 * 1024];
    while file.write_all(&chunk).is_ok() && file.sync_data().is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_503_and_not_ready_until_there_is_room() {
    let Some(tmpfs) = Tmpfs::mount("16m") else {
        eprintln!("skipped: this machine does not let the test mount a tmpfs (needs root)");
        return;
    };
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = db.config();
    config.database = Database::Sqlite(tmpfs.0.join("herald.db"));
    let mut server = TestServer::start_on(db, config).await;
    let token = server.api_key("org_full", "manage,read").await;
    assert_eq!(
        server
            .client
            .post("/api/v1/webhooks", &token, &webhook(0))
            .await
            .status,
        201
    );

    let filler = tmpfs.0.join("filler");
    fill(&filler);
    // Whatever room the write-ahead log still has is used up by a few writes.
    let mut failed = None;
    for n in 1..=200 {
        let reply = server
            .client
            .post("/api/v1/webhooks", &token, &webhook(n))
            .await;
        if reply.status != 201 {
            failed = Some(reply);
            break;
        }
    }
    let failed = failed.expect("writes fail once the disk is full");
    assert_unavailable(&failed, "a write on a full disk");
    assert_documented("POST", "/api/v1/webhooks", &failed);
    let ready = eventually("/readyz to report the full disk", WAIT, || async {
        let reply = server.client.send("GET", "/readyz", None, None).await;
        (reply.status != 200).then_some(reply)
    })
    .await;
    assert_not_ready(&ready, "/readyz on a full disk");
    assert_eq!(
        server.client.get("/api/v1/webhooks", &token).await.status,
        200,
        "reads still work"
    );

    std::fs::remove_file(&filler).unwrap();
    eventually("writes to work again", WAIT, || async {
        let reply = server
            .client
            .post("/api/v1/webhooks", &token, &webhook(999))
            .await;
        (reply.status == 201).then_some(())
    })
    .await;
    eventually("/readyz to be ready again", WAIT, || async {
        let reply = server.client.send("GET", "/readyz", None, None).await;
        (reply.status == 200).then_some(())
    })
    .await;
    server.stop().await;
    drop(tmpfs);
}
