//! The OpenAPI 3.1 document, generated from the route table and from [`describe`], which says
//! for every operation what it reads (body, query parameters) and every answer it can give.
//!
//! [`describe`] matches every [`Op`] without a wildcard, so a route cannot be added without
//! being described; the answers a route implies are derived, not listed by hand (401 and 503
//! for an authenticated route, 403 for one that needs a capability, 404 for a path with
//! parameters, 413 and 422 for a body). Every constraint the server enforces on a value is in
//! the schema, taken from the domain's own constants, so a client (or a fuzzer) generating
//! values from the schema gets them accepted, and values outside it refused. The API's
//! conformance test checks every route's real answers against this document.

use crate::routes::{Access, Op, Route, ROUTES};
use herald_domain::delivery::{AttemptError, DeliveryStatus};
use herald_domain::event::EventType;
use herald_domain::retry::RetryPolicy;
use herald_domain::session::{Session, SessionStatus};
use herald_domain::webhook::{SigningScheme, WebhookUrl};
use herald_domain::Capability;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// The document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// What an operation answers when it succeeds.
pub enum Success {
    /// A JSON body of this schema.
    Json(Value),
    /// A body of this media type (a string).
    Text(&'static str),
    /// A file of one of these media types (the console's files), revalidated with `ETag`.
    Files(&'static [&'static str]),
    /// No body.
    Empty,
    /// `101 Switching Protocols` to a WebSocket.
    Upgrade,
}

/// How one operation is documented beyond what its route says.
pub struct OperationDoc {
    /// The JSON request body's schema, and whether a body is required.
    pub body: Option<(Value, bool)>,
    /// Query parameters (OpenAPI parameter objects).
    pub query: Vec<Value>,
    /// The success answer.
    pub success: Success,
    /// Error statuses besides those the route implies.
    pub errors: &'static [u16],
    /// Whether the operation reads the store (so may answer 503 when it is unavailable).
    pub uses_store: bool,
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn list_of(name: &str) -> Value {
    json!({"type": "object", "required": ["data", "nextCursor"], "properties": {
        "data": {"type": "array", "items": schema_ref(name)},
        "nextCursor": {"type": "string", "description": "Opaque; empty on the last page."}}})
}

fn json_body(schema: Value) -> Option<(Value, bool)> {
    Some((schema, true))
}

/// A query parameter.
fn query(name: &str, required: bool, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": required, "schema": schema,
           "description": description})
}

/// An optional query parameter, which the server treats as absent when its value is empty:
/// the schema says so (an empty string is allowed besides `schema`).
fn optional_query(name: &str, schema: Value, description: &str) -> Value {
    let schema = if schema.get("enum").is_some() {
        let mut schema = schema;
        if let Some(values) = schema["enum"].as_array_mut() {
            values.insert(0, json!(""));
        }
        schema
    } else if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        let inner = pattern.trim_start_matches('^').trim_end_matches('$');
        let mut schema = schema.clone();
        schema["pattern"] = json!(format!("^(?:{inner})?$"));
        schema
    } else if schema["type"] == "integer" {
        json!({"anyOf": [schema, {"type": "string", "maxLength": 0}]})
    } else {
        schema
    };
    query(
        name,
        false,
        schema,
        &format!("{description} Empty = absent."),
    )
}

/// A ULID as Herald reads one: 26 Crockford base32 digits, either case (it writes upper case).
const ULID: &str = "[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}";

fn id_pattern(prefix: &str) -> String {
    format!("^{prefix}{ULID}$")
}

/// The `limit` of paged lists.
fn limit_parameter(max: usize, default: usize) -> Value {
    optional_query(
        "limit",
        json!({"type": "integer", "minimum": 1, "maximum": max, "default": default}),
        "Page size.",
    )
}

/// Event type names, optionally with `*` (every type).
fn event_type_names(with_all: bool) -> Vec<&'static str> {
    let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    if with_all {
        names.insert(0, "*");
    }
    names
}

/// A comma-separated list of event types (blank items ignored; none, or `*`, = all).
fn event_type_list() -> Value {
    let names = event_type_names(true)
        .iter()
        .map(|n| n.replace('.', "\\.").replace('*', "\\*"))
        .collect::<Vec<_>>()
        .join("|");
    json!({"type": "string",
           "pattern": format!("^[\\s,]*(?:(?:{names})(?:\\s*,[\\s,]*(?:{names}))*[\\s,]*)?$")})
}

/// The filters and paging of both delivery lists.
fn delivery_filters() -> Vec<Value> {
    let millis = json!({"type": "integer", "minimum": 0});
    vec![
        optional_query(
            "status",
            json!({"type": "string",
                "enum": DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()}),
            "Only deliveries in this status.",
        ),
        optional_query(
            "event",
            json!({"type": "string", "enum": event_type_names(false)}),
            "Only deliveries of this event type.",
        ),
        optional_query(
            "since",
            millis.clone(),
            "Only deliveries created at or after this time (epoch ms).",
        ),
        optional_query(
            "until",
            millis,
            "Only deliveries created at or before this time (epoch ms).",
        ),
        limit_parameter(
            herald_domain::deliveries::DeliveryQuery::MAX_LIMIT,
            herald_domain::deliveries::DeliveryQuery::DEFAULT_LIMIT,
        ),
        optional_query(
            "cursor",
            json!({"type": "string", "pattern": id_pattern("dlv_")}),
            "The nextCursor of the previous page.",
        ),
    ]
}

