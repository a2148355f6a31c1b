//! One function per operation: read the path, query and body into domain inputs, call the use
//! case, shape the response. Nothing here decides a business rule.

use crate::body::{read_limited, JsonObject};
use crate::error::ApiError;
use crate::routes::{Op, Route};
use crate::RequestBody;
use crate::{empty_response, json_response, AppState, HttpResponse};
use herald_domain::webhook::{RetryPolicyFields, WebhookFields};
use herald_domain::{Capabilities, Capability, Principal, Subject};
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::json;
use std::sync::Arc;

/// Everything a handler may read about its request.
struct Call {
    params: Vec<String>,
    principal: Option<Principal>,
    request: Request<RequestBody>,
}

impl Call {
    fn caller(&self) -> &Principal {
        self.principal
            .as_ref()
            .expect("authenticated routes always carry a principal")
    }

    fn param(&self, index: usize) -> &str {
        &self.params[index]
    }

    async fn json_body(self, empty_ok: bool) -> Result<(JsonObject, Principal), ApiError> {
        let principal = self
            .principal
            .expect("authenticated routes always carry a principal");
        let bytes = read_limited(self.request.into_body()).await?;
        Ok((JsonObject::parse(&bytes, empty_ok)?, principal))
    }
}

/// Runs the handler for `route`.
pub(crate) async fn dispatch(
    state: &Arc<AppState>,
    route: &Route,
    params: Vec<String>,
    principal: Option<Principal>,
    request: Request<RequestBody>,
) -> Result<HttpResponse, ApiError> {
    let call = Call {
        params,
        principal,
        request,
    };
    let gateway = &state.gateway;
    let ok = |value: serde_json::Value| Ok(json_response(StatusCode::OK, &value));
    match route.op {
        Op::Healthz => ok(json!({"status": "ok"})),
        Op::Readyz => Ok(crate::readiness::report(&state.readiness).await),
        Op::Metrics => Ok(metrics(state)),
        Op::OpenApi => Ok(json_response(StatusCode::OK, crate::openapi::document())),
        Op::EventTypes => {
            let data: Vec<_> = gateway
                .event_types()
                .iter()
                .map(|t| json!({"name": t.as_str(), "description": t.description()}))
                .collect();
            ok_json(&page(data))
        }
        Op::ListWebhooks => ok_json(&page(gateway.list_webhooks(call.caller()).await?)),
        Op::CreateWebhook => {
            let (body, caller) = call.json_body(false).await?;
            let created = gateway
                .create_webhook(&caller, webhook_fields(&body)?)
                .await?;
            let mut answer = json!(created.webhook);
            if let Some(secret) = &created.generated_secret {
                // The one time a generated secret is shown.
                answer["secret"] = json!(secret.reveal());
            }
            Ok(json_response(StatusCode::CREATED, &answer))
        }
        Op::GetWebhook => ok(json!(
            gateway.get_webhook(call.caller(), call.param(0)).await?
        )),
        Op::UpdateWebhook => {
            let id = call.param(0).to_owned();
            let (body, caller) = call.json_body(true).await?;
            let fields = webhook_fields(&body)?;
            ok_json(&gateway.update_webhook(&caller, &id, fields).await?)
        }
        Op::RotateSecret => {
            let id = call.param(0).to_owned();
            let (body, caller) = call.json_body(true).await?;
            let secret = body.opt_str("secret")?;
            let grace = body.opt_int("graceSeconds")?;
            let rotated = gateway.rotate_secret(&caller, &id, secret, grace).await?;
            ok(json!({
                "secret": rotated.secret.reveal(),
                "previousValidUntil": rotated.previous_valid_until,
            }))
        }
        Op::DeleteWebhook => {
            gateway.delete_webhook(call.caller(), call.param(0)).await?;
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
        Op::ListSessions => ok_json(&page(gateway.list_sessions(call.caller()).await?)),
        Op::CreateSession => {
            let (body, caller) = call.json_body(false).await?;
            let name = body.required_str("name")?;
            let engine_session = body.opt_str("engineSession")?;
            let session = gateway
                .create_session(&caller, &name, engine_session.as_deref())
                .await?;
            Ok(json_response(StatusCode::CREATED, &session))
        }
        Op::RestartSession => ok(json!(
            gateway
                .restart_session(call.caller(), call.param(0))
                .await?
        )),
        Op::SessionQr => ok(json!({
            "value": gateway.session_qr(call.caller(), call.param(0)).await?
        })),
        Op::SendText => {
            let id = call.param(0).to_owned();
            let (body, caller) = call.json_body(false).await?;
            crate::messaging::send_text(gateway, &caller, &id, &body).await
        }
        Op::WahaEvents => crate::engine_events::receive(state, call.request).await,
        Op::GetSession => ok(json!(
            gateway.get_session(call.caller(), call.param(0)).await?
        )),
        Op::DeleteSession => {
            gateway.delete_session(call.caller(), call.param(0)).await?;
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
        Op::ListApiKeys => ok_json(&page(gateway.list_api_keys(call.caller()).await?)),
        Op::CreateApiKey => {
            let (body, caller) = call.json_body(false).await?;
            let name = body.required_str("name")?;
            let names = body.required_str_array("capabilities")?;
            let capabilities = parse_capabilities(&names)?;
            let minted = gateway.create_api_key(&caller, &name, capabilities).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({
                    "id": minted.key.id,
                    "name": minted.key.name,
                    "capabilities": minted.key.capabilities,
                    "createdAt": minted.key.created_at,
                    "token": minted.token,
                }),
            ))
        }
        Op::DeleteApiKey => {
            gateway.revoke_api_key(call.caller(), call.param(0)).await?;
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
        Op::ListDeliveries => {
            let query = call.request.uri().query().map(str::to_owned);
            crate::deliveries::list(gateway, call.caller(), call.param(0), query.as_deref()).await
        }
        Op::ListOrgDeliveries => {
            let query = call.request.uri().query().map(str::to_owned);
            crate::deliveries::list_org(gateway, call.caller(), query.as_deref()).await
        }
        Op::WebhookStats => {
            let query = call.request.uri().query().map(str::to_owned);
            crate::deliveries::stats(gateway, call.caller(), call.param(0), query.as_deref()).await
        }
        Op::GetDelivery => {
            crate::deliveries::get(gateway, call.caller(), call.param(0), call.param(1)).await
        }
        Op::RetryDelivery => {
            crate::deliveries::retry(gateway, call.caller(), call.param(0), call.param(1)).await
        }
        Op::RecoverDeliveries => {
            let id = call.param(0).to_owned();
            let (body, caller) = call.json_body(false).await?;
            crate::deliveries::recover(gateway, &caller, &id, &body).await
        }
        Op::TestWebhook => crate::deliveries::test(gateway, call.caller(), call.param(0)).await,
        Op::SendPoll => {
            let id = call.param(0).to_owned();
            let (body, caller) = call.json_body(false).await?;
            crate::messaging::send_poll(gateway, &caller, &id, &body).await
        }
        Op::Vote => {
            let (id, mid) = (call.param(0).to_owned(), call.param(1).to_owned());
            let (body, caller) = call.json_body(false).await?;
            crate::messaging::vote(gateway, &caller, &id, &mid, &body).await
        }
        Op::GetPoll => {
            crate::messaging::poll_tally(
                gateway,
                call.caller(),
                call.param(0),
                call.param(1),
                call.request.uri(),
            )
            .await
        }
        Op::Ingest => {
            let id = call.param(0).to_owned();
            let (body, caller) = call.json_body(false).await?;
            crate::messaging::ingest(gateway, &caller, &id, &body).await
        }
        Op::ListEvents => crate::events::list(state, call.caller(), &call.request).await,
        Op::EventsWs => {
            let caller = call
                .principal
                .expect("authenticated routes always carry a principal");
            crate::events::upgrade(state, caller, call.request).await
        }
        Op::Me => ok(whoami(call.caller())),
        Op::Console => Ok(crate::console::page(&call.request)),
        Op::ConsoleAsset => crate::console::asset(call.param(0), &call.request),
    }
}

/// `GET /me`: what the presented token is, so a client (the console) shows only what it may do.
fn whoami(caller: &Principal) -> serde_json::Value {
    json!({
        "organizationId": caller.organization,
        "capabilities": caller.capabilities,
        "credential": match caller.subject {
            Subject::ApiKey(_) => "api_key",
            Subject::User(_) => "login",
            Subject::Host => "host",
        },
        "expiresAt": caller.expires_at,
    })
}

/// A list response: `{"data": [...], "nextCursor": "..."}` (`""` on the last page).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page<T> {
    data: Vec<T>,
    next_cursor: String,
}

