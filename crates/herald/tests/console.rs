//! The web console, served by the real server (embedded store) and used in a real browser.
//!
//! Without a browser: the page and its files are served with their security and caching
//! headers, and `GET /api/v1/me` describes API keys and login tokens.
//!
//! With headless Chromium driven over WebDriver ([`herald_testkit::browser`]), one browser
//! session walks through the console: sign in; create a webhook pointed at a local receiver
//! and see its generated secret once; rotate the secret and see the new one once (and neither
//! after a reload); ping it and read the failed attempt (and the receiver's markup reply, as
//! text) in the timeline; retry it into a success; see its health badge turn to failing and
//! its stats; page through the delivery list by cursor; watch live events arrive — a message
//! body that is markup shows as text and runs nothing — and resume after the server restarts;
//! filter the organization's deliveries by event type; see sessions and a poll's tally as
//! bars, updated live; a viewer sees no control it cannot use; a revoked and an expired token
//! are refused with a message and nothing of the old view stays. A second, shorter session
//! runs Herald with the WAHA engine against the WAHA double: a session waiting for its scan
//! shows its QR code, and a failed one can be restarted. Every page is checked at 360 and
//! 1440 px wide for sideways overflow and saved under `target/console-screenshots/`. The first
//! load's transfer size and time to the webhook list are printed.

use herald_testkit::browser;
use herald_testkit::jwks::{claims, now_s};
use herald_testkit::waha::WahaDouble;
use herald_testkit::{
    eventually, Backend, Behaviour, Browser, JwksServer, Receiver, SigningKey, TestServer,
};
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

