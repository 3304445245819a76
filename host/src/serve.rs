//! The one accept loop both servers use: HTTP/1.1 with keep-alive, a handler per request,
//! and a graceful stop. Owns sockets; knows nothing of Lambda.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::reply::Reply;

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Accepts connections on `listener` until `stop`. With `drain`, then waits up to that long
/// for open connections to finish their requests; without, leaves them running.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    stop: CancellationToken,
    drain: Option<Duration>,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    // Only a draining server watches its connections: dropping the watch would close them.
    let graceful = drain.map(|_| GracefulShutdown::new());
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
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
        let handler = handler.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler(req).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        match &graceful {
            Some(g) => tokio::spawn(log_end(g.watch(conn))),
            None => tokio::spawn(log_end(conn)),
        };
    }
    drop(listener);
    if let (Some(drain), Some(graceful)) = (drain, graceful)
        && tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
    {
        tracing::warn!("connections still open after {drain:?}; closing them");
    }
}

async fn log_end(conn: impl Future<Output = Result<(), hyper::Error>>) {
    if let Err(e) = conn.await {
        tracing::debug!("connection ended: {e}");
    }
}
