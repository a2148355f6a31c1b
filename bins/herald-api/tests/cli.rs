//! The real `herald-api` binary: admin commands print what the README promises, and the server
//! it starts accepts the key those commands minted and shuts down cleanly on SIGTERM.

use herald_testkit::{eventually, Client};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_herald-api");

fn herald(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/herald.db", dir.display()),
        )
        .env("RUST_LOG", "warn")
        .env_remove("HERALD_SECRETS_KEY")
        .output()
        .expect("run herald-api")
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `herald-api keys create` for `org_acme`, named `ops`, with `capabilities`.
fn create_key(dir: &std::path::Path, capabilities: &str) -> std::process::Output {
    herald(
        dir,
        &[
            "keys",
            "create",
            "--org",
            "org_acme",
            "--name",
            "ops",
            "--capabilities",
            capabilities,
        ],
    )
}

#[test]
fn keys_commands_mint_list_and_revoke() {
    let dir = temp_dir("keys");
    assert!(herald(&dir, &["migrate"]).status.success());
    let out = create_key(&dir, "manage,send,read");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap();
    assert!(
        token.starts_with("hk_") && !token.contains(' '),
        "token alone on the last line: {stdout:?}"
    );

    let list =
        String::from_utf8(herald(&dir, &["keys", "list", "--org", "org_acme"]).stdout).unwrap();
    assert!(
        list.contains("ops") && list.contains("manage") && !list.contains(token),
        "{list}"
    );
    let id = list.split_whitespace().next().unwrap().to_owned();
    assert!(id.starts_with("key_"));

    assert!(herald(&dir, &["keys", "revoke", &id]).status.success());
    assert!(
        !herald(&dir, &["keys", "revoke", &id]).status.success(),
        "a second revoke names no live key"
    );
    assert!(!herald(
        &dir,
        &[
            "keys",
            "create",
            "--org",
            "org_acme",
            "--name",
            "x",
            "--capabilities",
            "root"
        ]
    )
    .status
    .success());
    assert!(!herald(&dir, &["frobnicate"]).status.success());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("secrets.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the generated secrets key is private");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_minted_keys_and_stops_on_sigterm() {
    let dir = temp_dir("serve");
    let out = create_key(&dir, "manage,read");
    let token = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(BIN)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/herald.db", dir.display()),
        )
        .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = Client::new(&format!("http://127.0.0.1:{port}"));
    eventually("the server to listen", Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    let r = client.get("/api/v1/webhooks", &token).await;
    assert_eq!((r.status, r.json["nextCursor"].as_str()), (200, Some("")));

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let child = std::sync::Mutex::new(child);
    let status = eventually("the server to exit", Duration::from_secs(15), || {
        let exited = child.lock().unwrap().try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert!(status.success(), "graceful shutdown exits 0");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn postgres_without_a_secrets_key_refuses_to_start_and_says_why() {
    let out = Command::new(BIN)
        .env("DATABASE_URL", herald_testkit::postgres_admin_url())
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env_remove("HERALD_SECRETS_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HERALD_SECRETS_KEY is required"));
}

/// Runs the binary with `args` in a fresh empty directory, with no store configured (so a
/// server would create `./data` there), and returns the output and the directory's entries.
fn run_in_empty_dir(args: &[&str]) -> (std::process::Output, Vec<String>) {
    let dir = temp_dir(&format!("empty-{}", args.join("_").replace('-', "")));
    let out = Command::new(BIN)
        .args(args)
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("HERALD_SECRETS_KEY")
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .output()
        .expect("run herald-api");
    let entries = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    std::fs::remove_dir_all(dir).unwrap();
    (out, entries)
}

#[test]
fn help_version_and_bad_arguments_touch_nothing() {
    for flag in ["--help", "-h", "help"] {
        let (out, created) = run_in_empty_dir(&[flag]);
        assert!(out.status.success(), "{flag}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("usage:"));
        assert!(created.is_empty(), "{flag} created {created:?}");
    }
    for flag in ["--version", "-V"] {
        let (out, created) = run_in_empty_dir(&[flag]);
        assert!(out.status.success(), "{flag}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("herald-api {}", env!("CARGO_PKG_VERSION"))
        );
        assert!(created.is_empty(), "{flag} created {created:?}");
    }
    for args in [&["--bogus"][..], &["serve", "--bogus"], &["keys", "create"]] {
        let (out, created) = run_in_empty_dir(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("usage:"), "{args:?}: {stderr}");
        assert!(created.is_empty(), "{args:?} created {created:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_request_id_route_and_organization() {
    let dir = temp_dir("json-logs");
    let token = String::from_utf8(create_key(&dir, "manage,read").stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(BIN)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/herald.db", dir.display()),
        )
        .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HERALD_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = Client::new(&format!("http://127.0.0.1:{port}"));
    eventually("the server to listen", Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    let listed = client.get("/api/v1/webhooks", &token).await;
    assert_eq!(listed.status, 200);
    let generated = listed.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 26, "a ULID: {generated}");
    let echoed = client
        .send_raw(
            "GET",
            "/api/v1/webhooks/wh_nope",
            Some(&token),
            None,
            &[("x-request-id", "trace-42")],
        )
        .await;
    assert_eq!(echoed.headers["x-request-id"], "trace-42");

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let request_line = |id: &str| {
        lines
            .iter()
            .find(|l| l["message"] == "request" && l["span"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no request line for {id} in {stderr}"))
    };
    let line = request_line(&generated);
    assert_eq!(line["span"]["route"], "/api/v1/webhooks");
    assert_eq!(line["span"]["org"], "org_acme");
    assert_eq!(
        (line["status"].as_u64(), line["level"].as_str()),
        (Some(200), Some("INFO"))
    );
    let line = request_line("trace-42");
    assert_eq!(line["span"]["route"], "/api/v1/webhooks/{id}");
    assert_eq!(line["status"], 404);
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes in logs to a pipe"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_waha_engine_without_its_required_settings_refuses_to_start_and_says_which() {
    let required = [
        ("HERALD_WAHA_URL", "http://127.0.0.1:9"),
        ("HERALD_WAHA_WEBHOOK_KEY", "hook-secret"),
        ("HERALD_PUBLIC_URL", "http://127.0.0.1:8080"),
    ];
    for (missing, _) in required {
        let dir = temp_dir(&format!("waha-{}", missing.to_lowercase()));
        let mut command = Command::new(BIN);
        command
            .current_dir(&dir)
            .env_remove("DATABASE_URL")
            .env("HERALD_LISTEN", "127.0.0.1:0")
            .env("HERALD_ENGINE", "waha");
        for (name, value) in required {
            if name == missing {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
        let out = command.output().expect("run herald-api");
        assert!(!out.status.success(), "started without {missing}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{missing} is required when HERALD_ENGINE=waha")),
            "{stderr}"
        );
        assert!(!stderr.contains("hook-secret"), "{stderr}");
        let created: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(created.is_empty(), "nothing is created: {created:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
    let out = Command::new(BIN)
        .env("HERALD_ENGINE", "carrier-pigeon")
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be simulator or waha"));
}
