//! Conversions at the Lambda component's boundary, pure: an invocation into the world's
//! context record, a `handle` result into an `Outcome`, a failed call into an `Ended`.

use bytes::Bytes;
use wasmtime::Trap;
use wasmtime_wasi::I32Exit;

use super::bindings::exports::lambda::function::handler::{
    Context as WitContext, FunctionError, Response,
};
use crate::context::Context as LambdaContext;
use crate::dispatch::{Invocation, Outcome, ResponseSize, check_response_size};
use crate::invoker::Ended;
use crate::invoker::wasm::DeadlineExceeded;
use crate::lambda_error::Diagnostic;

/// Longest error type kept from a guest (as for `lambda_v1`).
const MAX_ERROR_TYPE: usize = 1024;

/// The context record of `inv`, with the defaults every transport shares: built from the
/// `lambda_v1` context JSON, so a key added there (the tenant id) arrives here too.
pub(super) fn wit_context(inv: &Invocation, function_arn: &str) -> WitContext {
    let json = LambdaContext::of(inv, function_arn).json();
    serde_json::from_slice(&json).unwrap_or_else(|_| WitContext {
        request_id: inv.id.to_string(),
        deadline_ms: inv.deadline_ms,
        invoked_function_arn: function_arn.to_owned(),
        trace_id: None,
        client_context: None,
        cognito_identity: None,
        tenant_id: None,
        content_type: crate::context::DEFAULT_CONTENT_TYPE.to_owned(),
    })
}

/// The outcome of a `handle` call that returned.
pub(super) fn outcome(result: Result<Response, FunctionError>, body_limit: usize) -> Outcome {
    match result {
        Ok(response) => {
            let size = ResponseSize::Exactly(response.body.len());
            match check_response_size(size, body_limit) {
                Ok(()) => Outcome::Response {
                    body: Bytes::from(response.body),
                    content_type: response.content_type.filter(|c| !c.trim().is_empty()),
                },
                Err(e) => Outcome::Failed(e),
            }
        }
        Err(err) => Outcome::FunctionError(Diagnostic {
            error_type: match truncate(err.error_type, MAX_ERROR_TYPE) {
                t if t.is_empty() => "Unhandled".into(),
                t => t,
            },
            error_message: truncate(err.error_message, body_limit),
            stack_trace: None,
        }),
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// How a call into the component ended when it did not return.
pub(super) fn ended_by(e: &wasmtime::Error) -> Ended {
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        if exit.0 == 0 {
            Ended::Returned
        } else {
            Ended::Exit(exit.0)
        }
    } else if e.downcast_ref::<DeadlineExceeded>().is_some() {
        Ended::Deadline
    } else if let Some(trap) = e.downcast_ref::<Trap>() {
        // A component's trap may already say so.
        let text = trap.to_string();
        Ended::Trap(if text.starts_with("wasm trap") {
            text
        } else {
            format!("wasm trap: {text}")
        })
    } else {
        Ended::Trap(format!("{e:#}"))
    }
}
