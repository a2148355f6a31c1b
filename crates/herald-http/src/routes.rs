//! The route table: every endpoint once, with its method, path template, required capability
//! and summary. The router, the OpenAPI document and the isolation test matrix are all generated
//! from this one list, so a new route cannot be served without being documented and tested.

use herald_domain::Capability;
use http::Method;

/// What a matched route does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Op {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    EventTypes,
    ListWebhooks,
    CreateWebhook,
    GetWebhook,
    UpdateWebhook,
    DeleteWebhook,
    RotateSecret,
    ListSessions,
    CreateSession,
    GetSession,
    DeleteSession,
    RestartSession,
    SessionQr,
    SendText,
    WahaEvents,
    ListApiKeys,
    CreateApiKey,
    DeleteApiKey,
    ListDeliveries,
    ListOrgDeliveries,
    WebhookStats,
    GetDelivery,
    RetryDelivery,
    RecoverDeliveries,
    TestWebhook,
    SendPoll,
    Vote,
    GetPoll,
    Ingest,
    ListEvents,
    EventsWs,
    Me,
    Console,
    ConsoleAsset,
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no token (health, metrics, the OpenAPI document, the console's files).
    Public,
    /// Any authenticated caller.
    Authenticated,
    /// An authenticated caller holding this capability.
    Requires(Capability),
}

/// One endpoint.
#[derive(Clone, Debug)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path template; `{name}` segments capture.
    pub path: &'static str,
    /// The handler.
    pub op: Op,
    /// Who may call it.
    pub access: Access,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// The success status.
    pub success: u16,
}

const fn route(
    method: Method,
    path: &'static str,
    op: Op,
    access: Access,
    success: u16,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        op,
        access,
        summary,
        success,
    }
}

use Access::*;
use Capability::*;

