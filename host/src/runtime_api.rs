//! The Lambda Runtime API (2018-06-01) for native bootstraps: one listener per bootstrap,
//! all on one port, each on its own loopback address (`127.0.0.(N+1)`), so that the
//! listener that accepted a connection names the bootstrap holding its invocations. A thin
//! adapter over the Dispatcher; routing and header building are plain functions, and
//! [`RuntimeApi::handle`] takes any body, so tests drive it with in-memory requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body::Body;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::dispatch::{
    Dispatcher, InvalidRequestId, InvocationError, Outcome, ResponseSize, RunnerId, StaleDelivery,
};
use crate::lambda_error::Diagnostic;
use crate::reply::{self, IntoReply, ReadError, Reply};
use crate::serve::{Connection, Served};

pub mod bind;

/// What every Runtime API listener shares.
pub struct RuntimeApi {
    pub dispatcher: Arc<Dispatcher>,
    pub function_arn: HeaderValue,
    pub body_limit: usize,
    /// Largest streamed response (`STREAMING_RESPONSE_LIMIT`).
    pub streaming_limit: u64,
    /// How long a runtime may take to upload a response or error body (the function's
    /// timeout: past it the invocation has ended anyway).
    pub read_timeout: Duration,
    /// The Extensions and Telemetry APIs, served on the same listeners (native functions).
    pub extensions: Option<Arc<crate::extensions::Extensions>>,
}

/// Most bytes of runtime-supplied text (an init error's message) that reach the log.
use crate::lambda_error::{MAX_LOGGED, clip};

/// One endpoint of the Runtime API.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Next,
    Response(&'a str),
    Error(&'a str),
    InitError,
    Ping,
}

/// A request that matches no endpoint; the message names what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError<'a> {
    #[error("no Runtime API endpoint at {path}")]
    NotFound { path: &'a str },
    #[error("{method} {path} expects {allowed}")]
    MethodNotAllowed {
        method: &'a Method,
        path: &'a str,
        allowed: &'static str,
    },
}

/// Maps a method and path to an endpoint.
pub fn route<'a>(method: &'a Method, path: &'a str) -> Result<Route<'a>, RouteError<'a>> {
    let not_found = RouteError::NotFound { path };
    let rest = path.strip_prefix("/2018-06-01/").ok_or(not_found)?;
    let (route, allowed) = match rest {
        "ping" => (Route::Ping, "GET"),
        "runtime/init/error" => (Route::InitError, "POST"),
        "runtime/invocation/next" => (Route::Next, "GET"),
        _ => {
            let inv = rest.strip_prefix("runtime/invocation/").ok_or(not_found)?;
            let (id, kind) = inv.split_once('/').ok_or(not_found)?;
            if id.is_empty() || id.contains('/') {
                return Err(not_found);
            }
            match kind {
                "response" => (Route::Response(id), "POST"),
                "error" => (Route::Error(id), "POST"),
                _ => return Err(not_found),
            }
        }
    };
    if method.as_str() == allowed {
        Ok(route)
    } else {
        Err(RouteError::MethodNotAllowed {
            method,
            path,
            allowed,
        })
    }
}

