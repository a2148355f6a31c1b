//! Tenant isolation, generated from the route table: every authenticated route in
//! [`herald_http::routes::ROUTES`] is called
//!
//! - without a token → 401;
//! - by organization A with a key holding each capability alone, and with no capability at all,
//!   on A's own resources → the route's success status when the key holds the route's
//!   capability (any key for routes open to every authenticated caller), else 403;
//! - by the same keys on organization B's resources (B's ids in the path, body or query) → 404
//!   when the key holds the capability (never 403, never B's data), else 403;
//!
//! Every answer must also be one the OpenAPI document gives for the route (status, content
//! type, body schema, required headers). After every refused call both organizations' visible
//! state (every list route) must be unchanged — a refused request writes nothing. No response
//! to A may ever contain B's organization id or the ids of B's resources (B's lists are checked
//! the same way for A), so a list, a lookup or an error message leaking across tenants fails
//! here. Runs on both stores.
//!
//! # Adding a route
//!
//! A route without a recipe makes [`every_route_keeps_organizations_apart`] fail, naming it —
//! a new route cannot skip this test. Add ONE line to [`recipes`]:
//!
//! ```text
//! ("POST /api/v1/webhooks/{id}/test", |w| Req::new(format!("/api/v1/webhooks/{}/test", w.webhook))),
//! ```
//!
//! The closure gets a [`World`] — one organization's fixtures — and builds the request (path with
//! any query string, optional JSON body via `.body(json!(...))`) that should succeed for that
//! organization's own caller. The harness runs the same recipe with the other organization's
//! world to make the foreign request. If the route needs a kind of resource `World` lacks (a
//! delivery, a poll message, an event…), add a field to [`World`] and create it in
//! [`World::create`]. `.success(status)` overrides the expected own-org status when a plain
//! request cannot succeed (e.g. a WebSocket upgrade route called without upgrade headers);
//! `.foreign(status)` overrides the expected foreign status when the route defines another
//! answer than 404 for a foreign id (say so in a comment). `DELETE` routes get fresh fixtures
//! for each call, since a successful call consumes them.

use herald_domain::Capability;
use herald_http::routes::{Access, Route, ROUTES};
use herald_testkit::openapi::Conformance;
use herald_testkit::{per_backend, Backend, Reply, TestServer};
use serde_json::{json, Value};

/// One organization's fixtures, created through the API.
#[derive(Clone, Debug)]
struct World {
    /// The organization id.
    org: String,
    /// A session of the organization.
    session: String,
    /// A webhook of the organization (scoped to `session`).
    webhook: String,
    /// An API key of the organization (not one the tests authenticate with).
    api_key: String,
    /// A dead-lettered delivery of `webhook` (its `webhook.test`), so retrying it is accepted.
    delivery: String,
    /// The account `session` is connected as (the sender of its polls).
    me: String,
    /// A poll message sent through `session` to [`POLL_CHAT`].
    poll: String,
    /// An event of the organization's log (its session's first status change).
    event: String,
}

/// The chat the fixture poll is sent to.
const POLL_CHAT: &str = "120363000000000001@g.us";

impl World {
    /// Creates one resource of each kind for `org`, using its all-capability `admin` token.
    async fn create(server: &TestServer, org: &str, admin: &str) -> Self {
        let created = |reply: Reply, what: &str| -> String {
            assert_eq!(reply.status, 201, "creating a {what}: {:?}", reply.json);
            reply.json["id"].as_str().expect("an id").to_owned()
        };
        let c = &server.client;
        let session = created(
            c.post("/api/v1/sessions", admin, &json!({"name": "iso"}))
                .await,
            "session",
        );
        let webhook = created(
            c.post(
                "/api/v1/webhooks",
                admin,
                // A closed local port fails at once; one attempt dead-letters the delivery, so a
                // retry is never caught in flight.
                &json!({"url": "http://127.0.0.1:9/iso", "sessionId": session,
                        "retryPolicy": {"attempts": 1}}),
            )
            .await,
            "webhook",
        );
        let api_key = created(
            c.post(
                "/api/v1/api-keys",
                admin,
                &json!({"name": "iso", "capabilities": ["read"]}),
            )
            .await,
            "api key",
        );
        let (_, delivery) = server.ping_webhook(admin, &webhook).await;
        let path = format!("/api/v1/webhooks/{webhook}/deliveries/{delivery}");
        herald_testkit::eventually(
            "the test delivery to be dead-lettered",
            std::time::Duration::from_secs(20),
            || async { (c.get(&path, admin).await.json["status"] == "failed").then_some(()) },
        )
        .await;
        let me = c
            .get(&format!("/api/v1/sessions/{session}"), admin)
            .await
            .json["me"]["id"]
            .as_str()
            .expect("a connected session")
            .to_owned();
        let sent = c
            .post(
                &format!("/api/v1/sessions/{session}/polls"),
                admin,
                &json!({"chat": POLL_CHAT, "question": "Lunch?", "options": ["Pizza", "Sushi"]}),
            )
            .await;
        assert_eq!(sent.status, 200, "sending a poll: {:?}", sent.json);
        let poll = sent.json["id"].as_str().expect("a message id").to_owned();
        let log = c.get("/api/v1/events?limit=1", admin).await;
        let event = log.json["data"][0]["id"]
            .as_str()
            .expect("an event")
            .to_owned();
        Self {
            org: org.to_owned(),
            session,
            webhook,
            api_key,
            delivery,
            me,
            poll,
            event,
        }
    }

