//! Every error that becomes an HTTP answer, and its answer: one [`IntoReply`] impl per type,
//! all here, so that statuses and `errorType`s are read in one file. The error types stay at
//! their boundaries (dispatch, body read, wrapper, sink, Runtime API); this module only says
//! what a caller gets for each.

use http::{HeaderValue, StatusCode, header};

use super::{IntoReply, ReadError, Reply, TooLarge, error};
use crate::dispatch::{InvalidRequestId, InvocationError, Overloaded, StaleDelivery};
use crate::runtime_api::RouteError;
use crate::sink::SinkError;
use crate::wrapper::{BadReply, BadRequest};

/// An invocation that ended without the function's answer, with the request id its
/// message names.
pub struct Failed<'a> {
    pub request_id: &'a str,
    pub error: &'a InvocationError,
}

impl IntoReply for Failed<'_> {
    fn into_reply(self) -> Reply {
        if let InvocationError::InitError(init) = self.error {
            // As AWS serves an init error: the runtime's own type and message.
            return error(
                StatusCode::BAD_GATEWAY,
                &init.error_type,
                &init.error_message,
            );
        }
        let status = match self.error {
            InvocationError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            InvocationError::RunnerExited(_)
            | InvocationError::ResponseTooLarge { .. }
            | InvocationError::Trap(_)
            | InvocationError::InitFailed(_)
            | InvocationError::HostFailure(_)
            | InvocationError::InvalidResponseMode(_)
            | InvocationError::MalformedPrelude(_)
            | InvocationError::InitError(_) => StatusCode::BAD_GATEWAY,
            InvocationError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            InvocationError::TenantThrottled(_) => StatusCode::TOO_MANY_REQUESTS,
        };
        let reply = error(
            status,
            self.error.error_type(),
            &format!("RequestId: {} Error: {}", self.request_id, self.error),
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            return retry_later(reply);
        }
        reply
    }
}

/// The queue is full: 503 and a hint to retry, as Lambda's throttling answer.
impl IntoReply for Overloaded {
    fn into_reply(self) -> Reply {
        retry_later(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "TooManyRequestsException",
            &self.to_string(),
        ))
    }
}

impl IntoReply for TooLarge {
    fn into_reply(self) -> Reply {
        close(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!(
                "Exceeded maximum allowed payload size ({} bytes).",
                self.limit
            ),
        ))
    }
}

impl IntoReply for ReadError {
    fn into_reply(self) -> Reply {
        match self {
            ReadError::TooLarge(t) => t.into_reply(),
            ReadError::Broken(e) => error(StatusCode::BAD_REQUEST, "InvalidRequestContent", &e),
            ReadError::TimedOut(limit) => close(error(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeout",
                &format!(
                    "the request body did not arrive within {:.1} s (REQUEST_READ_TIMEOUT)",
                    limit.as_secs_f64()
                ),
            )),
            ReadError::Busy => retry_later(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "TooManyRequestsException",
                "too many request bodies are still arriving; retry later",
            )),
        }
    }
}

/// 400, as AWS's Invoke API answers a tenant id that is missing, invalid or unexpected.
impl IntoReply for crate::tenancy::InvalidTenant {
    fn into_reply(self) -> Reply {
        error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &self.0,
        )
    }
}

/// 400, as AWS's Invoke API answers a request it cannot take.
impl IntoReply for BadRequest {
    fn into_reply(self) -> Reply {
        error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            &self.0,
        )
    }
}

/// 502: the function's fault rather than the caller's.
impl IntoReply for BadReply {
    fn into_reply(self) -> Reply {
        let (error_type, message) = match &self {
            BadReply::ProxyResponse(m) => ("InvalidProxyResponse", m),
            BadReply::CloudEvent(m) => ("InvalidCloudEvent", m),
        };
        error(StatusCode::BAD_GATEWAY, error_type, message)
    }
}

/// 502 every way: the result did not reach the sink, or its reply cannot be passed back.
impl IntoReply for SinkError {
    fn into_reply(self) -> Reply {
        let error_type = match self {
            SinkError::Rejected { .. } => "SinkRejected",
            SinkError::Unavailable { .. } | SinkError::Untrusted { .. } => "SinkUnavailable",
            SinkError::Reply {
                too_large: true, ..
            } => "SinkReplyTooLarge",
            SinkError::Reply { .. } => "SinkReplyBroken",
        };
        error(StatusCode::BAD_GATEWAY, error_type, &self.to_string())
    }
}

/// 410, as AWS answers an answer to a delivery that timed out (the runtime's post of an
/// invocation id that is no longer current).
impl IntoReply for StaleDelivery {
    fn into_reply(self) -> Reply {
        error(StatusCode::GONE, "InvokeTimeout", &self.to_string())
    }
}

impl IntoReply for RouteError<'_> {
    fn into_reply(self) -> Reply {
        match &self {
            RouteError::NotFound { .. } => {
                error(StatusCode::NOT_FOUND, "NotFound", &self.to_string())
            }
            RouteError::MethodNotAllowed { allowed, .. } => {
                let mut reply = error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    &self.to_string(),
                );
                reply
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allowed));
                reply
            }
        }
    }
}

/// AWS's answer, word for word, to an id that is unknown, answered or another runtime's.
impl IntoReply for InvalidRequestId {
    fn into_reply(self) -> Reply {
        error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            &self.to_string(),
        )
    }
}

fn retry_later(mut reply: Reply) -> Reply {
    reply
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    reply
}

/// The rest of the body may still be on the wire: the connection cannot be reused.
fn close(mut reply: Reply) -> Reply {
    reply
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    reply
}

#[cfg(test)]
mod tests;
