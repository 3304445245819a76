//! The streaming upload of `POST /runtime/invocation/{id}/response` with
//! `Lambda-Runtime-Function-Response-Mode: streaming`: the body goes on to the caller as it
//! arrives, through a [`crate::dispatch::stream`] channel, within the function's deadline
//! and `STREAMING_RESPONSE_LIMIT`. Reads the HTTP-integration prelude ([`super::prelude`])
//! and the error trailers; never holds more than one chunk of the upload.
//!
//! The invocation ends (the caller gets its status) at the first payload byte, so that an
//! error before any byte is still the usual 500 and a malformed prelude a 502.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::{RuntimeApi, accepted, prelude};
use crate::dispatch::stream::{self, Cut, SendError, StreamError, StreamWriter, Streamed};
use crate::dispatch::{InvocationError, Outcome, RunnerId};
use crate::lambda_error::{MAX_LOGGED, clip};
use crate::reply::{self, IntoReply, ReadError, Reply, TooLarge};

/// The header that asks for a response mode.
pub const MODE_HEADER: &str = "lambda-runtime-function-response-mode";

/// How the runtime sends its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Buffered,
    Streaming,
}

/// The mode a response asks for; `Err` holds a value Lambda does not know.
pub fn mode(headers: &HeaderMap) -> Result<Mode, String> {
    let Some(value) = headers.get(MODE_HEADER) else {
        return Ok(Mode::Buffered);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text.eq_ignore_ascii_case("streaming") {
        Ok(Mode::Streaming)
    } else if text.eq_ignore_ascii_case("buffered") {
        Ok(Mode::Buffered)
    } else {
        Err(String::from_utf8_lossy(value.as_bytes()).into_owned())
    }
}

/// One step of the upload.
enum Step {
    Data(Bytes),
    /// The function reported an error (trailers, or `lambda_runtime`'s in-band form).
    Error(StreamError),
    End,
    Broken(String),
    TimedOut,
}

/// Reads the upload frame by frame until `deadline`.
struct Upload<B> {
    body: B,
    deadline: Instant,
    timeout: Duration,
}

impl<B> Upload<B>
where
    B: Body + Unpin,
    B::Error: std::fmt::Display,
{
    async fn next(&mut self) -> Step {
        let frame = match tokio::time::timeout_at(self.deadline, self.body.frame()).await {
            Err(_) => return Step::TimedOut,
            Ok(None) => return Step::End,
            Ok(Some(Err(e))) => return Step::Broken(format!("broken response stream: {e}")),
            Ok(Some(Ok(frame))) => frame,
        };
        match frame.into_data() {
            Ok(data) => {
                let data = copy(data);
                match in_band_error(&data) {
                    Some(e) => Step::Error(e),
                    None => Step::Data(data),
                }
            }
            Err(frame) => match frame.into_trailers().ok().and_then(|t| trailer_error(&t)) {
                Some(e) => Step::Error(e),
                None => Step::End,
            },
        }
    }

    /// Reads and drops the rest of the upload (until the deadline), so that the runtime,
    /// still sending, reads its answer rather than a reset connection.
    async fn drain(&mut self) {
        let _ = tokio::time::timeout_at(self.deadline, async {
            while let Some(Ok(_)) = self.body.frame().await {}
        })
        .await;
    }
}

fn copy(mut data: impl bytes::Buf) -> Bytes {
    data.copy_to_bytes(data.remaining())
}

/// The error a runtime reports in trailers after its data.
fn trailer_error(trailers: &HeaderMap) -> Option<StreamError> {
    let error_type = trailers.get(stream::ERROR_TYPE_TRAILER)?;
    // Base64 as Lambda documents it; a runtime that sent it plain keeps its text.
    let body = trailers
        .get(stream::ERROR_BODY_TRAILER)
        .map(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .unwrap_or_else(|_| b.as_bytes().to_vec())
        })
        .unwrap_or_default();
    Some(StreamError {
        error_type: String::from_utf8_lossy(error_type.as_bytes()).into_owned(),
        body: body.into(),
    })
}