    /// Every id this world holds, to look for in another organization's responses.
    fn ids(&self) -> Vec<&str> {
        vec![
            &self.org,
            &self.session,
            &self.webhook,
            &self.api_key,
            &self.delivery,
        ]
    }
}

/// A request a recipe builds.
#[derive(Clone, Debug, PartialEq)]
struct Req {
    path: String,
    body: Option<Value>,
    success: Option<u16>,
    foreign: Option<u16>,
}

impl Req {
    /// A request to `path` (with any query string) and no body.
    fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            body: None,
            success: None,
            foreign: None,
        }
    }

    /// With a JSON body.
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Expects `status` instead of the route's success status for the own organization.
    #[allow(dead_code)]
    fn success(mut self, status: u16) -> Self {
        self.success = Some(status);
        self
    }

    /// Expects `status` instead of 404 when the request names the other organization's ids.
    #[allow(dead_code)]
    fn foreign(mut self, status: u16) -> Self {
        self.foreign = Some(status);
        self
    }
}

/// Builds a route's request from one organization's fixtures.
type Recipe = fn(&World) -> Req;

/// One line per authenticated route: `"METHOD /path/template"` and how to call it.
fn recipes() -> Vec<(&'static str, Recipe)> {
    vec![
        ("GET /api/v1/event-types", |_| {
            Req::new("/api/v1/event-types")
        }),
        ("GET /api/v1/webhooks", |_| Req::new("/api/v1/webhooks")),
        ("POST /api/v1/webhooks", |w| {
            Req::new("/api/v1/webhooks")
                .body(json!({"url": "https://example.com/new", "sessionId": w.session}))
        }),
        ("GET /api/v1/webhooks/{id}", |w| {
            Req::new(format!("/api/v1/webhooks/{}", w.webhook))
        }),
        ("PATCH /api/v1/webhooks/{id}", |w| {
            Req::new(format!("/api/v1/webhooks/{}", w.webhook))
                .body(json!({"url": "https://example.com/patched", "sessionId": w.session}))
        }),
        ("DELETE /api/v1/webhooks/{id}", |w| {
            Req::new(format!("/api/v1/webhooks/{}", w.webhook))
        }),
        ("POST /api/v1/webhooks/{id}/secret/rotate", |w| {
            Req::new(format!("/api/v1/webhooks/{}/secret/rotate", w.webhook))
                .body(json!({"graceSeconds": 60}))
        }),
        ("GET /api/v1/sessions", |_| Req::new("/api/v1/sessions")),
        ("POST /api/v1/sessions", |_| {
            Req::new("/api/v1/sessions").body(json!({"name": "new"}))
        }),
        ("GET /api/v1/sessions/{id}", |w| {
            Req::new(format!("/api/v1/sessions/{}", w.session))
        }),
        ("DELETE /api/v1/sessions/{id}", |w| {
            Req::new(format!("/api/v1/sessions/{}", w.session))
        }),
        ("POST /api/v1/sessions/{id}/restart", |w| {
            Req::new(format!("/api/v1/sessions/{}/restart", w.session))
        }),
        // The simulator never needs a QR code: the owner is told 409 (a state of the session).
        ("GET /api/v1/sessions/{id}/qr", |w| {
            Req::new(format!("/api/v1/sessions/{}/qr", w.session)).success(409)
        }),
        ("POST /api/v1/sessions/{id}/messages/text", |w| {
            Req::new(format!("/api/v1/sessions/{}/messages/text", w.session))
                .body(json!({"chat": POLL_CHAT, "text": "hello"}))
        }),
        ("GET /api/v1/api-keys", |_| Req::new("/api/v1/api-keys")),
        ("POST /api/v1/api-keys", |_| {
            // `manage` may grant `manage`: the key holding only manage succeeds.
            Req::new("/api/v1/api-keys").body(json!({"name": "new", "capabilities": ["manage"]}))
        }),
        ("DELETE /api/v1/api-keys/{id}", |w| {
            Req::new(format!("/api/v1/api-keys/{}", w.api_key))
        }),
        ("GET /api/v1/webhooks/{id}/deliveries", |w| {
            Req::new(format!("/api/v1/webhooks/{}/deliveries", w.webhook))
        }),
        ("GET /api/v1/webhooks/{id}/deliveries/{deliveryId}", |w| {
            Req::new(format!(
                "/api/v1/webhooks/{}/deliveries/{}",
                w.webhook, w.delivery
            ))
        }),
        (
            "POST /api/v1/webhooks/{id}/deliveries/{deliveryId}/retry",
            |w| {
                Req::new(format!(
                    "/api/v1/webhooks/{}/deliveries/{}/retry",
                    w.webhook, w.delivery
                ))
            },
        ),
        ("POST /api/v1/webhooks/{id}/recover", |w| {
            Req::new(format!("/api/v1/webhooks/{}/recover", w.webhook)).body(json!({"since": 0}))
        }),
        // `webhookId` names one of the organization's webhooks: a foreign one is a 404.
        ("GET /api/v1/deliveries", |w| {
            Req::new(format!("/api/v1/deliveries?webhookId={}", w.webhook))
        }),
        ("GET /api/v1/webhooks/{id}/stats", |w| {
            Req::new(format!("/api/v1/webhooks/{}/stats?window=1h", w.webhook))
        }),
        ("POST /api/v1/webhooks/{id}/test", |w| {
            Req::new(format!("/api/v1/webhooks/{}/test", w.webhook))
        }),
        ("POST /api/v1/sessions/{id}/polls", |w| {
            Req::new(format!("/api/v1/sessions/{}/polls", w.session))
                .body(json!({"chat": POLL_CHAT, "question": "Again?", "options": ["Yes", "No"]}))
        }),
        ("POST /api/v1/sessions/{id}/messages/{mid}/vote", |w| {
            Req::new(format!(
                "/api/v1/sessions/{}/messages/{}/vote",
                w.session, w.poll
            ))
            .body(json!({"chat": POLL_CHAT, "sender": w.me, "options": ["Sushi"]}))
        }),
        ("GET /api/v1/sessions/{id}/messages/{mid}/poll", |w| {
            Req::new(format!(
                "/api/v1/sessions/{}/messages/{}/poll?chat={POLL_CHAT}&sender={}",
                w.session, w.poll, w.me
            ))
        }),
        ("POST /api/v1/sessions/{id}/inbound", |w| {
            // A fresh message id each call: a repeated one would be a 409 for the owner.
            let mid = format!("iso-{}", ulid::Ulid::new());
            Req::new(format!("/api/v1/sessions/{}/inbound", w.session)).body(json!({
                "event": "message",
                "payload": {"id": mid, "chat": "15550009999@c.us", "sender": "15550009999@c.us",
                            "type": "text", "body": "hello"}
            }))
        }),
        // The log has no id in its path: `since` names one of the organization's events.
        ("GET /api/v1/events", |w| {
            Req::new(format!("/api/v1/events?since={}", w.event))
        }),
        // A plain GET is refused with 426 after the query (and so a foreign `since`) is checked.
        ("GET /api/v1/events/ws", |w| {
            Req::new(format!("/api/v1/events/ws?since={}", w.event)).success(426)
        }),
        // Names no resource: every token learns only its own organization and capabilities.
        ("GET /api/v1/me", |_| Req::new("/api/v1/me")),
    ]
}

