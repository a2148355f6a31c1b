//! A real browser for tests: headless Chromium driven through ChromeDriver over the W3C
//! WebDriver protocol — plain JSON over HTTP, sent with this kit's [`Client`], so no WebDriver
//! crate (and no TLS stack it would bring) is needed — plus ChromeDriver's pass-through to the
//! DevTools protocol for what WebDriver lacks (exact viewport sizes, full-page screenshots,
//! clearing the cache).
//!
//! [`Browser::start`] finds `chromedriver` and `chromium` (`HERALD_CHROMEDRIVER` /
//! `HERALD_CHROMIUM`, else the usual names on `PATH` and in `/usr/bin`), starts ChromeDriver on
//! a free loopback port with a throwaway profile, and opens one session. When either program
//! is missing it prints a loud banner and returns `None`, so a developer without a browser
//! still runs every other test — unless `HERALD_REQUIRE_BROWSER=1` (set by CI), which turns the
//! absence into a failure.
//!
//! Chromium is started with the flags that keep it off the network (no background fetches,
//! component updates, sync or QUIC) and, because tests may run as root in a container, without
//! its sandbox.

use crate::{eventually, Client};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a wait for something on the page lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// WebDriver's key for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver command that failed: ChromeDriver's error code and message.
#[derive(Debug, Clone)]
pub struct WebDriverError {
    /// The HTTP status ChromeDriver answered with.
    pub status: u16,
    /// The WebDriver error code (`no such element`, `stale element reference`, …).
    pub error: String,
    /// ChromeDriver's explanation.
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.error, self.status, self.message)
    }
}

/// A headless Chromium session.
pub struct Browser {
    driver: Option<Child>,
    driver_url: String,
    client: Client,
    session: String,
    profile: PathBuf,
}

/// Whether a missing browser must fail the test run (CI sets `HERALD_REQUIRE_BROWSER=1`).
pub fn browser_required() -> bool {
    std::env::var("HERALD_REQUIRE_BROWSER").is_ok_and(|v| v == "1" || v == "true")
}

