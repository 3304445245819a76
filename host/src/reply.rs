//! HTTP plumbing shared by the two servers: the response type, JSON error bodies, the
//! mapping of invocation errors to statuses (in one place), and reading a body under a
//! size limit.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use crate::dispatch::{InvocationError, Overloaded};

pub type Reply = http::Response<Full<Bytes>>;

pub const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A reply with a body and a content type.
pub fn with_body(status: StatusCode, content_type: HeaderValue, body: Bytes) -> Reply {
    let mut reply = http::Response::new(Full::new(body));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    reply
}

/// Lambda's error shape: `{"errorMessage": ..., "errorType": ...}`.
pub fn error(status: StatusCode, error_type: &str, message: &str) -> Reply {
    let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
    with_body(status, JSON, Bytes::from(body.to_string()))
}

/// The status and error type of an invocation that ended without the function's answer.
pub fn invocation_error(request_id: &str, err: &InvocationError) -> Reply {
    let status = match err {
        InvocationError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        InvocationError::RunnerExited(_)
        | InvocationError::ResponseTooLarge { .. }
        | InvocationError::Trap(_)
        | InvocationError::InitFailed(_)
        | InvocationError::HostFailure(_) => StatusCode::BAD_GATEWAY,
        InvocationError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    };
    let error_type = err.error_type();
    error(
        status,
        error_type,
        &format!("RequestId: {request_id} Error: {err}"),
    )
}

pub fn overloaded(err: &Overloaded) -> Reply {
    let mut reply = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "TooManyRequestsException",
        &err.to_string(),
    );
    reply
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    reply
}

/// The body is over the limit.
#[derive(Debug)]
pub struct TooLarge {
    pub limit: usize,
}

impl TooLarge {
    pub fn reply(&self) -> Reply {
        let mut reply = error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!(
                "Exceeded maximum allowed payload size ({} bytes).",
                self.limit
            ),
        );
        // The rest of an oversized body may still be on the wire.
        reply
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        reply
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum ReadError {
    TooLarge(TooLarge),
    /// The client went away or sent a broken body; nobody is left to answer.
    Broken(String),
}

impl ReadError {
    pub fn reply(&self) -> Reply {
        match self {
            ReadError::TooLarge(t) => t.reply(),
            ReadError::Broken(e) => error(StatusCode::BAD_REQUEST, "InvalidRequestContent", e),
        }
    }
}

/// Most bytes read and thrown away after a body passed its limit, so that the client,
/// still sending, reads the 413 instead of a connection reset.
const DRAIN_LIMIT: usize = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Reads a whole body of at most `limit` bytes.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ReadError> {
    use hyper::body::Body;
    let too_large = || ReadError::TooLarge(TooLarge { limit });
    let declared = body.size_hint().exact();
    let mut body = body;
    if declared.is_some_and(|n| n > limit as u64) {
        drain(&mut body).await;
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Broken(format!("broken request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                drain(&mut body).await;
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

async fn drain(body: &mut Incoming) {
    let mut seen = 0usize;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}
