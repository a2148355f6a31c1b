//! WAHA's webhook events in Herald's terms. [`translate`] reads one verified webhook body — the
//! envelope `{id?, timestamp?, event, session, me?, payload}` — and says which WAHA session it
//! concerns, how to recognise it when WAHA sends it again, and what it means for Herald: an
//! [`EngineEvent`], or a reason to ignore it. It is pure (no I/O, no clock), reads leniently
//! (unknown fields, `null` for absent, numbers or numeric strings for times), and refuses
//! malformed input with an [`EventError`] naming the field, never with a panic.
//!
//! Each WAHA message is taken from exactly one event type: other people's messages from
//! `message`, the session's own (sent from the phone, or through Herald and echoed back) from
//! `message.any`. The other half of each pair is ignored, since WAHA sends both for the same
//! message when a webhook subscribes to both.

use crate::status::map_status;
use herald_domain::event::Me;
use herald_domain::message::{vote_payload, MessageContent, MessageRef};
use herald_domain::messaging::{Inbound, InboundEvent, IncomingMessage, IncomingVote};
use herald_domain::poll::Poll;
use herald_domain::ports::StatusReport;
use herald_domain::session::Session;
use herald_domain::{DomainError, Millis};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Longest dedup key; longer ones are replaced by a digest (the store keeps at most 256).
pub const MAX_DEDUP_KEY: usize = 256;

/// Timestamps below this are epoch seconds, at or above it epoch milliseconds. As seconds it is
/// the year 5138, as milliseconds March 1973: no real time is ambiguous.
pub const MILLIS_THRESHOLD: f64 = 100_000_000_000.0;

/// The latest time accepted (the last millisecond of the year 9999).
const MAX_MILLIS: f64 = 253_402_300_799_999.0;

/// One WAHA webhook, translated.
#[derive(Clone, Debug, PartialEq)]
pub struct Translation {
    /// WAHA's event name (`message`, `poll.vote`, …), e.g. for metrics.
    pub event: String,
    /// The WAHA session it concerns (the envelope's `session`).
    pub engine_session: String,
    /// How to recognise this event when WAHA sends it again: the envelope `id` when present,
    /// else [`Self::payload_key`]. `None` only when neither exists (a `session.status` without
    /// envelope id or time, which is safe to apply twice).
    pub dedup_key: Option<String>,
    /// The key made of the event name and the payload's own identity (see [`translate`]), even
    /// when the envelope has an id: a second line of defence against a duplicate WAHA sends
    /// under a new envelope id.
    pub payload_key: Option<String>,
    /// The account the session is connected as, when the envelope names it.
    pub me: Option<Me>,
    /// What Herald does with it.
    pub outcome: Outcome,
}

/// What a WAHA webhook means for Herald.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// An event Herald records.
    Event(EngineEvent),
    /// An event Herald acknowledges and drops.
    Ignored(Ignored),
}

/// Why an event is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Herald does not handle this WAHA event type (named here).
    EventType(String),
    /// A `message.any` about someone else's message: its `message` event carries it.
    OthersMessageAny,
    /// A `message` about the session's own message: its `message.any` event carries it.
    OwnMessageInMessage,
}

impl Ignored {
    /// A short reason for the webhook's answer.
    pub fn reason(&self) -> String {
        match self {
            Self::EventType(event) => event.clone(),
            Self::OthersMessageAny => "message.any not from me".to_owned(),
            Self::OwnMessageInMessage => "message from me".to_owned(),
        }
    }
}

/// A WAHA event as Herald understands it.
#[derive(Clone, Debug, PartialEq)]
pub enum EngineEvent {
    /// Someone else's message (WAHA `message`): Herald's `message` and `message.any`.
    Message(IncomingMessage),
    /// The session's own message (WAHA `message.any` with `fromMe`): Herald's `message.any`
    /// alone. One Herald sent itself comes back this way and is already stored.
    OwnMessage(IncomingMessage),
    /// A delivery or read receipt (WAHA `message.ack`): Herald's `message.ack`.
    Ack(MessageAck),
    /// Someone's complete selection on a poll (WAHA `poll.vote`).
    PollVote(IncomingVote),
    /// A vote WAHA could not decrypt (WAHA `poll.vote.failed`; the selection is usually `[]`).
    PollVoteFailed(IncomingVote),
    /// The session's status changed (WAHA `session.status`).
    SessionStatus(StatusChange),
}

