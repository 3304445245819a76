//! A plain WASI command's stdout, streamed: [`StdoutPipe`] is the command's stdout, and
//! [`pump`] decides, from the first bytes, whether the reply is whole or streamed. A command
//! that ends within [`HOLD`] of its first byte is answered whole (its exit code decides the
//! status, as without streaming); one still running then gets a 200 whose body is its
//! output as it writes it, and a failure after that ends the stream with a mid-stream error.
//! Before the decision the pipe holds at most the buffered limit + 1 bytes (one more tells
//! an oversized answer from a full one, as the buffered path needs); after it, at most
//! [`CAP`], so a command writes no faster than its caller reads.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::dispatch::Outcome;
use crate::dispatch::stream::{SendError, StreamError, StreamWriter};

/// How long after its first byte a command may still end and be answered whole.
pub const HOLD: Duration = Duration::from_millis(100);

/// Most bytes the pipe holds once the reply streams.
pub const CAP: usize = 64 << 10;

#[derive(Clone)]
pub struct StdoutPipe {
    inner: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    readable: Notify,
}

struct State {
    buf: BytesMut,
    cap: usize,
    /// Nobody reads any more (the caller is gone, the stream was cut): writes are dropped.
    discard: bool,
    /// The command wrote more than fitted before the decision.
    overflow: bool,
    writer: Option<Waker>,
}

impl StdoutPipe {
    /// A pipe holding up to `limit + 1` bytes until the reply streams.
    pub fn new(limit: usize) -> StdoutPipe {
        StdoutPipe {
            inner: Arc::new(Shared {
                state: Mutex::new(State {
                    buf: BytesMut::new(),
                    cap: limit.saturating_add(1),
                    discard: false,
                    overflow: false,
                    writer: None,
                }),
                readable: Notify::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything written and not yet taken (the whole answer of a command that ended).
    pub fn contents(&self) -> Bytes {
        self.take()
    }

    fn take(&self) -> Bytes {
        let mut s = self.lock();
        let taken = s.buf.split().freeze();
        if let Some(w) = s.writer.take() {
            w.wake();
        }
        taken
    }

    /// Waits until something was written; then returns whether it overflowed.
    async fn written(&self) {
        loop {
            let notified = self.inner.readable.notified();
            if !self.lock().buf.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// The reply streams: the pipe holds at most [`CAP`] bytes from now on.
    fn stream(&self) {
        self.lock().cap = CAP;
    }

    /// Drops what is written from now on.
    fn discard(&self) {
        let mut s = self.lock();
        s.discard = true;
        s.buf.clear();
        if let Some(w) = s.writer.take() {
            w.wake();
        }
    }

    fn overflowed(&self) -> bool {
        self.lock().overflow
    }
}

/// Runs `call` (the command) while watching its stdout: at the decision, `start` turns the
/// invocation into a stream and gives its writer (`None`: the invocation is gone). `failure`
/// gives the error a failed end makes of the stream.
pub async fn pump<T>(
    call: impl Future<Output = T>,
    pipe: &StdoutPipe,
    start: impl FnOnce() -> Option<StreamWriter>,
) -> (T, Option<StreamWriter>) {
    let mut call = pin!(call);
    // The decision: the first byte, then the hold; an overflowing command is answered whole
    // (too large), as without streaming.
    let decided = async {
        pipe.written().await;
        tokio::time::sleep(HOLD).await;
        if pipe.overflowed() {
            std::future::pending::<()>().await;
        }
    };
    // The call first: a command that ends in the poll that wrote its output never arms the
    // hold's timer.
    tokio::select! {
        biased;
        ended = &mut call => return (ended, None),
        () = decided => {}
    }
    let Some(mut writer) = start() else {
        pipe.discard();
        return (call.await, None);
    };
    pipe.stream();
    let ended = loop {
        tokio::select! {
            ended = &mut call => break ended,
            () = pipe.written() => {
                if !send(&mut writer, pipe.take(), pipe).await {
                    return (call.await, None);
                }
            }
        }
    };
    let rest = pipe.take();
    if !send(&mut writer, rest, pipe).await {
        return (ended, None);
    }
    (ended, Some(writer))
}

/// Sends a chunk; false when the stream is over (caller gone, limit passed).
async fn send(writer: &mut StreamWriter, chunk: Bytes, pipe: &StdoutPipe) -> bool {
    match writer.send(chunk).await {
        Ok(()) => true,
        Err(e) => {
            if let SendError::PastLimit(limit) = e {
                tracing::warn!(limit, "response stream cut at its limit");
            }
            pipe.discard();
            false
        }
    }
}

/// The mid-stream error a command's end makes of its outcome; `None`: it succeeded.
pub fn failure(outcome: Outcome) -> Option<StreamError> {
    match outcome {
        Outcome::Response { .. } | Outcome::Stream(_) | Outcome::Http(_) => None,
        Outcome::FunctionError(d) => Some(StreamError {
            error_type: d.error_type.clone(),
            body: serde_json::to_vec(&d).unwrap_or_default().into(),
        }),
        Outcome::Failed(e) => Some(StreamError {
            error_type: e.error_type().into(),
            body: Bytes::from(e.to_string()),
        }),
    }
}

/// Ends a streamed command's reply: complete, or with `error` (its failure).
pub fn end(writer: StreamWriter, error: Option<StreamError>) {
    match error {
        None => writer.finish(),
        Some(e) => writer.fail(e),
    }
}

impl IsTerminal for StdoutPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StdoutPipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for StdoutPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.lock();
        if s.discard {
            return Poll::Ready(Ok(data.len()));
        }
        let room = s.cap.saturating_sub(s.buf.len());
        if room == 0 {
            if s.cap != CAP {
                // Before the decision: past the buffered limit, as the buffered pipe did.
                s.overflow = true;
                return Poll::Ready(Ok(data.len()));
            }
            s.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(data.len());
        s.buf.extend_from_slice(&data[..n]);
        drop(s);
        self.inner.readable.notify_one();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
