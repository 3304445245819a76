//! Streamed responses through the wrappers: the head of the reply (status, headers, one
//! `Set-Cookie` per cookie) is decided at once and the body streams after it. Passthrough
//! and API Gateway stream the function's head as a Lambda Function URL does; CloudEvents in
//! binary data mode sends the `ce-*` headers first and streams the data; a structured
//! event (event mode) needs the whole body, so it is buffered. Pure: no I/O.

use http::{HeaderValue, StatusCode, header};

use super::cloudevents::{self, ResponseMode};
use super::{BadReply, Wrapper, WrapperKind};
use crate::dispatch::Streamed;
use crate::dispatch::stream::BodyStream;
use crate::reply::{IntoReply, Reply};

/// What a wrapper makes of a streamed response.
pub enum Encoded {
    /// The head to send now, the body to stream after it.
    Stream(http::Response<BodyStream>),
    /// The wrapper needs the whole body: buffer it and encode the buffered outcome.
    Buffer(Streamed),
    /// A reply that does not carry the stream (no event, an error).
    Whole(Reply),
}

impl Wrapper {
    pub fn encode_stream(&self, request_id: &str, streamed: Streamed) -> Encoded {
        match &self.kind {
            WrapperKind::Passthrough | WrapperKind::ApiGateway(_) => {
                Encoded::Stream(http_reply(streamed))
            }
            WrapperKind::CloudEvents(s) if s.mode == ResponseMode::Event => {
                Encoded::Buffer(streamed)
            }
            WrapperKind::CloudEvents(s) => {
                let content_type = content_type(&streamed);
                match cloudevents::stream_headers(
                    request_id,
                    content_type.to_str().unwrap_or_default(),
                    s,
                ) {
                    None => Encoded::Whole(no_event()),
                    Some(Err(message)) => {
                        Encoded::Whole(BadReply::CloudEvent(message).into_reply())
                    }
                    Some(Ok(headers)) => {
                        let mut reply = http::Response::new(streamed.body);
                        *reply.headers_mut() = headers;
                        Encoded::Stream(reply)
                    }
                }
            }
        }
    }
}

/// The reply of a stream as an HTTP response: the function's head, or 200 with its content
/// type.
fn http_reply(streamed: Streamed) -> http::Response<BodyStream> {
    let content_type = content_type(&streamed);
    let head = streamed.head.unwrap_or_default();
    let mut reply = http::Response::new(streamed.body);
    *reply.status_mut() = head.status;
    *reply.headers_mut() = head.headers;
    for cookie in &head.cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            reply.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    // Framing is the server's: a length the function declared would not hold for a
    // stream that may be cut.
    reply.headers_mut().remove(header::CONTENT_LENGTH);
    reply.headers_mut().remove(header::TRANSFER_ENCODING);
    reply
        .headers_mut()
        .entry(header::CONTENT_TYPE)
        .or_insert(content_type);
    reply
}

/// The content type of a streamed body: the head's, the declared one, else bytes (a body
/// still to come cannot be sniffed). curl's default for `-d` says nothing.
fn content_type(streamed: &Streamed) -> HeaderValue {
    let from_head = streamed
        .head
        .as_ref()
        .and_then(|h| h.headers.get(header::CONTENT_TYPE).cloned());
    from_head
        .or_else(|| {
            streamed
                .content_type
                .as_deref()
                .filter(|c| !c.starts_with("application/x-www-form-urlencoded"))
                .and_then(|c| HeaderValue::from_str(c).ok())
        })
        .unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

fn no_event() -> Reply {
    let mut reply = Reply::new(Default::default());
    *reply.status_mut() = StatusCode::NO_CONTENT;
    reply
}

#[cfg(test)]
mod tests;