fn route_key(route: &Route) -> String {
    format!("{} {}", route.method, route.path)
}

/// The authenticated routes, each with its recipe; panics naming every route without one (and
/// every recipe whose route no longer exists).
fn planned() -> Vec<(&'static Route, Recipe)> {
    let recipes = recipes();
    let authenticated: Vec<&Route> = ROUTES
        .iter()
        .filter(|r| r.access != Access::Public)
        .collect();
    let missing: Vec<String> = authenticated
        .iter()
        .map(|r| route_key(r))
        .filter(|k| !recipes.iter().any(|(name, _)| name == k))
        .collect();
    assert!(
        missing.is_empty(),
        "these routes have no isolation recipe — add one line each to `recipes()` in \
         crates/herald/tests/isolation.rs (see its module doc):\n  {}",
        missing.join("\n  ")
    );
    let stale: Vec<&str> = recipes
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !authenticated.iter().any(|r| route_key(r) == *name))
        .collect();
    assert!(
        stale.is_empty(),
        "recipes for routes that do not exist (or are public): {stale:?}"
    );
    authenticated
        .into_iter()
        .map(|r| {
            let key = route_key(r);
            let recipe = recipes
                .iter()
                .find(|(name, _)| *name == key)
                .expect("checked above")
                .1;
            (r, recipe)
        })
        .collect()
}

