//! API Gateway's Lambda proxy integration (`RESPONSE_FORMAT=API_GATEWAY`): a request becomes
//! the proxy event AWS sends (payload 1.0 of REST APIs by default, 2.0 of HTTP APIs;
//! `request.rs`), and the function's proxy response becomes the reply (`response.rs`). Pure: no
//! I/O, no configuration reading.
//!
//! AWS is the reference: the Go runtime's last version ignored `API_GATEWAY` (its converter
//! fell through to passthrough), and its older mapper filled only method, path, headers,
//! query and body. The event is built with `aws_lambda_events`' types, then corrected where
//! the crate serialises differently from AWS (each place says how).

mod request;
mod response;

use std::net::IpAddr;
use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;

use super::BadRequest;
use super::context::{Context, ContextOptions};
use crate::dispatch::{Event, Outcome};
use crate::reply::{IntoReply, Reply};

pub use response::proxy_reply;

/// The payload format version (`API_GATEWAY_PAYLOAD_VERSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadVersion {
    /// REST APIs' format, and AWS's default.
    #[default]
    V1,
    /// HTTP APIs' format.
    V2,
}

/// Reads `API_GATEWAY_PAYLOAD_VERSION`: `1.0` (or `1`) or `2.0` (or `2`).
pub fn parse_version(value: &str) -> Result<PayloadVersion, String> {
    match value.trim() {
        "1.0" | "1" => Ok(PayloadVersion::V1),
        "2.0" | "2" => Ok(PayloadVersion::V2),
        other => Err(format!(
            "API_GATEWAY_PAYLOAD_VERSION must be 1.0 or 2.0, not {other:?}"
        )),
    }
}

/// Every event's stage. `$default` is the only stage AWS names by itself (an HTTP API's
/// auto-deployed stage; REST APIs have none until one is created), and with it
/// `requestContext.path` carries no stage prefix, as here.
const STAGE: &str = "$default";
/// Placeholder account (the README's `AWS_ACCOUNT_ID` default). The API id is the first label
/// of the Host, as `{apiId}.execute-api.{region}.amazonaws.com` is on AWS.
const ACCOUNT_ID: &str = "000000000000";
/// The catch-all route every request matches here, as a greedy proxy resource on AWS.
const PROXY_RESOURCE: &str = "/{proxy+}";
const ROUTE_KEY: &str = "$default";

/// The proxy event of `parts` and `body`, as JSON in the event's body. The context headers
/// (client context, Cognito identity, trace id) are read as in every wrapper. `source_ip` is
/// the peer's address; when it is a loopback (a proxy on the same host, such as Knative's
/// queue-proxy), the first `X-Forwarded-For` address is the client.
pub fn decode(
    parts: &Parts,
    body: Bytes,
    version: PayloadVersion,
    source_ip: Option<IpAddr>,
    options: &ContextOptions,
) -> Result<Event, BadRequest> {
    let context = Context::read(&parts.headers, options)?;
    let json = request::event(parts, &body, version, source_ip, SystemTime::now())
        .map_err(|e| BadRequest(format!("cannot build the API Gateway event: {e}")))?;
    Context {
        content_type: Some("application/json".into()),
        ..context
    }
    .into_event(Bytes::from(json))
}

/// The reply of any outcome. A function error keeps the passthrough reply (500 with
/// `X-Amz-Function-Error` and the error's JSON) rather than AWS's opaque
/// 502 `{"message": "Internal server error"}`: 500 is what users of the Go runtime got for
/// a function error in API Gateway mode (its mapper kept the runtime's 500; its last
/// version passed through), and 502 stays the sign of a malformed proxy response. A
/// deadline is 504 and a failed runner 502, as everywhere.
pub fn encode(request_id: &str, outcome: Outcome, version: PayloadVersion) -> Reply {
    match outcome {
        Outcome::Response { body, .. } => {
            proxy_reply(&body, version).unwrap_or_else(IntoReply::into_reply)
        }
        other => super::encode(request_id, other),
    }
}

#[cfg(test)]
mod tests;
