//! The requests Herald sends WAHA and the answers it reads, typed after WAHA's published OpenAPI
//! document (`SessionCreateRequest`, `SessionUpdateRequest`, `WebhookConfig`,
//! `MessageTextRequest`, `MessagePollRequest`, `MessagePollVoteRequest`, `SessionDTO`,
//! `MeInfo`, `QRCodeValue`, `WAMessage`). Only the fields Herald uses are modelled; answers are
//! read leniently (unknown fields ignored), since WAHA's engines differ in what they add.

use crate::config::Secret;
use herald_domain::event::Me;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The WAHA events Herald subscribes every session's webhook to.
pub const SUBSCRIBED_EVENTS: [&str; 6] = [
    "session.status",
    "message",
    "message.any",
    "message.ack",
    "poll.vote",
    "poll.vote.failed",
];

/// `POST /api/sessions`: create a session and start it.
#[derive(Debug, Serialize)]
pub struct SessionCreateRequest<'a> {
    /// The WAHA session name.
    pub name: &'a str,
    /// Start it right away.
    pub start: bool,
    /// Its configuration (Herald's webhook).
    pub config: &'a SessionConfig,
}

/// `PUT /api/sessions/{name}`: replace an existing session's configuration.
#[derive(Debug, Serialize)]
pub struct SessionUpdateRequest<'a> {
    /// The new configuration.
    pub config: &'a SessionConfig,
}

/// A WAHA session's configuration, as far as Herald sets it.
#[derive(Debug, Serialize)]
pub struct SessionConfig {
    /// Where WAHA posts the session's events.
    pub webhooks: Vec<WebhookConfig>,
}

/// One webhook on a WAHA session.
#[derive(Debug, Serialize)]
pub struct WebhookConfig {
    /// Herald's events URL.
    pub url: String,
    /// The events to send.
    pub events: Vec<&'static str>,
    /// The signing key WAHA uses for `X-Webhook-Hmac`.
    pub hmac: HmacConfiguration,
    /// How WAHA retries a delivery Herald did not acknowledge.
    pub retries: RetriesConfiguration,
}

/// WAHA's webhook signing settings.
#[derive(Debug, Serialize)]
pub struct HmacConfiguration {
    /// The HMAC-SHA512 key.
    pub key: Secret,
}

/// WAHA's webhook retry settings.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetriesConfiguration {
    /// `linear`, `exponential` or `constant`.
    pub policy: &'static str,
    /// The first delay.
    pub delay_seconds: u32,
    /// How many attempts in all.
    pub attempts: u32,
}

impl SessionConfig {
    /// Herald's one webhook: every subscribed event to `events_url`, signed with `key`,
    /// retried exponentially from 2 s, 10 attempts.
    pub fn herald_webhook(events_url: &str, key: &Secret) -> Self {
        Self {
            webhooks: vec![WebhookConfig {
                url: events_url.to_owned(),
                events: SUBSCRIBED_EVENTS.to_vec(),
                hmac: HmacConfiguration { key: key.clone() },
                retries: RetriesConfiguration {
                    policy: "exponential",
                    delay_seconds: 2,
                    attempts: 10,
                },
            }],
        }
    }
}

/// `POST /api/sendText`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendTextRequest<'a> {
    /// The WAHA session name.
    pub session: &'a str,
    /// The chat, e.g. `11111111111@c.us`.
    pub chat_id: &'a str,
    /// The text.
    pub text: &'a str,
    /// The message this one answers, when it answers one.
    #[serde(rename = "reply_to", skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<&'a str>,
}

/// `POST /api/sendPoll`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendPollRequest<'a> {
    /// The WAHA session name.
    pub session: &'a str,
    /// The chat.
    pub chat_id: &'a str,
    /// The poll.
    pub poll: MessagePoll<'a>,
}

/// A poll as WAHA takes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePoll<'a> {
    /// The question.
    pub name: &'a str,
    /// The choices.
    pub options: &'a [String],
    /// Whether a voter may pick more than one choice.
    pub multiple_answers: bool,
}

/// `POST /api/sendPollVote`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendPollVoteRequest<'a> {
    /// The WAHA session name.
    pub session: &'a str,
    /// The poll's chat.
    pub chat_id: &'a str,
    /// The poll message's WAHA id.
    pub poll_message_id: &'a str,
    /// The complete selection (`[]` clears the vote).
    pub votes: &'a [String],
}

/// WAHA's `SessionDTO`: a session's name and status (and more Herald does not read).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct SessionDto {
    /// The WAHA session name.
    pub name: String,
    /// WAHA's status name (see [`crate::map_status`]).
    pub status: String,
}

/// WAHA's `MeInfo`: the account a session is connected as.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MeInfo {
    /// The account's id, e.g. `11111111111@c.us`.
    pub id: String,
    /// The account's display name.
    #[serde(default)]
    pub push_name: Option<String>,
    /// The account's linked id, e.g. `123123@lid`.
    #[serde(default)]
    pub lid: Option<String>,
}

impl MeInfo {
    /// Herald's `me`: WAHA's `id` unchanged (the name and linked id have no place in it).
    pub fn to_me(&self) -> Me {
        Me {
            id: self.id.clone(),
        }
    }
}

