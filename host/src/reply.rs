//! HTTP plumbing shared by the servers: the response type, JSON error bodies, the
//! [`IntoReply`] conversion that turns each error type into its HTTP answer (all impls in
//! [`errors`]), and reading a body under a size limit. Handlers take any [`http_body::Body`],
//! so tests drive them with in-memory requests.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderValue, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full};

pub mod errors;

pub use errors::Failed;

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

/// An error that has one HTTP answer. Every impl is in [`errors`], one per error type.
pub trait IntoReply {
    fn into_reply(self) -> Reply;
}

/// The body is over the limit.
#[derive(Debug)]
pub struct TooLarge {
    pub limit: usize,
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum ReadError {
    TooLarge(TooLarge),
    /// The client went away or sent a broken body; nobody is left to answer.
    Broken(String),
    /// The client took longer than the read timeout to send its body.
    TimedOut(Duration),
    /// Too many bodies are still arriving; the caller should retry.
    Busy,
}

/// Most bytes read and thrown away after a body passed its limit, so that the client,
/// still sending, reads the 413 instead of a connection reset.
const DRAIN_LIMIT: usize = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Reads a whole body of at most `limit` bytes.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: Body + Unpin,
    B::Error: std::fmt::Display,
{
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
            if buf.len() + data.remaining() > limit {
                drain(&mut body).await;
                return Err(too_large());
            }
            buf.extend_from_slice(data.chunk());
        }
    }
    Ok(buf.freeze())
}

async fn drain<B>(body: &mut B)
where
    B: Body + Unpin,
{
    let mut seen = 0usize;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.remaining());
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}
