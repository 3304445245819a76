//! Event wrappers: pure functions from an HTTP request to an event and from an outcome to
//! an HTTP reply, chosen by `RESPONSE_FORMAT`. Passthrough (here): the body is the event,
//! the function's response the reply.

pub mod apigateway;
pub mod cloudevents;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::dispatch::{Event, Outcome};
use crate::reply::{self, Reply};

/// The wrapper in use (`RESPONSE_FORMAT`).
#[derive(Debug, Clone)]
pub enum Wrapper {
    Passthrough,
    ApiGateway(apigateway::PayloadVersion),
    CloudEvents(cloudevents::Settings),
}

/// A request turned into an event, with the labels metrics count it under.
pub struct Decoded {
    pub event: Event,
    pub event_type: Option<String>,
    pub event_source: Option<String>,
}

impl Wrapper {
    pub fn decode(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Decoded, BadRequest> {
        let (event, attrs) = match self {
            Wrapper::Passthrough => (decode(&parts.headers, body)?, None),
            Wrapper::ApiGateway(v) => (apigateway::decode(parts, body, *v, peer)?, None),
            Wrapper::CloudEvents(_) => cloudevents::decode(&parts.headers, body)?,
        };
        Ok(Decoded {
            event,
            event_type: attrs.as_ref().map(|a| a.event_type.clone()),
            event_source: attrs.map(|a| a.source),
        })
    }

    pub fn encode(&self, request_id: &str, outcome: Outcome) -> Reply {
        match self {
            Wrapper::Passthrough => encode(request_id, outcome),
            Wrapper::ApiGateway(v) => apigateway::encode_outcome(request_id, outcome, *v),
            Wrapper::CloudEvents(s) => cloudevents::encode(request_id, outcome, s),
        }
    }
}

/// A request that cannot become an event.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

impl BadRequest {
    pub fn reply(&self) -> Reply {
        reply::error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            &self.0,
        )
    }
}

/// The request becomes the event: its body, its content type and the context headers
/// a caller of AWS's Invoke API would send.
pub fn decode(headers: &HeaderMap, body: Bytes) -> Result<Event, BadRequest> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let client_context = match text("x-amz-client-context") {
        Some(raw) => Some(client_context(raw)?),
        None => None,
    };
    let cognito_identity = match text("x-amz-cognito-identity") {
        Some(raw) => Some(json_object(raw.to_owned(), "X-Amz-Cognito-Identity")?),
        None => None,
    };
    Ok(Event {
        body,
        content_type: text(header::CONTENT_TYPE.as_str()).map(str::to_owned),
        client_context,
        cognito_identity,
        trace_id: Some(
            text("x-amzn-trace-id")
                .map(str::to_owned)
                .unwrap_or_else(new_trace_id),
        ),
    })
}

/// As AWS's Invoke API: the client context comes base64-encoded and must be a JSON object;
/// the function receives it decoded.
fn client_context(raw: &str) -> Result<String, BadRequest> {
    let bad = || BadRequest("X-Amz-Client-Context must be a base64-encoded JSON object".into());
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    json_object(text, "X-Amz-Client-Context")
}

/// `text` if it is a JSON object fit for a header (runtime clients parse it and fail hard
/// on anything else); newlines are removed.
fn json_object(text: String, header: &str) -> Result<String, BadRequest> {
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(ascii_json(&v)),
        _ => Err(BadRequest(format!("{header} must be a JSON object"))),
    }
}

/// JSON text with every non-ASCII character as a `\u` escape (only strings hold any).
pub(crate) fn ascii_json(value: &serde_json::Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// An X-Ray trace header: `Root=1-{epoch seconds, hex}-{96 random bits, hex};Sampled=0`.
fn new_trace_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{secs:08x}-{};Sampled=0", &random[..24])
}

/// The outcome becomes the reply.
pub fn encode(request_id: &str, outcome: Outcome) -> Reply {
    match outcome {
        Outcome::Response { body, content_type } => {
            let ct = response_content_type(content_type.as_deref(), &body);
            reply::with_body(StatusCode::OK, ct, body)
        }
        Outcome::FunctionError(err) => {
            let body = serde_json::to_vec(&err).unwrap_or_default();
            let mut r =
                reply::with_body(StatusCode::INTERNAL_SERVER_ERROR, reply::JSON, body.into());
            r.headers_mut().insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            r
        }
        Outcome::Failed(err) => reply::invocation_error(request_id, &err),
    }
}

