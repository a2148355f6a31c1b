//! The OpenAPI 3.1 document, generated from the route table so it lists exactly the endpoints
//! that are served, with the shared component schemas written out once here.

use crate::routes::{Access, Op, Route, ROUTES};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// The document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn list_of(name: &str) -> Value {
    json!({"type": "object", "required": ["data", "nextCursor"], "properties": {
        "data": {"type": "array", "items": schema_ref(name)},
        "nextCursor": {"type": "string", "description": "Opaque; empty on the last page."}}})
}

/// The request and success-response schemas of an operation.
fn shapes(op: Op) -> (Option<Value>, Option<Value>) {
    match op {
        Op::Healthz | Op::Readyz => (None, Some(json!({"type": "object"}))),
        Op::Metrics => (None, Some(json!({"type": "string"}))),
        Op::OpenApi => (None, Some(json!({"type": "object"}))),
        Op::EventTypes => (None, Some(list_of("EventType"))),
        Op::ListWebhooks => (None, Some(list_of("Webhook"))),
        Op::CreateWebhook => (
            Some(schema_ref("WebhookCreate")),
            Some(schema_ref("Webhook")),
        ),
        Op::GetWebhook => (None, Some(schema_ref("Webhook"))),
        Op::UpdateWebhook => (
            Some(schema_ref("WebhookPatch")),
            Some(schema_ref("Webhook")),
        ),
        Op::ListSessions => (None, Some(list_of("Session"))),
        Op::CreateSession => (
            Some(schema_ref("SessionCreate")),
            Some(schema_ref("Session")),
        ),
        Op::GetSession => (None, Some(schema_ref("Session"))),
        Op::ListApiKeys => (None, Some(list_of("ApiKey"))),
        Op::CreateApiKey => (
            Some(schema_ref("ApiKeyCreate")),
            Some(schema_ref("ApiKeyCreated")),
        ),
        Op::DeleteWebhook | Op::DeleteSession | Op::DeleteApiKey => (None, None),
        Op::ListDeliveries => (None, Some(list_of("Delivery"))),
        Op::GetDelivery => (None, Some(schema_ref("DeliveryDetail"))),
        Op::RetryDelivery => (None, Some(schema_ref("Delivery"))),
        Op::RecoverDeliveries => (
            Some(schema_ref("RecoverRequest")),
            Some(schema_ref("Recovered")),
        ),
        Op::TestWebhook => (None, Some(schema_ref("TestPing"))),
        Op::SendPoll => (
            Some(schema_ref("PollCreate")),
            Some(schema_ref("SendResult")),
        ),
        Op::Vote => (
            Some(schema_ref("VoteRequest")),
            Some(schema_ref("SendResult")),
        ),
        Op::GetPoll => (None, Some(schema_ref("PollTally"))),
        Op::Ingest => (
            Some(schema_ref("InboundEvent")),
            Some(
                json!({"type": "object", "required": ["eventId"], "properties": {"eventId": {"type": "string"}}}),
            ),
        ),
        Op::ListEvents => (None, Some(list_of("Envelope"))),
        Op::EventsWs => (None, None),
        Op::Me => (None, Some(schema_ref("Me"))),
        // Not JSON: their content is described by `console_content`.
        Op::Console | Op::ConsoleAsset => (None, None),
    }
}

/// The media types the console's routes answer with (they serve files, not JSON).
fn console_content(op: Op) -> Option<Value> {
    let text = json!({"schema": {"type": "string"}});
    match op {
        Op::Console => Some(json!({"text/html": text})),
        Op::ConsoleAsset => Some(json!({
            "text/javascript": text, "text/css": text, "image/svg+xml": text})),
        _ => None,
    }
}

