//! The benchmark's reference: one HTTP/1.1 exchange with keep-alive and no function behind
//! it, on the same stack as the host (tokio multi-thread, hyper 1, `TCP_NODELAY`). It echoes
//! the request body with its `Content-Type`. Whatever the host adds on top of this is its
//! own cost, so every scenario is reported as a ratio to it, measured in the same run.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Same default body limit as the host (`REQUEST_SIZE_LIMIT` = 5 MB).
const BODY_LIMIT: usize = 5_000_000;

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    let body = match http_body_util::Limited::new(req.into_body(), BODY_LIMIT)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"body too large")));
            *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return Ok(r);
        }
    };
    let mut response = Response::new(Full::new(body));
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = match std::env::var("PORT") {
        Ok(p) => p
            .parse::<u16>()
            .map_err(|e| std::io::Error::other(format!("PORT={p:?}: {e}")))?,
        Err(_) => 8080,
    };
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    eprintln!("bench-echo listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(echo);
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
