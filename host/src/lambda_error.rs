//! A function error as the Runtime API receives it, in every dialect real runtime clients
//! post, normalised to Lambda's error shape. Pure: no I/O.

use serde::Serialize;
use serde_json::Value;

/// Lambda's error shape (`errorMessage`, `errorType`, optional `stackTrace`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    pub error_message: String,
    pub error_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<Value>,
}

impl Diagnostic {
    /// Reads an `/invocation/{id}/error` or `/init/error` post. The body may be Lambda's
    /// JSON (`stackTrace`, or `trace` as Node's client sends), any other text, or empty
    /// with only the `Lambda-Runtime-Function-Error-Type` header, as AWS documents.
    pub fn from_post(body: &[u8], error_type_header: Option<&str>) -> Diagnostic {
        let header_type = error_type_header
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let fallback_type = || header_type.clone().unwrap_or_else(|| "Unhandled".into());
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(mut map)) => {
                let error_type = match map.remove("errorType") {
                    Some(Value::String(t)) if !t.is_empty() => t,
                    _ => fallback_type(),
                };
                let error_message = match map.remove("errorMessage") {
                    Some(Value::String(m)) => m,
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                let stack_trace = map
                    .remove("stackTrace")
                    .or_else(|| map.remove("trace"))
                    .filter(|t| !t.is_null());
                Diagnostic {
                    error_message,
                    error_type,
                    stack_trace,
                }
            }
            Ok(Value::String(m)) => Diagnostic {
                error_message: m,
                error_type: fallback_type(),
                stack_trace: None,
            },
            _ => Diagnostic {
                error_message: String::from_utf8_lossy(body).trim().to_owned(),
                error_type: fallback_type(),
                stack_trace: None,
            },
        }
    }
}

/// Most bytes of runtime- or guest-supplied text (an error's type or message) that reach
/// the log.
pub const MAX_LOGGED: usize = 4096;

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lambda_json_with_stack_trace() {
        let body = br#"{"errorMessage":"boom","errorType":"ValueError","stackTrace":["a","b"]}"#;
        let e = Diagnostic::from_post(body, Some("Runtime.Other"));
        assert_eq!(e.error_type, "ValueError", "the body's type wins");
        assert_eq!(e.error_message, "boom");
        assert_eq!(e.stack_trace, Some(json!(["a", "b"])));
    }

    #[test]
    fn node_dialect_uses_trace() {
        let body = br#"{"errorType":"Error","errorMessage":"x","trace":["at f (index.js:1)"]}"#;
        let e = Diagnostic::from_post(body, None);
        assert_eq!(e.stack_trace, Some(json!(["at f (index.js:1)"])));
    }

    #[test]
    fn header_only_and_plain_text() {
        let e = Diagnostic::from_post(b"", Some("Runtime.ExitError"));
        assert_eq!(e.error_type, "Runtime.ExitError");
        assert_eq!(e.error_message, "");
        let e = Diagnostic::from_post(b"something broke\n", None);
        assert_eq!(e.error_type, "Unhandled");
        assert_eq!(e.error_message, "something broke");
        let e = Diagnostic::from_post(b"\xff\xfe", None);
        assert_eq!(e.error_message, "\u{fffd}\u{fffd}");
    }

    #[test]
    fn serialises_like_lambda() {
        let e = Diagnostic::from_post(br#"{"errorMessage":"m","errorType":"T"}"#, None);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"errorMessage":"m","errorType":"T"})
        );
    }

    #[test]
    fn clip_cuts_at_a_character_boundary() {
        assert_eq!(clip("hello", 10), "hello");
        assert_eq!(clip("hello", 3), "hel");
        assert_eq!(clip("日本", 4), "日");
    }
}
