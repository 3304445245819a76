//! The context headers a public caller may send with an invocation (`X-Amz-Client-Context`,
//! `X-Amz-Cognito-Identity`, `X-Amzn-Trace-Id`, and the event's `Content-Type`), read and
//! checked in one place for every wrapper. What it lets through is forwarded to the runtime
//! in `/next` headers, so it accepts only what every real runtime client survives: the
//! crates.io `lambda_runtime` (1.5), AWS's Python (`awslambdaric`) and Node.js
//! (`aws-lambda-ric`) clients, and a bash bootstrap using curl. A value in any other shape is
//! a [`BadRequest`], never forwarded. Pure: no I/O, no configuration reading.
//!
//! What those clients require, and so what is checked here:
//! - `lambda_runtime` parses the client context into a struct whose `client`, when present,
//!   needs all five fields as strings, and whose `custom` map holds strings only; it needs
//!   both Cognito fields as strings; it fails the whole runtime on any other shape. It also
//!   rejects a header that is not visible ASCII, so non-ASCII (and DEL) is sent as `\u`
//!   escapes.
//! - `awslambdaric` reads both values with `dict.get`, so each must be a JSON object (and
//!   `client` an object); `aws-lambda-ric` takes any JSON. `awslambdaric` 4.x also takes the
//!   W3C trace context out of the client context's `w3c` object (its string `traceparent`,
//!   `tracestate` and `baggage`, served by `context.w3c()`); the other clients ignore the key.
//!   So `w3c` is accepted holding those three, as strings, and nothing else.
//! - curl stops at a 100 KB header line and Node.js's HTTP parser at 16 KiB of headers, so
//!   each forwarded value has a cap well under both (see the constants).

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use serde::{Deserialize, Serialize};

use super::BadRequest;
use crate::dispatch::Event;

mod trace;

pub use trace::{MAX_TRACE_ID, new_trace_id};

/// The largest `X-Amz-Client-Context` accepted: AWS's Invoke API limit ("up to 3,583 bytes
/// of base64-encoded data").
pub const MAX_CLIENT_CONTEXT_BASE64: usize = 3_583;
/// The largest client context forwarded, as JSON text, once a wrapper has added to it (the
/// CloudEvents wrapper adds the event's attributes). Leaves the `/next` headers under
/// Node.js's 16 KiB.
pub const MAX_CLIENT_CONTEXT_JSON: usize = 8 * 1024;
/// The largest `X-Amz-Cognito-Identity` accepted (two ids of some 50 bytes each on AWS).
pub const MAX_COGNITO_IDENTITY: usize = 1024;
/// The largest content type forwarded (RFC 6838 caps type and subtype at 127 characters
/// each; the rest is room for parameters).
pub const MAX_CONTENT_TYPE: usize = 1024;

/// Which context headers a caller may set (`PUBLIC_CONTEXT_HEADERS`, `TRACING_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextOptions {
    /// Take `X-Amz-Client-Context` and `X-Amz-Cognito-Identity` from the caller, as AWS's
    /// Invoke API does. When false they are dropped, as a Lambda Function URL drops them.
    pub accept_context_headers: bool,
    /// Make a fresh X-Ray trace id when the caller sent none (Lambda's `Active` tracing).
    /// When false (`PassThrough`), an invocation without one has none.
    pub active_tracing: bool,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            accept_context_headers: true,
            active_tracing: false,
        }
    }
}

/// The checked context of a request, ready to become an event's ([`Context::into_event`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The request's `Content-Type`, when it is text.
    pub content_type: Option<String>,
    pub client_context: Option<ClientContext>,
    /// The identity as JSON text, ready for its header.
    pub cognito_identity: Option<String>,
    pub trace_id: Option<String>,
}

impl Context {
    /// Reads and checks the context headers of `headers`.
    pub fn read(headers: &HeaderMap, options: &ContextOptions) -> Result<Context, BadRequest> {
        let content_type = text(headers.get(header::CONTENT_TYPE)).map(str::to_owned);
        let (client_context, cognito_identity) = if options.accept_context_headers {
            (
                present(headers, &CLIENT_CONTEXT)?
                    .map(ClientContext::from_header)
                    .transpose()?,
                present(headers, &COGNITO_IDENTITY)?
                    .map(cognito_identity)
                    .transpose()?,
            )
        } else {
            (None, None)
        };
        let trace_id = match present(headers, &TRACE_ID)? {
            Some(raw) => Some(trace::check(raw)?),
            None if options.active_tracing => Some(new_trace_id()),
            None => None,
        };
        Ok(Context {
            content_type,
            client_context,
            cognito_identity,
            trace_id,
        })
    }

    /// The client context as the JSON text of its header.
    pub fn client_context_json(&self) -> Result<Option<String>, BadRequest> {
        self.client_context
            .as_ref()
            .map(ClientContext::to_header)
            .transpose()
    }

    /// The event of `body` in this context. Checked here, not when read, as a wrapper may
    /// have replaced the content type (by a CloudEvent's `datacontenttype`).
    pub fn into_event(self, body: Bytes) -> Result<Event, BadRequest> {
        if let Some(ct) = &self.content_type
            && ct.len() > MAX_CONTENT_TYPE
        {
            return Err(BadRequest(format!(
                "the event's content type is {} bytes long; at most {MAX_CONTENT_TYPE} are accepted",
                ct.len()
            )));
        }
        Ok(Event {
            body,
            client_context: self.client_context_json()?,
            content_type: self.content_type,
            cognito_identity: self.cognito_identity,
            trace_id: self.trace_id,
            tenant_id: None,
            http: None,
        })
    }
}

