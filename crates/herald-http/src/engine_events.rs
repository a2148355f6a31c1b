//! WAHA's webhook into Herald: `POST /api/v1/engines/waha/events`. No bearer token: the
//! request is WAHA's, proven by `X-Webhook-Hmac` over the raw body with the webhook key Herald
//! configured on every WAHA session. The signature is checked before anything is parsed (a
//! request without the header is refused before its body is even read); then the event is
//! translated and handed to the engine use case, which drops duplicates durably and stores the
//! accepted event before the 2xx — WAHA's own retry is the only redelivery ever needed.
//!
//! Answers: 401 for a missing or wrong signature; 422 for a signed body Herald cannot read
//! (naming the field); 200 `{"eventId"}` when accepted, 200 `{"eventId","duplicate":true}` for
//! a repeat, 200 `{"ignored": "<why>"}` for an unknown WAHA session or an event Herald does not
//! take (WAHA would otherwise retry it for nothing). When the engine is not WAHA the route is
//! 404, like any path Herald does not serve.

use crate::body::read_limited;
use crate::error::ApiError;
use crate::RequestBody;
use crate::{json_response, AppState, HttpResponse, MetricsSource};
use herald_domain::messaging::EngineAnswer;
use herald_engine_waha::{translate, Secret, WebhookVerifier, SIGNATURE_HEADER};
use http::{Request, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The WAHA event names Herald subscribes to; anything else is counted as `other`, so a
/// hand-edited WAHA configuration cannot grow the metric without bound.
const KNOWN_EVENTS: [&str; 6] = [
    "session.status",
    "message",
    "message.any",
    "message.ack",
    "poll.vote",
    "poll.vote.failed",
];

/// What receives WAHA's webhooks: the signature check and the event counters.
pub struct WahaIntake {
    verifier: WebhookVerifier,
    metrics: Arc<EngineEventMetrics>,
}

impl WahaIntake {
    /// An intake checking signatures made with `webhook_key` (`HERALD_WAHA_WEBHOOK_KEY`).
    pub fn new(webhook_key: Secret) -> Self {
        Self {
            verifier: WebhookVerifier::new(webhook_key),
            metrics: Arc::default(),
        }
    }

    /// Its counters, for `/metrics`.
    pub fn metrics(&self) -> Arc<EngineEventMetrics> {
        self.metrics.clone()
    }
}

/// `herald_engine_events_total{event,outcome}`.
#[derive(Default)]
pub struct EngineEventMetrics {
    counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl EngineEventMetrics {
    fn record(&self, event: &str, outcome: &'static str) {
        let event = KNOWN_EVENTS
            .into_iter()
            .find(|known| *known == event)
            .unwrap_or(if event.is_empty() { "unknown" } else { "other" });
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry((event, outcome)).or_default() += 1;
    }
}

impl MetricsSource for EngineEventMetrics {
    fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP herald_engine_events_total WAHA webhook events received, by event and outcome.\n\
             # TYPE herald_engine_events_total counter\n",
        );
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for ((event, outcome), count) in counts.iter() {
            out.push_str(&format!(
                "herald_engine_events_total{{event=\"{event}\",outcome=\"{outcome}\"}} {count}\n"
            ));
        }
    }
}

/// `POST /api/v1/engines/waha/events`.
pub(crate) async fn receive(
    state: &Arc<AppState>,
    request: Request<RequestBody>,
) -> Result<HttpResponse, ApiError> {
    let Some(intake) = &state.waha else {
        return Err(ApiError::not_found("no such endpoint"));
    };
    let (parts, body) = request.into_parts();
    if !parts.headers.contains_key(SIGNATURE_HEADER) {
        intake.metrics.record("", "unauthorized");
        return Err(ApiError::unauthorized(
            "the X-Webhook-Hmac header is missing",
        ));
    }
    let bytes = read_limited(body).await?;
    if let Err(refused) = intake.verifier.verify_headers(&parts.headers, &bytes) {
        intake.metrics.record("", "unauthorized");
        return Err(ApiError::unauthorized(refused.to_string()));
    }
    let translation = translate(&bytes).map_err(|e| {
        intake.metrics.record("", "invalid");
        ApiError::invalid(e.field().unwrap_or(""), e.to_string())
    })?;
    let event = translation.event.clone();
    let engine_session = translation.engine_session.clone();
    let key = translation.dedup_key.clone();
    let report = match translation.into_report() {
        Ok(report) => report,
        Err(reason) => {
            intake.metrics.record(&event, "ignored");
            return Ok(json_response(StatusCode::OK, &json!({ "ignored": reason })));
        }
    };
    let answer = state
        .gateway
        .accept_engine_report(&engine_session, key, report)
        .await
        .inspect_err(|_| intake.metrics.record(&event, "failed"))?;
    let (outcome, body) = match answer {
        EngineAnswer::Accepted(id) => ("accepted", json!({ "eventId": id })),
        EngineAnswer::Duplicate(id) => ("duplicate", json!({ "eventId": id, "duplicate": true })),
        EngineAnswer::Ignored("unknown session") => {
            ("unknown_session", json!({ "ignored": "unknown session" }))
        }
        EngineAnswer::Ignored(reason) => ("ignored", json!({ "ignored": reason })),
    };
    intake.metrics.record(&event, outcome);
    Ok(json_response(StatusCode::OK, &body))
}