/// Every endpoint Herald serves.
pub static ROUTES: &[Route] = &[
    route(
        Method::GET,
        "/healthz",
        Op::Healthz,
        Public,
        200,
        "Liveness: the process is up.",
    ),
    route(
        Method::GET,
        "/readyz",
        Op::Readyz,
        Public,
        200,
        "Readiness: the store is reachable.",
    ),
    route(
        Method::GET,
        "/metrics",
        Op::Metrics,
        Public,
        200,
        "Prometheus metrics.",
    ),
    route(
        Method::GET,
        "/api/v1/openapi.json",
        Op::OpenApi,
        Public,
        200,
        "This OpenAPI 3.1 document.",
    ),
    route(
        Method::GET,
        "/api/v1/event-types",
        Op::EventTypes,
        Authenticated,
        200,
        "List the event types.",
    ),
    route(
        Method::GET,
        "/api/v1/webhooks",
        Op::ListWebhooks,
        Requires(Manage),
        200,
        "List webhooks.",
    ),
    route(
        Method::POST,
        "/api/v1/webhooks",
        Op::CreateWebhook,
        Requires(Manage),
        201,
        "Create a webhook.",
    ),
    route(
        Method::GET,
        "/api/v1/webhooks/{id}",
        Op::GetWebhook,
        Requires(Manage),
        200,
        "Get a webhook.",
    ),
    route(
        Method::PATCH,
        "/api/v1/webhooks/{id}",
        Op::UpdateWebhook,
        Requires(Manage),
        200,
        "Update a webhook.",
    ),
    route(
        Method::DELETE,
        "/api/v1/webhooks/{id}",
        Op::DeleteWebhook,
        Requires(Manage),
        204,
        "Delete a webhook.",
    ),
    route(
        Method::POST,
        "/api/v1/webhooks/{id}/secret/rotate",
        Op::RotateSecret,
        Requires(Manage),
        200,
        "Rotate a webhook's secret; the replaced one keeps signing during a grace period.",
    ),
    route(
        Method::GET,
        "/api/v1/sessions",
        Op::ListSessions,
        Requires(Read),
        200,
        "List sessions.",
    ),
    route(
        Method::POST,
        "/api/v1/sessions",
        Op::CreateSession,
        Requires(Manage),
        201,
        "Create a session.",
    ),
    route(
        Method::GET,
        "/api/v1/sessions/{id}",
        Op::GetSession,
        Requires(Read),
        200,
        "Get a session.",
    ),
    route(
        Method::DELETE,
        "/api/v1/sessions/{id}",
        Op::DeleteSession,
        Requires(Manage),
        204,
        "Delete a session.",
    ),
    route(
        Method::POST,
        "/api/v1/sessions/{id}/restart",
        Op::RestartSession,
        Requires(Manage),
        200,
        "Ask the engine to start a session again (e.g. after it failed).",
    ),
    route(
        Method::GET,
        "/api/v1/sessions/{id}/qr",
        Op::SessionQr,
        Requires(Read),
        200,
        "The QR code text that pairs a session, while it is SCAN_QR.",
    ),
    route(
        Method::POST,
        "/api/v1/sessions/{id}/messages/text",
        Op::SendText,
        Requires(Send),
        200,
        "Send a text message.",
    ),
    route(
        Method::POST,
        "/api/v1/engines/waha/events",
        Op::WahaEvents,
        Public,
        200,
        "WAHA's signed webhook (X-Webhook-Hmac); served only when the engine is WAHA.",
    ),
    route(
        Method::GET,
        "/api/v1/api-keys",
        Op::ListApiKeys,
        Requires(Manage),
        200,
        "List API keys.",
    ),
    route(
        Method::POST,
        "/api/v1/api-keys",
        Op::CreateApiKey,
        Requires(Manage),
        201,
        "Create an API key.",
    ),
    route(
        Method::DELETE,
        "/api/v1/api-keys/{id}",
        Op::DeleteApiKey,
        Requires(Manage),
        204,
        "Revoke an API key.",
    ),
    route(
        Method::GET,
        "/api/v1/webhooks/{id}/deliveries",
        Op::ListDeliveries,
        Requires(Manage),
        200,
        "List a webhook's deliveries, newest first.",
    ),
    route(
        Method::GET,
        "/api/v1/deliveries",
        Op::ListOrgDeliveries,
        Requires(Read),
        200,
        "List the organization's deliveries across its webhooks, newest first.",
    ),
    route(
        Method::GET,
        "/api/v1/webhooks/{id}/stats",
        Op::WebhookStats,
        Requires(Read),
        200,
        "A webhook's attempts over a window: outcomes, status codes, latency, pending.",
    ),
    route(
        Method::GET,
        "/api/v1/webhooks/{id}/deliveries/{deliveryId}",
        Op::GetDelivery,
        Requires(Manage),
        200,
        "Get a delivery with its envelope and attempt log.",
    ),
    route(
        Method::POST,
        "/api/v1/webhooks/{id}/deliveries/{deliveryId}/retry",
        Op::RetryDelivery,
        Requires(Manage),
        202,
        "Retry a delivery now.",
    ),
    route(
        Method::POST,
        "/api/v1/webhooks/{id}/recover",
        Op::RecoverDeliveries,
        Requires(Manage),
        202,
        "Retry every failed delivery of a webhook created in a time window.",
    ),
    route(
        Method::POST,
        "/api/v1/webhooks/{id}/test",
        Op::TestWebhook,
        Requires(Manage),
        202,
        "Send a webhook.test event to this webhook only.",
    ),
    route(
        Method::POST,
        "/api/v1/sessions/{id}/polls",
        Op::SendPoll,
        Requires(Send),
        200,
        "Send a poll.",
    ),
    route(
        Method::POST,
        "/api/v1/sessions/{id}/messages/{mid}/vote",
        Op::Vote,
        Requires(Send),
        200,
        "Vote on a poll message: the options replace the session's previous vote; [] clears it.",
    ),
    route(
        Method::GET,
        "/api/v1/sessions/{id}/messages/{mid}/poll",
        Op::GetPoll,
        Requires(Read),
        200,
        "Read a poll's current tally.",
    ),
    route(
        Method::POST,
        "/api/v1/sessions/{id}/inbound",
        Op::Ingest,
        Requires(Ingest),
        202,
        "Report an event from the messaging network (engines only).",
    ),
    route(
        Method::GET,
        "/api/v1/events",
        Op::ListEvents,
        Requires(Read),
        200,
        "Read the event log, oldest first.",
    ),
    route(
        Method::GET,
        "/api/v1/events/ws",
        Op::EventsWs,
        Requires(Read),
        101,
        "Receive events live over a WebSocket.",
    ),
    route(
        Method::GET,
        "/api/v1/me",
        Op::Me,
        Authenticated,
        200,
        "Describe the caller: its organization, capabilities and kind of credential.",
    ),
    route(
        Method::GET,
        "/console",
        Op::Console,
        Public,
        200,
        "The web console (an HTML page; it asks for a token itself).",
    ),
    route(
        Method::GET,
        "/console/{asset}",
        Op::ConsoleAsset,
        Public,
        200,
        "A file of the web console (script, style sheet, icon).",
    ),
];

/// Why no route matched.
#[derive(Debug, PartialEq, Eq)]
pub enum NoMatch {
    /// No such path.
    NotFound,
    /// The path exists with these methods.
    MethodNotAllowed(Vec<&'static str>),
}

fn capture<'p>(template: &str, path: &'p str) -> Option<Vec<&'p str>> {
    let mut params = Vec::new();
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) if ts.starts_with('{') && !ps.is_empty() => params.push(ps),
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

/// Finds the route for `method` and `path`, with the captured path parameters in order.
pub fn find<'p>(method: &Method, path: &'p str) -> Result<(&'static Route, Vec<&'p str>), NoMatch> {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let mut allowed = Vec::new();
    for r in ROUTES {
        if let Some(params) = capture(r.path, path) {
            if r.method == *method {
                return Ok((r, params));
            }
            allowed.push(r.method.as_str());
        }
    }
    if allowed.is_empty() {
        Err(NoMatch::NotFound)
    } else {
        Err(NoMatch::MethodNotAllowed(allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_capture_segments() {
        let (r, params) = find(&Method::GET, "/api/v1/webhooks/wh_1").unwrap();
        assert_eq!((r.op, params), (Op::GetWebhook, vec!["wh_1"]));
        assert_eq!(
            find(&Method::GET, "/api/v1/webhooks/").unwrap().0.op,
            Op::ListWebhooks
        );
        assert_eq!(
            find(&Method::GET, "/api/v1/nope").unwrap_err(),
            NoMatch::NotFound
        );
        assert_eq!(
            find(&Method::PUT, "/api/v1/webhooks").unwrap_err(),
            NoMatch::MethodNotAllowed(vec!["GET", "POST"])
        );
    }

    #[test]
    fn every_route_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[..i] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }
}
