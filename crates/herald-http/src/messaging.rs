//! Handlers for text, polls, votes, tallies and inbound engine reports: read the body or query into
//! the domain's inputs (422s name the field, nested ones as `payload.poll.options`), call the
//! use case, shape the reply.

use crate::body::JsonObject;
use crate::error::ApiError;
use crate::query::{path_segment, Query};
use crate::{json_response, HttpResponse};
use herald_domain::event::Me;
use herald_domain::gateway::Gateway;
use herald_domain::message::MessageContent;
use herald_domain::messaging::{Inbound, InboundEvent, IncomingMessage, IncomingVote, VoteRequest};
use herald_domain::poll::Poll;
use herald_domain::ports::StatusReport;
use herald_domain::session::SessionStatus;
use herald_domain::Principal;
use http::{StatusCode, Uri};
use serde_json::json;

/// A required string that must not be empty.
fn non_empty(body: &JsonObject, name: &str) -> Result<String, ApiError> {
    let value = body.required_str(name)?;
    if value.is_empty() {
        return Err(ApiError::invalid(name, format!("{name} must not be empty")));
    }
    Ok(value)
}

/// An optional epoch-ms time.
fn opt_millis(body: &JsonObject, name: &str) -> Result<Option<i64>, ApiError> {
    match body.opt_int(name)? {
        Some(ms) if ms < 0 => Err(ApiError::invalid(
            name,
            format!("{name} must be epoch milliseconds"),
        )),
        other => Ok(other),
    }
}

/// `{"question","options","selectableCount"?}` as a poll (selectable count defaults to 1).
fn poll_fields(body: &JsonObject) -> Result<Poll, ApiError> {
    let question = body.required_str("question")?;
    let options = body.required_str_array("options")?;
    let selectable = match body.opt_int("selectableCount")? {
        None => 1,
        Some(n) => u32::try_from(n).map_err(|_| {
            ApiError::invalid(
                "selectableCount",
                "selectableCount must be between 0 and the number of options",
            )
        })?,
    };
    Ok(Poll::new(question, options, selectable)?)
}

/// `POST /sessions/{id}/polls`.
pub(crate) async fn send_poll(
    gateway: &Gateway,
    caller: &Principal,
    session_id: &str,
    body: &JsonObject,
) -> Result<HttpResponse, ApiError> {
    let chat = body.required_str("chat")?;
    let poll = poll_fields(body)?;
    let sent = gateway.send_poll(caller, session_id, &chat, poll).await?;
    Ok(json_response(StatusCode::OK, &sent))
}

/// `POST /sessions/{id}/messages/text`.
pub(crate) async fn send_text(
    gateway: &Gateway,
    caller: &Principal,
    session_id: &str,
    body: &JsonObject,
) -> Result<HttpResponse, ApiError> {
    let chat = body.required_str("chat")?;
    let text = body.required_str("text")?;
    let reply_to = body.opt_str("replyTo")?;
    let sent = gateway
        .send_text(caller, session_id, &chat, &text, reply_to.as_deref())
        .await?;
    Ok(json_response(StatusCode::OK, &sent))
}

/// `POST /sessions/{id}/messages/{mid}/vote`.
pub(crate) async fn vote(
    gateway: &Gateway,
    caller: &Principal,
    session_id: &str,
    message_id: &str,
    body: &JsonObject,
) -> Result<HttpResponse, ApiError> {
    let request = VoteRequest {
        chat: body.required_str("chat")?,
        sender: body.required_str("sender")?,
        options: body.required_str_array("options")?,
    };
    let sent = gateway
        .vote(caller, session_id, &path_segment(message_id), request)
        .await?;
    Ok(json_response(StatusCode::OK, &sent))
}

/// `GET /sessions/{id}/messages/{mid}/poll?chat=&sender=`.
pub(crate) async fn poll_tally(
    gateway: &Gateway,
    caller: &Principal,
    session_id: &str,
    message_id: &str,
    uri: &Uri,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(uri);
    let chat = query.required("chat")?;
    let sender = query.required("sender")?;
    let tally = gateway
        .poll_tally(caller, session_id, &path_segment(message_id), chat, sender)
        .await?;
    Ok(json_response(StatusCode::OK, &tally))
}