/// A receipt for a message: WAHA's `ack` level and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageAck {
    /// The message's WAHA id.
    pub id: String,
    /// Its chat.
    pub chat: String,
    /// `-1` error, `0` pending, `1` server, `2` device, `3` read, `4` played.
    pub ack: i64,
    /// The level's name (`ERROR`, `PENDING`, `SERVER`, `DEVICE`, `READ`, `PLAYED`).
    pub ack_name: String,
}

impl MessageAck {
    /// The `message.ack` event payload: `{"id","chat","ack","ackName"}`.
    pub fn payload(&self) -> Value {
        json!({"id": self.id, "chat": self.chat, "ack": self.ack, "ackName": self.ack_name})
    }
}

/// A session status report, with WAHA's own name when Herald has no status of that name.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusChange {
    /// Herald's status and the account, when known.
    pub report: StatusReport,
    /// WAHA's status name when it is not one of Herald's (the event's `engineStatus`).
    pub engine_status: Option<String>,
}

impl EngineEvent {
    /// The event as today's inbound use case takes it, for the Herald `session` it belongs to
    /// (`now` dates a failed vote that carries no time). `None` for a receipt, which that use
    /// case has no event type for.
    pub fn into_inbound_event(self, session: &Session, now: Millis) -> Option<InboundEvent> {
        match self {
            Self::Message(message) | Self::OwnMessage(message) => {
                Some(InboundEvent::Message(message))
            }
            Self::PollVote(vote) => Some(InboundEvent::PollVote(vote)),
            Self::PollVoteFailed(vote) => {
                let from_me = session.me.as_ref().is_some_and(|me| me.id == vote.voter);
                let poll = MessageRef {
                    session: session.id,
                    chat: vote.poll_chat,
                    sender: vote.poll_sender,
                    id: vote.poll_id,
                };
                let vote_id = vote.vote_id.unwrap_or_default();
                let at = vote.timestamp.unwrap_or(now);
                Some(InboundEvent::PollVoteFailed(vote_payload(
                    &poll,
                    &vote_id,
                    &vote.voter,
                    from_me,
                    &vote.selected,
                    at,
                )))
            }
            Self::SessionStatus(change) => Some(InboundEvent::SessionStatus(change.report)),
            Self::Ack(_) => None,
        }
    }
}

impl Translation {
    /// The inbound report for today's inbound use case (its idempotency id is
    /// [`Self::dedup_key`]); `None` when the event is ignored or is a receipt.
    pub fn into_inbound(self, session: &Session, now: Millis) -> Option<Inbound> {
        match self.outcome {
            Outcome::Event(event) => Some(Inbound {
                id: self.dedup_key,
                event: event.into_inbound_event(session, now)?,
            }),
            Outcome::Ignored(_) => None,
        }
    }
}

/// A webhook body Herald cannot read. Each names the field (dotted, as in the body) so the
/// answer can say what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The body is not a JSON document.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// A required field is absent, `null` or empty.
    #[error("`{field}` is missing")]
    Missing {
        /// The field.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("`{field}` must be {expected}")]
    WrongType {
        /// The field.
        field: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A field's value breaks a rule.
    #[error("`{field}` {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl EventError {
    /// The offending field (`None` when the body is not JSON at all).
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::NotJson(_) => None,
            Self::Missing { field }
            | Self::WrongType { field, .. }
            | Self::Invalid { field, .. } => Some(field),
        }
    }
}

type Result<T> = std::result::Result<T, EventError>;