/// A header's value as trimmed text, `None` when absent, empty or not visible ASCII.
fn text(value: Option<&HeaderValue>) -> Option<&str> {
    value
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

// The context headers, looked up as `HeaderName`s: a `&str` name is parsed again at every
// lookup.
static CLIENT_CONTEXT: HeaderName = HeaderName::from_static("x-amz-client-context");
static COGNITO_IDENTITY: HeaderName = HeaderName::from_static("x-amz-cognito-identity");
static TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// A context header's trimmed value; `None` when absent or empty, an error when it is not
/// visible ASCII (no runtime client would read it).
fn present<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, BadRequest> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) => Ok(Some(s.trim()).filter(|s| !s.is_empty())),
            Err(_) => Err(BadRequest(format!(
                "{} must be visible ASCII",
                canonical(name)
            ))),
        },
    }
}

fn canonical(name: &HeaderName) -> &'static str {
    match name.as_str() {
        "x-amz-client-context" => "X-Amz-Client-Context",
        "x-amz-cognito-identity" => "X-Amz-Cognito-Identity",
        _ => "X-Amzn-Trace-Id",
    }
}

/// The client context in the shape the AWS mobile SDKs send and every runtime client reads:
/// an object with optional `client`, `custom`, `env` and `w3c`, every value a string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientApplication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w3c: Option<W3cTraceContext>,
}

/// The W3C trace context a caller propagates in a client context, as `awslambdaric` 4.x
/// reads it: only these fields, each a string (it drops any other key or value silently, so
/// a caller sending one would lose it unseen).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct W3cTraceContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baggage: Option<String>,
}

/// The mobile application of a client context. Every field is required: `lambda_runtime`
/// fails on a `client` that lacks one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientApplication {
    pub installation_id: String,
    pub app_title: String,
    pub app_version_name: String,
    pub app_version_code: String,
    pub app_package_name: String,
}

impl ClientContext {
    /// As AWS's Invoke API: the client context comes base64-encoded; the function receives
    /// it decoded.
    fn from_header(raw: &str) -> Result<ClientContext, BadRequest> {
        if raw.len() > MAX_CLIENT_CONTEXT_BASE64 {
            return Err(BadRequest(format!(
                "X-Amz-Client-Context is {} bytes long; at most {MAX_CLIENT_CONTEXT_BASE64} are accepted",
                raw.len()
            )));
        }
        let not_json =
            || BadRequest("X-Amz-Client-Context must be a base64-encoded JSON object".into());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| not_json())?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| not_json())?;
        if !value.is_object() {
            return Err(not_json());
        }
        // serde reads a struct from an array too; runtime clients read objects only.
        for key in ["client", "w3c"] {
            if value
                .get(key)
                .is_some_and(|c| !c.is_object() && !c.is_null())
            {
                return Err(BadRequest(format!(
                    "X-Amz-Client-Context: `{key}` must be a JSON object"
                )));
            }
        }
        serde_json::from_value(value).map_err(|e| {
            BadRequest(format!(
                "X-Amz-Client-Context must hold only `client` (installation_id, app_title, \
                 app_version_name, app_version_code and app_package_name), `custom`, `env` \
                 and `w3c` (traceparent, tracestate and baggage), every value a string: {e}"
            ))
        })
    }

    /// The JSON text of the `Lambda-Runtime-Client-Context` header, within
    /// [`MAX_CLIENT_CONTEXT_JSON`].
    pub fn to_header(&self) -> Result<String, BadRequest> {
        let text = serde_json::to_string(self)
            .map_err(|e| BadRequest(format!("cannot encode the client context: {e}")))?;
        let text = ascii_json(&text);
        if text.len() > MAX_CLIENT_CONTEXT_JSON {
            return Err(BadRequest(format!(
                "the client context would be {} bytes long; at most {MAX_CLIENT_CONTEXT_JSON} \
                 can be passed to the function",
                text.len()
            )));
        }
        Ok(text)
    }
}

/// The identity as `lambda_runtime` requires it: both ids, as strings, and nothing else.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CognitoIdentity {
    #[serde(rename = "cognitoIdentityId")]
    id: String,
    #[serde(rename = "cognitoIdentityPoolId")]
    pool_id: String,
}

fn cognito_identity(raw: &str) -> Result<String, BadRequest> {
    if raw.len() > MAX_COGNITO_IDENTITY {
        return Err(BadRequest(format!(
            "X-Amz-Cognito-Identity is {} bytes long; at most {MAX_COGNITO_IDENTITY} are accepted",
            raw.len()
        )));
    }
    let shape = |e: &dyn std::fmt::Display| {
        BadRequest(format!(
            "X-Amz-Cognito-Identity must be a JSON object with the strings cognitoIdentityId \
             and cognitoIdentityPoolId and nothing else: {e}"
        ))
    };
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| shape(&e))?;
    if !value.is_object() {
        // serde reads a struct from an array too.
        return Err(shape(&"not an object"));
    }
    let identity: CognitoIdentity = serde_json::from_value(value).map_err(|e| shape(&e))?;
    // Written anew: the caller's text could repeat a key, which `lambda_runtime` refuses.
    serde_json::to_string(&identity)
        .map(|text| ascii_json(&text))
        .map_err(|e| BadRequest(format!("cannot encode the Cognito identity: {e}")))
}

/// JSON text with every character that is not visible ASCII as a `\u` escape (outside
/// strings there are none; serde_json already escapes control characters but not DEL).
fn ascii_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && c != '\u{7f}' {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