/// How the route and its description determine its answers.
pub fn describe(op: Op) -> OperationDoc {
    let mut doc = OperationDoc {
        body: None,
        query: Vec::new(),
        success: Success::Empty,
        errors: &[],
        uses_store: true,
    };
    match op {
        Op::Healthz => {
            doc.uses_store = false;
            doc.success = Success::Json(json!({"type": "object", "required": ["status"],
                "properties": {"status": {"const": "ok"}}}));
        }
        Op::Readyz => {
            doc.success = Success::Json(schema_ref("Readiness"));
        }
        Op::Metrics => {
            doc.uses_store = false;
            doc.success = Success::Text("text/plain");
        }
        Op::OpenApi => {
            doc.uses_store = false;
            doc.success =
                Success::Json(json!({"type": "object", "required": ["openapi", "paths"]}));
        }
        Op::EventTypes => doc.success = Success::Json(list_of("EventType")),
        Op::ListWebhooks => doc.success = Success::Json(list_of("Webhook")),
        Op::CreateWebhook => {
            doc.body = json_body(schema_ref("WebhookCreate"));
            doc.success = Success::Json(schema_ref("WebhookCreated"));
            // A `sessionId` the caller's organization does not have.
            doc.errors = &[404];
        }
        Op::GetWebhook => doc.success = Success::Json(schema_ref("Webhook")),
        Op::UpdateWebhook => {
            // An empty body changes nothing.
            doc.body = Some((schema_ref("WebhookPatch"), false));
            doc.success = Success::Json(schema_ref("Webhook"));
        }
        Op::DeleteWebhook | Op::DeleteApiKey => {}
        Op::DeleteSession => {
            // The engine could not delete its session: nothing was deleted.
            doc.errors = &[502];
        }
        Op::RestartSession => {
            doc.success = Success::Json(schema_ref("Session"));
            doc.errors = &[502];
        }
        Op::SessionQr => {
            doc.success = Success::Json(schema_ref("QrCode"));
            // 409: the session is not SCAN_QR (or the engine never needs a QR code).
            doc.errors = &[409, 502];
        }
        Op::SendText => {
            doc.body = json_body(schema_ref("TextCreate"));
            doc.success = Success::Json(schema_ref("SendResult"));
            doc.errors = &[409, 502];
        }
        Op::WahaEvents => {
            doc.body = json_body(json!({"type": "object",
                "description": "A WAHA webhook envelope `{id?, timestamp?, event, session, me?, payload}`, signed."}));
            doc.query = vec![
                json!({"name": "X-Webhook-Hmac", "in": "header", "required": true,
                "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{128}$"},
                "description": "Lowercase hex HMAC-SHA512 of the raw body with HERALD_WAHA_WEBHOOK_KEY."}),
            ];
            doc.success = Success::Json(schema_ref("EngineEventAnswer"));
            // 401: missing or wrong signature; 404: the engine is not WAHA.
            doc.errors = &[401, 404];
        }
        Op::RotateSecret => {
            // Every field is optional: an empty body generates a secret with a day's grace.
            doc.body = Some((schema_ref("SecretRotate"), false));
            doc.success = Success::Json(schema_ref("SecretRotated"));
            // Rotations of the same webhook kept racing this one.
            doc.errors = &[409];
        }
        Op::ListSessions => doc.success = Success::Json(list_of("Session")),
        Op::CreateSession => {
            doc.body = json_body(schema_ref("SessionCreate"));
            doc.success = Success::Json(schema_ref("Session"));
            // Another session already binds the engine session.
            doc.errors = &[409];
        }
        Op::GetSession => doc.success = Success::Json(schema_ref("Session")),
        Op::ListApiKeys => doc.success = Success::Json(list_of("ApiKey")),
        Op::CreateApiKey => {
            doc.body = json_body(schema_ref("ApiKeyCreate"));
            doc.success = Success::Json(schema_ref("ApiKeyCreated"));
        }
        Op::ListDeliveries => {
            doc.query = delivery_filters();
            doc.success = Success::Json(list_of("Delivery"));
            doc.errors = &[422];
        }
        Op::ListOrgDeliveries => {
            doc.query = delivery_filters();
            doc.query.push(optional_query(
                "webhookId",
                json!({"type": "string", "pattern": id_pattern("wh_")}),
                "Only this webhook's deliveries; a webhook the organization does not have → 404.",
            ));
            doc.success = Success::Json(list_of("Delivery"));
            doc.errors = &[404, 422];
        }
        Op::WebhookStats => {
            doc.query = vec![optional_query(
                "window",
                json!({"type": "string", "enum": herald_domain::deliveries::StatsWindow::ALL
                    .iter().map(|w| w.as_str()).collect::<Vec<_>>(), "default": "24h"}),
                "How far back to count attempts.",
            )];
            doc.success = Success::Json(schema_ref("WebhookStats"));
            doc.errors = &[422];
        }
        Op::GetDelivery => doc.success = Success::Json(schema_ref("DeliveryDetail")),
        Op::RetryDelivery => {
            doc.success = Success::Json(schema_ref("Delivery"));
            // An attempt is in flight.
            doc.errors = &[409];
        }
        Op::RecoverDeliveries => {
            doc.body = json_body(schema_ref("RecoverRequest"));
            doc.success = Success::Json(schema_ref("Recovered"));
            // The webhook is inactive.
            doc.errors = &[409];
        }
        Op::TestWebhook => {
            doc.success = Success::Json(schema_ref("TestPing"));
            doc.errors = &[409];
        }
        Op::SendPoll => {
            doc.body = json_body(schema_ref("PollCreate"));
            doc.success = Success::Json(schema_ref("SendResult"));
            // 409: the session is not connected; 502: the engine refused.
            doc.errors = &[409, 502];
        }
        Op::Vote => {
            doc.body = json_body(schema_ref("VoteRequest"));
            doc.success = Success::Json(schema_ref("SendResult"));
            // 400: not a poll, or options the poll does not have; 409: session not connected.
            doc.errors = &[400, 409, 502];
        }
        Op::GetPoll => {
            doc.query = vec![
                query(
                    "chat",
                    true,
                    json!({"type": "string", "minLength": 1}),
                    "The poll's chat.",
                ),
                query(
                    "sender",
                    true,
                    json!({"type": "string", "minLength": 1}),
                    "Who sent the poll.",
                ),
            ];
            doc.success = Success::Json(schema_ref("PollTally"));
            doc.errors = &[400, 422];
        }
        Op::Ingest => {
            doc.body = json_body(schema_ref("InboundEvent"));
            doc.success = Success::Json(json!({"type": "object", "required": ["eventId"],
                "properties": {"eventId": {"type": "string", "pattern": id_pattern("evt_")}}}));
            doc.errors = &[400, 409];
        }
        Op::ListEvents => {
            doc.query = vec![
                optional_query(
                    "since",
                    json!({"type": "string"}),
                    "An event id: only events after it (not the event itself); unknown → 404.",
                ),
                optional_query(
                    "cursor",
                    json!({"type": "string"}),
                    "The previous page's nextCursor (an event id; wins over since).",
                ),
                optional_query(
                    "sessionId",
                    json!({"type": "string", "pattern": id_pattern("")}),
                    "Only this session's events.",
                ),
                optional_query(
                    "event",
                    event_type_list(),
                    "Only these event types (comma-separated; `*` = all).",
                ),
                limit_parameter(
                    herald_domain::events_log::MAX_PAGE,
                    crate::events::DEFAULT_PAGE,
                ),
            ];
            doc.success = Success::Json(list_of("Envelope"));
            // 404: `since` or `cursor` names no event of the caller's.
            doc.errors = &[404, 422];
        }
        Op::Me => doc.success = Success::Json(schema_ref("Me")),
        Op::Console => {
            doc.uses_store = false;
            doc.success = Success::Files(&["text/html"]);
            // 304: the `If-None-Match` ETag still matches; 308: `/console/` → `/console`.
            doc.errors = &[304, 308];
        }
        Op::ConsoleAsset => {
            doc.uses_store = false;
            doc.success = Success::Files(&["text/javascript", "text/css", "image/svg+xml"]);
            doc.errors = &[304];
        }
        Op::EventsWs => {
            doc.query = vec![
                optional_query(
                    "events",
                    event_type_list(),
                    "Only these event types (comma-separated; `*` = all).",
                ),
                optional_query(
                    "sessionId",
                    json!({"type": "string", "pattern": id_pattern("")}),
                    "Only this session's events.",
                ),
                optional_query(
                    "since",
                    json!({"type": "string"}),
                    "Replay events after this event id, then go live; unknown → 404.",
                ),
                optional_query(
                    "access_token",
                    json!({"type": "string"}),
                    "The bearer token, for clients that can neither set headers nor offer a subprotocol.",
                ),
                json!({"name": "Sec-WebSocket-Protocol", "in": "header", "required": false,
                    "schema": {"type": "string"},
                    "description": "Browsers offer `herald, herald.bearer.<token>` to send the token without putting it in the URL; the server selects `herald`."}),
            ];
            doc.success = Success::Upgrade;
            // 400: a malformed handshake; 426: not an upgrade request.
            doc.errors = &[400, 404, 422, 426];
        }
    }
    doc
}