fn locate(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            PathBuf::from("/usr/bin"),
            PathBuf::from("/usr/lib/chromium"),
        ])
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session, or returns `None` (after a loud
    /// banner on stderr) when they are not installed and `HERALD_REQUIRE_BROWSER` is unset.
    pub async fn start(test: &str) -> Option<Self> {
        let driver = locate("HERALD_CHROMEDRIVER", &["chromedriver"]);
        let chromium = locate(
            "HERALD_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            let what =
                "chromium and chromedriver (Debian: apt-get install chromium chromium-driver)";
            if browser_required() {
                panic!("HERALD_REQUIRE_BROWSER is set, but {what} were not found");
            }
            // Straight to the process's stderr: the test harness captures `eprintln!` of a
            // passing test, and a skip must not go unnoticed.
            let _ = writeln!(
                std::io::stderr(),
                "\n{bar}\n!! SKIPPED {test}: no browser here.\n!! It needs {what}\n\
                 !! (or HERALD_CHROMIUM / HERALD_CHROMEDRIVER pointing at them).\n\
                 !! CI sets HERALD_REQUIRE_BROWSER=1, which makes this a failure.\n{bar}\n",
                bar = "!".repeat(78)
            );
            return None;
        };
        let port = free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let driver_url = format!("http://127.0.0.1:{port}");
        let profile = std::env::temp_dir().join(format!(
            "herald-chromium-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        let mut browser = Self {
            driver: Some(child),
            client: Client::new(&driver_url),
            driver_url,
            session: String::new(),
            profile,
        };
        eventually("ChromeDriver to accept connections", WAIT, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(drop)
        })
        .await;
        let reply = browser
            .client
            .send(
                "POST",
                "/session",
                None,
                Some(&json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    // Leave alerts open so a test can see that one appeared.
                    "unhandledPromptBehavior": "ignore",
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": [
                            "--headless",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--disable-quic",
                            "--no-first-run",
                            "--no-default-browser-check",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--disable-extensions",
                            "--window-size=1440,900",
                            format!("--user-data-dir={}", browser.profile.display()),
                        ],
                    },
                }}})),
            )
            .await;
        assert_eq!(
            reply.status, 200,
            "ChromeDriver refused to open a session: {}",
            reply.json
        );
        browser.session = reply.json["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Some(browser)
    }

    /// Sends a command to this session (`path` below `/session/{id}`).
    pub async fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let body = match (method, body) {
            (_, Some(body)) => Some(body),
            ("POST", None) => Some(json!({})),
            _ => None,
        };
        let reply = self
            .client
            .send(
                method,
                &format!("/session/{}{path}", self.session),
                None,
                body.as_ref(),
            )
            .await;
        let value = reply.json.get("value").cloned().unwrap_or(Value::Null);
        if (200..300).contains(&reply.status) {
            Ok(value)
        } else {
            Err(WebDriverError {
                status: reply.status,
                error: value["error"]
                    .as_str()
                    .unwrap_or("unknown error")
                    .to_owned(),
                message: value["message"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            })
        }
    }

    /// Navigates to `url` and waits for the load.
    pub async fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })))
            .await
            .unwrap_or_else(|e| panic!("navigating to {url}: {e}"));
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page and returns its
    /// result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
        .unwrap_or_else(|e| panic!("running script `{script}`: {e}"))
    }

    /// Runs a DevTools protocol command through ChromeDriver.
    pub async fn devtools(&self, command: &str, params: Value) -> Value {
        self.command(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": command, "params": params})),
        )
        .await
        .unwrap_or_else(|e| panic!("DevTools {command}: {e}"))
    }

    /// The first element matching the CSS selector, if there is one.
    pub async fn find(&self, css: &str) -> Result<String, WebDriverError> {
        let value = self
            .command(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(value[ELEMENT_KEY]
            .as_str()
            .expect("an element reference")
            .to_owned())
    }

    /// How many elements match the CSS selector.
    pub async fn count(&self, css: &str) -> usize {
        self.command(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .await
        .map(|v| v.as_array().map_or(0, Vec::len))
        .unwrap_or(0)
    }

    /// Waits until an element matches the selector (and is displayed), and returns it.
    pub async fn wait_for(&self, css: &str) -> String {
        eventually(&format!("`{css}` to show"), WAIT, || async {
            let id = self.find(css).await.ok()?;
            let shown = self
                .command("GET", &format!("/element/{id}/displayed"), None)
                .await
                .ok()?;
            (shown == json!(true)).then_some(id)
        })
        .await
    }

    /// Waits until the text of the element matching `css` contains `needle`; returns the text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        eventually(&format!("`{css}` to contain {needle:?}"), WAIT, || async {
            let text = self.text(css).await.ok()?;
            text.contains(needle).then_some(text)
        })
        .await
    }

    /// Waits until `script` (a function body) returns something other than null/false/0/"".
    pub async fn wait_until(&self, what: &str, script: &str, args: Value) -> Value {
        eventually(what, WAIT, || async {
            let value = self
                .command(
                    "POST",
                    "/execute/sync",
                    Some(json!({"script": script, "args": args.clone()})),
                )
                .await
                .ok()?;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            truthy.then_some(value)
        })
        .await
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String, WebDriverError> {
        let id = self.find(css).await?;
        let value = self
            .command("GET", &format!("/element/{id}/text"), None)
            .await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Clicks the element matching `css`, waiting until it exists and takes the click.
    pub async fn click(&self, css: &str) {
        eventually(&format!("`{css}` to take a click"), WAIT, || async {
            let id = self.find(css).await.ok()?;
            self.command("POST", &format!("/element/{id}/click"), None)
                .await
                .ok()
                .map(drop)
        })
        .await
    }

    /// Replaces the value of the input matching `css` by typing `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        eventually(&format!("`{css}` to take input"), WAIT, || async {
            let id = self.find(css).await.ok()?;
            self.command("POST", &format!("/element/{id}/clear"), None)
                .await
                .ok()?;
            self.command(
                "POST",
                &format!("/element/{id}/value"),
                Some(json!({ "text": text })),
            )
            .await
            .ok()
            .map(drop)
        })
        .await
    }

    /// The text of an open alert, confirm or prompt dialog, if one is open.
    pub async fn alert_text(&self) -> Option<String> {
        match self.command("GET", "/alert/text", None).await {
            Ok(value) => Some(value.as_str().unwrap_or_default().to_owned()),
            Err(e) if e.error == "no such alert" => None,
            Err(e) => panic!("asking for an alert: {e}"),
        }
    }

    /// The browser's console messages since the last call (level and text).
    pub async fn console_log(&self) -> Vec<(String, String)> {
        self.command("POST", "/se/log", Some(json!({"type": "browser"})))
            .await
            .map(|value| {
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|entry| {
                        (
                            entry["level"].as_str().unwrap_or_default().to_owned(),
                            entry["message"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Makes the page's viewport exactly `width` × `height` CSS pixels, with overlay scrollbars
    /// (as on phones), so the page's layout width is exactly `width`.
    pub async fn viewport(&self, width: u32, height: u32) {
        self.devtools("Emulation.setScrollbarsHidden", json!({"hidden": true}))
            .await;
        self.devtools(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    }

    /// Saves a PNG of the whole page (beyond the viewport) to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let shot = self
            .devtools(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Ends the session and stops ChromeDriver.
    pub async fn quit(mut self) {
        let _ = self.command("DELETE", "", None).await;
        self.session.clear();
        self.stop_driver();
    }

    fn stop_driver(&mut self) {
        if let Some(mut child) = self.driver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked never called `quit`: end the session (which closes Chromium)
        // from a thread of its own, since this may run inside the test's runtime.
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.driver_url, self.session);
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let (base, path) = url.split_at(url.find("/session/")?);
                    let client = Client::new(base);
                    tokio::time::timeout(
                        Duration::from_secs(5),
                        client.send("DELETE", path, None, None),
                    )
                    .await
                    .ok()
                    .map(drop)
                })
            })
            .join();
        }
        self.stop_driver();
    }
}
