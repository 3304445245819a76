//! The Lambda context of one invocation (request id, deadline, ARN, trace id, client
//! context, identity, content type), with its defaults decided once and one encoding per
//! transport: the Runtime API's `/next` headers, the `lambda_v1` context JSON, and the
//! environment of a plain WASI command. Pure: no I/O.
//!
//! Defaults, the same on every transport: the content type is `application/json` when the
//! caller gave none; a trace id, client context or identity the caller did not send is
//! absent (no header, no variable, `null` in the JSON as guest-sdk/ABI.md documents), never
//! an empty value. A value that could not travel as a header (a control character) counts as
//! absent everywhere, so that a native bootstrap and a WASI guest see the same context.

use std::io::Write;

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::dispatch::Invocation;

/// The content type of an event whose caller gave none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// The context of one invocation, defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Context<'a> {
    request_id: &'a str,
    deadline_ms: u64,
    invoked_function_arn: &'a str,
    trace_id: Option<&'a str>,
    /// Raw JSON text, as the caller sent it.
    client_context: Option<&'a str>,
    /// Raw JSON text, as the caller sent it.
    cognito_identity: Option<&'a str>,
    content_type: &'a str,
    /// The caller's tenant (tenant isolation); `null` without it.
    tenant_id: Option<&'a str>,
}

impl<'a> Context<'a> {
    /// The context of `inv` for the function `function_arn`.
    pub fn of(inv: &'a Invocation, function_arn: &'a str) -> Context<'a> {
        let e = &inv.event;
        Context {
            request_id: &inv.id,
            deadline_ms: inv.deadline_ms,
            invoked_function_arn: function_arn,
            trace_id: usable(&e.trace_id),
            client_context: usable(&e.client_context),
            cognito_identity: usable(&e.cognito_identity),
            content_type: usable(&e.content_type).unwrap_or(DEFAULT_CONTENT_TYPE),
            tenant_id: e.tenant_id.as_ref().map(|t| t.as_str()),
        }
    }

    /// The headers of a `/next` reply, as AWS sends them. `function_arn` is the ARN as a
    /// header value, checked once at start-up.
    pub fn headers(&self, function_arn: &HeaderValue) -> HeaderMap {
        let mut h = HeaderMap::with_capacity(8);
        let mut put = |name: HeaderName, value: &str| {
            // `of` kept only values that are valid here.
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        };
        put(
            HeaderName::from_static("lambda-runtime-aws-request-id"),
            self.request_id,
        );
        if let Some(t) = self.trace_id {
            put(HeaderName::from_static("lambda-runtime-trace-id"), t);
        }
        if let Some(c) = self.client_context {
            put(HeaderName::from_static("lambda-runtime-client-context"), c);
        }
        if let Some(c) = self.cognito_identity {
            put(
                HeaderName::from_static("lambda-runtime-cognito-identity"),
                c,
            );
        }
        if let Some(t) = self.tenant_id {
            put(HeaderName::from_static("lambda-runtime-aws-tenant-id"), t);
        }
        put(header::CONTENT_TYPE, self.content_type);
        h.insert(
            HeaderName::from_static("lambda-runtime-deadline-ms"),
            HeaderValue::from(self.deadline_ms),
        );
        h.insert(
            HeaderName::from_static("lambda-runtime-invoked-function-arn"),
            function_arn.clone(),
        );
        h
    }

    /// The context JSON a `lambda_v1` guest reads (guest-sdk/ABI.md): the fields in the
    /// order of the struct, as `serde_json` writes the struct (a test holds the two equal).
    /// Written by hand so that only the values are escaped, not the constant keys, on every
    /// invocation.
    pub fn json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(192 + self.invoked_function_arn.len());
        out.extend_from_slice(b"{\"request_id\":");
        json_str(&mut out, Some(self.request_id));
        out.extend_from_slice(b",\"deadline_ms\":");
        // Writing into a `Vec` cannot fail.
        let _ = write!(out, "{}", self.deadline_ms);
        out.extend_from_slice(b",\"invoked_function_arn\":");
        json_str(&mut out, Some(self.invoked_function_arn));
        out.extend_from_slice(b",\"trace_id\":");
        json_str(&mut out, self.trace_id);
        out.extend_from_slice(b",\"client_context\":");
        json_str(&mut out, self.client_context);
        out.extend_from_slice(b",\"cognito_identity\":");
        json_str(&mut out, self.cognito_identity);
        out.extend_from_slice(b",\"content_type\":");
        json_str(&mut out, Some(self.content_type));
        out.extend_from_slice(b",\"tenant_id\":");
        json_str(&mut out, self.tenant_id);
        out.push(b'}');
        out
    }

    /// The environment of a plain WASI command (guest-sdk/ABI.md).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AWS_LAMBDA_REQUEST_ID", self.request_id.to_owned()),
            ("AWS_LAMBDA_DEADLINE_MS", self.deadline_ms.to_string()),
            (
                "AWS_LAMBDA_INVOKED_FUNCTION_ARN",
                self.invoked_function_arn.to_owned(),
            ),
            (
                "AWS_LAMBDA_EVENT_CONTENT_TYPE",
                self.content_type.to_owned(),
            ),
        ];
        if let Some(t) = self.trace_id {
            env.push(("AWS_LAMBDA_TRACE_ID", t.to_owned()));
            env.push(("_X_AMZN_TRACE_ID", t.to_owned()));
        }
        if let Some(c) = self.client_context {
            env.push(("AWS_LAMBDA_CLIENT_CONTEXT", c.to_owned()));
        }
        if let Some(c) = self.cognito_identity {
            env.push(("AWS_LAMBDA_COGNITO_IDENTITY", c.to_owned()));
        }
        if let Some(t) = self.tenant_id {
            env.push(("AWS_LAMBDA_TENANT_ID", t.to_owned()));
        }
        env
    }
}

/// `value` as a JSON string, escaped by `serde_json`, or `null`.
fn json_str(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        // Writing a string into a `Vec` cannot fail.
        Some(v) => {
            let _ = serde_json::to_writer(&mut *out, v);
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// The headers of a `/next` reply for `inv`.
pub fn next_headers(inv: &Invocation, function_arn: &HeaderValue) -> HeaderMap {
    // The ARN was checked as a header value at start-up, so it is visible ASCII.
    let arn = function_arn.to_str().unwrap_or_default();
    Context::of(inv, arn).headers(function_arn)
}

/// `v`, unless it is one no header could carry.
fn usable(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|v| header_safe(v))
}

/// Whether `v` can be a header value (no control characters but tab), so that every
/// transport can carry it.
fn header_safe(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests;
