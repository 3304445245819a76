//! A streamed response: a body that arrives over time. Its head (status, headers, cookies)
//! comes first, then chunks of data, then how it ended: complete, with an error the
//! function reported after data had started (sent on as HTTP trailers), or cut (the
//! caller sees an incomplete response). Any producer fills it through a [`StreamWriter`]
//! (the Runtime API's streaming upload, a WASI guest, a command's stdout, a `wasi:http`
//! component's response body); any consumer reads it as an [`http_body::Body`]
//! ([`BodyStream`]). Memory stays bounded: the channel holds at most `capacity` chunks, so
//! a writer waits for a slow reader and the host never holds a whole stream.
//!
//! This module owns the channel and its ending; it does no I/O and knows nothing of
//! Lambda's wire formats (the HTTP-integration prelude is parsed by its producers).

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{mpsc, oneshot};

use super::{InvocationError, Outcome, ResponseSize};
use crate::lambda_error::Diagnostic;

/// Chunks a stream holds between its writer and its reader: with the writers' chunk sizes
/// (at most 64 KiB from hyper, a guest's buffer), a few MiB at most per stream.
pub const CAPACITY: usize = 16;

/// The trailer naming the error a function reported mid-stream (Lambda's name).
pub const ERROR_TYPE_TRAILER: HeaderName =
    HeaderName::from_static("lambda-runtime-function-error-type");
/// The trailer carrying that error's body, base64 (Lambda's name).
pub const ERROR_BODY_TRAILER: HeaderName =
    HeaderName::from_static("lambda-runtime-function-error-body");

/// A response whose body arrives over time.
#[derive(Debug)]
pub struct Streamed {
    /// The status, headers and cookies the function chose (an HTTP-integration prelude, a
    /// `wasi:http` response); `None`: a plain stream, 200 with `content_type`.
    pub head: Option<Head>,
    /// The content type the function declared for its body.
    pub content_type: Option<String>,
    pub body: BodyStream,
}

impl Streamed {
    /// The stream as a buffered outcome, for a consumer that needs the whole body (a sink,
    /// a structured CloudEvent): at most `limit` bytes, as a buffered response. A stream
    /// that ends in an error is that function error; one cut or past `limit` fails.
    pub async fn buffer(self, limit: usize) -> Outcome {
        match self.body.read_all(limit).await {
            Ok(body) => Outcome::Response {
                body,
                content_type: self.content_type,
            },
            Err(None) => Outcome::Failed(InvocationError::ResponseTooLarge {
                size: ResponseSize::PastLimit,
                limit,
            }),
            Err(Some(Ending::Error(e))) => Outcome::FunctionError(e.diagnostic()),
            Err(Some(other)) => Outcome::Failed(InvocationError::RunnerExited(format!(
                "the response stream did not end: {other:?}"
            ))),
        }
    }
}

/// The head of a streamed HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Each becomes one `Set-Cookie` header.
    pub cookies: Vec<String>,
}

impl Default for Head {
    fn default() -> Head {
        Head {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            cookies: Vec::new(),
        }
    }
}

/// An error the function reported after its stream started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub error_type: String,
    /// The error's body as the function sent it (decoded from base64).
    pub body: Bytes,
}

impl StreamError {
    /// The error as a function error: its body is Lambda's error JSON when the function
    /// sent one, else the message.
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::from_post(&self.body, Some(&self.error_type))
    }

    /// The error as HTTP trailers: its type, and its body in base64.
    pub fn trailers(&self) -> HeaderMap {
        use base64::Engine as _;
        let mut map = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&self.body);
        if let Ok(v) = HeaderValue::from_str(&self.error_type) {
            map.insert(ERROR_TYPE_TRAILER, v);
        }
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            map.insert(ERROR_BODY_TRAILER, v);
        }
        map
    }
}

/// Why a stream ended before its end: the caller sees an incomplete response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Cut {
    #[error("the response stream passed its limit of {limit} bytes")]
    PastLimit { limit: u64 },
    #[error("the invocation's deadline passed during the response stream")]
    Deadline,
    /// The producer went away without ending the stream (its upload broke, it crashed).
    #[error("the response stream broke: {0}")]
    Broken(String),
}

/// How a stream ended, as its reader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Complete,
    Error(StreamError),
    Cut(Cut),
    /// The reader was dropped before the end (the caller hung up).
    Abandoned,
}

/// Why a write did not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The reader is gone: nobody wants the rest.
    #[error("the caller is gone")]
    Closed,
    /// The stream passed its limit and was cut there.
    #[error("the response stream passed its limit of {0} bytes")]
    PastLimit(u64),
}

/// A stream of at most `limit` bytes, holding at most `capacity` chunks in flight.
pub fn channel(capacity: usize, limit: u64) -> (StreamWriter, BodyStream) {
    let (data, chunks) = mpsc::channel(capacity.max(1));
    let (end, ending) = oneshot::channel();
    let writer = StreamWriter {
        data: Some(data),
        end: Some(end),
        sent: 0,
        limit,
    };
    let reader = BodyStream {
        chunks,
        ending: Some(ending),
        on_end: None,
    };
    (writer, reader)
}