/// Every status `route` can answer, with what each means, in ascending order.
pub fn statuses(route: &Route) -> Vec<(u16, &'static str)> {
    let doc = describe(route.op);
    let mut statuses = vec![(route.success, "Success")];
    let mut add = |status: u16, why: &'static str| {
        if !statuses.iter().any(|(s, _)| *s == status) {
            statuses.push((status, why));
        }
    };
    if route.access != Access::Public {
        add(401, "No usable bearer token.");
        if matches!(route.access, Access::Requires(_)) {
            add(
                403,
                "The caller lacks the capability this operation requires.",
            );
        }
    }
    if route.path.contains('{') {
        add(
            404,
            "A resource named in the path does not exist or is another organization's.",
        );
    }
    if doc.body.is_some() {
        add(413, "The body is over 1 MiB.");
        add(
            422,
            "The body is not a JSON object or a field is missing, mistyped or out of range.",
        );
    }
    for status in doc.errors {
        add(
            *status,
            match status {
                400 => "The request breaks a rule about its target.",
                404 => {
                    "A resource named in the request does not exist or is another organization's."
                }
                409 => "The target's state does not allow this now.",
                304 => "Not modified: the `If-None-Match` ETag still matches.",
                308 => "Moved: `/console/` answers with a redirect to `/console`.",
                422 => "A parameter is malformed or out of range.",
                426 => "This endpoint only answers WebSocket upgrade requests.",
                401 => "The X-Webhook-Hmac signature is missing or wrong.",
                502 => "The messaging engine refused (`engine_error`; `details.engineStatus` is its status code). Nothing was stored.",
                _ => "Error.",
            },
        );
    }
    if route.op == Op::Readyz {
        add(503, "Not ready: a required check fails.");
    } else if doc.uses_store || route.access != Access::Public {
        add(
            503,
            "The store, or the messaging engine (`engine_unavailable`), is unavailable; nothing was done; retry after `Retry-After` seconds.",
        );
        add(500, "An internal error.");
    }
    statuses.sort_unstable();
    statuses
}

