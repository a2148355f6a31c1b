//! Reading query strings and percent-encoded path segments, with 422s that name the parameter.
//! Unknown parameters are ignored, as the contract says; a repeated one counts once (the first).

use crate::error::ApiError;
use herald_domain::event::EventType;
use herald_domain::SessionId;
use http::Uri;
use std::borrow::Cow;

/// The decoded `name=value` pairs of a request's query string.
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses the query of `uri` (`+` and `%XX` decoded).
    pub fn parse(uri: &Uri) -> Self {
        Self(
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// A required, non-empty parameter.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::invalid(name, format!("query parameter {name} is required")))
    }

    /// `limit` within `1..=max` (default `default`).
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid("limit", format!("limit must be an integer from 1 to {max}"))
                }),
        }
    }

    /// An optional session id (422 when malformed).
    pub fn session_id(&self, name: &str) -> Result<Option<SessionId>, ApiError> {
        self.get(name)
            .map(|text| {
                SessionId::parse(text)
                    .ok_or_else(|| ApiError::invalid(name, format!("{name} must be a session id")))
            })
            .transpose()
    }

    /// An optional comma-separated list of event types; `*` (or nothing) means all.
    pub fn event_types(&self, name: &str) -> Result<Option<Vec<EventType>>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let mut types = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "*" {
                return Ok(None);
            }
            let t = EventType::parse(part).ok_or_else(|| {
                ApiError::invalid(name, format!("unknown event type `{part}` in {name}"))
            })?;
            if !types.contains(&t) {
                types.push(t);
            }
        }
        Ok((!types.is_empty()).then_some(types))
    }
}

/// A path segment with `%XX` escapes decoded (message ids may contain `@`, `:` and the like).
pub fn path_segment(raw: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(raw).decode_utf8_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Query {
        Query::parse(&format!("/x?{text}").parse::<Uri>().unwrap())
    }

    fn field(e: ApiError) -> String {
        e.details["field"].as_str().unwrap().to_owned()
    }

    #[test]
    fn values_are_decoded_and_empty_ones_are_absent() {
        let q = query("chat=123%40c.us&sender=&limit=5");
        assert_eq!(q.get("chat"), Some("123@c.us"));
        assert_eq!(q.get("sender"), None);
        assert_eq!(field(q.required("sender").unwrap_err()), "sender");
        assert_eq!(q.limit(50, 200).unwrap(), 5);
    }

    #[test]
    fn limits_and_types_are_checked() {
        assert_eq!(field(query("limit=0").limit(50, 200).unwrap_err()), "limit");
        assert_eq!(
            field(query("limit=201").limit(50, 200).unwrap_err()),
            "limit"
        );
        assert_eq!(field(query("limit=x").limit(50, 200).unwrap_err()), "limit");
        assert_eq!(query("").limit(50, 200).unwrap(), 50);
        let q = query("events=poll.vote,message");
        assert_eq!(
            q.event_types("events").unwrap(),
            Some(vec![EventType::PollVote, EventType::Message])
        );
        assert_eq!(query("events=*").event_types("events").unwrap(), None);
        assert_eq!(
            field(query("events=nope").event_types("events").unwrap_err()),
            "events"
        );
        assert_eq!(
            field(query("sessionId=x").session_id("sessionId").unwrap_err()),
            "sessionId"
        );
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(path_segment("true_1%40c.us_3EB0"), "true_1@c.us_3EB0");
        assert_eq!(path_segment("plain"), "plain");
    }
}
