//! Lambda's HTTP-integration response prelude: a streamed response of content type
//! `application/vnd.awslambda.http-integration-response` starts with a JSON object
//! (`statusCode`, `headers`, `multiValueHeaders`, `cookies`), then 8 NUL bytes, then the
//! payload. [`Splitter`] finds the prelude in chunks as they arrive; [`parse`] reads it into
//! a [`Head`]. Pure: no I/O.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::dispatch::stream::Head;

/// The content type that announces a prelude.
pub const CONTENT_TYPE: &str = "application/vnd.awslambda.http-integration-response";

/// The bytes that end a prelude.
const DELIMITER: [u8; 8] = [0; 8];

/// Most bytes a prelude may take: headers and cookies, not a body.
pub const MAX_PRELUDE: usize = 1 << 20;

/// Whether `content_type` announces a prelude.
pub fn announced(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case(CONTENT_TYPE))
    })
}

/// Collects chunks until the delimiter: then the prelude and the payload bytes after it.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: BytesMut,
}

impl Splitter {
    /// Adds a chunk. `Ok(Some((prelude, rest)))` once the delimiter is seen; `Err` when the
    /// prelude passes [`MAX_PRELUDE`].
    pub fn push(&mut self, chunk: &[u8]) -> Result<Option<(Bytes, Bytes)>, String> {
        // The delimiter may straddle chunks: search from just before the new bytes.
        let from = self.buf.len().saturating_sub(DELIMITER.len() - 1);
        self.buf.extend_from_slice(chunk);
        if let Some(at) = find(&self.buf[from..]).map(|i| i + from) {
            let mut all = std::mem::take(&mut self.buf).freeze();
            let rest = all.split_off(at + DELIMITER.len());
            all.truncate(at);
            return Ok(Some((all, rest)));
        }
        if self.buf.len() > MAX_PRELUDE {
            return Err(format!(
                "no 8 NUL bytes ending the prelude within its first {MAX_PRELUDE} bytes"
            ));
        }
        Ok(None)
    }

    /// The stream ended before the delimiter.
    pub fn unterminated(&self) -> String {
        format!(
            "the response ended after {} bytes without the 8 NUL bytes that end the prelude",
            self.buf.len()
        )
    }
}

fn find(hay: &[u8]) -> Option<usize> {
    hay.windows(DELIMITER.len()).position(|w| w == DELIMITER)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Prelude {
    status_code: Option<Value>,
    #[serde(default)]
    headers: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    multi_value_headers: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    cookies: Option<Vec<Value>>,
}

/// Reads a prelude. The message of an error says what is wrong with it.
pub fn parse(prelude: &[u8]) -> Result<Head, String> {
    let p: Prelude = serde_json::from_slice(prelude)
        .map_err(|e| format!("the prelude is not a JSON object of the expected shape: {e}"))?;
    let status = match p.status_code {
        None | Some(Value::Null) => StatusCode::OK,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .and_then(|n| StatusCode::from_u16(n).ok())
            .filter(|s| s.as_u16() >= 200)
            .ok_or_else(|| format!("statusCode {n} is not an HTTP status from 200 to 999"))?,
        Some(other) => return Err(format!("statusCode must be a number, not {other}")),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in p.headers.iter().flatten() {
        // `lambda_runtime` writes a repeated header as an array.
        for v in values(name, value, "headers")? {
            headers.append(header_name(name)?, header_value(name, &v)?);
        }
    }
    for (name, value) in p.multi_value_headers.iter().flatten() {
        let Value::Array(_) = value else {
            return Err(format!(
                "multiValueHeaders.{name} must be an array of strings"
            ));
        };
        let header = header_name(name)?;
        // A header in both maps keeps the multi-value list, as API Gateway does.
        headers.remove(&header);
        for v in values(name, value, "multiValueHeaders")? {
            headers.append(header.clone(), header_value(name, &v)?);
        }
    }
    let mut cookies = Vec::new();
    for c in p.cookies.into_iter().flatten() {
        match c {
            Value::String(s) if HeaderValue::from_str(&s).is_ok() => cookies.push(s),
            other => return Err(format!("cookie {other} is not a valid Set-Cookie value")),
        }
    }
    Ok(Head {
        status,
        headers,
        cookies,
    })
}

/// The string values of a header given as a string, a number, a boolean or an array.
fn values(name: &str, value: &Value, field: &str) -> Result<Vec<String>, String> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(_) | Value::Bool(_) => Ok(v.to_string()),
        other => Err(format!(
            "{field}.{name} has a value that is not a string: {other}"
        )),
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        Value::Null => Ok(Vec::new()),
        v => Ok(vec![one(v)?]),
    }
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|_| format!("header {name} has an invalid value"))
}

#[cfg(test)]
mod tests;