/// One organization under test: its fixtures, an all-capability token, and one token per
/// capability alone plus one with none.
struct Tenant {
    world: World,
    admin: String,
    tokens: Vec<(String, Option<Capability>)>,
}

impl Tenant {
    async fn new(server: &TestServer, org: &str) -> Self {
        let admin = server.api_key(org, "read,send,manage,ingest").await;
        let mut tokens = vec![(server.api_key(org, "").await, None)];
        for capability in Capability::ALL {
            tokens.push((
                server.api_key(org, capability.as_str()).await,
                Some(capability),
            ));
        }
        let world = World::create(server, org, &admin).await;
        Self {
            world,
            admin,
            tokens,
        }
    }

    /// Everything this organization can see through the list routes, minus `lastUsedAt`
    /// (which using a key legitimately updates) and what the dispatcher does meanwhile — the
    /// progress of deliveries, webhooks' health, operational events and their deliveries:
    /// which deliveries exist is compared, not how far they got.
    async fn snapshot(&self, server: &TestServer) -> Vec<(String, Value)> {
        let mut views = Vec::new();
        for route in ROUTES.iter().filter(|r| {
            r.method == http::Method::GET && r.access != Access::Public && !r.path.contains('{')
        }) {
            let mut reply = server.client.get(route.path, &self.admin).await.json;
            if let Some(items) = reply["data"].as_array_mut() {
                // The dispatcher's own doings (operational events about failing fixtures, and
                // their deliveries) are not writes of the request under test.
                items.retain(|item| {
                    !item["event"]
                        .as_str()
                        .and_then(herald_domain::event::EventType::parse)
                        .is_some_and(herald_domain::event::EventType::is_operational)
                });
                for item in items {
                    if let Some(item) = item.as_object_mut() {
                        item.remove("lastUsedAt");
                        item.remove("health");
                        if route.path == "/api/v1/deliveries" {
                            for progress in [
                                "status",
                                "attempts",
                                "nextAttemptAt",
                                "lastAttemptAt",
                                "lastStatusCode",
                                "lastError",
                                "updatedAt",
                            ] {
                                item.remove(progress);
                            }
                        }
                    }
                }
            }
            views.push((route.path.to_owned(), reply));
        }
        views
    }
}

fn assert_no_leak(reply: &Reply, foreign: &World, context: &str) {
    let text = String::from_utf8_lossy(&reply.body);
    for id in foreign.ids() {
        assert!(
            !text.contains(id),
            "{context}: the response shows the other organization's `{id}`: {text}"
        );
    }
}

fn capability_name(capability: Option<Capability>) -> &'static str {
    capability.map_or("no capability", Capability::as_str)
}

/// Sends `req` and checks the answer against the served OpenAPI document.
async fn call(server: &TestServer, route: &Route, req: &Req, token: Option<&str>) -> Reply {
    let reply = server
        .client
        .send(route.method.as_str(), &req.path, token, req.body.as_ref())
        .await;
    static DOCUMENT: std::sync::OnceLock<Conformance> = std::sync::OnceLock::new();
    DOCUMENT
        .get_or_init(|| Conformance::new(herald_http::openapi::document().clone()))
        .assert(route.method.as_str(), route.path, &reply);
    reply
}

