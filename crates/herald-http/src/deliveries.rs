//! Handlers of the deliveries API (`/webhooks/{id}/deliveries…`, `/deliveries`, `/stats`,
//! `/recover`, `/test`): read the query or body into domain inputs, call the use case, shape the
//! response. Bad `status`, `event`, `since`, `until`, `limit`, `cursor`, `webhookId` or `window`
//! values are 422s naming the parameter.

use crate::body::JsonObject;
use crate::error::ApiError;
use crate::{json_response, HttpResponse};
use herald_domain::deliveries::{DeliveryQuery, DeliveryQueryText, StatsWindow};
use herald_domain::delivery::DeliveryPage;
use herald_domain::gateway::Gateway;
use herald_domain::Principal;
use http::StatusCode;
use serde_json::json;

/// The first value of each query parameter we read.
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `GET /webhooks/{id}/deliveries`.
pub(crate) async fn list(
    gateway: &Gateway,
    caller: &Principal,
    webhook_id: &str,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let parsed = delivery_query(query)?;
    let page = gateway.list_deliveries(caller, webhook_id, &parsed).await?;
    Ok(page_response(page))
}

/// `GET /deliveries`: the organization's deliveries, optionally of one `webhookId`.
pub(crate) async fn list_org(
    gateway: &Gateway,
    caller: &Principal,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let parsed = delivery_query(query)?;
    let webhook = query_value(query, "webhookId");
    let page = gateway
        .list_org_deliveries(caller, webhook.as_deref(), &parsed)
        .await?;
    Ok(page_response(page))
}

/// `GET /webhooks/{id}/stats?window=1h|24h|7d`.
pub(crate) async fn stats(
    gateway: &Gateway,
    caller: &Principal,
    webhook_id: &str,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let window = StatsWindow::parse(query_value(query, "window").as_deref())?;
    let stats = gateway.webhook_stats(caller, webhook_id, window).await?;
    Ok(json_response(StatusCode::OK, &stats))
}

fn delivery_query(query: Option<&str>) -> Result<DeliveryQuery, ApiError> {
    let value = |name| query_value(query, name);
    let (status, event, since, until, limit, cursor) = (
        value("status"),
        value("event"),
        value("since"),
        value("until"),
        value("limit"),
        value("cursor"),
    );
    Ok(DeliveryQuery::read(&DeliveryQueryText {
        status: status.as_deref(),
        event: event.as_deref(),
        since: since.as_deref(),
        until: until.as_deref(),
        limit: limit.as_deref(),
        cursor: cursor.as_deref(),
    })?)
}

fn page_response(page: DeliveryPage) -> HttpResponse {
    json_response(
        StatusCode::OK,
        &json!({
            "data": page.data,
            "nextCursor": page.next_cursor.map(|c| c.to_string()).unwrap_or_default(),
        }),
    )
}

/// `GET /webhooks/{id}/deliveries/{deliveryId}`.
pub(crate) async fn get(
    gateway: &Gateway,
    caller: &Principal,
    webhook_id: &str,
    delivery_id: &str,
) -> Result<HttpResponse, ApiError> {
    let detail = gateway
        .get_delivery(caller, webhook_id, delivery_id)
        .await?;
    Ok(json_response(StatusCode::OK, &detail))
}

/// `POST /webhooks/{id}/deliveries/{deliveryId}/retry` → 202 the delivery.
pub(crate) async fn retry(
    gateway: &Gateway,
    caller: &Principal,
    webhook_id: &str,
    delivery_id: &str,
) -> Result<HttpResponse, ApiError> {
    let delivery = gateway
        .retry_delivery(caller, webhook_id, delivery_id)
        .await?;
    Ok(json_response(StatusCode::ACCEPTED, &delivery))
}

/// `POST /webhooks/{id}/recover` `{"since", "until"?}` → 202 `{"requeued": n}`.
pub(crate) async fn recover(
    gateway: &Gateway,
    caller: &Principal,
    webhook_id: &str,
    body: &JsonObject,
) -> Result<HttpResponse, ApiError> {
    let since = body
        .opt_int("since")?
        .ok_or_else(|| ApiError::invalid("since", "since is required"))?;
    let until = body.opt_int("until")?;
    let requeued = gateway
        .recover_deliveries(caller, webhook_id, since, until)
        .await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({"requeued": requeued}),
    ))
}

/// `POST /webhooks/{id}/test` → 202 `{"eventId", "deliveryId"}`.
pub(crate) async fn test(
    gateway: &Gateway,
    caller: &Principal,
    webhook_id: &str,
) -> Result<HttpResponse, ApiError> {
    let ping = gateway.test_webhook(caller, webhook_id).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({"eventId": ping.event_id, "deliveryId": ping.delivery_id}),
    ))
}
