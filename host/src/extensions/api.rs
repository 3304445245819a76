//! The HTTP side of the Extensions API (2020-01-01) and of the Telemetry API (2022-07-01),
//! served on the Runtime API's listeners and routed by path whichever listener took the
//! connection. Misuse is answered as Lambda does: 403 and `{errorType, errorMessage}`.
//! Handlers parse and answer; the registry decides.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body::Body;
use serde_json::json;

use super::Extensions;
use super::registry::{ApiError, Event, ExtensionId, Subscriptions};
use super::telemetry::Subscription;
use crate::reply::{self, Reply};

const NAME: &str = "Lambda-Extension-Name";
const IDENTIFIER: &str = "Lambda-Extension-Identifier";
const EVENT_IDENTIFIER: &str = "Lambda-Extension-Event-Identifier";
const ERROR_TYPE: &str = "Lambda-Extension-Function-Error-Type";
const ACCEPT_FEATURE: &str = "Lambda-Extension-Accept-Feature";
/// Largest request body the Extensions and Telemetry APIs read.
const BODY_LIMIT: usize = 64 * 1024;
/// How long a client may take to send such a body.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Register,
    Next,
    InitError,
    ExitError,
    Telemetry,
    Logs,
}

/// The endpoint of `path` and the method it takes, when `path` is one of these APIs.
pub fn route(path: &str) -> Option<(Route, Method)> {
    Some(match path {
        "/2020-01-01/extension/register" => (Route::Register, Method::POST),
        "/2020-01-01/extension/event/next" => (Route::Next, Method::GET),
        "/2020-01-01/extension/init/error" => (Route::InitError, Method::POST),
        "/2020-01-01/extension/exit/error" => (Route::ExitError, Method::POST),
        "/2022-07-01/telemetry" => (Route::Telemetry, Method::PUT),
        "/2020-08-15/logs" => (Route::Logs, Method::PUT),
        _ => return None,
    })
}