/// Translates one webhook body (already verified: see [`crate::WebhookVerifier`]).
///
/// Rules:
/// - The envelope needs `event` and `session` (non-empty strings); `id`, `timestamp` and `me`
///   are optional (older WAHA versions send neither `id` nor `timestamp`). A `me` without a
///   string `id` is treated as absent. Event types Herald does not handle are ignored before
///   their payload is read, so they can never be refused.
/// - `message` from someone else → [`EngineEvent::Message`]: chat = `from`, sender =
///   `participant` (groups) or `author` or `from`. `message.any` from the session →
///   [`EngineEvent::OwnMessage`]: chat = `to`, sender = the envelope's `me.id`, else `from`.
///   A poll is recognised in `_data` as each WAHA engine writes it (WEBJS/WPP
///   `type: "poll_creation"` with `pollName`, `pollOptions[].name` and
///   `pollSelectableOptionsCount`; NOWEB `message.pollCreationMessage*` and GOWS
///   `Message.pollCreationMessage*` with `name`, `options[].optionName` and
///   `selectableOptionsCount`); every other message is text with its `body` (absent for media
///   without caption). A poll Herald's rules refuse (fewer than 2 or more than 12 choices,
///   repeated or empty choices) is an error.
/// - `message.ack` → [`EngineEvent::Ack`]: chat as for messages, `ackName` derived from `ack`
///   when absent.
/// - `poll.vote` and `poll.vote.failed` → [`EngineEvent::PollVote`] /
///   [`EngineEvent::PollVoteFailed`]: the poll is `poll.id` (its chat and sender read like a
///   message's), the voter `vote.participant` or else `vote.from`, the selection
///   `vote.selectedOptions`.
/// - `session.status` → [`EngineEvent::SessionStatus`] with [`map_status`] and the envelope's
///   `me`.
/// - Times (message, vote) are epoch seconds or milliseconds, told apart by
///   [`MILLIS_THRESHOLD`], and returned in milliseconds; a missing, zero or negative time
///   falls back to the envelope's `timestamp`, else stays absent (Herald then uses the time of
///   receipt).
/// - The payload key is the event name with the payload's identity: the message id
///   (`message`, `message.any`), the message id and ack level (`message.ack`), the vote id,
///   voter, time and selection (`poll.vote`, `poll.vote.failed`: a voter's later change is a
///   new event even where an engine reuses the id), the status and the time of its last
///   transition or the envelope's time (`session.status`). Keys longer than
///   [`MAX_DEDUP_KEY`] are replaced by `event#<sha256>`.
pub fn translate(body: &[u8]) -> Result<Translation> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    let envelope = Obj::root(&root)?;
    let event = envelope.required_str("event")?.to_owned();
    let engine_session = envelope.required_str("session")?.to_owned();
    let envelope_id = envelope.optional_str("id")?.map(str::to_owned);
    let sent_at = envelope.timestamp("timestamp")?;
    let me = envelope
        .value("me")
        .and_then(|me| me.get("id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(|id| Me { id: id.to_owned() });
    let context = Context {
        me: me.as_ref(),
        sent_at,
    };

    let (outcome, identity) = match event.as_str() {
        "message" | "message.any" => message(&envelope.object("payload")?, &event, &context)?,
        "message.ack" => ack(&envelope.object("payload")?)?,
        "poll.vote" | "poll.vote.failed" => vote(&envelope.object("payload")?, &event, &context)?,
        "session.status" => status(&envelope.object("payload")?, &context)?,
        _ => (Outcome::Ignored(Ignored::EventType(event.clone())), None),
    };
    let payload_key = identity.map(|parts| dedup_key(&event, &Value::Array(parts).to_string()));
    let dedup_key = match envelope_id {
        Some(id) => Some(dedup_key("id", &id)),
        None => payload_key.clone(),
    };
    Ok(Translation {
        event,
        engine_session,
        dedup_key,
        payload_key,
        me,
        outcome,
    })
}

/// What the envelope contributes to every payload.
struct Context<'a> {
    me: Option<&'a Me>,
    sent_at: Option<Millis>,
}

/// An outcome and the parts of the payload's identity.
type Translated = (Outcome, Option<Vec<Value>>);