/// A one-page list, serialized straight from the domain values.
pub(crate) fn page<T: serde::Serialize>(data: Vec<T>) -> Page<T> {
    Page {
        data,
        next_cursor: String::new(),
    }
}

fn ok_json(value: &impl serde::Serialize) -> Result<HttpResponse, ApiError> {
    Ok(json_response(StatusCode::OK, value))
}

fn parse_capabilities(names: &[String]) -> Result<Capabilities, ApiError> {
    if names.is_empty() {
        return Err(ApiError::invalid(
            "capabilities",
            "capabilities must name at least one capability",
        ));
    }
    names
        .iter()
        .map(|n| {
            Capability::parse(n).ok_or_else(|| {
                ApiError::invalid("capabilities", format!("unknown capability `{n}`"))
            })
        })
        .collect()
}

fn webhook_fields(body: &JsonObject) -> Result<WebhookFields, ApiError> {
    let retry_policy = match body.opt_object("retryPolicy")? {
        None => None,
        Some(policy) => Some(
            (|| {
                Ok::<_, ApiError>(RetryPolicyFields {
                    policy: policy.opt_str("policy")?,
                    delay_seconds: policy.opt_int("delaySeconds")?,
                    attempts: policy.opt_int("attempts")?,
                })
            })()
            .map_err(|e| JsonObject::nest("retryPolicy", e))?,
        ),
    };
    Ok(WebhookFields {
        url: body.opt_str("url")?,
        events: body.opt_str_array("events")?,
        session_id: body.nullable_str("sessionId")?,
        secret: body.nullable_str("secret")?,
        custom_headers: body.opt_string_map("customHeaders")?,
        retry_policy,
        active: body.opt_bool("active")?,
        signing: body.opt_str("signing")?,
        rate_limit: match body.get("rateLimit") {
            None => None,
            Some(serde_json::Value::Null) => Some(None),
            Some(_) => Some(body.opt_int("rateLimit")?),
        },
    })
}

fn metrics(state: &Arc<AppState>) -> HttpResponse {
    let mut out = String::new();
    state.http_metrics.render(&mut out);
    state.connections.render(&mut out);
    for source in &state.metrics {
        source.render(&mut out);
    }
    state.live.render(&mut out);
    let mut response = hyper::Response::new(Full::new(Bytes::from(out)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