fn operation(route: &Route) -> Value {
    let doc = describe(route.op);
    let mut op = Map::new();
    op.insert("summary".into(), json!(route.summary));
    op.insert("operationId".into(), json!(format!("{:?}", route.op)));
    let mut params: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    params.extend(doc.query.iter().cloned());
    if !params.is_empty() {
        op.insert("parameters".into(), json!(params));
    }
    if let Some((schema, required)) = &doc.body {
        op.insert(
            "requestBody".into(),
            json!({"required": required, "content": {"application/json": {"schema": schema}}}),
        );
    }
    let request_id = json!({"X-Request-Id": {"$ref": "#/components/headers/RequestId"}});
    let mut responses = Map::new();
    for (status, description) in statuses(route) {
        let mut answer = Map::new();
        answer.insert("description".into(), json!(description));
        let mut headers = request_id.clone();
        if status == route.success {
            match &doc.success {
                Success::Json(schema) => {
                    answer.insert(
                        "content".into(),
                        json!({"application/json": {"schema": schema}}),
                    );
                }
                Success::Text(media) => {
                    answer.insert(
                        "content".into(),
                        json!({*media: {"schema": {"type": "string"}}}),
                    );
                }
                Success::Files(media) => {
                    let content: Map<String, Value> = media
                        .iter()
                        .map(|m| ((*m).to_owned(), json!({"schema": {"type": "string"}})))
                        .collect();
                    answer.insert("content".into(), Value::Object(content));
                    headers["ETag"] = json!({"schema": {"type": "string"},
                        "description": "A hash of the file's bytes, for `If-None-Match`."});
                }
                Success::Empty | Success::Upgrade => {}
            }
        } else if status == 304 || status == 308 {
            // No body: a revalidation or a redirect.
            if status == 308 {
                headers["Location"] = json!({"schema": {"type": "string"}});
            }
        } else {
            let schema = if route.op == Op::Readyz {
                schema_ref("Readiness")
            } else {
                schema_ref("Error")
            };
            answer.insert(
                "content".into(),
                json!({"application/json": {"schema": schema}}),
            );
            match status {
                401 => {
                    headers["WWW-Authenticate"] =
                        json!({"$ref": "#/components/headers/WwwAuthenticate"})
                }
                503 => headers["Retry-After"] = json!({"$ref": "#/components/headers/RetryAfter"}),
                _ => {}
            }
        }
        answer.insert("headers".into(), headers);
        responses.insert(status.to_string(), Value::Object(answer));
    }
    match route.access {
        Access::Public => {
            op.insert("security".into(), json!([]));
        }
        Access::Authenticated => {}
        Access::Requires(capability) => {
            op.insert("x-required-capability".into(), json!(capability.as_str()));
        }
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

fn build() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths.entry(route.path).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Herald",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A multi-tenant messaging gateway's event layer: sessions, polls and votes, and every event pushed to signed, retried webhooks and a realtime WebSocket. Every answer carries `X-Request-Id`; a method a path does not serve is answered 405 with `Allow`."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A frontend login JWT (verified against the JWKS) or an API key."}},
            "headers": {
                "RequestId": {"description": "The request's id: the client's `X-Request-Id` when it is 1 to 128 characters of letters, digits and `-_.:@/+=`, else a new ULID.",
                    "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 128}},
                "RetryAfter": {"description": "Seconds to wait before retrying.", "required": true,
                    "schema": {"type": "integer", "minimum": 1}},
                "WwwAuthenticate": {"description": "The authentication scheme.", "required": true,
                    "schema": {"type": "string", "const": "Bearer"}},
            },
            "schemas": merged(
                merged(merged(schemas(), delivery_schemas()), engine_schemas()),
                secret_schemas()
            ),
        }
    })
}

/// `base` with the schemas of `extra` added.
fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// `schema` that may also be `null` (the server treats an explicit `null` as absent).
fn nullable(mut schema: Value) -> Value {
    let kind = schema["type"].clone();
    schema["type"] = match kind {
        Value::String(t) => json!([t, "null"]),
        Value::Array(mut types) => {
            types.push(json!("null"));
            Value::Array(types)
        }
        _ => return json!({"anyOf": [schema, {"type": "null"}]}),
    };
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        values.push(Value::Null);
    }
    schema
}

/// A name or label: 1 to `max` characters, no control characters, not only whitespace.
fn label(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"})
}

/// A string with at least one character that is not whitespace.
fn not_blank() -> Value {
    json!({"type": "string", "pattern": "\\S"})
}

/// The retry policy fields as written (each may be omitted or null).
fn retry_policy_input() -> Value {
    json!({"type": ["object", "null"], "properties": {
        "policy": nullable(json!({"type": "string", "enum": ["exponential", "linear", "constant"]})),
        "delaySeconds": nullable(json!({"type": "integer",
            "minimum": RetryPolicy::DELAY_RANGE.start(), "maximum": RetryPolicy::DELAY_RANGE.end()})),
        "attempts": nullable(json!({"type": "integer",
            "minimum": RetryPolicy::ATTEMPTS_RANGE.start(), "maximum": RetryPolicy::ATTEMPTS_RANGE.end()}))}})
}

/// Header names a webhook may not set.
const RESERVED_HEADERS: &str =
    "^(?:[Hh][Oo][Ss][Tt]|[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]|[Tt][Rr][Aa][Nn][Ss][Ff][Ee][Rr]-[Ee][Nn][Cc][Oo][Dd][Ii][Nn][Gg]|[Cc][Oo][Nn][Nn][Ee][Cc][Tt][Ii][Oo][Nn])$";