fn message(payload: &Obj, event: &str, context: &Context) -> Result<Translated> {
    let id = payload.required_str("id")?.to_owned();
    let from_me = payload.required_bool("fromMe")?;
    let identity = Some(vec![json!(id)]);
    match (event, from_me) {
        ("message", true) => return Ok((Outcome::Ignored(Ignored::OwnMessageInMessage), identity)),
        ("message.any", false) => {
            return Ok((Outcome::Ignored(Ignored::OthersMessageAny), identity))
        }
        _ => {}
    }
    let (chat, sender) = if from_me {
        let chat = payload.required_str("to")?;
        let sender = match context.me {
            Some(me) => me.id.as_str(),
            None => payload.required_str("from")?,
        };
        (chat, sender)
    } else {
        let chat = payload.required_str("from")?;
        let sender = match payload.optional_str("participant")? {
            Some(participant) => participant,
            None => payload.optional_str("author")?.unwrap_or(chat),
        };
        (chat, sender)
    };
    let content = match poll(payload)? {
        Some(poll) => MessageContent::Poll(poll),
        None => MessageContent::Text {
            body: payload.optional_str_keep_empty("body")?.map(str::to_owned),
        },
    };
    let message = IncomingMessage {
        id,
        chat: chat.to_owned(),
        sender: sender.to_owned(),
        from_me,
        timestamp: payload.timestamp("timestamp")?.or(context.sent_at),
        content,
    };
    let event = if from_me {
        EngineEvent::OwnMessage(message)
    } else {
        EngineEvent::Message(message)
    };
    Ok((Outcome::Event(event), identity))
}

/// The poll a message carries, read from `_data` the way each WAHA engine writes it.
fn poll(payload: &Obj) -> Result<Option<Poll>> {
    let Some(data) = payload.optional_object("_data")? else {
        return Ok(None);
    };
    // WEBJS and WPP: the message's own fields.
    if data.value("type").and_then(Value::as_str) == Some("poll_creation") {
        let question = data.required_str("pollName")?.to_owned();
        let options = data.list_of_names("pollOptions", "name")?;
        let count = data.count("pollSelectableOptionsCount")?;
        let fields = ["pollName", "pollOptions", "pollSelectableOptionsCount"];
        return checked_poll(&data, fields, question, options, count).map(Some);
    }
    // NOWEB (`message`) and GOWS (`Message`): the protocol message, in one of its versions.
    for container in ["message", "Message"] {
        let Some(inner) = data.optional_object(container)? else {
            continue;
        };
        for version in [
            "pollCreationMessage",
            "pollCreationMessageV2",
            "pollCreationMessageV3",
        ] {
            if let Some(creation) = inner.optional_object(version)? {
                let question = creation.required_str("name")?.to_owned();
                let options = creation.list_of_names("options", "optionName")?;
                let count = creation.count("selectableOptionsCount")?;
                let fields = ["name", "options", "selectableOptionsCount"];
                return checked_poll(&creation, fields, question, options, count).map(Some);
            }
        }
    }
    Ok(None)
}

/// The poll, if Herald's rules accept it; a refusal names the engine's field (`fields` are the
/// engine's names for the question, the choices and the selectable count).
fn checked_poll(
    at: &Obj,
    fields: [&str; 3],
    question: String,
    options: Vec<String>,
    count: u32,
) -> Result<Poll> {
    Poll::new(question, options, count).map_err(|error| match error {
        DomainError::Invalid { field, message } => {
            let engine_field = match field.as_str() {
                "question" => fields[0],
                "options" => fields[1],
                _ => fields[2],
            };
            EventError::Invalid {
                field: at.path(engine_field),
                reason: format!("breaks Herald's poll rules: {message}"),
            }
        }
        other => EventError::Invalid {
            field: at.path.clone(),
            reason: other.to_string(),
        },
    })
}

