//! Guest stdout/stderr: forwarded line by line to the host's log, tagged with the request
//! id, and never failing (a full pipe would make a guest's `println!` panic). The last
//! bytes of stderr are kept to explain a trap or a failed plain-WASI command.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::invoker::lines::{Lines, logged};

/// Longest stderr tail kept.
const TAIL: usize = 4 * 1024;

/// The request id output is tagged with; the runner updates it per invocation.
pub type RequestTag = Arc<Mutex<Option<Arc<str>>>>;

#[derive(Clone)]
pub struct LogStream {
    inner: Arc<Mutex<State>>,
}

struct State {
    stream: &'static str,
    runner: usize,
    tag: RequestTag,
    lines: Lines,
    tail: Vec<u8>,
}

impl LogStream {
    pub fn new(stream: &'static str, runner: usize, tag: RequestTag) -> LogStream {
        LogStream {
            inner: Arc::new(Mutex::new(State {
                stream,
                runner,
                tag,
                lines: Lines::default(),
                tail: Vec::new(),
            })),
        }
    }

    /// The last bytes written, as text (for error messages).
    pub fn tail(&self) -> String {
        let state = self.lock();
        String::from_utf8_lossy(&state.tail).trim().to_owned()
    }

    /// Forgets the tail (a new invocation starts).
    pub fn clear_tail(&self) {
        self.lock().tail.clear();
    }

    /// Logs a last line that had no newline.
    pub fn flush_line(&self) {
        let mut state = self.lock();
        let State {
            lines,
            stream,
            runner,
            tag,
            ..
        } = &mut *state;
        lines.flush(|text| emit(stream, *runner, tag, text));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut state = self.lock();
        state.tail.extend_from_slice(bytes);
        if state.tail.len() > TAIL {
            let cut = state.tail.len() - TAIL;
            state.tail.drain(..cut);
        }
        let State {
            lines,
            stream,
            runner,
            tag,
            ..
        } = &mut *state;
        lines.feed(bytes, |text| emit(stream, *runner, tag, text));
    }
}

/// One line of guest output in the host's log. The stream name and the request id (a UUID
/// the Dispatcher made) are written as they are, not quoted and escaped as `Debug` would:
/// neither can hold a character that needs it (escaping them cost ≈ 0.6k of a line's 12k
/// instructions). The guest's text is the event's message, which the log formatter sanitises.
fn emit(stream: &'static str, runner: usize, tag: &RequestTag, text: &str) {
    let tag = tag.lock().ok().and_then(|t| t.clone());
    let request_id = tag.as_deref().unwrap_or("-");
    tracing::info!(
        target: "function",
        instance = runner,
        stream = %stream,
        request_id = %request_id,
        "{}",
        logged(text)
    );
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoker::lines::MAX_LINE;

    #[test]
    fn keeps_a_bounded_tail_and_splits_long_lines() {
        let s = LogStream::new("stderr", 0, Arc::new(Mutex::new(None)));
        s.write_bytes(b"first\nsecond");
        assert_eq!(s.tail(), "first\nsecond");
        s.write_bytes(&vec![b'x'; 3 * MAX_LINE]);
        // "second" + 3 full lines of x: three lines emitted, six bytes wait for more.
        assert_eq!(s.lock().lines.pending(), "second".len());
        assert_eq!(s.tail().len(), TAIL);
        s.clear_tail();
        assert_eq!(s.tail(), "");
    }
}
