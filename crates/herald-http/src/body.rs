//! Reading request bodies: the 1 MiB limit, JSON parsing, and typed field access that names the
//! offending field in every 422. Unknown fields are ignored, as the contract says.

use crate::error::ApiError;
use crate::RequestBody;
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// Reads the whole body, refusing more than [`MAX_BODY`] bytes with 413.
pub async fn read_limited(body: RequestBody) -> Result<hyper::body::Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error)
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::payload_too_large(MAX_BODY))
        }
        Err(error) => Err(ApiError::invalid(
            "",
            format!("the request body could not be read: {error}"),
        )),
    }
}

/// The integer a JSON number stands for: `5` and `5.0` alike (JSON Schema counts a number with
/// no fractional part as an integer), within `i64`.
fn integer(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        let f = n.as_f64()?;
        // i64::MAX is not exactly representable; 2^63 as f64 is the first value out of range.
        (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
    })
}

/// A JSON object body with typed accessors.
pub struct JsonObject(Map<String, Value>);

impl JsonObject {
    /// Parses `bytes` as a JSON object (422 otherwise). An empty body counts as `{}` only when
    /// `empty_ok`.
    pub fn parse(bytes: &[u8], empty_ok: bool) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) && empty_ok {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::invalid(
                "",
                "the request body must be a JSON object",
            )),
            Err(error) => Err(ApiError::invalid(
                "",
                format!("the request body is not valid JSON: {error}"),
            )),
        }
    }

    /// Whether `name` is present (even as null).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn wrong_type(name: &str, expected: &str) -> ApiError {
        ApiError::invalid(name, format!("{name} must be {expected}"))
    }

    /// A required string.
    pub fn required_str(&self, name: &str) -> Result<String, ApiError> {
        self.opt_str(name)?
            .ok_or_else(|| ApiError::invalid(name, format!("{name} is required")))
    }

    /// An optional string (absent or null → `None`).
    pub fn opt_str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Self::wrong_type(name, "a string")),
        }
    }

    /// A string that may be explicitly null: absent → `None`, null → `Some(None)`.
    pub fn nullable_str(&self, name: &str) -> Result<Option<Option<String>>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(_) => Err(Self::wrong_type(name, "a string or null")),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Self::wrong_type(name, "a boolean")),
        }
    }

    /// An optional integer.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => integer(n)
                .map(Some)
                .ok_or_else(|| Self::wrong_type(name, "an integer")),
            Some(_) => Err(Self::wrong_type(name, "an integer")),
        }
    }

    /// An optional array of strings.
    pub fn opt_str_array(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Self::wrong_type(name, "an array of strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Self::wrong_type(name, "an array of strings")),
        }
    }

    /// A required array of strings.
    pub fn required_str_array(&self, name: &str) -> Result<Vec<String>, ApiError> {
        self.opt_str_array(name)?
            .ok_or_else(|| ApiError::invalid(name, format!("{name} is required")))
    }

    /// An optional object whose values are all strings, as ordered pairs.
    pub fn opt_string_map(&self, name: &str) -> Result<Option<Vec<(String, String)>>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(Self::wrong_type(name, "an object of string values")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Self::wrong_type(name, "an object of string values")),
        }
    }

    /// An optional nested object (field names in its errors are prefixed with `name.`).
    pub fn opt_object(&self, name: &str) -> Result<Option<JsonObject>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(JsonObject(map.clone()))),
            Some(_) => Err(Self::wrong_type(name, "an object")),
        }
    }

    /// A required nested object.
    pub fn required_object(&self, name: &str) -> Result<JsonObject, ApiError> {
        self.opt_object(name)?
            .ok_or_else(|| ApiError::invalid(name, format!("{name} is required")))
    }

    /// A raw value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The whole object.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// Re-labels a 422 from a nested object so `details.field` is the full path.
    pub fn nest(prefix: &str, mut error: ApiError) -> ApiError {
        if let Some(Value::String(field)) = error.details.get("field").cloned() {
            let full = format!("{prefix}.{field}");
            error.message = error.message.replacen(&field, &full, 1);
            error.details.insert("field".into(), Value::String(full));
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: ApiError) -> String {
        e.details
            .get("field")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn non_objects_and_bad_json_are_422() {
        assert!(JsonObject::parse(b"[1]", false).is_err());
        assert!(JsonObject::parse(b"{nope", false).is_err());
        assert!(JsonObject::parse(b"", false).is_err());
        assert!(JsonObject::parse(b"", true).is_ok());
    }

    #[test]
    fn wrong_types_name_their_field() {
        let o = JsonObject::parse(br#"{"url": 5, "events": ["a", 1], "active": "yes"}"#, false)
            .unwrap();
        assert_eq!(field(o.required_str("url").unwrap_err()), "url");
        assert_eq!(field(o.opt_str_array("events").unwrap_err()), "events");
        assert_eq!(field(o.opt_bool("active").unwrap_err()), "active");
        assert_eq!(field(o.required_str("missing").unwrap_err()), "missing");
    }

    #[test]
    fn integers_may_be_written_with_a_zero_fraction() {
        let o = JsonObject::parse(
            br#"{"a": 5, "b": 5.0, "c": 5.5, "d": 1e300, "e": -0.0}"#,
            false,
        )
        .unwrap();
        assert_eq!(o.opt_int("a").unwrap(), Some(5));
        assert_eq!(o.opt_int("b").unwrap(), Some(5));
        assert_eq!(field(o.opt_int("c").unwrap_err()), "c");
        assert_eq!(field(o.opt_int("d").unwrap_err()), "d");
        assert_eq!(o.opt_int("e").unwrap(), Some(0));
    }

    #[test]
    fn nested_errors_carry_the_full_path() {
        let e = JsonObject::nest(
            "retryPolicy",
            ApiError::invalid("attempts", "attempts must be an integer"),
        );
        assert_eq!(field(e), "retryPolicy.attempts");
    }
}