async fn run_matrix(backend: Backend) {
    let plan = planned();
    let server = TestServer::start_with(backend, |c| {
        c.with_dispatcher = true;
        // The webhook below points at a closed local port, refused at once on both stores.
        c.allow_private = Some(true);
    })
    .await;
    let unique = ulid::Ulid::new().to_string().to_lowercase();
    let a = Tenant::new(&server, &format!("org_iso_a_{unique}")).await;
    let b = Tenant::new(&server, &format!("org_iso_b_{unique}")).await;
    // Use every token once so `lastUsedAt` bookkeeping is done before snapshots are compared.
    for (token, _) in a.tokens.iter().chain(&b.tokens) {
        server.client.get("/api/v1/event-types", token).await;
    }
    let mut calls = 0;

    for (route, recipe) in &plan {
        let name = route_key(route);
        let consumes = route.method == http::Method::DELETE;
        let required = match route.access {
            Access::Requires(capability) => Some(capability),
            Access::Authenticated => None,
            Access::Public => unreachable!("public routes are not planned"),
        };

        // No token: 401, nothing leaks.
        let req = recipe(&a.world);
        let reply = call(&server, route, &req, None).await;
        assert_eq!(reply.status, 401, "{backend:?} {name} without a token");
        assert_eq!(reply.error_code(), "unauthorized");
        calls += 1;

        for (token, capability) in &a.tokens {
            let allowed = required.is_none_or(|r| *capability == Some(r));
            let who = format!(
                "{backend:?} {name} as A with {}",
                capability_name(*capability)
            );

            // A's own resources.
            let own = if consumes && allowed {
                World::create(&server, &a.world.org, &a.admin).await
            } else {
                a.world.clone()
            };
            let req = recipe(&own);
            let expected = if allowed {
                req.success.unwrap_or(route.success)
            } else {
                403
            };
            let before = (a.snapshot(&server).await, b.snapshot(&server).await);
            let reply = call(&server, route, &req, Some(token)).await;
            calls += 1;
            assert_eq!(reply.status, expected, "{who} (own): {:?}", reply.json);
            assert_no_leak(&reply, &b.world, &who);
            if expected == 403 {
                assert_eq!(reply.error_code(), "forbidden", "{who}");
                let after = (a.snapshot(&server).await, b.snapshot(&server).await);
                assert_eq!(before, after, "{who}: a refused request changed something");
            }

            // B's resources named in A's request: 404 (or 403 without the capability).
            let foreign_world = if consumes && allowed {
                World::create(&server, &b.world.org, &b.admin).await
            } else {
                b.world.clone()
            };
            let foreign_req = recipe(&foreign_world);
            if foreign_req.path == req.path && foreign_req.body == req.body {
                continue; // The route names no organization's resource.
            }
            let expected = if allowed {
                foreign_req.foreign.unwrap_or(404)
            } else {
                403
            };
            let before = (a.snapshot(&server).await, b.snapshot(&server).await);
            let reply = call(&server, route, &foreign_req, Some(token)).await;
            calls += 1;
            assert_eq!(reply.status, expected, "{who} (B's ids): {:?}", reply.json);
            assert_eq!(
                reply.error_code(),
                if expected == 404 {
                    "not_found"
                } else {
                    "forbidden"
                },
                "{who} (B's ids)"
            );
            let text = String::from_utf8_lossy(&reply.body);
            assert!(!text.contains(&b.world.org), "{who}: shows B's org: {text}");
            let after = (a.snapshot(&server).await, b.snapshot(&server).await);
            assert_eq!(before, after, "{who}: a foreign request changed something");
        }
    }

    // The lists: each organization sees its own resources and nothing of the other's.
    let (a_views, b_views) = (a.snapshot(&server).await, b.snapshot(&server).await);
    for ((path, a_view), (_, b_view)) in a_views.iter().zip(&b_views) {
        for (view, mine, theirs, who) in [
            (a_view, &a.world, &b.world, "A"),
            (b_view, &b.world, &a.world, "B"),
        ] {
            let text = view.to_string();
            for id in theirs.ids() {
                assert!(
                    !text.contains(id),
                    "{backend:?} {path} as {who} lists `{id}`"
                );
            }
            if let Some(items) = view["data"].as_array() {
                for item in items {
                    if let Some(org) = item.get("organizationId") {
                        assert_eq!(org, mine.org.as_str(), "{backend:?} {path} as {who}");
                    }
                }
            }
        }
    }
    for (path, own_id) in [
        ("/api/v1/webhooks", &a.world.webhook),
        ("/api/v1/sessions", &a.world.session),
        ("/api/v1/api-keys", &a.world.api_key),
    ] {
        let list = server.client.get(path, &a.admin).await;
        assert!(
            String::from_utf8_lossy(&list.body).contains(own_id.as_str()),
            "{backend:?} {path}: A's own resource is listed"
        );
    }
    assert!(calls > plan.len() * 5, "the matrix ran ({calls} calls)");
}

async fn every_route_keeps_organizations_apart(backend: Backend) {
    run_matrix(backend).await;
}

#[test]
fn every_authenticated_route_has_a_recipe() {
    // Fails fast (without a server) when a route is added without its recipe.
    assert!(!planned().is_empty());
}

per_backend!(every_route_keeps_organizations_apart);