/// `POST /sessions/{id}/inbound`.
pub(crate) async fn ingest(
    gateway: &Gateway,
    caller: &Principal,
    session_id: &str,
    body: &JsonObject,
) -> Result<HttpResponse, ApiError> {
    let kind = body.required_str("event")?;
    let id = body.opt_str("id")?;
    let payload = body.required_object("payload")?;
    let event = match kind.as_str() {
        "message" => InboundEvent::Message(
            incoming_message(&payload).map_err(|e| JsonObject::nest("payload", e))?,
        ),
        "poll.vote" => InboundEvent::PollVote(
            incoming_vote(&payload).map_err(|e| JsonObject::nest("payload", e))?,
        ),
        "poll.vote.failed" => InboundEvent::PollVoteFailed(payload.into_value()),
        "session.status" => InboundEvent::SessionStatus(
            status_report(&payload).map_err(|e| JsonObject::nest("payload", e))?,
        ),
        other => {
            return Err(ApiError::invalid(
                "event",
                format!(
                    "event `{other}` cannot be reported: use message, poll.vote, \
                     poll.vote.failed or session.status"
                ),
            ))
        }
    };
    let event_id = gateway
        .ingest(caller, session_id, Inbound { id, event })
        .await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({ "eventId": event_id }),
    ))
}

fn incoming_message(payload: &JsonObject) -> Result<IncomingMessage, ApiError> {
    let id = non_empty(payload, "id")?;
    let chat = non_empty(payload, "chat")?;
    let sender = non_empty(payload, "sender")?;
    let from_me = payload.opt_bool("fromMe")?.unwrap_or(false);
    let timestamp = opt_millis(payload, "timestamp")?;
    let content = match payload.required_str("type")?.as_str() {
        "text" => MessageContent::Text {
            body: payload.opt_str("body")?,
        },
        "poll" => {
            let poll = payload.required_object("poll")?;
            MessageContent::Poll(poll_fields(&poll).map_err(|e| JsonObject::nest("poll", e))?)
        }
        other => {
            return Err(ApiError::invalid(
                "type",
                format!("type `{other}` is not text or poll"),
            ))
        }
    };
    Ok(IncomingMessage {
        id,
        chat,
        sender,
        from_me,
        timestamp,
        content,
    })
}

fn incoming_vote(payload: &JsonObject) -> Result<IncomingVote, ApiError> {
    let poll = payload.required_object("poll")?;
    let (poll_id, poll_chat, poll_sender) = (|| {
        Ok::<_, ApiError>((
            non_empty(&poll, "id")?,
            non_empty(&poll, "chat")?,
            non_empty(&poll, "sender")?,
        ))
    })()
    .map_err(|e| JsonObject::nest("poll", e))?;
    let vote = payload.required_object("vote")?;
    let (vote_id, voter, selected, timestamp) = (|| {
        Ok::<_, ApiError>((
            vote.opt_str("id")?.filter(|id| !id.is_empty()),
            non_empty(&vote, "voter")?,
            vote.required_str_array("selectedOptions")?,
            opt_millis(&vote, "timestamp")?,
        ))
    })()
    .map_err(|e| JsonObject::nest("vote", e))?;
    Ok(IncomingVote {
        poll_id,
        poll_chat,
        poll_sender,
        vote_id,
        voter,
        selected,
        timestamp,
    })
}

fn status_report(payload: &JsonObject) -> Result<StatusReport, ApiError> {
    let text = payload.required_str("status")?;
    let status = SessionStatus::parse(&text).ok_or_else(|| {
        ApiError::invalid(
            "status",
            "status must be STARTING, SCAN_QR, WORKING, FAILED or STOPPED",
        )
    })?;
    let me = match payload.opt_object("me")? {
        None => None,
        Some(me) => Some(Me {
            id: non_empty(&me, "id").map_err(|e| JsonObject::nest("me", e))?,
        }),
    };
    Ok(StatusReport { status, me })
}