/// The fields of a webhook as written; `url_required` on create.
fn webhook_input(url_required: bool) -> Value {
    let url = json!({"type": "string", "maxLength": WebhookUrl::MAX_LEN,
        // A path (at least `/`) and no `'` in the query: the URL is stored as written, so the
        // length limit holds for what is stored.
        "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://(?:[a-z0-9-]+\\.)+[a-z][a-z0-9-]*(?::[1-9][0-9]{0,3})?/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*(?:\\?[A-Za-z0-9._~!$&()*+,;=:@%/?-]*)?$",
        "description": "An absolute http or https URL with a host name. While private destinations are not allowed, a literal private, loopback, link-local, CGNAT or multicast address (in any spelling) or localhost is refused with 422."});
    let mut object = json!({"type": "object", "properties": {
        "url": if url_required { url } else { nullable(url) },
        "events": nullable(json!({"type": "array", "minItems": 1,
            "items": {"type": "string", "enum": event_type_names(true)},
            "description": "Event types, or [\"*\"] for all (the default)."})),
        "sessionId": nullable(json!({"type": "string",
            "description": "Only this session's events; null = all sessions. A session the organization does not have → 404."})),
        "secret": nullable(json!({"type": "string", "minLength": 16, "maxLength": 256, "writeOnly": true,
            "description": "Signs deliveries; never returned. With `standard` signing: `whsec_` and the base64 of 24 to 64 bytes. Omitted on create: Herald generates one and shows it once. null removes it (`waha` only)."})),
        "signing": nullable(json!({"type": "string", "enum": SigningScheme::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "description": "`waha` (HMAC-SHA512 in X-Webhook-Hmac; the default) or `standard` (Standard Webhooks v1)."})),
        "customHeaders": nullable(json!({"type": "object",
            "maxProperties": herald_domain::webhook::CustomHeaders::MAX_HEADERS,
            "propertyNames": {"minLength": 1, "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
                "not": {"pattern": RESERVED_HEADERS}},
            "additionalProperties": {"type": "string",
                "maxLength": herald_domain::webhook::CustomHeaders::MAX_VALUE_LEN,
                "pattern": "^[^\\u0000-\\u0008\\u000a-\\u001f\\u007f]*$"},
            "description": "Sent with every delivery; Host, Content-Length, Transfer-Encoding and Connection cannot be set."})),
        "retryPolicy": retry_policy_input(),
        "rateLimit": nullable(json!({"type": "integer",
            "minimum": herald_domain::webhook::Webhook::RATE_LIMIT.start(),
            "maximum": herald_domain::webhook::Webhook::RATE_LIMIT.end(),
            "description": "Most deliveries per second to this webhook, across all dispatchers; null = no limit."})),
        "active": nullable(json!({"type": "boolean"}))}});
    if url_required {
        object["required"] = json!(["url"]);
    }
    object
}

/// Poll fields as written: 2 to 12 unique choices, and a selectable count from 0 to the
/// number of choices (written out per number of choices, which a schema can only say so).
fn poll_input(extra_required: &[&str], extra: Value) -> Value {
    let max = herald_domain::poll::Poll::MAX_OPTIONS;
    let by_count: Vec<Value> = (2..=max)
        .map(|n| {
            json!({"properties": {
                "options": {"minItems": n, "maxItems": n},
                "selectableCount": {"maximum": n}}})
        })
        .collect();
    let mut required = vec!["question", "options"];
    required.extend_from_slice(extra_required);
    let mut properties = json!({
        "question": not_blank(),
        "options": {"type": "array", "items": not_blank(), "minItems": 2, "maxItems": max,
            "uniqueItems": true},
        "selectableCount": nullable(json!({"type": "integer", "minimum": 0, "maximum": max, "default": 1,
            "description": "0 = any number of options, 1 = single choice; at most the number of options."}))});
    if let (Some(properties), Value::Object(extra)) = (properties.as_object_mut(), extra) {
        properties.extend(extra);
    }
    json!({"type": "object", "required": required, "properties": properties, "anyOf": by_count})
}

