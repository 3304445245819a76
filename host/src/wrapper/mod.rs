//! Event wrappers: pure functions from an HTTP request to an event (`decode`) and from an
//! outcome to an HTTP reply (`encode`), chosen by `RESPONSE_FORMAT`. Passthrough (here): the
//! body is the event, the function's response the reply. Every wrapper reads the caller's
//! context headers through [`context`]. Its errors ([`BadRequest`], [`BadReply`]) become HTTP
//! replies in [`crate::reply::errors`].

pub mod apigateway;
pub mod cloudevents;
pub mod context;
pub mod stream;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use context::Context;
pub use context::ContextOptions;

use crate::dispatch::{Event, Outcome};
use crate::reply::{self, IntoReply, Reply};

/// The wrapper in use: its kind (`RESPONSE_FORMAT`) and which context headers callers may
/// set.
#[derive(Debug, Clone)]
pub struct Wrapper {
    pub kind: WrapperKind,
    pub context: ContextOptions,
}

/// How requests become events and outcomes replies.
#[derive(Debug, Clone)]
pub enum WrapperKind {
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
    /// A wrapper of `kind` with the default [`ContextOptions`].
    pub fn new(kind: WrapperKind) -> Wrapper {
        Wrapper {
            kind,
            context: ContextOptions::default(),
        }
    }

    pub fn decode(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Decoded, BadRequest> {
        let options = &self.context;
        let (event, attrs) = match &self.kind {
            WrapperKind::Passthrough => (decode(&parts.headers, body, options)?, None),
            WrapperKind::ApiGateway(v) => {
                (apigateway::decode(parts, body, *v, peer, options)?, None)
            }
            WrapperKind::CloudEvents(_) => cloudevents::decode(&parts.headers, body, options)?,
        };
        Ok(Decoded {
            event,
            event_type: attrs.as_ref().map(|a| a.event_type.clone()),
            event_source: attrs.map(|a| a.source),
        })
    }

    pub fn encode(&self, request_id: &str, outcome: Outcome) -> Reply {
        match &self.kind {
            WrapperKind::Passthrough => encode(request_id, outcome),
            WrapperKind::ApiGateway(v) => apigateway::encode(request_id, outcome, *v),
            WrapperKind::CloudEvents(s) => cloudevents::encode(request_id, outcome, s),
        }
    }
}

/// A request that cannot become an event: 400, as AWS's Invoke API answers it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// A function's response that the wrapper cannot turn into a reply: 502, the function's
/// fault rather than the caller's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReply {
    /// Not an API Gateway proxy response (AWS's "Malformed Lambda proxy response").
    #[error("{0}")]
    ProxyResponse(String),
    /// Not a CloudEvent, or one that cannot be sent.
    #[error("{0}")]
    CloudEvent(String),
}

/// The request becomes the event: its body, its content type and the context headers
/// a caller of AWS's Invoke API would send.
pub fn decode(
    headers: &HeaderMap,
    body: Bytes,
    options: &ContextOptions,
) -> Result<Event, BadRequest> {
    Context::read(headers, options)?.into_event(body)
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
        // Streams have their own encoder (`stream`); one reaching here is buffered first.
        Outcome::Stream(_) => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sandbox.HostFailure",
            "a streamed response reached a buffered encoder",
        ),
        Outcome::Failed(error) => reply::Failed {
            request_id,
            error: &error,
        }
        .into_reply(),
        Outcome::Http(r) => http_reply(r),
    }
}

/// The function's own reply; the framing headers are hyper's to set for the body sent.
fn http_reply(r: crate::dispatch::HttpReply) -> Reply {
    let mut reply = http::Response::new(http_body_util::Full::new(r.body));
    *reply.status_mut() = r.status;
    *reply.headers_mut() = r.headers;
    for name in [
        http::header::CONTENT_LENGTH,
        http::header::TRANSFER_ENCODING,
        http::header::CONNECTION,
    ] {
        reply.headers_mut().remove(name);
    }
    reply
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
    if looks_like_json(body) {
        reply::JSON
    } else if looks_like_text(body) {
        HeaderValue::from_static("text/plain; charset=utf-8")
    } else {
        HeaderValue::from_static("application/octet-stream")
    }
}

/// Bodies up to this size are parsed to tell JSON from text; larger ones are judged by
/// their shape and their ends, so that labelling a reply never reads megabytes.
const PARSED_UP_TO: usize = 64 * 1024;

/// How many bytes at each end of a larger body are checked to be UTF-8.
const SNIFFED: usize = 4 * 1024;

/// Whether a reply with no declared type is JSON: parsed when small; when large, text that
/// opens and closes like a JSON object, array or string.
fn looks_like_json(body: &[u8]) -> bool {
    if body.len() <= PARSED_UP_TO {
        return serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
    }
    let trimmed = body.trim_ascii();
    let shaped = matches!(
        (trimmed.first(), trimmed.last()),
        (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']')) | (Some(b'"'), Some(b'"'))
    );
    shaped && looks_like_text(trimmed)
}

/// Whether `body` is UTF-8 text: checked whole up to [`PARSED_UP_TO`], else at both ends
/// (a label, not a validation: a reply's bytes are sent as they are either way).
fn looks_like_text(body: &[u8]) -> bool {
    if body.len() <= PARSED_UP_TO {
        return std::str::from_utf8(body).is_ok();
    }
    let (head, tail) = (&body[..SNIFFED], &body[body.len() - SNIFFED..]);
    // A character may be cut at the inner edge of either end.
    let head_ok = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    let cut = tail
        .iter()
        .take(3)
        .take_while(|b| *b & 0xc0 == 0x80)
        .count();
    head_ok && std::str::from_utf8(&tail[cut..]).is_ok()
}

#[cfg(test)]
mod tests;