/// Error answers an operation gives besides the ones every authenticated route shares.
fn extra_error_responses(op: Op, responses: &mut Map<String, Value>, error: &Value) {
    let codes: &[&str] = match op {
        Op::Vote | Op::GetPoll | Op::Ingest => &["400"],
        Op::SendPoll => &["409"],
        Op::ListEvents => &["404", "422"],
        Op::EventsWs => &["404", "422", "426"],
        _ => &[],
    };
    for code in codes {
        responses.insert((*code).to_owned(), error.clone());
    }
    if matches!(op, Op::Vote | Op::Ingest) {
        responses.insert("409".into(), error.clone());
    }
    if op == Op::GetPoll {
        responses.insert("422".into(), error.clone());
    }
}

/// The query parameters an operation reads (besides its path parameters).
fn query_parameters(op: Op) -> Vec<Value> {
    let param = |name: &str, required: bool, description: &str| {
        json!({"name": name, "in": "query", "required": required,
               "schema": {"type": "string"}, "description": description})
    };
    match op {
        Op::ListDeliveries => vec![
            json!({"name": "status", "in": "query", "required": false,
                "schema": {"type": "string", "enum": ["pending", "succeeded", "failed", "cancelled"]}}),
            json!({"name": "limit", "in": "query", "required": false,
                "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}),
            param("cursor", false, "The nextCursor of the previous page."),
        ],
        Op::GetPoll => vec![
            param("chat", true, "The poll's chat."),
            param("sender", true, "Who sent the poll."),
        ],
        Op::ListEvents => vec![
            param(
                "since",
                false,
                "An event id: only events after it (not the event itself).",
            ),
            param(
                "cursor",
                false,
                "The previous page's nextCursor (an event id; wins over since).",
            ),
            param("sessionId", false, "Only this session's events."),
            param("event", false, "Only these event types (comma-separated)."),
            json!({"name": "limit", "in": "query", "required": false,
                   "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}),
        ],
        Op::EventsWs => vec![
            param(
                "events",
                false,
                "Only these event types (comma-separated; `*` = all).",
            ),
            param("sessionId", false, "Only this session's events."),
            param(
                "since",
                false,
                "Replay events after this event id, then go live.",
            ),
            param(
                "access_token",
                false,
                "The bearer token, for clients that cannot set headers.",
            ),
            json!({"name": "Sec-WebSocket-Protocol", "in": "header", "required": false,
                "schema": {"type": "string"},
                "description": "Browsers offer `herald, herald.bearer.<token>` to send the token without putting it in the URL; the server selects `herald`."}),
        ],
        _ => Vec::new(),
    }
}

/// Component schemas of the deliveries API.
fn delivery_schemas() -> Value {
    let nullable_int = json!({"type": ["integer", "null"]});
    let error_class = json!({"type": ["string", "null"],
        "enum": ["timeout", "connect", "dns", "blocked_address", "http_status", "tls", null]});
    let delivery_props = json!({
        "id": {"type": "string"}, "webhookId": {"type": "string"}, "eventId": {"type": "string"},
        "event": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "succeeded", "failed", "cancelled"]},
        "attempts": {"type": "integer"}, "nextAttemptAt": nullable_int.clone(),
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
    json!({
        "Delivery": {"type": "object", "required": required, "properties": delivery_props},
        "DeliveryDetail": {"type": "object", "properties": detail_props},
        "AttemptRecord": {"type": "object", "properties": {
            "attempt": {"type": "integer"}, "startedAt": {"type": "integer"},
            "durationMs": {"type": "integer"}, "statusCode": nullable_int,
            "error": error_class,
            "responseBody": {"type": "string", "description": "The first 4 KiB of the reply."}}},
        "RecoverRequest": {"type": "object", "required": ["since"], "properties": {
            "since": {"type": "integer", "description": "Epoch ms, inclusive."},
            "until": {"type": "integer", "description": "Epoch ms, inclusive; default now."}}},
        "Recovered": {"type": "object", "properties": {"requeued": {"type": "integer"}}},
        "TestPing": {"type": "object", "properties": {
            "eventId": {"type": "string"}, "deliveryId": {"type": "string"}}},
    })
}

fn operation(route: &Route) -> Value {
    let mut op = Map::new();
    op.insert("summary".into(), json!(route.summary));
    op.insert("operationId".into(), json!(format!("{:?}", route.op)));
    let mut params: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    params.extend(query_parameters(route.op));
    if !params.is_empty() {
        op.insert("parameters".into(), json!(params));
    }
    let (request, response) = shapes(route.op);
    let has_body = request.is_some();
    if let Some(schema) = request {
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": schema}}}),
        );
    }
    let mut responses = Map::new();
    let success = match (console_content(route.op), response) {
        (Some(content), _) => json!({"description": "Success", "content": content}),
        (None, Some(schema)) => {
            json!({"description": "Success", "content": {"application/json": {"schema": schema}}})
        }
        (None, None) => json!({"description": "Success, no content"}),
    };
    responses.insert(route.success.to_string(), success);
    if console_content(route.op).is_some() {
        responses.insert(
            "304".into(),
            json!({"description": "Not modified (the If-None-Match ETag still matches)"}),
        );
    }
    if route.op == Op::ConsoleAsset {
        responses.insert(
            "404".into(),
            json!({"description": "No such file", "content": {"application/json": {"schema": schema_ref("Error")}}}),
        );
    }
    let error = json!({"description": "Error", "content": {"application/json": {"schema": schema_ref("Error")}}});
    match route.access {
        Access::Public => {
            op.insert("security".into(), json!([]));
        }
        Access::Authenticated | Access::Requires(_) => {
            responses.insert("401".into(), error.clone());
            if let Access::Requires(capability) = route.access {
                op.insert("x-required-capability".into(), json!(capability.as_str()));
                responses.insert("403".into(), error.clone());
            }
            if route.path.contains('{') {
                responses.insert("404".into(), error.clone());
            }
            if has_body {
                responses.insert("413".into(), error.clone());
                responses.insert("422".into(), error.clone());
            }
            extra_error_responses(route.op, &mut responses, &error);
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
            "description": "A multi-tenant messaging gateway's event layer: sessions, polls and votes, and every event pushed to signed, retried webhooks and a realtime WebSocket."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A frontend login JWT (verified against the JWKS) or an API key."}},
            "schemas": merged(schemas(), delivery_schemas()),
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

fn schemas() -> Value {
    let retry = json!({"type": "object", "properties": {
        "policy": {"type": "string", "enum": ["exponential", "linear", "constant"]},
        "delaySeconds": {"type": "integer", "minimum": 1, "maximum": 3600},
        "attempts": {"type": "integer", "minimum": 1, "maximum": 30}}});
    let webhook_props = json!({
        "url": {"type": "string", "format": "uri", "maxLength": 2048},
        "events": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "sessionId": {"type": ["string", "null"]},
        "secret": {"type": ["string", "null"], "minLength": 16, "maxLength": 256, "writeOnly": true},
        "customHeaders": {"type": "object", "additionalProperties": {"type": "string"}},
        "retryPolicy": retry,
        "active": {"type": "boolean"}});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
            "required": ["code", "message", "details"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}}},
        "EventType": {"type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"}}},
        "Me": {"type": "object", "required": ["organizationId", "capabilities", "credential", "expiresAt"], "properties": {
            "organizationId": {"type": "string"},
            "capabilities": {"type": "array", "items": {"type": "string", "enum": ["read", "send", "manage", "ingest"]}},
            "credential": {"type": "string", "enum": ["api_key", "login"]},
            "expiresAt": {"type": ["integer", "null"], "description": "When the token stops being valid (epoch ms); null when it does not expire."}}},
        "RetryPolicy": retry,
        "Webhook": {"type": "object", "required": ["id", "organizationId", "url", "events", "active", "customHeaders", "retryPolicy", "createdAt", "updatedAt"],
            "properties": {
                "id": {"type": "string"}, "organizationId": {"type": "string"},
                "url": {"type": "string"}, "events": {"type": "array", "items": {"type": "string"}},
                "sessionId": {"type": ["string", "null"]}, "active": {"type": "boolean"},
                "customHeaders": {"type": "object", "additionalProperties": {"type": "string"}},
                "retryPolicy": schema_ref("RetryPolicy"),
                "createdAt": {"type": "integer"}, "updatedAt": {"type": "integer"}}},
        "WebhookCreate": {"type": "object", "required": ["url"], "properties": webhook_props.clone()},
        "WebhookPatch": {"type": "object", "properties": webhook_props},
        "Session": {"type": "object", "required": ["id", "organizationId", "name", "status", "me", "createdAt", "updatedAt"],
            "properties": {
                "id": {"type": "string"}, "organizationId": {"type": "string"}, "name": {"type": "string"},
                "status": {"type": "string", "enum": ["STARTING", "SCAN_QR", "WORKING", "FAILED", "STOPPED"]},
                "me": {"type": ["object", "null"], "properties": {"id": {"type": "string"}}},
                "createdAt": {"type": "integer"}, "updatedAt": {"type": "integer"}}},
        "SessionCreate": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        "ApiKey": {"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"},
            "capabilities": {"type": "array", "items": {"type": "string", "enum": ["read", "send", "manage", "ingest"]}},
            "createdAt": {"type": "integer"}, "lastUsedAt": {"type": ["integer", "null"]}}},
        "ApiKeyCreate": {"type": "object", "required": ["name", "capabilities"], "properties": {
            "name": {"type": "string"},
            "capabilities": {"type": "array", "items": {"type": "string", "enum": ["read", "send", "manage", "ingest"]}}}},
        "ApiKeyCreated": {"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"},
            "capabilities": {"type": "array", "items": {"type": "string"}},
            "createdAt": {"type": "integer"}, "token": {"type": "string", "description": "Shown only once."}}},
        "PollCreate": {"type": "object", "required": ["chat", "question", "options"], "properties": {
            "chat": {"type": "string"}, "question": {"type": "string"},
            "options": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 12, "uniqueItems": true},
            "selectableCount": {"type": "integer", "minimum": 0, "default": 1,
                "description": "0 = any number of options, 1 = single choice; at most the number of options."}}},
        "VoteRequest": {"type": "object", "required": ["chat", "sender", "options"], "properties": {
            "chat": {"type": "string"}, "sender": {"type": "string"},
            "options": {"type": "array", "items": {"type": "string"},
                "description": "The complete selection: replaces the previous vote; [] clears it."}}},
        "SendResult": {"type": "object", "required": ["id", "sessionId", "chat", "timestamp", "status"], "properties": {
            "id": {"type": "string"}, "sessionId": {"type": "string"}, "chat": {"type": "string"},
            "timestamp": {"type": "integer"}, "status": {"type": "string", "enum": ["sent"]}}},
        "PollTally": {"type": "object", "required": ["id", "chat", "sender", "question", "selectableCount", "options", "voters", "myVote"], "properties": {
            "id": {"type": "string"}, "chat": {"type": "string"}, "sender": {"type": "string"},
            "question": {"type": "string"}, "selectableCount": {"type": "integer"},
            "options": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "votes": {"type": "integer"}}}},
            "voters": {"type": "array", "items": {"type": "object", "properties": {
                "voter": {"type": "string"}, "options": {"type": "array", "items": {"type": "string"}},
                "updatedAt": {"type": "integer"}}}},
            "myVote": {"type": "array", "items": {"type": "string"}}}},
        "InboundEvent": {"type": "object", "required": ["event", "payload"], "properties": {
            "event": {"type": "string", "enum": ["message", "poll.vote", "poll.vote.failed", "session.status"]},
            "id": {"type": "string", "description": "Idempotency key: the same id twice is accepted once."},
            "payload": {"type": "object"}}},
        "Envelope": {"type": "object", "required": ["id", "timestamp", "event", "session", "organizationId", "me", "payload"], "properties": {
            "id": {"type": "string"}, "timestamp": {"type": "integer"}, "event": {"type": "string"},
            "session": {"type": ["string", "null"]}, "organizationId": {"type": "string"},
            "me": {"type": ["object", "null"], "properties": {"id": {"type": "string"}}},
            "payload": {"type": "object"}}},
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
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                doc["components"]["schemas"][&name].is_object(),
                "dangling $ref {name}"
            );
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