/// `lambda_runtime` (1.x) writes a mid-stream error as a data chunk holding the trailer
/// lines instead of as trailers; a chunk that is exactly those two lines is that error.
fn in_band_error(chunk: &[u8]) -> Option<StreamError> {
    let text = std::str::from_utf8(chunk).ok()?;
    let rest = text.strip_prefix("Lambda-Runtime-Function-Error-Type: ")?;
    let (error_type, rest) = rest.split_once("\r\n")?;
    let body = rest
        .strip_prefix("Lambda-Runtime-Function-Error-Body: ")?
        .strip_suffix("\r\n")?;
    if body.contains("\r\n") {
        return None;
    }
    let body = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()?;
    Some(StreamError {
        error_type: error_type.trim().to_owned(),
        body: body.into(),
    })
}

impl RuntimeApi {
    /// Refuses a response mode Lambda does not have: 400 to the runtime, a 502 to the
    /// caller.
    pub(super) fn refuse_mode(&self, runner: RunnerId, id: &str, value: String) -> Reply {
        tracing::warn!(
            request_id = id,
            mode = clip(&value, MAX_LOGGED),
            "invalid response mode"
        );
        let message = format!(
            "Invalid {MODE_HEADER}: {:?} (expected \"streaming\" or \"buffered\")",
            clip(&value, MAX_LOGGED)
        );
        let err = InvocationError::InvalidResponseMode(clip(&value, MAX_LOGGED).to_owned());
        let _ = self
            .dispatcher
            .complete_from(runner, id, Outcome::Failed(err));
        reply::error(
            StatusCode::BAD_REQUEST,
            "InvalidFunctionResponseMode",
            &message,
        )
    }