impl Extensions {
    /// Answers a request to one of [`route`]'s paths.
    pub async fn handle<B>(&self, req: Request<B>) -> Reply
    where
        B: Body + Unpin,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = req.into_parts();
        let Some((route, method)) = route(parts.uri.path()) else {
            return reply::error(StatusCode::NOT_FOUND, "NotFound", "no such endpoint");
        };
        if parts.method != method {
            let message = format!("{} expects {method}", parts.uri.path());
            return reply::error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", &message);
        }
        if route == Route::Logs {
            // Lambda's own answer when the Logs API is off, with the way forward.
            return reply::error(
                StatusCode::ACCEPTED,
                "Logs.NotSupported",
                "the Logs API is not supported: subscribe with the Telemetry API \
                 (PUT /2022-07-01/telemetry)",
            );
        }
        let read = tokio::time::timeout(READ_TIMEOUT, reply::read_body(body, BODY_LIMIT));
        let body = match read.await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return crate::reply::IntoReply::into_reply(e),
            Err(_) => {
                let e = crate::reply::ReadError::TimedOut(READ_TIMEOUT);
                return crate::reply::IntoReply::into_reply(e);
            }
        };
        let result = match route {
            Route::Register => self.register(&parts.headers, &body),
            Route::Next => match identifier(&parts.headers) {
                Ok(id) => self.next(id).await,
                Err(e) => Err(e),
            },
            Route::InitError => self.fail(&parts.headers, true),
            Route::ExitError => self.fail(&parts.headers, false),
            Route::Telemetry => self.subscribe(&parts.headers, &body),
            // Answered above, before the body was read.
            Route::Logs => Err(ApiError::InvalidRequest("use the Telemetry API".into())),
        };
        result.unwrap_or_else(|e| forbidden(&e))
    }

    fn register(&self, headers: &HeaderMap, body: &[u8]) -> Result<Reply, ApiError> {
        let name = header(headers, NAME)
            .filter(|n| !n.is_empty())
            .ok_or(ApiError::MissingHeader(NAME))?;
        #[derive(serde::Deserialize)]
        struct Register {
            #[serde(default)]
            events: Vec<String>,
        }
        let req: Register = serde_json::from_slice(if body.is_empty() { b"{}" } else { body })
            .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
        let subs = Subscriptions::parse(&req.events)?;
        let id = self.lock().register(name, subs)?;
        self.bump();
        tracing::info!(extension = name, events = ?req.events, "extension registered");
        let wants_account = header(headers, ACCEPT_FEATURE)
            .is_some_and(|f| f.split(',').any(|f| f.trim() == "accountId"));
        let mut body = json!({
            "functionName": self.meta.name,
            "functionVersion": self.meta.version,
            "handler": self.meta.handler,
        });
        if wants_account {
            body["accountId"] = json!(self.meta.account_id);
        }
        let mut reply = reply::with_body(StatusCode::OK, reply::JSON, body.to_string().into());
        if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
            reply.headers_mut().insert(IDENTIFIER, v);
        }
        Ok(reply)
    }

    /// The long poll: the next event, whenever it comes.
    async fn next(&self, id: ExtensionId) -> Result<Reply, ApiError> {
        // Watched before the first look, so that an event queued right after it wakes us.
        let mut changed = self.changed.subscribe();
        let first = self.lock().next(id)?;
        self.bump();
        let event = match first {
            Some(e) => e,
            None => loop {
                if changed.changed().await.is_err() {
                    return Err(ApiError::UnknownIdentifier(id.to_string()));
                }
                let taken = self.lock().take(id)?;
                if let Some(e) = taken {
                    break e;
                }
            },
        };
        let body = match &event {
            Event::Invoke {
                request_id,
                deadline_ms,
                trace_id,
                ..
            } => json!({
                "eventType": "INVOKE",
                "deadlineMs": deadline_ms,
                "requestId": &**request_id,
                "invokedFunctionArn": self.meta.arn,
                "tracing": { "type": "X-Amzn-Trace-Id", "value": trace_id.as_deref().unwrap_or("") },
            }),
            Event::Shutdown {
                reason,
                deadline_ms,
            } => json!({
                "eventType": "SHUTDOWN",
                "shutdownReason": reason.as_str(),
                "deadlineMs": deadline_ms,
            }),
        };
        let mut reply = reply::with_body(StatusCode::OK, reply::JSON, body.to_string().into());
        if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            reply.headers_mut().insert(EVENT_IDENTIFIER, v);
        }
        Ok(reply)
    }

    fn fail(&self, headers: &HeaderMap, init: bool) -> Result<Reply, ApiError> {
        let id = identifier(headers)?;
        let error_type = header(headers, ERROR_TYPE)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::MissingHeader(ERROR_TYPE))?;
        let name = self.lock().fail(id, init)?;
        self.bump();
        let error_type = crate::lambda_error::clip(error_type, crate::lambda_error::MAX_LOGGED);
        if init {
            tracing::error!(extension = name, error_type, "extension init error");
        } else {
            tracing::error!(extension = name, error_type, "extension exit error");
        }
        Ok(reply::with_body(
            StatusCode::ACCEPTED,
            reply::JSON,
            Bytes::from_static(br#"{"status":"OK"}"#),
        ))
    }

    fn subscribe(&self, headers: &HeaderMap, body: &[u8]) -> Result<Reply, ApiError> {
        let id = identifier(headers)?;
        if !self.lock().is_registered(id) {
            return Err(ApiError::UnknownIdentifier(id.to_string()));
        }
        let sub = match Subscription::parse(body) {
            Ok(s) => s,
            Err(message) => {
                return Ok(reply::error(
                    StatusCode::BAD_REQUEST,
                    "ValidationError",
                    &message,
                ));
            }
        };
        tracing::info!(
            destination = %sub.destination,
            "telemetry subscription"
        );
        self.telemetry.subscribe(id, sub);
        Ok(reply::with_body(
            StatusCode::OK,
            HeaderValue::from_static("text/plain"),
            Bytes::from_static(b"OK"),
        ))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `Lambda-Extension-Identifier`: missing → `Extension.MissingHeader`; anything that is not
/// a registered identifier → `Extension.UnknownExtensionIdentifier`.
fn identifier(headers: &HeaderMap) -> Result<ExtensionId, ApiError> {
    let raw = header(headers, IDENTIFIER)
        .filter(|v| !v.is_empty())
        .ok_or(ApiError::MissingHeader(IDENTIFIER))?;
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::UnknownIdentifier(raw.to_owned()))
}

fn forbidden(e: &ApiError) -> Reply {
    reply::error(StatusCode::FORBIDDEN, e.error_type(), &e.to_string())
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
