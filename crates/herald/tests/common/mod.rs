//! Helpers shared by the messaging, event-log and WebSocket tests: a server with a working
//! session, and short ways to report inbound messages and votes.

#![allow(dead_code)]

use herald_testkit::{Backend, Reply, TestServer};
use serde_json::{json, Value};

/// A server, one organization's all-capability token, and a WORKING session of it.
pub struct World {
    pub server: TestServer,
    /// `manage,read,send,ingest` for `org_a`.
    pub token: String,
    /// The session's id.
    pub session: String,
    /// The session's account (`me.id`).
    pub me: String,
}

pub const CHAT: &str = "120363000000000001@g.us";
pub const ALICE: &str = "15550001111@c.us";
pub const BOB: &str = "15550002222@c.us";

impl World {
    pub async fn new(backend: Backend) -> Self {
        herald::cli::init_logging();
        let server = TestServer::start(backend).await;
        let token = server.api_key("org_a", "manage,read,send,ingest").await;
        let created = server
            .client
            .post("/api/v1/sessions", &token, &json!({"name": "main"}))
            .await;
        assert_eq!(created.status, 201, "{:?}", created.json);
        assert_eq!(created.json["status"], "WORKING");
        let session = created.json["id"].as_str().unwrap().to_owned();
        let me = created.json["me"]["id"].as_str().unwrap().to_owned();
        Self {
            server,
            token,
            session,
            me,
        }
    }

    /// Another session of the same organization.
    pub async fn another_session(&self) -> String {
        let created = self
            .server
            .client
            .post("/api/v1/sessions", &self.token, &json!({"name": "second"}))
            .await;
        assert_eq!(created.status, 201);
        created.json["id"].as_str().unwrap().to_owned()
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.server.client.post(path, &self.token, &body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.server.client.get(path, &self.token).await
    }

    /// Reports an inbound report on `session`; asserts 202 and returns the event id.
    pub async fn ingest_on(&self, session: &str, body: Value) -> String {
        let reply = self
            .post(&format!("/api/v1/sessions/{session}/inbound"), body)
            .await;
        assert_eq!(reply.status, 202, "{:?}", reply.json);
        reply.json["eventId"].as_str().unwrap().to_owned()
    }

    /// Reports a poll posted by `sender` in `CHAT`.
    pub async fn inbound_poll(&self, mid: &str, sender: &str, options: &[&str], selectable: u32) {
        self.ingest_on(
            &self.session,
            json!({"event": "message", "payload": {
                "id": mid, "chat": CHAT, "sender": sender, "type": "poll",
                "poll": {"question": "Lunch?", "options": options, "selectableCount": selectable}}}),
        )
        .await;
    }

    /// Reports a text message; returns its `message` event id.
    pub async fn inbound_text(&self, mid: &str, body: &str) -> String {
        self.ingest_on(
            &self.session,
            json!({"event": "message", "payload": {
                "id": mid, "chat": CHAT, "sender": ALICE, "type": "text", "body": body}}),
        )
        .await
    }

    /// The session's vote on a poll in `CHAT`.
    pub async fn vote(&self, mid: &str, sender: &str, options: &[&str]) -> Reply {
        self.post(
            &format!("/api/v1/sessions/{}/messages/{mid}/vote", self.session),
            json!({"chat": CHAT, "sender": sender, "options": options}),
        )
        .await
    }

    /// The tally of a poll in `CHAT` (asserts 200).
    pub async fn tally(&self, mid: &str, sender: &str) -> Value {
        let reply = self
            .get(&format!(
                "/api/v1/sessions/{}/messages/{mid}/poll?chat={}&sender={}",
                self.session,
                enc(CHAT),
                enc(sender)
            ))
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.json);
        reply.json
    }

    /// Every event of the organization in the log, oldest first (follows `nextCursor`).
    pub async fn all_events(&self, filter: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor = String::new();
        loop {
            let mut path = format!("/api/v1/events?limit=200{filter}");
            if !cursor.is_empty() {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = self.get(&path).await;
            assert_eq!(page.status, 200, "{:?}", page.json);
            events.extend(page.json["data"].as_array().unwrap().iter().cloned());
            cursor = page.json["nextCursor"].as_str().unwrap().to_owned();
            if cursor.is_empty() {
                return events;
            }
        }
    }
}

/// Percent-encodes a query value.
pub fn enc(text: &str) -> String {
    text.replace('@', "%40")
}

/// The per-option counts of a tally, in order.
pub fn counts(tally: &Value) -> Vec<u64> {
    tally["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["votes"].as_u64().unwrap())
        .collect()
}
