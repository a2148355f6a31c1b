//! Herald's **WAHA engine**: the pieces that let Herald front a real [WAHA] server (the WhatsApp
//! HTTP API), so organizations get Herald's tenancy, login tokens, signed durable webhooks,
//! event log and WebSocket on top of a real WhatsApp account.
//!
//! Three parts, each usable on its own:
//!
//! - **Calling WAHA** ([`WahaClient`], configured by [`WahaConfig`]). One method per WAHA call
//!   Herald makes, typed after WAHA's published OpenAPI document ([`api`]):
//!
//!   | Herald needs to…             | WAHA call                                                         |
//!   |------------------------------|-------------------------------------------------------------------|
//!   | connect a session            | `POST /api/sessions` `{name, start: true, config: {webhooks}}`; if it exists (409/422): `PUT /api/sessions/{name}` `{config}` then `POST /api/sessions/{name}/start` ([`WahaClient::ensure_session`]) |
//!   | delete a session             | `DELETE /api/sessions/{name}` (404 counts as done)                 |
//!   | learn the connected account  | `GET /api/sessions/{name}/me` (empty while not connected)          |
//!   | show the pairing QR code     | `GET /api/{session}/auth/qr?format=raw` → `{value}`                |
//!   | send text                    | `POST /api/sendText` `{session, chatId, text, reply_to}`           |
//!   | send a poll                  | `POST /api/sendPoll` `{session, chatId, poll: {name, options, multipleAnswers}}` (`multipleAnswers` unless single-choice) |
//!   | vote on a poll               | `POST /api/sendPollVote` `{session, chatId, pollMessageId, votes}` |
//!
//!   Every call sends `X-Api-Key` when a key is configured and is bounded, from connecting to
//!   the last byte, by one timeout (10 s unless configured). Session names travel
//!   percent-encoded in paths. The webhook every session gets posts the six events Herald
//!   handles (`session.status`, `message`, `message.any`, `message.ack`, `poll.vote`,
//!   `poll.vote.failed`) to `<public URL>/api/v1/engines/waha/events`, signed with the webhook
//!   key, retried by WAHA exponentially from 2 s for 10 attempts. Message ids are WAHA's own
//!   strings (e.g. `true_11111111111@c.us_AAAA…`); since each WAHA engine answers a send in its
//!   own format, the id is read from any of them ([`api::message_id`]).
//!
//!   Failures say how Herald must answer ([`WahaError`]): WAHA unreachable, refusing the
//!   connection, closing it before answering or not answering in time is *unavailable* (Herald
//!   answers 503 `engine_unavailable`); WAHA answering a non-2xx status is *rejected*, with its
//!   status code and its message when the body has one (502 `engine_error`); a 2xx answer Herald
//!   cannot use (not JSON, no message id) is an *invalid answer* (also 502). Neither the API key
//!   nor the webhook key ever appears in an error, a log line or a `Debug` output.
//!
//! - **Checking WAHA's webhooks** ([`WebhookVerifier`]): `X-Webhook-Hmac` must be the hex
//!   HMAC-SHA512 of the raw body under the webhook key (and `X-Webhook-Hmac-Algorithm`, when
//!   sent, `sha512`). Checked in constant time before anything is parsed.
//!
//! - **Translating WAHA's events** ([`translate`]): one verified body becomes a [`Translation`]
//!   — the WAHA session it concerns, a key to drop duplicates by, the account the envelope
//!   names, and either an [`EngineEvent`] or the reason it is [`Ignored`]:
//!
//!   | WAHA event                         | Herald                                                  |
//!   |------------------------------------|---------------------------------------------------------|
//!   | `message`, not from the session    | an inbound message: events `message` and `message.any`  |
//!   | `message.any` from the session     | the session's own message: `message.any` only            |
//!   | `message` from the session, `message.any` from others | ignored (the other event of the pair carries the message) |
//!   | `message.ack`                      | `message.ack` `{id, chat, ack, ackName}`                |
//!   | `poll.vote`                        | an inbound vote (voter = `participant`, else `from`; poll = `poll.id`) |
//!   | `poll.vote.failed`                 | `poll.vote.failed`, in the shape of Herald's `poll.vote` |
//!   | `session.status`                   | the session's status (`SCAN_QR_CODE` → `SCAN_QR`; `STARTING`, `WORKING`, `FAILED`, `STOPPED` as named; any other → `STARTING`, WAHA's name kept as `engineStatus`) and `me` |
//!   | anything else                      | ignored, named                                          |
//!
//! ## Decisions
//!
//! - **Times.** WAHA's message times are epoch seconds, its envelope times milliseconds, and
//!   its document mixes the two. A time below 10¹¹ is taken as seconds, from 10¹¹ on as
//!   milliseconds (10¹¹ s is the year 5138, 10¹¹ ms is 1973), so no real time is ambiguous.
//!   Numbers and numeric strings are accepted; fractions are rounded to the millisecond;
//!   `0` and negative times mean "unknown" and fall back to the envelope's time, then to the
//!   time Herald receives the event. A time past the year 9999 or of another JSON type is an
//!   error.
//! - **Duplicates.** The dedup key is the envelope `id` when WAHA sends one (every retry of an
//!   event carries the same body), else the event name with the payload's identity: the
//!   message id; the message id and ack level for receipts (a message is read after it is
//!   delivered); the vote id, voter, time and selection for votes (engines differ in whether a
//!   changed vote gets a new id); the status and the time of its latest transition for status
//!   reports (no key when neither the envelope nor the payload has a time: applying the same
//!   status twice is harmless). The payload key is also reported when the envelope has an id,
//!   as a second line of defence. Keys longer than 256 characters are replaced by a SHA-256
//!   digest.
//! - **Chats and senders.** A message from someone else is in chat `from`, sent by
//!   `participant` (groups), else `author`, else `from`; the session's own message is in chat
//!   `to`, sent by the envelope's `me.id` (else `from`), so the sender matches the `me` Herald
//!   sends as. Polls and receipts follow the same rule.
//! - **`me`.** Herald's `me` is `{id}` with WAHA's `me.id` unchanged (e.g.
//!   `11111111111@c.us`); `pushName`, `lid` and `jid` have no place in it. A `me` without a
//!   string `id` is treated as absent rather than refused: it is context, not the event.
//! - **Polls in messages.** WAHA's message schema has no poll field; each engine writes the poll
//!   into the raw `_data` (see [`translate`]). A poll Herald's own rules refuse is an error.
//! - **Malformed payloads.** A missing required field, a wrong type or a refused poll is an
//!   [`EventError`] naming the field (`payload.vote.selectedOptions`), for a 4xx answer; an
//!   event type Herald does not handle is ignored before its payload is read, so it can never be
//!   refused. Empty strings count as absent for ids, chats and senders.
//! - **TLS.** WAHA is reached over plain `http://` (it normally runs beside Herald on a private
//!   network); an `https://` WAHA URL is refused at start-up rather than silently downgraded.
//!
//! [WAHA]: https://waha.devlike.pro

pub mod api;
mod client;
mod config;
mod engine;
mod events;
mod signature;
mod status;

pub use client::{Operation, Unavailable, WahaClient, WahaError};
pub use config::{ConfigError, Secret, WahaConfig, EVENTS_PATH};
pub use engine::WahaEngine;
pub use events::{
    to_millis, translate, EngineEvent, EventError, Ignored, MessageAck, Outcome, StatusChange,
    Translation, MAX_DEDUP_KEY, MILLIS_THRESHOLD,
};
pub use signature::{
    SignatureError, WebhookVerifier, ALGORITHM, ALGORITHM_HEADER, SIGNATURE_HEADER,
};
pub use status::{map_status, MappedStatus};