    /// Streams the upload of invocation `id` to its caller.
    pub(super) async fn stream<B>(
        &self,
        runner: RunnerId,
        id: &str,
        headers: &HeaderMap,
        body: B,
    ) -> Reply
    where
        B: Body + Unpin,
        B::Error: std::fmt::Display,
    {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The delivery's nonce (`Lambda-Runtime-Invocation-Id`) was checked before the upload
        // started; from here the runner's hold on the invocation is what counts.
        // The runner is busy until its upload ends, after its invocation has.
        let _sending = self.dispatcher.sending(runner);
        let mut upload = Upload {
            body,
            deadline: Instant::now() + self.read_timeout,
            timeout: self.read_timeout,
        };
        let mut splitter =
            prelude::announced(content_type.as_deref()).then(prelude::Splitter::default);
        let mut head = None;
        // Until the first payload byte, the invocation can still end as a plain answer.
        let first = loop {
            let data = match upload.next().await {
                Step::Data(d) => d,
                Step::Error(e) => {
                    log_error(id, &e);
                    upload.drain().await;
                    return self.complete(runner, id, None, Outcome::FunctionError(e.diagnostic()));
                }
                Step::End => {
                    if let Some(s) = &splitter {
                        let err = InvocationError::MalformedPrelude(s.unterminated());
                        return self.complete(runner, id, None, Outcome::Failed(err));
                    }
                    break Bytes::new();
                }
                Step::Broken(e) => return self.broken(runner, id, e),
                Step::TimedOut => return self.timed_out(runner, id, upload.timeout),
            };
            let Some(s) = &mut splitter else {
                if data.is_empty() {
                    continue;
                }
                break data;
            };
            let (prelude, rest) = match s.push(&data) {
                Ok(None) => continue,
                Ok(Some(split)) => split,
                Err(e) => return self.malformed(runner, id, e, &mut upload).await,
            };
            match prelude::parse(&prelude) {
                Ok(h) => head = Some(h),
                Err(e) => return self.malformed(runner, id, e, &mut upload).await,
            }
            splitter = None;
            if !rest.is_empty() {
                break rest;
            }
        };
        // From its first byte the stream belongs to the invocation: its deadline covers the
        // rest of the upload, and one still running then resets the runtime, as AWS does.
        let deadline = self.dispatcher.deadline_held(runner, id);
        if let Some(d) = deadline {
            upload.deadline = upload.deadline.min(d.into());
        }
        let (writer, body) = stream::channel(stream::CAPACITY, self.streaming_limit);
        let streamed = Streamed {
            head,
            content_type: content_type.filter(|c| !prelude::announced(Some(c))),
            body,
        };
        let writer = if first.is_empty() {
            writer.finish();
            None
        } else {
            Some(writer)
        };
        if let Err(e) = self
            .dispatcher
            .complete_from(runner, id, Outcome::Stream(streamed))
        {
            return e.into_reply();
        }
        let Some(writer) = writer else {
            return accepted();
        };
        let reply = self.forward(id, first, writer, &mut upload).await;
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) && !reply.status().is_success()
        {
            tracing::warn!(
                bootstrap = runner,
                request_id = id,
                "the response stream passed the invocation's deadline: the runtime is reset"
            );
            self.dispatcher.reset(runner);
        }
        reply
    }

    /// Sends the rest of the upload to the caller, starting with `first`.
    async fn forward<B>(
        &self,
        id: &str,
        first: Bytes,
        mut writer: StreamWriter,
        upload: &mut Upload<B>,
    ) -> Reply
    where
        B: Body + Unpin,
        B::Error: std::fmt::Display,
    {
        let mut data = first;
        loop {
            let sent = tokio::time::timeout_at(upload.deadline, writer.send(data)).await;
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(SendError::Closed)) => return caller_gone(id, upload).await,
                Ok(Err(SendError::PastLimit(limit))) => {
                    tracing::warn!(request_id = id, limit, "response stream cut at its limit");
                    upload.drain().await;
                    return TooLarge {
                        limit: limit as usize,
                    }
                    .into_reply();
                }
                Err(_) => {
                    writer.cut(Cut::Deadline);
                    return ReadError::TimedOut(upload.timeout).into_reply();
                }
            }
            let step = tokio::select! {
                step = upload.next() => step,
                _ = writer.closed() => return caller_gone(id, upload).await,
            };
            data = match step {
                Step::Data(d) => d,
                Step::End => {
                    writer.finish();
                    return accepted();
                }
                Step::Error(e) => {
                    log_error(id, &e);
                    writer.fail(e);
                    upload.drain().await;
                    return accepted();
                }
                Step::Broken(e) => {
                    tracing::warn!(request_id = id, "{e}");
                    writer.cut(Cut::Broken(e.clone()));
                    return ReadError::Broken(e).into_reply();
                }
                Step::TimedOut => {
                    writer.cut(Cut::Deadline);
                    return ReadError::TimedOut(upload.timeout).into_reply();
                }
            };
        }
    }

    async fn malformed<B>(
        &self,
        runner: RunnerId,
        id: &str,
        why: String,
        upload: &mut Upload<B>,
    ) -> Reply
    where
        B: Body + Unpin,
        B::Error: std::fmt::Display,
    {
        tracing::warn!(request_id = id, "malformed streaming prelude: {why}");
        upload.drain().await;
        let err = InvocationError::MalformedPrelude(why);
        self.complete(runner, id, None, Outcome::Failed(err))
    }

    fn broken(&self, runner: RunnerId, id: &str, why: String) -> Reply {
        let err = InvocationError::RunnerExited(why.clone());
        let _ = self
            .dispatcher
            .complete_from(runner, id, Outcome::Failed(err));
        ReadError::Broken(why).into_reply()
    }

    fn timed_out(&self, runner: RunnerId, id: &str, timeout: Duration) -> Reply {
        let _ = self.dispatcher.complete_from(
            runner,
            id,
            Outcome::Failed(InvocationError::Timeout(timeout)),
        );
        ReadError::TimedOut(timeout).into_reply()
    }
}

fn log_error(id: &str, e: &StreamError) {
    tracing::warn!(
        request_id = id,
        error_type = clip(&e.error_type, MAX_LOGGED),
        "function error in its response stream: {}",
        clip(&String::from_utf8_lossy(&e.body), MAX_LOGGED)
    );
}

/// The caller hung up: the rest of the upload is read and dropped, and the runtime told
/// (410, as Lambda answers a response nobody can take any more).
async fn caller_gone<B>(id: &str, upload: &mut Upload<B>) -> Reply
where
    B: Body + Unpin,
    B::Error: std::fmt::Display,
{
    tracing::info!(
        request_id = id,
        "the caller hung up during the response stream"
    );
    upload.drain().await;
    reply::error(
        StatusCode::GONE,
        "CallerGone",
        "the caller hung up during the response stream; the rest was dropped",
    )
}

#[cfg(test)]
mod tests;