fn schemas() -> Value {
    let signing: Vec<&str> = SigningScheme::ALL.iter().map(|s| s.as_str()).collect();
    let capabilities: Vec<&str> = Capability::ALL.iter().map(|c| c.as_str()).collect();
    let statuses: Vec<&str> = SessionStatus::ALL.iter().map(|s| s.as_str()).collect();
    let me = json!({"type": ["object", "null"], "required": ["id"], "properties": {"id": {"type": "string"}}});
    let millis = json!({"type": "integer", "minimum": 0, "maximum": i64::MAX});
    let inbound_millis = nullable(millis.clone());
    let non_empty = json!({"type": "string", "minLength": 1});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
            "required": ["code", "message", "details"], "properties": {
                "code": {"type": "string", "enum": ["validation_error", "unauthorized", "forbidden",
                    "not_found", "method_not_allowed", "conflict", "payload_too_large", "internal",
                    "unavailable", "upgrade_required", "engine_unavailable", "engine_error"]},
                "message": {"type": "string"}, "details": {"type": "object"}}}}},
        "Me": {"type": "object", "required": ["organizationId", "capabilities", "credential", "expiresAt"], "properties": {
            "organizationId": {"type": "string"},
            "capabilities": {"type": "array", "items": {"type": "string", "enum": ["read", "send", "manage", "ingest"]}},
            "credential": {"type": "string", "enum": ["api_key", "login"]},
            "expiresAt": {"type": ["integer", "null"], "description": "When the token stops being valid (epoch ms); null when it does not expire."}}},
        "Readiness": {"type": "object", "required": ["status", "checks"], "properties": {
            "status": {"type": "string", "enum": ["ready", "degraded", "unavailable"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "Each check: `ok`, or why it fails (never driver text)."}}},
        "EventType": {"type": "object", "required": ["name", "description"], "properties": {
            "name": {"type": "string", "enum": event_type_names(false)},
            "description": {"type": "string"}}},
        "RetryPolicy": {"type": "object", "required": ["policy", "delaySeconds", "attempts"], "properties": {
            "policy": {"type": "string", "enum": ["exponential", "linear", "constant"]},
            "delaySeconds": {"type": "integer"}, "attempts": {"type": "integer"}}},
        "Webhook": {"type": "object", "required": ["id", "organizationId", "url", "events", "sessionId",
                "active", "customHeaders", "retryPolicy", "signing", "previousSecretsValidUntil",
                "disabledReason", "rateLimit", "health", "createdAt", "updatedAt"],
            "properties": {
                "id": {"type": "string", "pattern": id_pattern("wh_")}, "organizationId": {"type": "string"},
                "url": {"type": "string"},
                "events": {"type": "array", "items": {"type": "string", "enum": event_type_names(true)}},
                "sessionId": {"type": ["string", "null"]}, "active": {"type": "boolean"},
                "customHeaders": {"type": "object", "additionalProperties": {"type": "string"}},
                "retryPolicy": schema_ref("RetryPolicy"),
                "signing": {"type": "string", "enum": signing},
                "disabledReason": {"type": ["string", "null"], "enum": ["gone", "failing", "manual", null],
                    "description": "Why the webhook is inactive: its receiver answered 410, it kept failing, or a user deactivated it."},
                "rateLimit": {"type": ["integer", "null"]},
                "health": schema_ref("WebhookHealth"),
                "previousSecretsValidUntil": {"type": ["integer", "null"],
                    "description": "Until when secrets replaced by a rotation still sign deliveries (epoch ms); null when none do."},
                "createdAt": {"type": "integer"}, "updatedAt": {"type": "integer"}}},
        "WebhookCreate": webhook_input(true),
        "WebhookPatch": webhook_input(false),
        "Session": {"type": "object", "required": ["id", "organizationId", "name", "engineSession", "status", "me", "createdAt", "updatedAt"],
            "properties": {
                "id": {"type": "string", "pattern": id_pattern("")}, "organizationId": {"type": "string"},
                "name": {"type": "string"},
                "engineSession": {"type": "string",
                    "description": "The engine's name for the session (WAHA's session name); the session id unless chosen at creation."},
                "status": {"type": "string", "enum": statuses},
                "me": me,
                "createdAt": {"type": "integer"}, "updatedAt": {"type": "integer"}}},
        "SessionCreate": {"type": "object", "required": ["name"], "properties": {"name": label(Session::MAX_NAME),
            "engineSession": nullable(json!({"type": "string", "pattern": format!("^[A-Za-z0-9._-]{{1,{}}}$", Session::MAX_ENGINE_SESSION),
                "description": "The engine session to bind (WAHA: `default` for WAHA Core's single session); default: the new session's id. Already bound → 409."}))}},
        "ApiKey": {"type": "object", "required": ["id", "name", "capabilities", "createdAt", "lastUsedAt"], "properties": {
            "id": {"type": "string", "pattern": id_pattern("key_")}, "name": {"type": "string"},
            "capabilities": {"type": "array", "items": {"type": "string", "enum": capabilities}},
            "createdAt": {"type": "integer"}, "lastUsedAt": {"type": ["integer", "null"]}}},
        "ApiKeyCreate": {"type": "object", "required": ["name", "capabilities"], "properties": {
            "name": label(herald_domain::api_key::ApiKey::MAX_NAME),
            "capabilities": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": capabilities},
                "description": "At most the caller's own capabilities (manage may also grant ingest), else 403."}}},
        "ApiKeyCreated": {"type": "object", "required": ["id", "name", "capabilities", "createdAt", "token"], "properties": {
            "id": {"type": "string", "pattern": id_pattern("key_")}, "name": {"type": "string"},
            "capabilities": {"type": "array", "items": {"type": "string", "enum": capabilities}},
            "createdAt": {"type": "integer"}, "token": {"type": "string", "description": "Shown only once."}}},
        "PollCreate": poll_input(&["chat"], json!({"chat": not_blank()})),
        "PollFields": poll_input(&[], json!({})),
        "VoteRequest": {"type": "object", "required": ["chat", "sender", "options"], "properties": {
            "chat": {"type": "string"}, "sender": {"type": "string"},
            "options": {"type": "array", "items": {"type": "string"},
                "description": "The complete selection: replaces the previous vote; [] clears it. Options the poll does not have, duplicates, or more than its selectable count → 400."}}},
        "SendResult": {"type": "object", "required": ["id", "sessionId", "chat", "timestamp", "status"], "properties": {
            "id": {"type": "string"}, "sessionId": {"type": "string"}, "chat": {"type": "string"},
            "timestamp": {"type": "integer"}, "status": {"type": "string", "enum": ["sent"]}}},
        "PollTally": {"type": "object", "required": ["id", "chat", "sender", "question", "selectableCount", "options", "voters", "myVote"], "properties": {
            "id": {"type": "string"}, "chat": {"type": "string"}, "sender": {"type": "string"},
            "question": {"type": "string"}, "selectableCount": {"type": "integer"},
            "options": {"type": "array", "items": {"type": "object", "required": ["name", "votes"], "properties": {
                "name": {"type": "string"}, "votes": {"type": "integer"}}}},
            "voters": {"type": "array", "items": {"type": "object", "required": ["voter", "options", "updatedAt"], "properties": {
                "voter": {"type": "string"}, "options": {"type": "array", "items": {"type": "string"}},
                "updatedAt": {"type": "integer"}}}},
            "myVote": {"type": "array", "items": {"type": "string"}}}},
        "InboundEvent": {"type": "object", "required": ["event", "payload"], "properties": {
            "event": {"type": "string", "enum": ["message", "poll.vote", "poll.vote.failed", "session.status"]},
            "id": nullable(json!({"type": "string", "minLength": 1, "maxLength": herald_domain::message::InboundKey::MAX_LEN,
                "description": "Idempotency key: the same id twice is accepted once."})),
            "payload": {"type": "object"}},
            "oneOf": [
                {"properties": {"event": {"const": "message"}, "payload": schema_ref("InboundMessage")}},
                {"properties": {"event": {"const": "poll.vote"}, "payload": schema_ref("InboundVote")}},
                {"properties": {"event": {"const": "poll.vote.failed"}}},
                {"properties": {"event": {"const": "session.status"}, "payload": schema_ref("StatusReport")}}]},
        "InboundMessage": {"type": "object", "required": ["id", "chat", "sender", "type"], "properties": {
            "id": non_empty, "chat": non_empty, "sender": non_empty,
            "fromMe": nullable(json!({"type": "boolean"})), "timestamp": inbound_millis,
            "type": {"type": "string", "enum": ["text", "poll"]}},
            // A poll message reads `poll` (and ignores `body`); a text message the reverse.
            "if": {"required": ["type"], "properties": {"type": {"const": "poll"}}},
            "then": {"required": ["poll"], "properties": {"poll": schema_ref("PollFields")}},
            "else": {"properties": {"body": nullable(json!({"type": "string"}))}}},
        "InboundVote": {"type": "object", "required": ["poll", "vote"], "properties": {
            "poll": {"type": "object", "required": ["id", "chat", "sender"], "properties": {
                "id": non_empty, "chat": non_empty, "sender": non_empty}},
            "vote": {"type": "object", "required": ["voter", "selectedOptions"], "properties": {
                "id": nullable(json!({"type": "string"})), "voter": non_empty,
                "selectedOptions": {"type": "array", "items": {"type": "string"}},
                "timestamp": inbound_millis}}}},
        "StatusReport": {"type": "object", "required": ["status"], "properties": {
            "status": {"type": "string", "enum": statuses},
            "me": {"type": ["object", "null"], "required": ["id"], "properties": {"id": non_empty}}}},
        "Envelope": {"type": "object", "required": ["id", "timestamp", "event", "session", "organizationId", "me", "payload"], "properties": {
            "id": {"type": "string", "pattern": id_pattern("evt_")}, "timestamp": {"type": "integer"},
            "event": {"type": "string", "enum": event_type_names(false)},
            "session": {"type": ["string", "null"]}, "organizationId": {"type": "string"},
            "me": me, "payload": {"type": "object"}}},
    })
}

