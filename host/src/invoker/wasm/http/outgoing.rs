//! A component's outgoing HTTP requests (`wasi:http/outgoing-handler`): refused unless
//! `WASM_ALLOWED_OUTBOUND_HOSTS` names the origin (no connection is made, the guest gets
//! `HTTP-request-denied`, the host logs and counts it); allowed ones go through the host's
//! client (rustls with the webpki roots) with every timeout cut at the invocation's deadline
//! and the response body bounded.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::metrics::Metrics;
use crate::outbound::AllowList;

/// The hooks of one store: what its invocation may reach and until when.
pub struct Outbound {
    pub allowed: Arc<AllowList>,
    pub deadline: Instant,
    /// Most bytes of one response body the guest may read.
    pub response_limit: usize,
    pub metrics: Arc<Metrics>,
    pub request_id: Arc<str>,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().unwrap_or("");
        if !self.allowed.allows(scheme, host, uri.port_u16()) {
            self.metrics.outbound_denied.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                request_id = %self.request_id,
                "outgoing request denied: {scheme}://{host}:{} is not in WASM_ALLOWED_OUTBOUND_HOSTS",
                uri.port_u16().map_or_else(|| "default".to_string(), |p| p.to_string())
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        let options = bounded(options, left);
        let limit = self.response_limit;
        Box::new(async move {
            let sent = tokio::time::timeout(
                left,
                wasmtime_wasi_http::default_send_request(request, Some(options)),
            )
            .await;
            let (response, io) = match sent {
                Ok(r) => r?,
                Err(_) => return Err(Error::ConnectionTimeout),
            };
            let response = response.map(|body| Bounded::new(body, limit).boxed_unsync());
            let io = async move { tokio::time::timeout(left, io).await.unwrap_or(Ok(())) };
            Ok((
                response,
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

/// The same rules for the outgoing requests of a Lambda component (guest-sdk/wit), whose
/// hook is the function's, not one store's: timeouts are cut at `FUNCTION_TTL` from the
/// request (the epoch deadline ends the guest, and so its request, at its own deadline).
pub struct AllowListed {
    pub allowed: Arc<AllowList>,
    pub ttl: Duration,
    pub response_limit: usize,
    pub metrics: Arc<Metrics>,
}

impl crate::invoker::wasm::lambda_component::Outbound for AllowListed {
    fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> SendFuture {
        let mut hooks = Outbound {
            allowed: self.allowed.clone(),
            deadline: Instant::now() + self.ttl,
            response_limit: self.response_limit,
            metrics: self.metrics.clone(),
            request_id: Arc::from("-"),
        };
        hooks.send_request(request, options, Box::new(std::future::ready(Ok(()))))
    }
}

/// The guest's timeouts, none longer than what is `left` of the invocation.
fn bounded(options: Option<RequestOptions>, left: Duration) -> RequestOptions {
    let o = options.unwrap_or_default();
    let cut = |t: Option<Duration>| Some(t.map_or(left, |t| t.min(left)));
    RequestOptions {
        connect_timeout: cut(o.connect_timeout),
        first_byte_timeout: cut(o.first_byte_timeout),
        between_bytes_timeout: cut(o.between_bytes_timeout),
    }
}

/// A response body that fails once it passes `limit` bytes.
struct Bounded<B> {
    inner: B,
    left: usize,
    limit: usize,
}

impl<B> Bounded<B> {
    fn new(inner: B, limit: usize) -> Bounded<B> {
        Bounded {
            inner,
            left: limit,
            limit,
        }
    }
}

impl<B> Body for Bounded<B>
where
    B: Body<Data = Bytes, Error = Error> + Unpin,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            let n = data.map_or(0, Bytes::len);
            if n > self.left {
                let limit = self.limit as u64;
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(limit)))));
            }
            self.left -= n;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[test]
    fn timeouts_never_pass_the_deadline() {
        let left = Duration::from_secs(2);
        let o = bounded(None, left);
        assert_eq!(o.connect_timeout, Some(left));
        assert_eq!(o.first_byte_timeout, Some(left));
        let o = bounded(
            Some(RequestOptions {
                connect_timeout: Some(Duration::from_secs(1)),
                first_byte_timeout: Some(Duration::from_secs(60)),
                between_bytes_timeout: None,
            }),
            left,
        );
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(1)));
        assert_eq!(o.first_byte_timeout, Some(left));
        assert_eq!(o.between_bytes_timeout, Some(left));
    }

    fn body(n: usize) -> impl Body<Data = Bytes, Error = Error> + Unpin {
        Full::new(Bytes::from(vec![b'x'; n])).map_err(|never| match never {})
    }

    #[tokio::test]
    async fn response_body_bounded() {
        let read = Bounded::new(body(10), 10).collect().await;
        assert_eq!(read.map(|c| c.to_bytes().len()).ok(), Some(10));
        let read = Bounded::new(body(11), 10).collect().await;
        assert!(matches!(read, Err(Error::HttpResponseBodySize(Some(10)))));
    }
}