fn ack(payload: &Obj) -> Result<Translated> {
    let id = payload.required_str("id")?.to_owned();
    let from_me = payload.required_bool("fromMe")?;
    let chat = payload
        .required_str(if from_me { "to" } else { "from" })?
        .to_owned();
    let ack = payload.required_int("ack")?;
    let ack_name = match payload.optional_str("ackName")? {
        Some(name) => name.to_owned(),
        None => ack_name(ack).to_owned(),
    };
    let identity = Some(vec![json!(id), json!(ack)]);
    let event = EngineEvent::Ack(MessageAck {
        id,
        chat,
        ack,
        ack_name,
    });
    Ok((Outcome::Event(event), identity))
}

/// WAHA's names of its ack levels.
fn ack_name(ack: i64) -> &'static str {
    match ack {
        -1 => "ERROR",
        0 => "PENDING",
        1 => "SERVER",
        2 => "DEVICE",
        3 => "READ",
        4 => "PLAYED",
        _ => "UNKNOWN",
    }
}

fn vote(payload: &Obj, event: &str, context: &Context) -> Result<Translated> {
    let poll = payload.object("poll")?;
    let ballot = payload.object("vote")?;
    let poll_id = poll.required_str("id")?.to_owned();
    let poll_from_me = poll.required_bool("fromMe")?;
    let (poll_chat, poll_sender) = if poll_from_me {
        let sender = match context.me {
            Some(me) => me.id.as_str(),
            None => poll.required_str("from")?,
        };
        (poll.required_str("to")?, sender)
    } else {
        let chat = poll.required_str("from")?;
        (chat, poll.optional_str("participant")?.unwrap_or(chat))
    };
    let vote_id = ballot.required_str("id")?.to_owned();
    let voter = match ballot.optional_str("participant")? {
        Some(participant) => participant.to_owned(),
        None => ballot.required_str("from")?.to_owned(),
    };
    let selected = ballot.strings("selectedOptions")?;
    let timestamp = ballot.timestamp("timestamp")?.or(context.sent_at);
    let identity = Some(vec![
        json!(vote_id),
        json!(voter),
        json!(timestamp),
        json!(selected),
    ]);
    let vote = IncomingVote {
        poll_id,
        poll_chat: poll_chat.to_owned(),
        poll_sender: poll_sender.to_owned(),
        vote_id: Some(vote_id),
        voter,
        selected,
        timestamp,
    };
    let event = if event == "poll.vote" {
        EngineEvent::PollVote(vote)
    } else {
        EngineEvent::PollVoteFailed(vote)
    };
    Ok((Outcome::Event(event), identity))
}

fn status(payload: &Obj, context: &Context) -> Result<Translated> {
    let name = payload.required_str("status")?;
    let mapped = map_status(name);
    // The time of the latest transition identifies this report; `statuses` is WAHA's history.
    let last_transition = match payload.value("statuses") {
        Some(Value::Array(points)) => points
            .last()
            .and_then(|point| point.get("timestamp"))
            .and_then(|t| to_millis(t).ok().flatten()),
        _ => None,
    };
    let identity = last_transition
        .or(context.sent_at)
        .map(|at| vec![json!(name), json!(at)]);
    let change = StatusChange {
        report: StatusReport {
            status: mapped.status,
            me: context.me.cloned(),
        },
        engine_status: mapped.engine_status,
    };
    Ok((Outcome::Event(EngineEvent::SessionStatus(change)), identity))
}

/// `prefix:text`, or `prefix#<sha256 of text>` when that would be longer than
/// [`MAX_DEDUP_KEY`].
fn dedup_key(prefix: &str, text: &str) -> String {
    let key = format!("{prefix}:{text}");
    if key.len() <= MAX_DEDUP_KEY {
        return key;
    }
    let digest = Sha256::digest(text.as_bytes());
    let short_prefix: String = prefix.chars().take(64).collect();
    format!("{short_prefix}#{}", hex::encode(digest))
}