impl RuntimeApi {
    /// Serves the Runtime API on `listener` for `runner` until `stop`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        runner: RunnerId,
        stop: CancellationToken,
    ) {
        let options = crate::serve::Options::default();
        crate::serve::serve(listener, stop, options, move |req| {
            let api = self.clone();
            async move { api.handle(req, runner).await.map(Served::from) }
        })
        .await;
    }

    /// Answers one Runtime API request of bootstrap `runner`.
    pub async fn handle<B>(&self, req: Request<B>, runner: RunnerId) -> Reply
    where
        B: Body + Unpin,
        B::Error: std::fmt::Display,
    {
        if let Some(ext) = &self.extensions
            && crate::extensions::api::route(req.uri().path()).is_some()
        {
            return ext.handle(req).await;
        }
        let (parts, body) = req.into_parts();
        match route(&parts.method, parts.uri.path()) {
            Ok(Route::Next) => {
                if let Some(ext) = &self.extensions {
                    ext.before_next(runner).await;
                }
                let (inv, nonce) = self.dispatcher.deliver(runner).await;
                if let Some(ext) = &self.extensions {
                    ext.invoke(runner, &inv);
                }
                let mut headers = crate::context::next_headers(&inv, &self.function_arn);
                if let Ok(v) = HeaderValue::from_str(&nonce) {
                    headers.insert(INVOCATION_ID, v);
                }
                let body = inv.event.body.clone();
                if let Some(connection) = parts.extensions.get::<Connection>() {
                    // A reply the bootstrap never got goes back to the queue, not to the
                    // deadline.
                    let dispatcher = self.dispatcher.clone();
                    connection.on_reply_lost(move || {
                        if dispatcher.return_undelivered(runner, inv) {
                            tracing::debug!(bootstrap = runner, "a /next reply was lost; requeued");
                        }
                    });
                }
                let mut reply = http::Response::new(http_body_util::Full::new(body));
                *reply.headers_mut() = headers;
                reply
            }
            Ok(Route::Response(id)) => self.response(runner, id, &parts.headers, body).await,
            Ok(Route::Error(id)) => {
                let body = match self.read(body).await {
                    Ok(b) => b,
                    Err(e) => return e.into_reply(),
                };
                let err = Diagnostic::from_post(&body, error_type(&parts.headers));
                tracing::debug!(
                    request_id = id,
                    error_type = clip(&err.error_type, MAX_LOGGED),
                    "function error"
                );
                self.complete(
                    runner,
                    id,
                    nonce(&parts.headers),
                    Outcome::FunctionError(err),
                )
            }
            Ok(Route::InitError) => {
                let body = self.read(body).await.unwrap_or_default();
                let err = Diagnostic::from_post(&body, error_type(&parts.headers));
                tracing::error!(
                    bootstrap = runner,
                    error_type = clip(&err.error_type, MAX_LOGGED),
                    "runtime init error: {}",
                    clip(&err.error_message, MAX_LOGGED)
                );
                self.dispatcher.init_error(runner, err);
                accepted()
            }
            Ok(Route::Ping) => reply::with_body(
                StatusCode::OK,
                HeaderValue::from_static("text/plain"),
                Bytes::from_static(b"pong"),
            ),
            Err(unrouted) => unrouted.into_reply(),
        }
    }

    async fn response<B>(&self, runner: RunnerId, id: &str, headers: &HeaderMap, body: B) -> Reply
    where
        B: Body + Unpin,
        B::Error: std::fmt::Display,
    {
        let nonce = nonce(headers);
        match nonce {
            Some(n) if !self.dispatcher.holds_delivery(runner, id, n) => {
                return stale(id, n).into_reply();
            }
            None if !self.dispatcher.is_held_by(runner, id) => {
                return InvalidRequestId.into_reply();
            }
            _ => {}
        }
        match streaming::mode(headers) {
            Ok(streaming::Mode::Buffered) => {}
            Ok(streaming::Mode::Streaming) => return self.stream(runner, id, headers, body).await,
            Err(refused) => return self.refuse_mode(runner, id, refused),
        }
        match self.read(body).await {
            Ok(body) => {
                let content_type = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                self.complete(runner, id, nonce, Outcome::Response { body, content_type })
            }
            Err(reply::ReadError::TooLarge(t)) => {
                // As on AWS, the invocation fails and the runtime is told why.
                // The upload was cut at the limit: its real size is unknown.
                let err = InvocationError::ResponseTooLarge {
                    size: ResponseSize::PastLimit,
                    limit: t.limit,
                };
                let _ = self.complete(runner, id, nonce, Outcome::Failed(err));
                t.into_reply()
            }
            Err(e) => e.into_reply(),
        }
    }

    /// Ends `id` if `runner` holds it (in the delivery `nonce` when the runtime echoed
    /// one): an answer from another bootstrap, or to a delivery that has ended, is refused.
    fn complete(&self, runner: RunnerId, id: &str, nonce: Option<&str>, outcome: Outcome) -> Reply {
        let summary = crate::extensions::Summary::of(&outcome);
        let done = match nonce {
            Some(n) => self
                .dispatcher
                .complete_delivery(runner, id, n, outcome)
                .map_err(|_| stale(id, n)),
            None => match self.dispatcher.complete_from(runner, id, outcome) {
                Ok(()) => Ok(()),
                Err(e) => return e.into_reply(),
            },
        };
        match done {
            Ok(()) => {
                if let Some(ext) = &self.extensions {
                    let pid = || self.dispatcher.runner_pid(runner);
                    ext.runtime_done(id, summary, pid);
                }
                accepted()
            }
            Err(e) => e.into_reply(),
        }
    }

    async fn read<B>(&self, body: B) -> Result<Bytes, ReadError>
    where
        B: Body + Unpin,
        B::Error: std::fmt::Display,
    {
        tokio::time::timeout(self.read_timeout, reply::read_body(body, self.body_limit))
            .await
            .unwrap_or(Err(ReadError::TimedOut(self.read_timeout)))
    }
}

/// The delivery nonce a runtime hands out with each invocation and echoes with its answer.
pub const INVOCATION_ID: &str = "lambda-runtime-invocation-id";

/// The nonce an answer echoes; `None` (not checked) for older clients that send none, or
/// an empty one. A value that is not text matches no delivery.
fn nonce(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(INVOCATION_ID)?;
    let text = value.to_str().unwrap_or("\u{fffd}");
    (!text.trim().is_empty()).then_some(text)
}

fn stale(id: &str, nonce: &str) -> StaleDelivery {
    StaleDelivery {
        id: clip(id, 128).to_owned(),
        nonce: clip(nonce, 128).to_owned(),
    }
}

fn error_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
}

fn accepted() -> Reply {
    reply::with_body(
        StatusCode::ACCEPTED,
        reply::JSON,
        Bytes::from_static(br#"{"status":"OK"}"#),
    )
}

pub mod prelude;
mod streaming;
#[cfg(test)]
mod tests;
