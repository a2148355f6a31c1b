//! Checking real answers against the OpenAPI document the server serves: the status must be
//! documented for the route, the content type must be the documented one (or absent when no
//! body is documented), the body must match the documented schema, and every header the
//! document marks required must be there. A failure names the route.

use crate::{Client, Reply};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The served OpenAPI document, ready to check answers against.
pub struct Conformance {
    doc: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl Conformance {
    /// Fetches `/api/v1/openapi.json` from the server.
    pub async fn fetch(client: &Client) -> Self {
        let reply = client.send("GET", "/api/v1/openapi.json", None, None).await;
        assert_eq!(reply.status, 200, "the OpenAPI document is served");
        Self::new(reply.json)
    }

    /// Checks against `doc`.
    pub fn new(doc: Value) -> Self {
        Self {
            doc,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// The document.
    pub fn document(&self) -> &Value {
        &self.doc
    }

    /// The operation documented for `method` on the path template `path`.
    pub fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        self.doc["paths"]
            .get(path)?
            .get(method.to_ascii_lowercase())
            .filter(|op| op.is_object())
    }

    /// Panics, naming the route, unless `reply` is an answer the document gives for `method
    /// path` (a path template, e.g. `/api/v1/webhooks/{id}`).
    pub fn assert(&self, method: &str, path: &str, reply: &Reply) {
        if let Err(why) = self.check(method, path, reply) {
            panic!("{method} {path} answered {}: {why}", reply.status);
        }
    }

    /// `Err(why)` unless `reply` is an answer the document gives for `method path`.
    pub fn check(&self, method: &str, path: &str, reply: &Reply) -> Result<(), String> {
        let op = self
            .operation(method, path)
            .ok_or("the route is not in the OpenAPI document")?;
        let status = reply.status.to_string();
        let answer = op["responses"]
            .get(&status)
            .ok_or_else(|| format!("status {status} is not documented for this route"))?;
        self.check_headers(answer, reply)?;
        let content_type = reply
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let Some(content) = answer.get("content").and_then(Value::as_object) else {
            if !reply.body.is_empty() || content_type.is_some() {
                return Err(format!(
                    "no body is documented, but it sent {content_type:?} {:?}",
                    String::from_utf8_lossy(&reply.body)
                ));
            }
            return Ok(());
        };
        let content_type = content_type.ok_or("no Content-Type")?;
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let documented = content.get(&media).ok_or_else(|| {
            format!(
                "Content-Type {content_type} is not documented (documented: {:?})",
                content.keys().collect::<Vec<_>>()
            )
        })?;
        if media != "application/json" {
            return Ok(());
        }
        let body: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| format!("the body is not JSON ({e})"))?;
        let key = format!("{method} {path} {status}");
        let validator = self.validator(&key, &documented["schema"])?;
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the body does not match its schema: {}; body: {body}",
                errors.join("; ")
            ))
        }
    }

    fn check_headers(&self, answer: &Value, reply: &Reply) -> Result<(), String> {
        let Some(headers) = answer.get("headers").and_then(Value::as_object) else {
            return Ok(());
        };
        for (name, header) in headers {
            let header = self.resolve(header);
            if header["required"] != true {
                continue;
            }
            let value = reply
                .headers
                .get(name.as_str())
                .ok_or_else(|| format!("the required header {name} is missing"))?
                .to_str()
                .map_err(|_| format!("header {name} is not text"))?;
            let schema = &header["schema"];
            let parsed = if schema["type"] == "integer" {
                json!(value
                    .parse::<i64>()
                    .map_err(|_| format!("header {name}: {value} is not an integer"))?)
            } else {
                json!(value)
            };
            let validator = self.validator(&format!("header {name}"), schema)?;
            if !validator.is_valid(&parsed) {
                return Err(format!("header {name}: {value} does not match {schema}"));
            }
        }
        Ok(())
    }

    /// Follows a `$ref` to a component.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(pointer) => self
                .doc
                .pointer(pointer.trim_start_matches('#'))
                .unwrap_or(value),
            None => value,
        }
    }

    fn validator(&self, key: &str, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let mut validators = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(validator) = validators.get(key) {
            return Ok(validator.clone());
        }
        // The schema's `#/components/...` references resolve against a root that carries the
        // document's components.
        let mut root = json!({"allOf": [schema]});
        root["components"] = self.doc["components"].clone();
        let validator = Arc::new(
            jsonschema::draft202012::new(&root)
                .map_err(|e| format!("the documented schema does not compile: {e}"))?,
        );
        validators.insert(key.to_owned(), validator.clone());
        Ok(validator)
    }
}