/// The producer's side. Dropping it without [`finish`](StreamWriter::finish) or
/// [`fail`](StreamWriter::fail) cuts the stream.
pub struct StreamWriter {
    /// `None` once ended.
    data: Option<mpsc::Sender<Bytes>>,
    end: Option<oneshot::Sender<Ending>>,
    sent: u64,
    limit: u64,
}

impl StreamWriter {
    /// Sends a chunk, waiting while the reader is behind. A chunk past the limit is cut at
    /// the limit, and the stream with it.
    pub async fn send(&mut self, chunk: Bytes) -> Result<(), SendError> {
        let Some(data) = &self.data else {
            return Err(SendError::Closed);
        };
        if chunk.is_empty() {
            return Ok(());
        }
        let room = self.limit - self.sent;
        let over = chunk.len() as u64 > room;
        let chunk = if over {
            chunk.slice(..room as usize)
        } else {
            chunk
        };
        let n = chunk.len() as u64;
        if n > 0 && data.send(chunk).await.is_err() {
            self.data = None;
            return Err(SendError::Closed);
        }
        self.sent += n;
        if over {
            self.end(Ending::Cut(Cut::PastLimit { limit: self.limit }));
            return Err(SendError::PastLimit(self.limit));
        }
        Ok(())
    }

    /// Ends the stream: everything was sent.
    pub fn finish(mut self) {
        self.end(Ending::Complete);
    }

    /// Ends the stream with the function's error (trailers for the caller).
    pub fn fail(mut self, error: StreamError) {
        self.end(Ending::Error(error));
    }

    /// Ends the stream incomplete.
    pub fn cut(mut self, why: Cut) {
        self.end(Ending::Cut(why));
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether the reader is gone.
    pub fn is_closed(&self) -> bool {
        self.data.as_ref().is_none_or(|d| d.is_closed())
    }

    /// Resolves when the reader is gone (at once if the stream has ended).
    pub async fn closed(&self) {
        if let Some(d) = &self.data {
            d.closed().await;
        }
    }

    /// The ending is sent before the data channel closes, so the reader that sees the
    /// channel closed finds it.
    fn end(&mut self, ending: Ending) {
        if let Some(end) = self.end.take() {
            let _ = end.send(ending);
        }
        self.data = None;
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        if self.end.is_some() {
            self.end(Ending::Cut(Cut::Broken(
                "the function stopped without ending its response".into(),
            )));
        }
    }
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("sent", &self.sent)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// What runs once a stream has ended.
type OnEnd = Box<dyn FnOnce(&Ending) + Send + Sync>;

/// The consumer's side: an HTTP body of the stream's chunks, then its error as trailers;
/// a cut stream ends with an error, so that a server aborts the response (no final chunk)
/// and the caller sees it incomplete.
pub struct BodyStream {
    chunks: mpsc::Receiver<Bytes>,
    /// `None` once read.
    ending: Option<oneshot::Receiver<Ending>>,
    on_end: Option<OnEnd>,
}

impl BodyStream {
    /// Runs `f` once with the stream's ending, or with [`Ending::Abandoned`] if the body is
    /// dropped first (metrics and logs of a stream are only known at its end).
    pub fn on_end(&mut self, f: impl FnOnce(&Ending) + Send + Sync + 'static) {
        let previous = self.on_end.take();
        self.on_end = Some(Box::new(move |ending| {
            if let Some(p) = previous {
                p(ending);
            }
            f(ending);
        }));
    }

    /// The next chunk, or how the stream ended (`Err`). Cancel-safe.
    pub async fn next(&mut self) -> Result<Bytes, Ending> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Reads the whole stream if it holds at most `limit` bytes; `Err(None)` past it.
    pub async fn read_all(mut self, limit: usize) -> Result<Bytes, Option<Ending>> {
        let mut buf = bytes::BytesMut::new();
        loop {
            match self.next().await {
                Ok(chunk) if buf.len() + chunk.len() > limit => return Err(None),
                Ok(chunk) => buf.extend_from_slice(&chunk),
                Err(Ending::Complete) => return Ok(buf.freeze()),
                Err(other) => return Err(Some(other)),
            }
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes, Ending>> {
        if let Some(chunk) = ready!(self.chunks.poll_recv(cx)) {
            return Poll::Ready(Ok(chunk));
        }
        let ending = match self.ending.as_mut() {
            Some(rx) => match ready!(Pin::new(rx).poll(cx)) {
                Ok(ending) => ending,
                Err(_) => Ending::Cut(Cut::Broken("the response stream was dropped".into())),
            },
            // Already reported; the stream stays at its end.
            None => return Poll::Ready(Err(Ending::Complete)),
        };
        self.ending = None;
        if let Some(f) = self.on_end.take() {
            f(&ending);
        }
        Poll::Ready(Err(ending))
    }
}

impl Body for BodyStream {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        if self.ending.is_none() {
            return Poll::Ready(None);
        }
        match ready!(self.poll_next(cx)) {
            Ok(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Err(Ending::Complete | Ending::Abandoned) => Poll::Ready(None),
            Err(Ending::Error(e)) => Poll::Ready(Some(Ok(Frame::trailers(e.trailers())))),
            Err(Ending::Cut(why)) => Poll::Ready(Some(Err(why))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ending.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(&Ending::Abandoned);
        }
    }
}

impl fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyStream")
            .field("ended", &self.ending.is_none())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