/// Component schemas of the engine's routes (QR code, text, WAHA's webhook).
fn engine_schemas() -> Value {
    json!({
        "QrCode": {"type": "object", "required": ["value"], "properties": {"value": {"type": "string",
            "description": "The QR code's text, to render as a QR code and scan with the phone."}}},
        "TextCreate": {"type": "object", "required": ["chat", "text"], "properties": {
            "chat": not_blank(),
            "text": {"type": "string", "minLength": 1, "maxLength": herald_domain::messaging::MAX_TEXT},
            "replyTo": nullable(json!({"type": "string", "minLength": 1, "description": "The id of the message this answers."}))}},
        "EngineEventAnswer": {"type": "object", "properties": {
            "eventId": {"type": "string", "pattern": id_pattern("evt_"), "description": "The event it became (the first one's id when it was a duplicate)."},
            "duplicate": {"type": "boolean", "description": "true when this event was accepted before."},
            "ignored": {"type": "string", "description": "Why nothing was done: `unknown session`, the event's name, …"}}},
    })
}

/// Component schemas of generated and rotated secrets.
fn secret_schemas() -> Value {
    json!({
        "WebhookCreated": {"allOf": [schema_ref("Webhook"), {"type": "object", "properties": {
            "secret": {"type": "string", "description": "The secret Herald generated because none was given: shown this once, never again."}}}]},
        "WebhookHealth": {"type": "object",
            "required": ["state", "consecutiveFailures", "failingSince", "lastSuccessAt", "pausedUntil"],
            "properties": {
                "state": {"type": "string", "enum": ["healthy", "failing", "paused"]},
                "consecutiveFailures": {"type": "integer", "minimum": 0},
                "failingSince": {"type": ["integer", "null"]},
                "lastSuccessAt": {"type": ["integer", "null"]},
                "pausedUntil": {"type": ["integer", "null"],
                    "description": "While the circuit breaker is open: when its cool-down ends and one probe goes out."}}},
        "SecretRotate": {"type": "object", "properties": {
            "secret": nullable(json!({"type": "string", "minLength": 16, "maxLength": 256,
                "description": "The new secret, in the webhook's scheme's form; omitted = generated."})),
            "graceSeconds": nullable(json!({"type": "integer",
                "minimum": herald_domain::gateway::GRACE_SECONDS.start(),
                "maximum": herald_domain::gateway::GRACE_SECONDS.end(),
                "default": herald_domain::gateway::DEFAULT_GRACE_SECONDS,
                "description": "How long the replaced secret keeps signing beside the new one."}))}},
        "SecretRotated": {"type": "object", "required": ["secret", "previousValidUntil"], "properties": {
            "secret": {"type": "string", "description": "The new secret: shown this once."},
            "previousValidUntil": {"type": "integer", "description": "Until when the replaced secret still signs (epoch ms)."}}},
    })
}

