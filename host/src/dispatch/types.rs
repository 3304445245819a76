//! The Dispatcher's vocabulary: what a runner receives (an [`Invocation`] of an [`Event`])
//! and how an invocation ends (an [`Outcome`], or an [`InvocationError`] when the function
//! gave no answer), with the one check of a response's size. Plain data: no I/O.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::lambda_error::Diagnostic;

/// What the function receives: the payload and the context AWS passes with it.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub body: Bytes,
    pub content_type: Option<String>,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    pub trace_id: Option<String>,
    /// The caller's tenant (`TENANT_ISOLATION_MODE=PER_TENANT`).
    pub tenant_id: Option<crate::tenancy::TenantId>,
    /// The public request's method, URI and headers, for functions that take the HTTP
    /// request itself (`wasi:http` components); `None` for the others.
    pub http: Option<Arc<RequestHead>>,
}

/// The line and headers of the public request.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: http::Method,
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
}

/// A reply whose status and headers the function chose (`wasi:http` components).
#[derive(Debug)]
pub struct HttpReply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// An invocation handed to a runner.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub id: Arc<str>,
    pub event: Event,
    pub deadline: Instant,
    /// The same deadline as epoch milliseconds (`Lambda-Runtime-Deadline-Ms`).
    pub deadline_ms: u64,
}

/// How an invocation ended. Every admitted invocation ends exactly once.
#[derive(Debug)]
pub enum Outcome {
    Response {
        body: Bytes,
        content_type: Option<String>,
    },
    /// A response whose body arrives over time (Lambda's streaming mode, a streaming
    /// guest, a command's stdout, a `wasi:http` component): see [`super::stream`].
    Stream(super::stream::Streamed),
    FunctionError(Diagnostic),
    Failed(InvocationError),
    /// The function's own HTTP reply (`wasi:http` components, PASSTHROUGH only).
    Http(HttpReply),
}

impl Outcome {
    /// The outcome as a plain response, for wrappers that do not pass HTTP replies through.
    pub fn plain(self) -> Outcome {
        match self {
            Outcome::Http(r) => Outcome::Response {
                content_type: r
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                body: r.body,
            },
            other => other,
        }
    }
}

/// An invocation that ended without an answer from the function.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvocationError {
    #[error("Task timed out after {:.2} seconds", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("Runtime exited before answering: {0}")]
    RunnerExited(String),
    #[error(
        "Response payload size ({} bytes) exceeded maximum allowed payload size ({limit} bytes).",
        size.describe(*limit)
    )]
    ResponseTooLarge { size: ResponseSize, limit: usize },
    #[error("the function crashed: {0}")]
    Trap(String),
    #[error("the function failed to initialize: {0}")]
    InitFailed(String),
    /// Every runner is failing init: what the runtime reported (or how it exited).
    #[error("{}: {}", .0.error_type, .0.error_message)]
    InitError(Arc<Diagnostic>),
    /// The host could not run the function (e.g. it cannot create a sandbox): not the
    /// function's fault, but the invocation has no answer.
    #[error("the host could not run the function: {0}")]
    HostFailure(String),
    #[error("the host is shutting down")]
    ShuttingDown,
    /// The tenant already has its share of the queue waiting (`TENANT_QUEUE_SHARE`).
    #[error("tenant {0:?} has too many invocations pending; retry later")]
    TenantThrottled(String),
    /// The runtime asked for a response mode Lambda does not have.
    #[error("invalid Lambda-Runtime-Function-Response-Mode: {0}")]
    InvalidResponseMode(String),
    /// A streamed response's HTTP-integration prelude cannot be read.
    #[error("malformed HTTP integration response prelude: {0}")]
    MalformedPrelude(String),
}

impl InvocationError {
    /// The `errorType` callers see, in the spirit of Lambda's own (`Sandbox.Timedout`,
    /// `Runtime.ExitError`, ...). A host failure is `Sandbox.HostFailure`: the execution
    /// environment, not the runtime, failed.
    pub fn error_type(&self) -> &'static str {
        match self {
            InvocationError::Timeout(_) => "Sandbox.Timedout",
            InvocationError::RunnerExited(_) => "Runtime.ExitError",
            InvocationError::ResponseTooLarge { .. } => "Function.ResponseSizeTooLarge",
            InvocationError::Trap(_) => "Runtime.WasmTrap",
            InvocationError::InitFailed(_) => "Runtime.InitError",
            // The reply carries the reported type itself (reply/errors.rs).
            InvocationError::InitError(_) => "Runtime.InitError",
            InvocationError::HostFailure(_) => "Sandbox.HostFailure",
            InvocationError::ShuttingDown => "ServiceUnavailable",
            InvocationError::TenantThrottled(_) => "TooManyRequestsException",
            InvocationError::InvalidResponseMode(_) => "Runtime.InvalidResponseModeHeader",
            InvocationError::MalformedPrelude(_) => "Runtime.MalformedHttpIntegrationResponse",
        }
    }
}

/// The size of a response, as far as its reader knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseSize {
    /// The whole response was seen.
    Exactly(usize),
    /// The reader stopped once the response passed the limit: its real size is unknown.
    PastLimit,
}

impl ResponseSize {
    /// The size as the error message says it.
    fn describe(&self, limit: usize) -> String {
        match self {
            ResponseSize::Exactly(n) => n.to_string(),
            ResponseSize::PastLimit => format!("more than {limit}"),
        }
    }
}

/// The one check of a response's size against `limit`; the error says the real size when
/// it is known, and "more than {limit}" when the reader stopped past the limit.
pub fn check_response_size(size: ResponseSize, limit: usize) -> Result<(), InvocationError> {
    match size {
        ResponseSize::Exactly(n) if n <= limit => Ok(()),
        size => Err(InvocationError::ResponseTooLarge { size, limit }),
    }
}
