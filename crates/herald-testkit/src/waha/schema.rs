//! WAHA's published OpenAPI document (the subset Herald uses, `openapi.json` beside this file,
//! MIT-licensed by WAHA's authors) and a checker of its required fields and plain types. The
//! double checks every request body against the schema the document names for its route, and
//! its own tests check every answer and webhook it produces against the document's schemas, so
//! the double follows the document rather than anyone's reading of it.
//!
//! The checker knows `$ref`, `allOf`, `required`, `properties` and `items`, and checks the types
//! `string`, `boolean`, `number` and `array`. It does not check `object` (the document types
//! `MessagePoll.multipleAnswers` as an object though WAHA takes a boolean) nor list items typed
//! as lists (`MessagePollVoteRequest.votes` items are typed as lists of strings, though WAHA
//! takes strings).

use serde_json::Value;
use std::sync::OnceLock;

/// The document, parsed once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        serde_json::from_str(include_str!("openapi.json")).expect("the WAHA document is JSON")
    })
}

/// How absence is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strictness {
    /// A request: a required field that is absent or `null` is missing (WAHA's validation
    /// refuses both).
    Request,
    /// Something WAHA sends: a required field must be present, and may be `null` (WAHA sends
    /// `"to": null`, `"participant": null`, …).
    Sent,
}

/// The schema named `name` under `components.schemas`.
pub fn schema(name: &str) -> &'static Value {
    document()
        .pointer(&format!("/components/schemas/{name}"))
        .unwrap_or_else(|| panic!("the WAHA document has no schema {name}"))
}

/// The request body schema of `method` `template` (a path as the document writes it, e.g.
/// `/api/sessions/{session}`), when the route takes a body.
pub fn request_schema(template: &str, method: &str) -> Option<&'static Value> {
    let operation = document()
        .get("paths")?
        .get(template)?
        .get(method.to_ascii_lowercase())?;
    operation.pointer("/requestBody/content/application~1json/schema")
}

/// The schema of the webhook `event` (e.g. `poll.vote` → `WAHAWebhookPollVote`).
pub fn webhook_schema(event: &str) -> Option<&'static Value> {
    document()
        .get("webhooks")?
        .get(event)?
        .pointer("/post/requestBody/content/application~1json/schema")
}

/// What is wrong with `value` against `schema`, in WAHA's words (`chatId should not be empty`,
/// `poll.name must be a string`); empty when nothing is.
pub fn violations(schema: &Value, value: &Value, strictness: Strictness) -> Vec<String> {
    let mut found = Vec::new();
    check(schema, value, "", strictness, &mut found);
    found
}

fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            document()
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling reference {reference}"))
        }
        None => schema,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn check(
    schema: &Value,
    value: &Value,
    path: &str,
    strictness: Strictness,
    found: &mut Vec<String>,
) {
    let schema = resolve(schema);
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            check(part, value, path, strictness, found);
        }
    }
    let name = if path.is_empty() { "body" } else { path };
    let expected = schema.get("type").and_then(Value::as_str);
    let type_ok = match (expected, value) {
        (_, Value::Null) => true,
        (Some("string"), v) => v.is_string(),
        (Some("boolean"), v) => v.is_boolean(),
        (Some("number"), v) => v.is_number(),
        (Some("array"), v) => v.is_array(),
        _ => true,
    };
    if !type_ok {
        let article = match expected {
            Some("array") => "an array",
            Some("boolean") => "a boolean value",
            Some("number") => "a number",
            _ => "a string",
        };
        found.push(format!("{name} must be {article}"));
        return;
    }
    if let Value::Object(fields) = value {
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let absent = match fields.get(required) {
                None => true,
                Some(Value::Null) => strictness == Strictness::Request,
                Some(_) => false,
            };
            if absent {
                found.push(format!("{} should not be empty", join(path, required)));
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (key, property) in properties {
                if let Some(field) = fields.get(key) {
                    check(property, field, &join(path, key), strictness, found);
                }
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        let checkable = item_schema.get("$ref").is_some()
            || item_schema.get("type").and_then(Value::as_str) == Some("string");
        if checkable {
            for (index, item) in items.iter().enumerate() {
                check(
                    item_schema,
                    item,
                    &format!("{path}[{index}]"),
                    strictness,
                    found,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes_name_their_request_schemas() {
        let text = request_schema("/api/sendText", "POST").unwrap();
        assert_eq!(text["$ref"], "#/components/schemas/MessageTextRequest");
        assert!(request_schema("/api/sessions/{session}", "PUT").is_some());
        assert!(request_schema("/api/sessions/{session}", "DELETE").is_none());
        assert!(webhook_schema("poll.vote.failed").is_some());
        assert!(webhook_schema("presence.update").is_none());
    }

    #[test]
    fn required_fields_and_types_are_checked_deeply() {
        let poll = request_schema("/api/sendPoll", "POST").unwrap();
        let ok = json!({"session": "s", "chatId": "1@c.us", "poll": {"name": "q", "options": ["a", "b"], "multipleAnswers": false}});
        assert_eq!(
            violations(poll, &ok, Strictness::Request),
            Vec::<String>::new()
        );
        let bad = json!({"session": "s", "chatId": null, "poll": {"name": 5, "options": ["a", 2]}});
        assert_eq!(
            violations(poll, &bad, Strictness::Request),
            vec![
                "chatId should not be empty",
                "poll.multipleAnswers should not be empty",
                "poll.name must be a string",
                "poll.options[1] must be a string",
            ]
        );
        let create = request_schema("/api/sessions", "POST").unwrap();
        let hook = json!({"name": "x", "config": {"webhooks": [{"url": "http://h", "events": ["message"]}, {"events": []}]}});
        assert_eq!(
            violations(create, &hook, Strictness::Request),
            vec!["config.webhooks[1].url should not be empty"]
        );
        let vote = request_schema("/api/sendPollVote", "POST").unwrap();
        let cast =
            json!({"session": "s", "chatId": "1@c.us", "pollMessageId": "p", "votes": ["a"]});
        assert_eq!(
            violations(vote, &cast, Strictness::Request),
            Vec::<String>::new()
        );
    }

    #[test]
    fn what_waha_sends_may_hold_nulls_but_not_gaps() {
        let ack = schema("WAMessageAckBody");
        let sent = json!({"id": "x", "from": "a", "to": "b", "participant": null, "fromMe": true, "ack": 1, "ackName": "SERVER"});
        assert!(violations(ack, &sent, Strictness::Sent).is_empty());
        assert_eq!(
            violations(ack, &sent, Strictness::Request),
            vec!["participant should not be empty"]
        );
        let gap = json!({"id": "x", "from": "a", "to": "b", "fromMe": true, "ack": 1, "ackName": "SERVER"});
        assert_eq!(
            violations(ack, &gap, Strictness::Sent),
            vec!["participant should not be empty"]
        );
    }
}