/// Component schemas of the deliveries API.
fn delivery_schemas() -> Value {
    let nullable_int = json!({"type": ["integer", "null"]});
    let mut classes: Vec<Value> = AttemptError::ALL
        .iter()
        .map(|e| json!(e.as_str()))
        .collect();
    classes.push(Value::Null);
    let error_class = json!({"type": ["string", "null"], "enum": classes});
    let delivery_props = json!({
        "id": {"type": "string", "pattern": id_pattern("dlv_")},
        "webhookId": {"type": "string", "pattern": id_pattern("wh_")},
        "eventId": {"type": "string", "pattern": id_pattern("evt_")},
        "event": {"type": "string", "enum": event_type_names(false)},
        "status": {"type": "string",
            "enum": DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()},
        "attempts": {"type": "integer", "minimum": 0}, "nextAttemptAt": nullable_int.clone(),
        "lastAttemptAt": nullable_int.clone(), "lastStatusCode": nullable_int.clone(),
        "lastError": error_class.clone(), "createdAt": {"type": "integer"}, "updatedAt": {"type": "integer"}});
    let required = json!([
        "id",
        "webhookId",
        "eventId",
        "event",
        "status",
        "attempts",
        "nextAttemptAt",
        "lastAttemptAt",
        "lastStatusCode",
        "lastError",
        "createdAt",
        "updatedAt"
    ]);
    let mut detail_props = delivery_props.clone();
    detail_props["envelope"] =
        json!({"type": ["object", "null"], "description": "The exact JSON sent."});
    detail_props["attemptLog"] = json!({"type": "array", "items": schema_ref("AttemptRecord")});
    let mut detail_required = required.clone();
    if let Some(list) = detail_required.as_array_mut() {
        list.extend([json!("envelope"), json!("attemptLog")]);
    }
    json!({
        "Delivery": {"type": "object", "required": required, "properties": delivery_props},
        "DeliveryDetail": {"type": "object", "required": detail_required, "properties": detail_props},
        "AttemptRecord": {"type": "object",
            "required": ["attempt", "startedAt", "durationMs", "statusCode", "error", "responseBody"],
            "properties": {
            "attempt": {"type": "integer"}, "startedAt": {"type": "integer"},
            "durationMs": {"type": "integer"}, "statusCode": nullable_int,
            "error": error_class,
            "responseBody": {"type": "string", "description": "The first 4 KiB of the reply."}}},
        "RecoverRequest": {"type": "object", "required": ["since"], "properties": {
            "since": {"type": "integer", "minimum": 0, "maximum": i64::MAX, "description": "Epoch ms, inclusive."},
            "until": nullable(json!({"type": "integer", "minimum": 0, "maximum": i64::MAX,
                "description": "Epoch ms, inclusive; default now. Before since = an empty window."}))}},
        "Recovered": {"type": "object", "required": ["requeued"], "properties": {"requeued": {"type": "integer", "minimum": 0}}},
        "WebhookStats": {"type": "object",
            "required": ["window", "attempts", "succeeded", "failed", "successRate", "latencyMs", "byStatusCode", "pending"],
            "properties": {
                "window": {"type": "string", "enum": ["1h", "24h", "7d"]},
                "attempts": {"type": "integer", "minimum": 0},
                "succeeded": {"type": "integer", "minimum": 0, "description": "Attempts that got a 2xx."},
                "failed": {"type": "integer", "minimum": 0, "description": "Every other attempt."},
                "successRate": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                    "description": "succeeded / attempts; null without attempts."},
                "latencyMs": {"type": ["object", "null"], "required": ["p50", "p95", "p99"], "properties": {
                    "p50": {"type": "integer"}, "p95": {"type": "integer"}, "p99": {"type": "integer"}},
                    "description": "Nearest-rank percentiles of attempt durations; null without attempts."},
                "byStatusCode": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
                    "description": "Attempts per HTTP status received."},
                "pending": {"type": "integer", "minimum": 0, "description": "Deliveries pending now."}}},
        "TestPing": {"type": "object", "required": ["eventId", "deliveryId"], "properties": {
            "eventId": {"type": "string", "pattern": id_pattern("evt_")},
            "deliveryId": {"type": "string", "pattern": id_pattern("dlv_")}}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_route_is_documented_and_every_ref_resolves() {
        let doc = document();
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
            assert!(
                op.is_object(),
                "{} {} missing from the document",
                route.method,
                route.path
            );
            assert!(op["responses"][route.success.to_string()].is_object());
        }
        let text = doc.to_string();
        for (prefix, section) in [
            ("#/components/schemas/", "schemas"),
            ("#/components/headers/", "headers"),
        ] {
            for piece in text.split(prefix).skip(1) {
                let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
                assert!(
                    doc["components"][section][&name].is_object(),
                    "dangling $ref {prefix}{name}"
                );
            }
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn the_enums_are_the_domains_own_names() {
        for name in ["exponential", "linear", "constant"] {
            assert!(
                herald_domain::retry::Backoff::parse(name).is_some(),
                "{name}"
            );
        }
        for name in event_type_names(false) {
            assert!(EventType::parse(name).is_some(), "{name}");
        }
    }

    #[test]
    fn authenticated_routes_document_401_and_503_and_bodies_413_and_422() {
        for route in ROUTES {
            let codes: Vec<u16> = statuses(route).into_iter().map(|(s, _)| s).collect();
            let name = format!("{} {}", route.method, route.path);
            if route.access != Access::Public {
                assert!(codes.contains(&401) && codes.contains(&503), "{name}");
            }
            if describe(route.op).body.is_some() {
                assert!(codes.contains(&413) && codes.contains(&422), "{name}");
            }
        }
    }
}
