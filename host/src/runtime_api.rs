//! The Lambda Runtime API (2018-06-01) for native bootstraps: one listener per bootstrap,
//! so that the host knows which process holds which invocation. A thin adapter over the
//! Dispatcher; routing and header building are plain functions.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::dispatch::{Dispatcher, InvocationError, Outcome, ResponseSize, RunnerId};
use crate::lambda_error::Diagnostic;
use crate::reply::{self, Reply};

/// What every Runtime API listener shares.
pub struct RuntimeApi {
    pub dispatcher: Arc<Dispatcher>,
    pub function_arn: HeaderValue,
    pub body_limit: usize,
}

/// One endpoint of the Runtime API.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Next,
    Response(&'a str),
    Error(&'a str),
    InitError,
    Ping,
}

/// A request that matches no endpoint.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed(&'static str),
}

/// Maps a method and path to an endpoint.
pub fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, RouteError> {
    let rest = path
        .strip_prefix("/2018-06-01/")
        .ok_or(RouteError::NotFound)?;
    let (route, allowed) = match rest {
        "ping" => (Route::Ping, "GET"),
        "runtime/init/error" => (Route::InitError, "POST"),
        "runtime/invocation/next" => (Route::Next, "GET"),
        _ => {
            let inv = rest
                .strip_prefix("runtime/invocation/")
                .ok_or(RouteError::NotFound)?;
            let (id, kind) = inv.split_once('/').ok_or(RouteError::NotFound)?;
            if id.is_empty() || id.contains('/') {
                return Err(RouteError::NotFound);
            }
            match kind {
                "response" => (Route::Response(id), "POST"),
                "error" => (Route::Error(id), "POST"),
                _ => return Err(RouteError::NotFound),
            }
        }
    };
    if method.as_str() == allowed {
        Ok(route)
    } else {
        Err(RouteError::MethodNotAllowed(allowed))
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
        crate::serve::serve(listener, stop, None, move |req| {
            let api = self.clone();
            async move { api.handle(req, runner).await }
        })
        .await;
    }

    async fn handle(&self, req: Request<Incoming>, runner: RunnerId) -> Reply {
        let (parts, body) = req.into_parts();
        match route(&parts.method, parts.uri.path()) {
            Ok(Route::Next) => {
                let inv = self.dispatcher.next(runner).await;
                let headers = crate::context::next_headers(&inv, &self.function_arn);
                let mut reply = http::Response::new(http_body_util::Full::new(inv.event.body));
                *reply.headers_mut() = headers;
                reply
            }
            Ok(Route::Response(id)) => self.response(id, &parts.headers, body).await,
            Ok(Route::Error(id)) => {
                let body = match reply::read_body(body, self.body_limit).await {
                    Ok(b) => b,
                    Err(e) => return e.reply(),
                };
                let err = Diagnostic::from_post(&body, error_type(&parts.headers));
                tracing::debug!(request_id = id, error_type = %err.error_type, "function error");
                self.complete(id, Outcome::FunctionError(err))
            }
            Ok(Route::InitError) => {
                let body = reply::read_body(body, self.body_limit)
                    .await
                    .unwrap_or_default();
                let err = Diagnostic::from_post(&body, error_type(&parts.headers));
                tracing::error!(
                    bootstrap = runner,
                    error_type = %err.error_type,
                    "runtime init error: {}",
                    err.error_message
                );
                accepted()
            }
            Ok(Route::Ping) => reply::with_body(
                StatusCode::OK,
                HeaderValue::from_static("text/plain"),
                Bytes::from_static(b"pong"),
            ),
            Err(RouteError::NotFound) => reply::error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("no Runtime API endpoint at {}", parts.uri.path()),
            ),
            Err(RouteError::MethodNotAllowed(allowed)) => {
                let mut r = reply::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    &format!("{} {} expects {allowed}", parts.method, parts.uri.path()),
                );
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allowed));
                r
            }
        }
    }

    async fn response(&self, id: &str, headers: &HeaderMap, body: Incoming) -> Reply {
        match reply::read_body(body, self.body_limit).await {
            Ok(body) => {
                let content_type = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                self.complete(id, Outcome::Response { body, content_type })
            }
            Err(reply::ReadError::TooLarge(t)) => {
                // As on AWS, the invocation fails and the runtime is told why.
                // The upload was cut at the limit: its real size is unknown.
                let err = InvocationError::ResponseTooLarge {
                    size: ResponseSize::PastLimit,
                    limit: t.limit,
                };
                let _ = self.dispatcher.complete(id, Outcome::Failed(err));
                t.reply()
            }
            Err(e) => e.reply(),
        }
    }

    fn complete(&self, id: &str, outcome: Outcome) -> Reply {
        match self.dispatcher.complete(id, outcome) {
            Ok(()) => accepted(),
            Err(e) => reply::error(StatusCode::BAD_REQUEST, "InvalidRequestID", &e.to_string()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            route(&get, "/2018-06-01/runtime/invocation/next"),
            Ok(Route::Next)
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/invocation/abc/response"),
            Ok(Route::Response("abc"))
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/invocation/abc/error"),
            Ok(Route::Error("abc"))
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/init/error"),
            Ok(Route::InitError)
        );
        assert_eq!(route(&get, "/2018-06-01/ping"), Ok(Route::Ping));
        assert_eq!(
            route(&post, "/2018-06-01/runtime/invocation/next"),
            Err(RouteError::MethodNotAllowed("GET"))
        );
        assert_eq!(
            route(&get, "/2018-06-01/runtime/invocation/abc/response"),
            Err(RouteError::MethodNotAllowed("POST"))
        );
        for bad in [
            "/",
            "/2018-06-01/runtime/invocation//response",
            "/2018-06-01/runtime/invocation/abc/result",
            "/2018-06-01/runtime/invocation/a/b/response",
            "/2018-06-01/runtime/invocation/abc",
            "/2019-01-01/runtime/invocation/next",
        ] {
            assert_eq!(route(&post, bad), Err(RouteError::NotFound), "{bad}");
        }
    }
}