/// WAHA's `QRCodeValue` (`GET /api/{session}/auth/qr?format=raw`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct QrCodeValue {
    /// The text to render as a QR code.
    pub value: String,
}

/// The message id in WAHA's answer to a send. WAHA's document promises a `WAMessage` with a
/// string `id`, but each engine answers in its own format, so three shapes are read: a string
/// `id` (the document, GOWS); an object `id` with `_serialized` (WEBJS, WPP); and NOWEB's
/// `key: {remoteJid, fromMe, id}`, which becomes `{fromMe}_{chat}_{id}` with the chat written
/// `…@c.us` as WAHA's events write it. `None` when the answer has none of these.
pub fn message_id(answer: &Value) -> Option<String> {
    let non_empty = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(id) = answer.get("id") {
        return non_empty(id).or_else(|| id.get("_serialized").and_then(non_empty));
    }
    let key = answer.get("key")?;
    let chat = key.get("remoteJid")?.as_str().filter(|s| !s.is_empty())?;
    let chat = match chat.strip_suffix("@s.whatsapp.net") {
        Some(user) => format!("{user}@c.us"),
        None => chat.to_owned(),
    };
    let from_me = key.get("fromMe")?.as_bool()?;
    let id = key.get("id").and_then(non_empty)?;
    Some(format!("{from_me}_{chat}_{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_webhook_config_is_the_one_herald_promises() {
        let config =
            SessionConfig::herald_webhook("http://h/api/v1/engines/waha/events", &Secret::new("k"));
        let request = SessionCreateRequest {
            name: "default",
            start: true,
            config: &config,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"name": "default", "start": true, "config": {"webhooks": [{
                "url": "http://h/api/v1/engines/waha/events",
                "events": ["session.status", "message", "message.any", "message.ack", "poll.vote", "poll.vote.failed"],
                "hmac": {"key": "k"},
                "retries": {"policy": "exponential", "delaySeconds": 2, "attempts": 10},
            }]}})
        );
        assert!(!format!("{request:?}").contains("\"k\""));
    }

    #[test]
    fn message_requests_use_wahas_field_names() {
        let text = SendTextRequest {
            session: "s",
            chat_id: "1@c.us",
            text: "hi",
            reply_to: None,
        };
        assert_eq!(
            serde_json::to_value(&text).unwrap(),
            json!({"session": "s", "chatId": "1@c.us", "text": "hi"})
        );
        let reply = SendTextRequest {
            reply_to: Some("false_1@c.us_AAA"),
            ..text
        };
        assert_eq!(
            serde_json::to_value(&reply).unwrap()["reply_to"],
            "false_1@c.us_AAA"
        );
        let options = vec!["a".to_owned(), "b".to_owned()];
        let poll = SendPollRequest {
            session: "s",
            chat_id: "1@c.us",
            poll: MessagePoll {
                name: "q?",
                options: &options,
                multiple_answers: true,
            },
        };
        assert_eq!(
            serde_json::to_value(&poll).unwrap(),
            json!({"session": "s", "chatId": "1@c.us", "poll": {"name": "q?", "options": ["a", "b"], "multipleAnswers": true}})
        );
        let vote = SendPollVoteRequest {
            session: "s",
            chat_id: "1@c.us",
            poll_message_id: "true_1@c.us_P",
            votes: &options[..1],
        };
        assert_eq!(
            serde_json::to_value(&vote).unwrap(),
            json!({"session": "s", "chatId": "1@c.us", "pollMessageId": "true_1@c.us_P", "votes": ["a"]})
        );
    }

    #[test]
    fn message_ids_are_read_from_every_engines_answer() {
        assert_eq!(
            message_id(&json!({"id": "true_1@c.us_AAAA", "timestamp": 1666943582})).as_deref(),
            Some("true_1@c.us_AAAA")
        );
        assert_eq!(
            message_id(&json!({"id": {"fromMe": true, "remote": "1@c.us", "id": "AAAA", "_serialized": "true_1@c.us_AAAA"}})).as_deref(),
            Some("true_1@c.us_AAAA")
        );
        assert_eq!(
            message_id(&json!({"key": {"remoteJid": "1@s.whatsapp.net", "fromMe": true, "id": "3EB0"}, "status": "PENDING"})).as_deref(),
            Some("true_1@c.us_3EB0")
        );
        assert_eq!(
            message_id(
                &json!({"key": {"remoteJid": "123-456@g.us", "fromMe": true, "id": "3EB0"}})
            )
            .as_deref(),
            Some("true_123-456@g.us_3EB0")
        );
        for none in [
            json!(null),
            json!({}),
            json!({"id": ""}),
            json!({"id": 5}),
            json!({"key": {"id": "x"}}),
        ] {
            assert_eq!(message_id(&none), None, "{none}");
        }
    }

    #[test]
    fn me_keeps_only_the_id() {
        let me: MeInfo = serde_json::from_value(
            json!({"id": "1@c.us", "pushName": "Ann", "lid": "9@lid", "jid": "1:2@s.whatsapp.net"}),
        )
        .unwrap();
        assert_eq!(
            me.to_me(),
            Me {
                id: "1@c.us".into()
            }
        );
    }
}