/// The function's own content type, unless it is absent or curl's default for `-d`
/// (what a shell bootstrap posts without meaning it); then JSON, text or bytes by content.
fn response_content_type(declared: Option<&str>, body: &[u8]) -> HeaderValue {
    let declared = declared
        .filter(|c| !c.starts_with("application/x-www-form-urlencoded"))
        .and_then(|c| HeaderValue::from_str(c).ok());
    if let Some(ct) = declared {
        return ct;
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        reply::JSON
    } else if std::str::from_utf8(body).is_ok() {
        HeaderValue::from_static("text/plain; charset=utf-8")
    } else {
        HeaderValue::from_static("application/octet-stream")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::InvocationError;
    use crate::lambda_error::Diagnostic;

    #[test]
    fn decode_takes_body_type_and_context() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("text/csv"));
        let cc = base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"k":"v"}}"#);
        h.insert("x-amz-client-context", cc.parse().unwrap());
        h.insert("x-amzn-trace-id", HeaderValue::from_static("Root=1-a-b"));
        let e = decode(&h, Bytes::from_static(b"a,b")).unwrap();
        assert_eq!(&e.body[..], b"a,b");
        assert_eq!(e.content_type.as_deref(), Some("text/csv"));
        assert_eq!(e.client_context.as_deref(), Some(r#"{"custom":{"k":"v"}}"#));
        assert_eq!(e.trace_id.as_deref(), Some("Root=1-a-b"));
    }

    #[test]
    fn a_trace_id_is_made_when_none_comes() {
        let e = decode(&HeaderMap::new(), Bytes::new()).unwrap();
        let t = e.trace_id.unwrap();
        assert!(t.starts_with("Root=1-") && t.ends_with(";Sampled=0"), "{t}");
        assert_eq!(t.len(), "Root=1-".len() + 8 + 1 + 24 + ";Sampled=0".len());
    }

    #[test]
    fn client_context_reaches_runtimes_as_ascii() {
        let mut h = HeaderMap::new();
        let cc = base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"k":"日本 ✓"}}"#);
        h.insert("x-amz-client-context", cc.parse().unwrap());
        let e = decode(&h, Bytes::new()).unwrap();
        let text = e.client_context.unwrap();
        assert!(text.is_ascii(), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["custom"]["k"], "日本 ✓");
    }

    #[test]
    fn a_bad_client_context_is_refused() {
        for bad in ["not base64!", "bm90IGpzb24=", "WzEsMl0="] {
            let mut h = HeaderMap::new();
            h.insert("x-amz-client-context", bad.parse().unwrap());
            assert!(decode(&h, Bytes::new()).is_err(), "{bad}");
        }
    }

    #[test]
    fn response_content_types() {
        let ct = |d, b: &[u8]| response_content_type(d, b);
        assert_eq!(ct(Some("image/png"), b"\x89PNG"), "image/png");
        assert_eq!(
            ct(Some("application/x-www-form-urlencoded"), b"{}"),
            "application/json"
        );
        assert_eq!(ct(None, b"\"hi\""), "application/json");
        assert_eq!(ct(None, b"hello"), "text/plain; charset=utf-8");
        assert_eq!(ct(None, b"\xff\x00"), "application/octet-stream");
        assert_eq!(ct(None, b""), "text/plain; charset=utf-8");
    }

    #[test]
    fn outcomes_map_to_statuses() {
        let err = Diagnostic::from_post(br#"{"errorMessage":"m","errorType":"T"}"#, None);
        let r = encode("id", Outcome::FunctionError(err));
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()["x-amz-function-error"], "Unhandled");
        let r = encode(
            "id",
            Outcome::Failed(InvocationError::Timeout(std::time::Duration::from_secs(1))),
        );
        assert_eq!(r.status(), 504);
        let r = encode(
            "id",
            Outcome::Failed(InvocationError::RunnerExited("x".into())),
        );
        assert_eq!(r.status(), 502);
    }
}