/// Converts a WAHA time to epoch milliseconds: a number or a numeric string, seconds below
/// [`MILLIS_THRESHOLD`] and milliseconds from it on; fractions of a millisecond are rounded.
/// `Ok(None)` for `null`, zero or a negative time (engines send 0 for "unknown"); an error
/// for anything that is not a number or lies beyond the year 9999.
pub fn to_millis(value: &Value) -> std::result::Result<Option<Millis>, &'static str> {
    let number = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64().ok_or("a number")?,
        Value::String(s) => s.trim().parse::<f64>().map_err(|_| "a number")?,
        _ => return Err("a number"),
    };
    if !number.is_finite() {
        return Err("a number");
    }
    if number <= 0.0 {
        return Ok(None);
    }
    let ms = if number < MILLIS_THRESHOLD {
        number * 1000.0
    } else {
        number
    };
    if ms > MAX_MILLIS {
        return Err("a time before the year 10000");
    }
    Ok(Some(ms.round() as Millis))
}

/// A JSON object and where it sits in the body, with typed accessors whose errors name the
/// field.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn root(value: &'a Value) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                path: String::new(),
            }),
            _ => Err(EventError::WrongType {
                field: "body".to_owned(),
                expected: "a JSON object",
            }),
        }
    }

    fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value at `key`, `None` when absent or `null`.
    fn value(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn missing(&self, key: &str) -> EventError {
        EventError::Missing {
            field: self.path(key),
        }
    }

    fn wrong(&self, key: &str, expected: &'static str) -> EventError {
        EventError::WrongType {
            field: self.path(key),
            expected,
        }
    }

    fn object(&self, key: &str) -> Result<Obj<'a>> {
        self.optional_object(key)?.ok_or_else(|| self.missing(key))
    }

    fn optional_object(&self, key: &str) -> Result<Option<Obj<'a>>> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj {
                map,
                path: self.path(key),
            })),
            Some(_) => Err(self.wrong(key, "an object")),
        }
    }

    fn required_str(&self, key: &str) -> Result<&'a str> {
        self.optional_str(key)?.ok_or_else(|| self.missing(key))
    }

    /// A string that counts only when not empty (ids, chats): `""` reads as absent.
    fn optional_str(&self, key: &str) -> Result<Option<&'a str>> {
        Ok(self.optional_str_keep_empty(key)?.filter(|s| !s.is_empty()))
    }

    fn optional_str_keep_empty(&self, key: &str) -> Result<Option<&'a str>> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    fn required_bool(&self, key: &str) -> Result<bool> {
        match self.value(key) {
            None => Err(self.missing(key)),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.wrong(key, "true or false")),
        }
    }

    fn required_int(&self, key: &str) -> Result<i64> {
        match self.value(key) {
            None => Err(self.missing(key)),
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| self.wrong(key, "an integer")),
            Some(_) => Err(self.wrong(key, "an integer")),
        }
    }

    /// A poll's selectable count: a non-negative integer, 0 when absent.
    fn count(&self, key: &str) -> Result<u32> {
        match self.value(key) {
            None => Ok(0),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| self.wrong(key, "a non-negative integer")),
            Some(_) => Err(self.wrong(key, "a non-negative integer")),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        let Some(value) = self.value(key) else {
            return Err(self.missing(key));
        };
        let items = value
            .as_array()
            .ok_or_else(|| self.wrong(key, "a list of strings"))?;
        items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.wrong(key, "a list of strings"))
    }

    /// `[{name_key: "…"}, …]` → the names.
    fn list_of_names(&self, key: &str, name_key: &str) -> Result<Vec<String>> {
        let Some(value) = self.value(key) else {
            return Err(self.missing(key));
        };
        let expected = "a list of objects with a string name";
        let items = value.as_array().ok_or_else(|| self.wrong(key, expected))?;
        items
            .iter()
            .map(|item| {
                item.get(name_key)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.wrong(key, expected))
    }

    fn timestamp(&self, key: &str) -> Result<Option<Millis>> {
        match self.value(key) {
            None => Ok(None),
            Some(value) => to_millis(value).map_err(|expected| self.wrong(key, expected)),
        }
    }
}

#[cfg(test)]
mod tests;
