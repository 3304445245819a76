//! The one accept loop every server uses: HTTP/1.1 with keep-alive, a handler per request,
//! a write timeout, and a graceful stop. Owns sockets; knows nothing of Lambda.
//!
//! Two things hyper does not give and the hosts need are here:
//! - a reply body that holds something (an admission, a delivery receipt) until hyper has
//!   taken its last byte, handed out in chunks so that hyper's write buffer, not the whole
//!   reply, is what waits on a slow reader ([`Served`]);
//! - knowing that a connection lost a reply because it broke (a write failed, or the peer
//!   reset it, which a peer that read everything and closed does not do), as opposed to a
//!   client that read its reply and left ([`Connection::on_reply_lost`]).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::dispatch::stream::{BodyStream, Cut};

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The connection a request came on, in every request's extensions.
#[derive(Clone, Default)]
pub struct Connection(Arc<ConnectionState>);

#[derive(Default)]
struct ConnectionState {
    /// A write failed or the peer reset the connection.
    broken: AtomicBool,
    /// Run if the connection ends after a failed write before the client sent another
    /// request (which proves it read the previous reply).
    on_lost: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

impl Connection {
    /// Runs `f` if the reply being sent is lost: the connection breaks (a failed write, a
    /// reset from the peer, a write timeout) before the client sends its next request. A clean
    /// close, or an idle connection closed by the header timeout, is not a loss.
    pub fn on_reply_lost(&self, f: impl FnOnce() + Send + 'static) {
        self.callbacks().push(Box::new(f));
    }

    fn callbacks(&self) -> std::sync::MutexGuard<'_, Vec<Box<dyn FnOnce() + Send>>> {
        self.0.on_lost.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mark_broken(&self) {
        self.0.broken.store(true, Ordering::Relaxed);
    }

    /// A new request arrived: the replies before it were read.
    fn delivered(&self) {
        let mut callbacks = self.callbacks();
        if !callbacks.is_empty() {
            callbacks.clear();
        }
    }

    fn ended(&self) {
        if self.0.broken.load(Ordering::Relaxed) {
            let lost = std::mem::take(&mut *self.callbacks());
            for f in lost {
                f();
            }
        }
    }
}

/// Most bytes a reply hands hyper at once: what waits in hyper's buffer for a slow reader.
const CHUNK: usize = 64 << 10;

/// A reply body that keeps `hold` alive until hyper has taken its last byte (or dropped it):
/// a whole body, or a stream whose chunks go out as they arrive (a cut stream is an error,
/// so that hyper aborts the reply and the caller sees it incomplete).
pub struct Served {
    inner: Inner,
    rest: Bytes,
    hold: Option<Box<dyn Send + Sync>>,
}

enum Inner {
    Full(Full<Bytes>),
    Stream(BodyStream),
}

impl Served {
    pub fn new(inner: Full<Bytes>, hold: Option<Box<dyn Send + Sync>>) -> Served {
        Served {
            inner: Inner::Full(inner),
            rest: Bytes::new(),
            hold,
        }
    }

    /// A streamed body.
    pub fn stream(body: BodyStream, hold: Option<Box<dyn Send + Sync>>) -> Served {
        Served {
            inner: Inner::Stream(body),
            rest: Bytes::new(),
            hold,
        }
    }
}

impl From<Full<Bytes>> for Served {
    fn from(inner: Full<Bytes>) -> Served {
        Served::new(inner, None)
    }
}

impl Body for Served {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        if self.rest.is_empty() {
            let polled = match &mut self.inner {
                Inner::Full(full) => match ready!(Pin::new(full).poll_frame(cx)) {
                    Some(Ok(frame)) => Some(Ok(frame)),
                    Some(Err(never)) => match never {},
                    None => None,
                },
                Inner::Stream(stream) => ready!(Pin::new(stream).poll_frame(cx)),
            };
            match polled {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.rest = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(cut)) => {
                    self.hold = None;
                    return Poll::Ready(Some(Err(cut)));
                }
                None => {
                    self.hold = None;
                    return Poll::Ready(None);
                }
            }
        }
        let n = self.rest.len().min(CHUNK);
        let chunk = self.rest.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
            && match &self.inner {
                Inner::Full(full) => full.is_end_stream(),
                Inner::Stream(stream) => stream.is_end_stream(),
            }
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = match &self.inner {
            Inner::Full(full) => full.size_hint(),
            Inner::Stream(stream) => stream.size_hint(),
        };
        let rest = self.rest.len() as u64;
        hint.set_lower(hint.lower() + rest);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

pub type ServedReply = http::Response<Served>;

/// How a server treats its connections. The default: no drain, no write timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// After `stop`, how long open connections may finish their requests; `None` leaves
    /// them running.
    pub drain: Option<Duration>,
    /// How long a write may wait on a client that does not read; `None`: forever.
    pub write_timeout: Option<Duration>,
}

/// Accepts connections on `listener` until `stop`.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    stop: CancellationToken,
    options: Options,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ServedReply> + Send + 'static,
{
    // Only a draining server watches its connections: dropping the watch would close them.
    let graceful = options.drain.map(|_| GracefulShutdown::new());
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(crate::deadline::HyperTimer)
        .header_read_timeout(Duration::from_secs(30));
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection::default();
        let handler = handler.clone();
        let conn_ext = connection.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            conn_ext.delivered();
            req.extensions_mut().insert(Peer(peer));
            req.extensions_mut().insert(conn_ext.clone());
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler(req).await) }
        });
        let io = Guarded::new(stream, options.write_timeout, connection.clone());
        let conn = builder.serve_connection(TokioIo::new(io), service);
        match &graceful {
            Some(g) => tokio::spawn(log_end(g.watch(conn), connection)),
            None => tokio::spawn(log_end(conn, connection)),
        };
    }
    drop(listener);
    if let (Some(drain), Some(graceful)) = (options.drain, graceful)
        && tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
    {
        tracing::warn!("connections still open after {drain:?}; closing them");
    }
}

async fn log_end(conn: impl Future<Output = Result<(), hyper::Error>>, connection: Connection) {
    if let Err(e) = conn.await {
        tracing::debug!("connection ended: {e}");
    }
    connection.ended();
}

/// A client socket whose writes fail after `write_timeout` without progress, and which
/// remembers that the connection broke.
struct Guarded {
    stream: TcpStream,
    write_timeout: Option<Duration>,
    /// Armed while a write waits.
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    connection: Connection,
}

impl Guarded {
    fn new(stream: TcpStream, write_timeout: Option<Duration>, connection: Connection) -> Guarded {
        Guarded {
            stream,
            write_timeout,
            timer: None,
            waiting: false,
            connection,
        }
    }

    /// Turns a write's poll into the guarded one: a failure is remembered; a write pending
    /// for longer than the timeout fails.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.waiting = false;
                if result.is_err() {
                    self.connection.mark_broken();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let Some(timeout) = self.write_timeout else {
                    return Poll::Pending;
                };
                // Armed when a write first waits; left running while it keeps waiting.
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if !std::mem::replace(&mut self.waiting, true) {
                    timer.as_mut().reset(Instant::now() + timeout);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    self.waiting = false;
                    self.connection.mark_broken();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client read nothing for {timeout:?}"),
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if let Poll::Ready(Err(e)) = &polled
            && matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            )
        {
            self.connection.mark_broken();
        }
        polled
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.guard(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        self.guard(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
