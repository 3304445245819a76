//! The response half of the API Gateway wrapper: a function's proxy response (payload 1.0
//! or 2.0) as the HTTP reply.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;

use super::PayloadVersion;
use crate::reply::{self, Reply};
use crate::wrapper::BadReply;

/// The HTTP reply of a function's proxy response. Headers: `headers` merged with
/// `multiValueHeaders` (whose values win for a name in both, as AWS merges them) and, in
/// 2.0, one `Set-Cookie` per entry of `cookies`; `Content-Type` is `application/json` when
/// the function gives none, as API Gateway's default; `Content-Length`,
/// `Transfer-Encoding` and `Connection` are the server's to set and are dropped. A body
/// with `isBase64Encoded` is decoded. In 2.0, a value that is not an object with a
/// `statusCode` is the body of a 200 JSON reply (a string as its text), as AWS documents.
///
/// Anything else that is not a valid proxy response is an `Err` saying what was wrong;
/// its [`IntoReply`](crate::reply::IntoReply) turns it into the 502 the caller answers.
pub fn proxy_reply(body: &[u8], version: PayloadVersion) -> Result<Reply, BadReply> {
    proxy_response(body, version).map_err(BadReply::ProxyResponse)
}

fn proxy_response(body: &[u8], version: PayloadVersion) -> Result<Reply, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("the function's output is not JSON ({e})")))?;
    let has_status = value.get("statusCode").is_some();
    match version {
        PayloadVersion::V2 if !has_status => return Ok(shorthand(body, value)),
        PayloadVersion::V1 if !value.is_object() => {
            return Err(malformed("the function's output is not a JSON object"));
        }
        PayloadVersion::V1 if !has_status => return Err(malformed("statusCode is missing")),
        _ => {}
    }
    check_fields(&value)?;
    let response = match version {
        PayloadVersion::V1 => {
            let r: ApiGatewayProxyResponse =
                serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
            ProxyResponse {
                status: r.status_code,
                headers: r.headers,
                multi_value_headers: r.multi_value_headers,
                cookies: Vec::new(),
                body: r.body,
                is_base64_encoded: r.is_base64_encoded,
            }
        }
        PayloadVersion::V2 => {
            let mut value = value;
            // The crate requires `cookies`; AWS does not.
            if let Value::Object(map) = &mut value
                && map.get("cookies").is_none_or(Value::is_null)
            {
                map.insert("cookies".into(), Value::Array(Vec::new()));
            }
            let r: ApiGatewayV2httpResponse =
                serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
            ProxyResponse {
                status: r.status_code,
                headers: r.headers,
                multi_value_headers: r.multi_value_headers,
                cookies: r.cookies,
                body: r.body,
                is_base64_encoded: r.is_base64_encoded,
            }
        }
    };
    response.into_reply()
}

struct ProxyResponse {
    status: i64,
    headers: HeaderMap,
    multi_value_headers: HeaderMap,
    cookies: Vec<String>,
    body: Option<Body>,
    is_base64_encoded: bool,
}

impl ProxyResponse {
    fn into_reply(self) -> Result<Reply, String> {
        let status = u16::try_from(self.status)
            .ok()
            .filter(|s| (200..=599).contains(s))
            .and_then(|s| StatusCode::from_u16(s).ok())
            .ok_or_else(|| {
                malformed(format!(
                    "statusCode {} is not an HTTP status from 200 to 599",
                    self.status
                ))
            })?;
        let mut headers = self.headers;
        for name in self.multi_value_headers.keys() {
            headers.remove(name);
            for value in self.multi_value_headers.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        for cookie in &self.cookies {
            let value = HeaderValue::from_str(cookie)
                .map_err(|_| malformed(format!("cookie {cookie:?} is not a valid header value")))?;
            headers.append(header::SET_COOKIE, value);
        }
        for name in [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
        ] {
            headers.remove(name);
        }
        if !headers.contains_key(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, reply::JSON);
        }
        let body = match self.body {
            None | Some(Body::Empty) => Bytes::new(),
            Some(Body::Text(text)) if self.is_base64_encoded => {
                let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map(Bytes::from)
                    .map_err(|e| {
                        malformed(format!(
                            "isBase64Encoded is true but body is not base64 ({e})"
                        ))
                    })?
            }
            Some(Body::Text(text)) => Bytes::from(text),
            Some(Body::Binary(bytes)) => Bytes::from(bytes),
            Some(_) => return Err(malformed("body has an unknown form")),
        };
        let mut reply = reply::with_body(status, reply::JSON, body);
        *reply.headers_mut() = headers;
        Ok(reply)
    }
}

/// The fields whose mistakes the crate's deserialiser would report without naming them.
fn check_fields(value: &Value) -> Result<(), String> {
    match value.get("statusCode") {
        Some(Value::Number(n)) if n.is_i64() => {}
        Some(other) => {
            return Err(malformed(format!(
                "statusCode must be an integer, not {other}"
            )));
        }
        None => return Err(malformed("statusCode is missing")),
    }
    match value.get("body") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(other) => {
            return Err(malformed(format!(
                "body must be a string (serialise JSON bodies), not {}",
                kind(other)
            )));
        }
    }
    match value.get("isBase64Encoded") {
        None | Some(Value::Null | Value::Bool(_)) => {}
        Some(other) => {
            return Err(malformed(format!(
                "isBase64Encoded must be a boolean, not {other}"
            )));
        }
    }
    for field in ["headers", "multiValueHeaders"] {
        let headers = match value.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::Object(headers)) => headers,
            Some(other) => {
                return Err(malformed(format!(
                    "{field} must be an object, not {}",
                    kind(other)
                )));
            }
        };
        for (name, values) in headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(malformed(format!(
                    "{name:?} in {field} is not a header name"
                )));
            }
            let values = match values {
                Value::Array(values) => values.iter().collect(),
                one => vec![one],
            };
            for v in values {
                if v.as_str().is_none_or(|v| HeaderValue::from_str(v).is_err()) {
                    return Err(malformed(format!(
                        "the value of header {name:?} in {field} must be a valid header string, not {v}"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// 2.0's inferred response: 200, JSON, the value as the body (a string as its text).
fn shorthand(raw: &[u8], value: Value) -> Reply {
    let body = match value {
        Value::String(s) => Bytes::from(s),
        _ => Bytes::copy_from_slice(raw.trim_ascii()),
    };
    reply::with_body(StatusCode::OK, reply::JSON, body)
}

/// AWS logs "Malformed Lambda proxy response" for all of these; the reason follows.
fn malformed(reason: impl std::fmt::Display) -> String {
    format!("Malformed Lambda proxy response: {reason}")
}