const ORG: &str = "org_console";
const CHAT: &str = "120363000000000001@g.us";
const ALICE: &str = "15550001111@c.us";
const BOB: &str = "15550002222@c.us";
const MARKUP: &str = "<img src=x onerror=alert(1)>";
const RECEIVER_REPLY: &str = "<b>down</b><img src=x onerror=alert(3)>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_its_security_and_caching_headers() {
    let server = TestServer::start(Backend::Sqlite).await;
    let c = &server.client;
    let page = c.send("GET", "/console", None, None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert_eq!(page.headers["cache-control"], "no-cache");
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no other origin"
    );
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline code"
    );

    let etag = page.headers["etag"].to_str().unwrap().to_owned();
    let again = c
        .send_raw("GET", "/console", None, None, &[("if-none-match", &etag)])
        .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    let script = c.send("GET", "/console/main.js", None, None).await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.headers["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(script.headers["x-content-type-options"], "nosniff");
    let missing = c.send("GET", "/console/nope.js", None, None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "not_found");
    let slash = c.send("GET", "/console/", None, None).await;
    assert_eq!(slash.status, 308);
    assert_eq!(slash.headers["location"], "../console");
    let post = c.send("POST", "/console", None, Some(&json!({}))).await;
    assert_eq!(post.status, 405);

    // No file hands text to the HTML parser (the browser test shows it at work).
    for name in [
        "main.js",
        "api.js",
        "dom.js",
        "live.js",
        "webhooks.js",
        "deliveries.js",
        "events.js",
        "sessions.js",
        "polls.js",
        "qrcode.js",
        "console.css",
    ] {
        let file = c.send("GET", &format!("/console/{name}"), None, None).await;
        assert_eq!(file.status, 200, "{name}");
        let text = String::from_utf8_lossy(&file.body);
        for forbidden in ["innerHTML", "outerHTML", "insertAdjacentHTML", "eval("] {
            assert!(!text.contains(forbidden), "{name} uses {forbidden}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_describes_the_token() {
    let key = SigningKey::ed(1);
    let jwks = JwksServer::with_keys(&[&key]).await;
    let url = jwks.url();
    let server = TestServer::start_with(Backend::Sqlite, move |c| c.jwks_url = Some(url)).await;
    let c = &server.client;

    let api_key = server.api_key(ORG, "read,manage").await;
    let me = c.get("/api/v1/me", &api_key).await;
    assert_eq!(me.status, 200, "{:?}", me.json);
    assert_eq!(
        me.json,
        json!({"organizationId": ORG, "capabilities": ["read", "manage"],
               "credential": "api_key", "expiresAt": null})
    );

    let mut viewer = claims("org_people", "viewer");
    let exp = now_s() + 600;
    viewer["exp"] = json!(exp);
    let me = c.get("/api/v1/me", &key.sign(&viewer)).await;
    assert_eq!(me.status, 200, "{:?}", me.json);
    assert_eq!(
        me.json,
        json!({"organizationId": "org_people", "capabilities": ["read"],
               "credential": "login", "expiresAt": exp * 1000})
    );

    let nobody = c.send("GET", "/api/v1/me", None, None).await;
    assert_eq!(nobody.status, 401);
    let stranger = c.get("/api/v1/me", "hk_0000").await;
    assert_eq!(stranger.status, 401);
}

/// Where screenshots go: `$CARGO_TARGET_DIR/console-screenshots`, else the workspace's
/// `target/console-screenshots`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("console-screenshots")
}

/// The console open in a browser, with the server it talks to.
struct Session {
    browser: Browser,
    base: String,
    shots: PathBuf,
}

impl Session {
    /// Navigates to a view of the console (`#hash`).
    async fn show(&self, hash: &str) {
        self.browser
            .execute("location.hash = arguments[0];", json!([hash]))
            .await;
    }

    async fn sign_in(&self, token: &str) {
        self.browser.wait_for("#token").await;
        self.browser.fill("#token", token).await;
        self.browser.click("#signin").await;
    }

    async fn sign_out(&self) {
        self.browser.click("#signout").await;
        self.browser.wait_for("#token").await;
    }

    /// Asserts nothing on the page reaches past the right edge of the viewport (so the page
    /// never scrolls sideways, and nothing sticks out into the margins either), then saves a
    /// screenshot named `name-<width>`.
    async fn check_width(&self, name: &str, width: u32) {
        let overflow = self
            .browser
            .execute(
                "const d = document.documentElement;\
                 const limit = d.clientWidth + 0.5;\
                 const clipped = (el) => {\
                   for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {\
                     if (getComputedStyle(p).overflowX !== 'visible') return true;\
                   }\
                   return false;\
                 };\
                 const out = [...document.body.querySelectorAll('*')].filter((el) => {\
                   const r = el.getBoundingClientRect();\
                   return r.width > 0 && r.right > limit && !clipped(el);\
                 });\
                 return { scroll: d.scrollWidth, client: d.clientWidth,\
                   out: out.slice(0, 5).map((el) => `${el.tagName}.${el.className}#${el.id} \
                     ends at ${Math.round(el.getBoundingClientRect().right)}`) };",
                json!([]),
            )
            .await;
        assert!(
            overflow["scroll"].as_u64() <= overflow["client"].as_u64()
                && overflow["out"] == json!([]),
            "{name} at {width} px is too wide: {overflow}"
        );
        self.browser
            .screenshot(&self.shots.join(format!("{name}-{width}.png")))
            .await;
    }

    /// Checks `name` at both widths (the page must already show it), ending at 1440 px.
    async fn both_widths(&self, name: &str, ready: &str) {
        for width in [360, 1440] {
            self.browser.viewport(width, 900).await;
            self.browser.wait_for(ready).await;
            self.check_width(name, width).await;
        }
    }

    async fn count(&self, css: &str) -> usize {
        self.browser.count(css).await
    }

    /// How many requests the page has made to the API so far.
    async fn api_requests(&self) -> u64 {
        self.browser
            .execute(
                "return performance.getEntriesByType('resource')\
                 .filter((e) => e.name.includes('/api/v1/')).length;",
                json!([]),
            )
            .await
            .as_u64()
            .unwrap()
    }
}

/// The secret the page shows once (the value of its read-only box).
async fn secret_shown(s: &Session) -> String {
    let value = s
        .browser
        .execute(
            "return document.getElementById('secret-value').value;",
            json!([]),
        )
        .await;
    value.as_str().unwrap().to_owned()
}

/// Reports an inbound event on `session` with the `ingest` key; returns its event id.
async fn ingest(server: &TestServer, token: &str, session: &str, body: Value) -> String {
    let reply = server
        .client
        .post(&format!("/api/v1/sessions/{session}/inbound"), token, &body)
        .await;
    assert_eq!(reply.status, 202, "{:?}", reply.json);
    reply.json["eventId"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let Some(browser) = Browser::start("console::the_console_in_a_real_browser").await else {
        return;
    };
    let key = SigningKey::ed(1);
    let jwks = JwksServer::with_keys(&[&key]).await;
    let url = jwks.url();
    let mut server = TestServer::start_with(Backend::Sqlite, move |c| c.jwks_url = Some(url)).await;
    let admin = server.api_key(ORG, "manage,send,read").await;
    let engine = server.api_key(ORG, "ingest").await;
    let viewer = server.api_key(ORG, "read").await;
    let receiver = Receiver::start(Behaviour::Body(500, RECEIVER_REPLY)).await;
    let s = Session {
        browser,
        base: server.base_url.clone(),
        shots: screenshot_dir(),
    };
    let b = &s.browser;

    // The sign-in page, and a first sign-in.
    b.goto(&format!("{}/console", s.base)).await;
    b.wait_for("#token").await;
    s.both_widths("signin", "#token").await;
    s.sign_in(&admin).await;
    b.wait_for_text("#who", ORG).await;
    assert_eq!(b.text("#caps").await.unwrap(), "read, send, manage");
    b.wait_for_text("#webhook-list", "No webhooks yet").await;
    // The token is in this tab's sessionStorage, and in no URL.
    let href = b.execute("return location.href;", json!([])).await;
    assert!(!href.as_str().unwrap().contains(&admin));

    // Create a webhook through the form: one attempt, so a failure dead-letters at once.
    b.click("#new-webhook").await;
    b.wait_for("#webhook-form").await;
    b.fill("#wh-url", &receiver.url()).await;
    b.fill("#wh-attempts", "1").await;
    b.fill("#wh-headers", "X-Tenant: <b>acme</b>").await;
    s.both_widths("webhook-form", "#webhook-form").await;
    b.click("#wh-save").await;
    b.wait_for_text("#webhook-list", &receiver.url()).await;
    // No secret was given: Herald generated one, and the console shows it this once.
    b.wait_for_text("#secret-once", "shown once").await;
    let generated = secret_shown(&s).await;
    assert!(generated.starts_with("whsec_"), "{generated}");
    b.wait_for(".webhook .health[data-health='healthy']").await;
    s.both_widths("webhook-created-secret", "#secret-once")
        .await;
    b.click("#secret-done").await;
    assert_eq!(s.count("#secret-once").await, 0);
    let hooks = server.client.get("/api/v1/webhooks", &admin).await;
    let webhook = hooks.json["data"][0].clone();
    assert_eq!(webhook["retryPolicy"]["attempts"], 1);
    assert_eq!(webhook["customHeaders"]["X-Tenant"], "<b>acme</b>");
    let webhook_id = webhook["id"].as_str().unwrap().to_owned();
    b.wait_for_text("#webhook-list", "X-Tenant: <b>acme</b>")
        .await;
    assert_eq!(
        s.count("#webhook-list b").await,
        0,
        "a header value is text"
    );
    s.both_widths("webhooks", ".webhook").await;

    // Disable, enable and edit it from its card.
    let hook = |path: &str| format!("/api/v1/webhooks/{webhook_id}{path}");
    b.click(".webhook [data-action=toggle]").await;
    b.wait_for_text(".webhook .card-head", "disabled").await;
    assert_eq!(
        server.client.get(&hook(""), &admin).await.json["active"],
        false
    );
    b.click(".webhook [data-action=toggle]").await;
    b.wait_for_text(".webhook .card-head", "active").await;
    assert_eq!(
        server.client.get(&hook(""), &admin).await.json["active"],
        true
    );
    b.click(".webhook [data-action=edit]").await;
    b.wait_for("#webhook-form").await;
    b.wait_until(
        "the form to show the stored URL",
        "return document.getElementById('wh-url').value === arguments[0];",
        json!([receiver.url()]),
    )
    .await;
    b.fill("#wh-headers", "X-Tenant: acme").await;
    b.click("#wh-save").await;
    b.wait_for_text("#webhook-list", "X-Tenant: acme").await;
    let edited = server.client.get(&hook(""), &admin).await.json;
    assert_eq!(edited["customHeaders"], json!({"X-Tenant": "acme"}));
    assert_eq!(
        edited["retryPolicy"]["attempts"], 1,
        "untouched fields stay"
    );
    assert_eq!(edited["url"], receiver.url().as_str());
    assert_eq!(edited["previousSecretsValidUntil"], Value::Null);

    // Rotate the secret: the new one is shown once, the old one's grace on the card; after a
    // reload neither secret is anywhere on the page.
    b.click(".webhook [data-action=rotate]").await;
    b.fill(".webhook form.rotate input.grace", "3600").await;
    b.click(".webhook [data-action=rotate-go]").await;
    b.wait_for_text("#secret-once", "shown once").await;
    let rotated = secret_shown(&s).await;
    assert!(rotated.starts_with("whsec_") && rotated != generated);
    b.wait_for_text("#secret-once", "keeps signing beside it until")
        .await;
    b.wait_for_text(".webhook", "still signs until").await;
    let grace =
        server.client.get(&hook(""), &admin).await.json["previousSecretsValidUntil"].clone();
    assert!(grace.as_u64().is_some(), "{grace}");
    s.both_widths("webhook-rotated", "#secret-once").await;
    b.goto(&format!("{}/console", s.base)).await;
    b.wait_for(".webhook").await;
    assert_eq!(s.count("#secret-once").await, 0);
    let page = b.execute("return document.body.textContent + [...document.querySelectorAll('input')].map((i) => i.value).join(' ');", json!([])).await;
    let page = page.as_str().unwrap();
    assert!(
        !page.contains(&rotated) && !page.contains(&generated),
        "a secret is shown once only"
    );

    // Delete takes a second click to confirm.
    let doomed = server
        .client
        .post(
            "/api/v1/webhooks",
            &admin,
            &json!({"url": "https://example.com/doomed"}),
        )
        .await;
    let doomed = doomed.json["id"].as_str().unwrap().to_owned();
    b.click("#view .toolbar button.secondary").await; // Refresh
    let card = format!(".webhook[data-id='{doomed}']");
    b.click(&format!("{card} [data-action=delete]")).await;
    b.wait_for_text(&format!("{card} [data-action=delete]"), "Really")
        .await;
    assert_eq!(
        server
            .client
            .get(&format!("/api/v1/webhooks/{doomed}"), &admin)
            .await
            .status,
        200,
        "one click deletes nothing"
    );
    b.click(&format!("{card} [data-action=delete]")).await;
    eventually("the card to go", Duration::from_secs(10), || async {
        (s.count(&card).await == 0).then_some(())
    })
    .await;
    assert_eq!(
        server
            .client
            .get(&format!("/api/v1/webhooks/{doomed}"), &admin)
            .await
            .status,
        404
    );

    // First load, measured: an empty cache, the token already in the tab.
    b.devtools("Network.clearBrowserCache", json!({})).await;
    b.goto(&format!("{}/console", s.base)).await;
    b.wait_for(".webhook").await;
    let timing = b
        .wait_until(
            "the first-load figures",
            "const nav = performance.getEntriesByType('navigation')[0];\
             const shown = performance.getEntriesByName('herald:webhooks-shown')[0];\
             if (!nav || !shown || !nav.loadEventEnd) return null;\
             const files = performance.getEntriesByType('resource');\
             return { page: nav.transferSize, files: files.map((f) => [f.name, f.transferSize]),\
                      loaded: nav.loadEventEnd, shown: shown.startTime };",
            json!([]),
        )
        .await;
    let files = timing["files"].as_array().unwrap();
    let total = timing["page"].as_u64().unwrap()
        + files
            .iter()
            .map(|f| f[1].as_u64().unwrap_or(0))
            .sum::<u64>();
    // Straight to stderr, past the harness's capture: the figures are for people to read.
    let mut report = format!(
        "console first load: {total} bytes transferred in {} requests (page and files, /me and \
         /webhooks); load event at {:.0} ms, webhook list shown at {:.0} ms after navigation start\n",
        files.len() + 1,
        timing["loaded"].as_f64().unwrap(),
        timing["shown"].as_f64().unwrap()
    );
    for file in files {
        report.push_str(&format!(
            "  {:>7} B  {}\n",
            file[1],
            file[0].as_str().unwrap()
        ));
    }
    let _ = std::io::stderr().write_all(report.as_bytes());
    assert!(
        total <= 200 * 1024,
        "the first load transfers {total} bytes"
    );
    assert!(
        files.iter().all(|f| f[1].as_u64().unwrap_or(0) > 0),
        "the cache was empty, so every file came over the wire: {files:?}"
    );

    // Ping: the failed attempt shows with its status code and the receiver's reply, as text.
    b.click(".webhook [data-action=test]").await;
    b.wait_for_text("#attempts li[data-attempt='1']", "HTTP 500")
        .await;
    b.wait_for_text("#delivery-detail", "failed").await;
    assert_eq!(b.text("#attempts pre.body").await.unwrap(), RECEIVER_REPLY);
    assert_eq!(s.count("#delivery-detail b, #delivery-detail img").await, 0);
    s.both_widths("delivery-failed", "#attempts").await;
    assert_eq!(receiver.received().len(), 1);

    // Retry: a second attempt, now answered 200.
    receiver.set_behaviour(Behaviour::Ok);
    b.click("#retry").await;
    b.wait_for_text("#attempts li[data-attempt='2']", "HTTP 200")
        .await;
    b.wait_for_text("#delivery-detail", "succeeded").await;
    assert_eq!(receiver.received().len(), 2);
    s.both_widths("delivery", "#attempts").await;

    // Two more fail; the status filter finds them and recovering the window requeues them.
    receiver.set_behaviour(Behaviour::Status(503));
    let mut failing = Vec::new();
    for _ in 0..2 {
        failing.push(server.ping_webhook(&admin, &webhook_id).await.1);
    }
    for delivery in &failing {
        eventually("the ping to fail", Duration::from_secs(10), || async {
            let path = hook(&format!("/deliveries/{delivery}"));
            (server.client.get(&path, &admin).await.json["status"] == "failed").then_some(())
        })
        .await;
    }
    receiver.set_behaviour(Behaviour::Ok);
    // The card says it is failing, and its stats count the attempts.
    s.show("#webhooks").await;
    b.wait_for(".webhook .health[data-health='failing']").await;
    b.click(".webhook details.stats summary").await;
    b.wait_for_text(".webhook .stats-body", "Success rate")
        .await;
    let stats = b.text(".webhook .stats-body").await.unwrap();
    assert!(stats.contains("503: 2"), "{stats}");
    s.both_widths("webhook-health", ".webhook .stats-body dl")
        .await;
    s.show(&format!("#deliveries?webhook={webhook_id}&status=failed"))
        .await;
    eventually("the failed deliveries", Duration::from_secs(10), || async {
        (s.count("#delivery-list a.tr").await == 2).then_some(())
    })
    .await;
    b.click("details.panel summary").await;
    b.click("#rc-go").await;
    b.wait_for_text(".status-line", "Requeued 2 failed deliveries")
        .await;
    for delivery in &failing {
        eventually(
            "the recovered delivery to succeed",
            Duration::from_secs(10),
            || async {
                let path = hook(&format!("/deliveries/{delivery}"));
                (server.client.get(&path, &admin).await.json["status"] == "succeeded").then_some(())
            },
        )
        .await;
    }
    b.click("#view .toolbar button.secondary").await; // Refresh
    b.wait_for_text("#delivery-list", "No deliveries match")
        .await;

    // Paging by cursor: 56 deliveries are two pages of at most 50.
    for _ in 0..53 {
        server.ping_webhook(&admin, &webhook_id).await;
    }
    s.show(&format!("#deliveries?webhook={webhook_id}")).await;
    b.wait_for_text("#dl-page", "Page 1").await;
    eventually("a full first page", Duration::from_secs(10), || async {
        (s.count("#delivery-list a.tr").await == 50).then_some(())
    })
    .await;
    s.both_widths("deliveries", "#delivery-list a.tr").await;
    b.click("#dl-older").await;
    b.wait_for_text("#dl-page", "Page 2").await;
    eventually("the second page", Duration::from_secs(10), || async {
        (s.count("#delivery-list a.tr").await == 6).then_some(())
    })
    .await;
    b.click("#dl-newer").await;
    b.wait_for_text("#dl-page", "Page 1").await;
    let pages = b
        .execute(
            "return performance.getEntriesByType('resource').map((e) => e.name)\
             .filter((n) => n.includes('/deliveries?'));",
            json!([]),
        )
        .await;
    for page in pages.as_array().unwrap() {
        assert!(
            page.as_str().unwrap().contains("limit=50"),
            "one page at a time: {page}"
        );
    }
    b.click("#dl-status option[value='cancelled']").await;
    b.wait_for_text("#delivery-list", "No deliveries match")
        .await;

    // Live events: a message whose body is markup is shown as text and runs nothing.
    let created = server
        .client
        .post("/api/v1/sessions", &admin, &json!({"name": "sales"}))
        .await;
    assert_eq!(created.status, 201);
    let session = created.json["id"].as_str().unwrap().to_owned();
    let me = created.json["me"]["id"].as_str().unwrap().to_owned();
    s.show("#live").await;
    b.wait_until(
        "the live socket",
        "return document.getElementById('live-status').dataset.state === 'live';",
        json!([]),
    )
    .await;
    b.execute(
        "window.__violations = [];\
         document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective));",
        json!([]),
    )
    .await;
    let hostile = ingest(
        &server,
        &engine,
        &session,
        json!({"event": "message", "payload": {"id": "M-XSS", "chat": CHAT, "sender": ALICE,
               "type": "text", "body": MARKUP}}),
    )
    .await;
    let shown = b
        .wait_for_text(
            &format!("#event-list .event[data-id='{hostile}'] .event-text"),
            MARKUP,
        )
        .await;
    assert_eq!(shown, format!("{ALICE} in {CHAT}: {MARKUP}"));
    assert_eq!(s.count("img").await, 0, "no element was made from the body");
    assert_eq!(b.alert_text().await, None, "nothing ran");
    s.both_widths("live", "#event-list .event").await;
    assert_eq!(b.alert_text().await, None, "nothing ran later either");
    assert_eq!(
        b.execute("return window.__violations;", json!([])).await,
        json!([]),
        "nothing even tried to run"
    );

    // The server goes away: the console says it is reconnecting and from where, then resumes
    // without losing or repeating an event.
    let addr = server.addr();
    server.stop().await;
    b.wait_until(
        "the console to say it is reconnecting",
        "const s = document.getElementById('live-status');\
         return s.dataset.state === 'reconnecting' && s.textContent.includes('resuming after evt_');",
        json!([]),
    )
    .await;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("the same port again");
    server.app = Some(
        herald::App::start_on(server.config.clone(), listener)
            .await
            .expect("the server restarts"),
    );
    let after = ingest(
        &server,
        &engine,
        &session,
        json!({"event": "message", "payload": {"id": "M-AFTER", "chat": CHAT, "sender": BOB,
               "type": "text", "body": "sent while the console was away"}}),
    )
    .await;
    b.wait_for(&format!("#event-list .event[data-id='{after}']"))
        .await;
    b.wait_until(
        "the resumed socket",
        "const s = document.getElementById('live-status');\
         return s.dataset.state === 'live' && s.textContent.includes('resumed after evt_');",
        json!([]),
    )
    .await;
    assert_eq!(
        s.count(&format!("#event-list .event[data-id='{after}']"))
            .await,
        1
    );
    assert_eq!(
        s.count(&format!("#event-list .event[data-id='{hostile}']"))
            .await,
        1
    );

    // Deliveries across the organization, filtered by event type through the form.
    let messages = server
        .client
        .get("/api/v1/deliveries?event=message&limit=200", &admin)
        .await;
    let messages = messages.json["data"].as_array().unwrap().len();
    assert!(
        messages >= 2,
        "the markup message and the one sent while away"
    );
    s.show("#deliveries").await;
    b.wait_for("#delivery-list a.tr").await;
    b.wait_for("#dl-event option[value='message']").await;
    b.click("#dl-event option[value='message']").await;
    // Every row is a message delivery, named by its webhook's URL (the list may be drawn
    // before the URLs arrive; it is redrawn then). On failure, say what was on screen.
    let last = std::sync::Mutex::new(Value::Null);
    let settled = tokio::time::timeout(
        browser::WAIT,
        eventually("only message deliveries", 2 * browser::WAIT, || async {
            let seen = b
                .execute(
                    "return { hash: location.hash, rows: [...document.querySelectorAll(\
                     '#delivery-list a.tr > span:nth-child(2)')].map((s) => s.textContent) };",
                    json!([]),
                )
                .await;
            let rows = seen["rows"].as_array().cloned().unwrap_or_default();
            *last.lock().unwrap() = seen;
            (rows.len() == messages
                && rows.iter().all(|e| {
                    let e = e.as_str().unwrap_or("");
                    e.starts_with("message · ") && e.contains(&receiver.url())
                }))
            .then_some(())
        }),
    )
    .await;
    assert!(
        settled.is_ok(),
        "only the {messages} message deliveries, at last: {}",
        last.lock().unwrap()
    );
    let hash = b.execute("return location.hash;", json!([])).await;
    assert!(!hash.as_str().unwrap().contains("webhook="), "{hash}");
    s.both_widths("deliveries-org", "#delivery-list a.tr").await;
    // A creation window that ended long ago holds none of them.
    s.show("#deliveries?event=message&until=1000").await;
    b.wait_for_text("#delivery-list", "No deliveries match")
        .await;

    // A receiver that answers 410 Gone: its webhook is disabled, and the live events say so
    // in a line each.
    let gone = Receiver::start(Behaviour::Status(410)).await;
    let doomed = server
        .client
        .post(
            "/api/v1/webhooks",
            &admin,
            &json!({"url": gone.url(), "events": ["webhook.test"]}),
        )
        .await;
    assert_eq!(doomed.status, 201, "{:?}", doomed.json);
    let gone_id = doomed.json["id"].as_str().unwrap().to_owned();
    s.show("#live").await;
    b.wait_for("#event-list").await;
    server.ping_webhook(&admin, &gone_id).await;
    b.wait_for_text(
        "#event-list .event[data-type='webhook.disabled'] .event-text",
        &format!("webhook {gone_id} disabled (gone)"),
    )
    .await;
    b.wait_for_text(
        "#event-list .event[data-type='delivery.failed'] .event-text",
        "(last: HTTP 410)",
    )
    .await;
    s.show("#webhooks").await;
    b.wait_for_text(&format!(".webhook[data-id='{gone_id}']"), "disabled: gone")
        .await;
    b.wait_for_text(
        &format!(".webhook[data-id='{gone_id}']"),
        "its receiver answered 410 Gone",
    )
    .await;
    let deleted = server
        .client
        .delete(&format!("/api/v1/webhooks/{gone_id}"), &admin)
        .await;
    assert_eq!(deleted.status, 204);

    // Sessions: create one in the console; one in SCAN_QR asks for its QR code (the simulator
    // has none, which the card says).
    s.show("#sessions").await;
    b.wait_for(&format!(".session[data-id='{session}']")).await;
    b.fill("#session-name", "<em>made</em> in the console")
        .await;
    b.click("#new-session button").await;
    b.wait_for_text("#session-list", "<em>made</em> in the console")
        .await;
    assert_eq!(s.count("#session-list em").await, 0, "a name is text");
    ingest(
        &server,
        &engine,
        &session,
        json!({"event": "session.status", "payload": {"status": "SCAN_QR", "me": null}}),
    )
    .await;
    b.wait_for_text(
        &format!(".session[data-id='{session}'][data-status='SCAN_QR'] .qr"),
        "No QR code to show",
    )
    .await;
    s.both_widths("sessions", ".session .qr").await;
    let made = b
        .execute(
            "return [...document.querySelectorAll('.session')]\
             .find((c) => c.textContent.includes('made</em>')).dataset.id;",
            json!([]),
        )
        .await;
    let made = format!(".session[data-id='{}']", made.as_str().unwrap());
    b.click(&format!("{made} [data-action=delete]")).await;
    b.click(&format!("{made} [data-action=delete]")).await;
    eventually("the session to go", Duration::from_secs(10), || async {
        (s.count(&made).await == 0).then_some(())
    })
    .await;
    ingest(
        &server,
        &engine,
        &session,
        json!({"event": "session.status", "payload": {"status": "WORKING", "me": {"id": me}}}),
    )
    .await;

    // Polls: found in the event log, tallied as bars, updated when a vote arrives live.
    let sent = server
        .client
        .post(
            &format!("/api/v1/sessions/{session}/polls"),
            &admin,
            &json!({"chat": CHAT, "question": "<script>alert(2)</script> Lunch?",
                    "options": ["Pizza", "Sushi <i>fresh</i>"]}),
        )
        .await;
    assert_eq!(sent.status, 200, "{:?}", sent.json);
    let poll = sent.json["id"].as_str().unwrap().to_owned();
    let vote = server
        .client
        .post(
            &format!("/api/v1/sessions/{session}/messages/{poll}/vote"),
            &admin,
            &json!({"chat": CHAT, "sender": me, "options": ["Pizza"]}),
        )
        .await;
    assert_eq!(vote.status, 200);
    let inbound_vote = |voter: &str, option: &str| {
        json!({"event": "poll.vote", "payload": {"poll": {"id": poll, "chat": CHAT, "sender": me},
               "vote": {"voter": voter, "selectedOptions": [option]}}})
    };
    ingest(
        &server,
        &engine,
        &session,
        inbound_vote(ALICE, "Sushi <i>fresh</i>"),
    )
    .await;
    s.show("#polls").await;
    b.click("#poll-scan").await;
    b.click("#poll-found a").await;
    b.wait_for_text("#poll-question", "<script>alert(2)</script> Lunch?")
        .await;
    let votes = |option: &'static str| {
        let b = &s.browser;
        async move {
            b.execute(
                "const row = [...document.querySelectorAll('#poll-tally .bar-row')]\
                 .find((r) => r.dataset.option === arguments[0]);\
                 return row ? Number(row.dataset.votes) : null;",
                json!([option]),
            )
            .await
        }
    };
    assert_eq!(votes("Pizza").await, json!(1));
    assert_eq!(votes("Sushi <i>fresh</i>").await, json!(1));
    assert_eq!(s.count("#poll-tally script, #poll-tally i").await, 0);
    ingest(&server, &engine, &session, inbound_vote(BOB, "Pizza")).await;
    eventually(
        "the tally to follow a live vote",
        Duration::from_secs(10),
        || async { (votes("Pizza").await == json!(2)).then_some(()) },
    )
    .await;
    s.both_widths("polls", "#poll-tally .bar-row").await;

    // A viewer: no tab, form or button it cannot use.
    s.sign_out().await;
    s.sign_in(&viewer).await;
    b.wait_for_text("#caps", "read").await;
    assert_eq!(b.text("#caps").await.unwrap(), "read");
    assert_eq!(s.count("nav a[data-view='webhooks']").await, 0);
    s.show("#deliveries").await;
    b.wait_for("#delivery-list div.tr[data-id]").await;
    assert_eq!(
        s.count("#delivery-list a.tr, #rc-go").await,
        0,
        "no detail or recover without manage"
    );
    let manage_controls = "#new-webhook, #new-session, #retry, [data-action], button.danger";
    s.show("#sessions").await;
    b.wait_for(&format!(".session[data-id='{session}']")).await;
    assert_eq!(s.count(manage_controls).await, 0);
    s.both_widths("sessions-viewer", ".session").await;
    s.show("#webhooks").await;
    b.wait_for("#dl-filters").await; // the first tab it may use instead
    assert_eq!(s.count("#webhook-list").await, 0);
    assert_eq!(s.count(manage_controls).await, 0);
    s.show(&format!(
        "#polls?session={session}&chat={}&sender={}&id={poll}",
        CHAT.replace('@', "%40"),
        me.replace('@', "%40")
    ))
    .await;
    b.wait_for("#poll-tally .bar-row").await;
    assert_eq!(s.count(manage_controls).await, 0);

    // A revoked key: refused with a message; nothing of its view is left; no retry loop.
    let minted = server
        .client
        .post(
            "/api/v1/api-keys",
            &admin,
            &json!({"name": "doomed", "capabilities": ["manage", "read"]}),
        )
        .await;
    assert_eq!(minted.status, 201);
    s.sign_out().await;
    s.sign_in(minted.json["token"].as_str().unwrap()).await;
    b.wait_for_text("#caps", "read, manage").await;
    s.show("#webhooks").await;
    b.wait_for(".webhook").await;
    let revoked = server
        .client
        .delete(
            &format!("/api/v1/api-keys/{}", minted.json["id"].as_str().unwrap()),
            &admin,
        )
        .await;
    assert_eq!(revoked.status, 204);
    // Whichever notices first: the live socket (closed for revoked credentials within a
    // second) or a refresh of the list.
    b.execute(
        "const refresh = document.querySelector('#view .toolbar button.secondary');\
         if (refresh) refresh.click();",
        json!([]),
    )
    .await;
    let message = b.wait_for_text("#signin-message", "refused").await;
    assert!(
        message.contains("unknown or revoked API key") || message.contains("credentials revoked"),
        "Herald's reason is shown: {message}"
    );
    assert_eq!(s.count(".webhook, #webhook-list, header").await, 0);
    assert_eq!(
        b.execute("return sessionStorage.getItem('herald.token');", json!([]))
            .await,
        Value::Null
    );
    let requests = s.api_requests().await;
    s.both_widths("signin-refused", "#signin-message").await;
    assert_eq!(
        s.api_requests().await,
        requests,
        "a refused token is not tried again"
    );

    // Login tokens: a valid one says so; an expired one is refused with the reason.
    let login = key.sign(&claims(ORG, "admin"));
    s.sign_in(&login).await;
    b.wait_for_text("#who", "login token").await;
    s.show("#webhooks").await;
    b.wait_for(".webhook").await;
    s.sign_out().await;
    let mut stale = claims(ORG, "admin");
    stale["exp"] = json!(now_s() - 600);
    s.sign_in(&key.sign(&stale)).await;
    let message = b.wait_for_text("#signin-message", "refused").await;
    assert!(message.contains("the JWT has expired"), "{message}");
    assert_eq!(s.count("header").await, 0);
    // One that lapses while its view is open: the console signs out by itself, not keeping
    // the list on screen as if it were current.
    let mut brief = claims(ORG, "admin");
    brief["exp"] = json!(now_s() + 4);
    s.sign_in(&key.sign(&brief)).await;
    b.wait_for(".webhook").await;
    // (Whichever notices first: the console's own clock, or Herald closing the live socket.)
    b.wait_for_text("#signin-message", "expired").await;
    assert_eq!(s.count(".webhook, header").await, 0);
    assert_eq!(
        b.execute("return sessionStorage.getItem('herald.token');", json!([]))
            .await,
        Value::Null
    );

    // Nothing the console did broke its own security policy.
    let log = b.console_log().await;
    let violations: Vec<_> = log
        .iter()
        .filter(|(_, text)| text.contains("Content Security Policy"))
        .collect();
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(b.alert_text().await, None);

    s.browser.quit().await;
    server.stop().await;
}

/// With the WAHA engine (against the WAHA double): a session waiting for its scan shows the
/// QR code drawn from the text Herald returns; a failed session can be restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waha_session_shows_its_qr_code_and_restarts() {
    let Some(browser) =
        Browser::start("console::a_waha_session_shows_its_qr_code_and_restarts").await
    else {
        return;
    };
    let waha = WahaDouble::start().await;
    let server = TestServer::start_waha(Backend::Sqlite, &waha.url()).await;
    let admin = server.api_key(ORG, "manage,read").await;
    let created = server
        .client
        .post(
            "/api/v1/sessions",
            &admin,
            &json!({"name": "phone", "engineSession": "phone-1"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let wait_status = |status: &'static str| {
        let server = &server;
        let admin = &admin;
        let id = &id;
        async move {
            eventually(
                &format!("the session to be {status}"),
                Duration::from_secs(10),
                || async {
                    let s = server
                        .client
                        .get(&format!("/api/v1/sessions/{id}"), admin)
                        .await;
                    (s.json["status"] == status).then_some(())
                },
            )
            .await
        }
    };
    let qr_text = "2@Zm9vYmFyYmF6cXV4,1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c,c2Vzc2lvbi1rZXk=,MQ==";
    waha.show_qr("phone-1", qr_text).await;
    wait_status("SCAN_QR").await;

    let s = Session {
        browser,
        base: server.base_url.clone(),
        shots: screenshot_dir(),
    };
    let b = &s.browser;
    b.goto(&format!("{}/console#sessions", s.base)).await;
    s.sign_in(&admin).await;
    b.wait_for_text("#session-list", "phone-1").await;
    let card = format!(".session[data-id='{id}']");
    b.wait_for(&format!("{card} .qr svg.qr-code")).await;
    let drawn = b
        .execute(
            "const box = document.querySelector(arguments[0]);\
             const svg = box.querySelector('svg.qr-code');\
             return { value: box.dataset.value, modules: Number(svg.dataset.modules),\
                      dark: svg.querySelector('path').getAttribute('d').split('M').length - 1,\
                      width: svg.getBoundingClientRect().width };",
            json!([format!("{card} .qr")]),
        )
        .await;
    assert_eq!(drawn["value"], qr_text, "{drawn}");
    // Version 5 or 6 at the lowest error correction for this length; a real code is roughly
    // half dark.
    let modules = drawn["modules"].as_u64().unwrap();
    assert!((37..=41).contains(&modules), "{drawn}");
    let dark = drawn["dark"].as_u64().unwrap();
    assert!(
        dark > modules * modules / 3 && dark < modules * modules * 2 / 3,
        "{drawn}"
    );
    assert!(
        drawn["width"].as_f64().unwrap() >= 150.0,
        "big enough to scan: {drawn}"
    );
    s.both_widths("sessions-qr", &format!("{card} .qr svg.qr-code"))
        .await;

    // WAHA reports the session failed: a Restart button brings it back to STARTING.
    waha.set_status("phone-1", "FAILED").await;
    wait_status("FAILED").await;
    b.wait_for(&format!(
        "{card}[data-status='FAILED'] [data-action=restart]"
    ))
    .await;
    assert_eq!(s.count(&format!("{card} .qr")).await, 0);
    s.both_widths("sessions-failed", &format!("{card} [data-action=restart]"))
        .await;
    b.click(&format!("{card} [data-action=restart]")).await;
    b.wait_for(&format!("{card}:not([data-status='FAILED'])"))
        .await;
    assert_eq!(s.count(&format!("{card} [data-action=restart]")).await, 0);

    let log = b.console_log().await;
    assert!(
        !log.iter()
            .any(|(_, text)| text.contains("Content Security Policy")),
        "{log:?}"
    );
    s.browser.quit().await;
}
