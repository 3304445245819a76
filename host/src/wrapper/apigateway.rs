//! API Gateway's Lambda proxy integration (`RESPONSE_FORMAT=API_GATEWAY`): a request becomes
//! the proxy event AWS sends (payload 1.0 of REST APIs by default, 2.0 of HTTP APIs), and the
//! function's proxy response becomes the reply. Pure: no I/O, no configuration reading.
//!
//! AWS is the reference: the Go runtime's last version ignored `API_GATEWAY` (its converter
//! fell through to passthrough), and its older mapper filled only method, path, headers,
//! query and body. The event is built with `aws_lambda_events`' types, then corrected where
//! the crate serialises differently from AWS (each place says how).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyRequestContext, ApiGatewayProxyResponse,
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription, ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::query_map::QueryMap;
use base64::Engine;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value};

use super::BadRequest;
use crate::dispatch::{Event, Outcome};
use crate::reply::{self, Reply};

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
/// (client context, Cognito identity, trace id) are read as the passthrough wrapper reads
/// them. `source_ip` is the peer's address; when it is a loopback (a proxy on the same host,
/// such as Knative's queue-proxy), the first `X-Forwarded-For` address is the client.
pub fn decode(
    parts: &Parts,
    body: Bytes,
    version: PayloadVersion,
    source_ip: Option<IpAddr>,
) -> Result<Event, BadRequest> {
    let mut event = super::decode(&parts.headers, Bytes::new())?;
    let request = Incoming::new(parts, &body, source_ip, SystemTime::now());
    let json = match version {
        PayloadVersion::V1 => v1_event(&request),
        PayloadVersion::V2 => v2_event(&request),
    }
    .map_err(|e| BadRequest(format!("cannot build the API Gateway event: {e}")))?;
    event.body = Bytes::from(json);
    event.content_type = Some("application/json".into());
    Ok(event)
}

/// What both payload versions take from a request.
struct Incoming {
    method: Method,
    path: String,
    raw_query: String,
    query: Vec<(String, String)>,
    /// The request's headers with values made valid UTF-8 (JSON strings must be).
    headers: HeaderMap,
    body: Option<String>,
    is_base64_encoded: bool,
    source_ip: String,
    user_agent: Option<String>,
    domain_name: String,
    domain_prefix: String,
    protocol: String,
    request_id: String,
    time: String,
    time_epoch: i64,
}

impl Incoming {
    fn new(parts: &Parts, body: &[u8], peer: Option<IpAddr>, now: SystemTime) -> Incoming {
        let headers = utf8_headers(&parts.headers);
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let domain_name = text(header::HOST)
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .or_else(|| parts.uri.authority().cloned())
            .map(|a| a.host().to_owned())
            .unwrap_or_else(|| "localhost".into());
        let domain_prefix = domain_name.split('.').next().unwrap_or_default().to_owned();
        let (body, is_base64_encoded) = body_field(parts.headers.get(header::CONTENT_TYPE), body);
        let (time, time_epoch) = request_time(now);
        let raw_query = parts.uri.query().unwrap_or_default().to_owned();
        Incoming {
            method: parts.method.clone(),
            path: match parts.uri.path() {
                "" => "/".into(),
                p => p.into(),
            },
            query: parse_query(&raw_query),
            raw_query,
            source_ip: client_ip(peer, &headers),
            user_agent: text(header::USER_AGENT),
            body,
            is_base64_encoded,
            domain_name,
            domain_prefix,
            protocol: format!("{:?}", parts.version),
            request_id: uuid::Uuid::new_v4().to_string(),
            time,
            time_epoch,
            headers,
        }
    }
}

fn v1_event(req: &Incoming) -> serde_json::Result<Vec<u8>> {
    // The root path does not match `/{proxy+}` on AWS: it is the root resource, without
    // path parameters. Path parameters stay percent-encoded, as REST APIs pass them.
    let proxy = req.path.trim_start_matches('/');
    let resource = if proxy.is_empty() {
        "/"
    } else {
        PROXY_RESOURCE
    };

    let mut ctx = ApiGatewayProxyRequestContext::default();
    ctx.account_id = Some(ACCOUNT_ID.into());
    ctx.apiid = Some(req.domain_prefix.clone());
    ctx.stage = Some(STAGE.into());
    ctx.domain_name = Some(req.domain_name.clone());
    ctx.domain_prefix = Some(req.domain_prefix.clone());
    ctx.request_id = Some(req.request_id.clone());
    ctx.protocol = Some(req.protocol.clone());
    ctx.identity.source_ip = Some(req.source_ip.clone());
    ctx.identity.user_agent = req.user_agent.clone();
    ctx.resource_path = Some(resource.into());
    ctx.path = Some(req.path.clone());
    ctx.http_method = req.method.clone();
    ctx.request_time = Some(req.time.clone());
    ctx.request_time_epoch = req.time_epoch;

    let mut e = ApiGatewayProxyRequest::default();
    e.resource = Some(resource.into());
    e.path = Some(req.path.clone());
    e.http_method = req.method.clone();
    // AWS's documented 1.0 example: `headers` holds a repeated header's last value.
    e.headers = last_values(&req.headers);
    e.multi_value_headers = req.headers.clone();
    // ... and `queryStringParameters` a repeated parameter's first, as the crate writes it.
    e.query_string_parameters = query_map(&req.query);
    e.multi_value_query_string_parameters = query_map(&req.query);
    if !proxy.is_empty() {
        e.path_parameters.insert("proxy".into(), proxy.into());
    }
    e.request_context = ctx;
    e.body = req.body.clone();
    e.is_base64_encoded = req.is_base64_encoded;

    let mut json = serde_json::to_value(&e)?;
    if let Value::Object(map) = &mut json {
        // AWS passes header names as the client wrote them; the HTTP server has lowercased
        // them, so they take the canonical form (`Content-Type`), the form the Go runtime's
        // net/http gave them and that 1.0 functions look up.
        for key in ["headers", "multiValueHeaders"] {
            if let Some(Value::Object(h)) = map.get_mut(key) {
                *h = std::mem::take(h)
                    .into_iter()
                    .map(|(k, v)| (canonical_header_name(&k), v))
                    .collect();
            }
        }
        // AWS sends null, not `{}`, for an absent map.
        for key in [
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "pathParameters",
            "stageVariables",
        ] {
            if map
                .get(key)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                map.insert(key.into(), Value::Null);
            }
        }
    }
    serde_json::to_vec(&json)
}

fn v2_event(req: &Incoming) -> serde_json::Result<Vec<u8>> {
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = req.method.clone();
    http.path = Some(req.path.clone());
    http.protocol = Some(req.protocol.clone());
    http.source_ip = Some(req.source_ip.clone());
    http.user_agent = req.user_agent.clone();

    let mut ctx = ApiGatewayV2httpRequestContext::default();
    ctx.route_key = Some(ROUTE_KEY.into());
    ctx.account_id = Some(ACCOUNT_ID.into());
    ctx.apiid = Some(req.domain_prefix.clone());
    ctx.stage = Some(STAGE.into());
    ctx.request_id = Some(req.request_id.clone());
    ctx.domain_name = Some(req.domain_name.clone());
    ctx.domain_prefix = Some(req.domain_prefix.clone());
    ctx.time = Some(req.time.clone());
    ctx.time_epoch = req.time_epoch;
    ctx.http = http;

    // 2.0 moves the Cookie headers into `cookies`, one entry per cookie.
    let cookies: Vec<String> = req
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();

    let mut e = ApiGatewayV2httpRequest::default();
    e.version = Some("2.0".into());
    e.route_key = Some(ROUTE_KEY.into());
    e.raw_path = Some(req.path.clone());
    e.raw_query_string = Some(req.raw_query.clone());
    e.cookies = (!cookies.is_empty()).then_some(cookies);
    e.headers = joined_values(&req.headers);
    // The crate joins a repeated parameter's values with commas, as AWS does in 2.0.
    e.query_string_parameters = query_map(&req.query);
    e.request_context = ctx;
    e.body = req.body.clone();
    e.is_base64_encoded = req.is_base64_encoded;

    let mut json = serde_json::to_value(&e)?;
    if let Value::Object(map) = &mut json {
        // The crate's type also serves custom authorizer payloads; these are not 2.0 fields.
        for key in [
            "type",
            "methodArn",
            "httpMethod",
            "identitySource",
            "authorizationToken",
            "resource",
        ] {
            map.remove(key);
        }
        if map
            .get("stageVariables")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            map.remove("stageVariables");
        }
    }
    serde_json::to_vec(&json)
}

/// The body as AWS passes it: text as is, anything else base64-encoded. Without a
/// content type, UTF-8 is text. An empty body is absent (null in 1.0).
fn body_field(content_type: Option<&HeaderValue>, body: &[u8]) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    let text = content_type.is_none_or(|ct| ct.to_str().is_ok_and(is_text));
    match std::str::from_utf8(body) {
        Ok(s) if text => (Some(s.to_owned()), false),
        _ => (
            Some(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    }
}

/// Content types whose bodies API Gateway passes as text.
fn is_text(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || essence.ends_with("+yaml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/x-www-form-urlencoded"
                | "application/graphql"
                | "application/yaml"
                | "application/x-yaml"
        )
}

/// `name=value` pairs in order, decoded as API Gateway decodes them (`+` is a space).
fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_map(pairs: &[(String, String)]) -> QueryMap {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        map.entry(k.clone()).or_default().push(v.clone());
    }
    QueryMap::from(map)
}

fn utf8_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let value = match std::str::from_utf8(value.as_bytes()) {
            Ok(_) => Some(value.clone()),
            Err(_) => HeaderValue::from_str(&String::from_utf8_lossy(value.as_bytes())).ok(),
        };
        if let Some(v) = value {
            out.append(name.clone(), v);
        }
    }
    out
}

fn last_values(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.keys_len());
    for name in headers.keys() {
        if let Some(v) = headers.get_all(name).iter().next_back() {
            out.insert(name.clone(), v.clone());
        }
    }
    out
}

/// 2.0's headers: lowercase names, repeated values joined with commas, no Cookie.
fn joined_values(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.keys_len());
    for name in headers.keys().filter(|n| *n != header::COOKIE) {
        let values: Vec<&[u8]> = headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
        if let Ok(v) = HeaderValue::from_bytes(&values.join(&b","[..])) {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// Go's `CanonicalMIMEHeaderKey`: each hyphen-separated word capitalised.
fn canonical_header_name(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap) -> String {
    let peer = peer.map(|ip| ip.to_canonical());
    if let Some(ip) = peer.filter(|ip| !ip.is_loopback()) {
        return ip.to_string();
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|ip| ip.parse::<IpAddr>().is_ok())
        .map(str::to_owned)
        .or_else(|| peer.map(|ip| ip.to_string()))
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// API Gateway's request time (`21/Apr/2020:15:08:21 +0000`) and epoch milliseconds.
fn request_time(now: SystemTime) -> (String, i64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let secs = millis.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let time = format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        s / 3600,
        s % 3600 / 60,
        s % 60
    );
    (time, millis)
}

/// Year, month (1-12) and day of a count of days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The HTTP reply of a function's proxy response. Headers: `headers` merged with
/// `multiValueHeaders` (whose values win for a name in both, as AWS merges them) and, in
/// 2.0, one `Set-Cookie` per entry of `cookies`; `Content-Type` is `application/json` when
/// the function gives none, as API Gateway's default; `Content-Length`,
/// `Transfer-Encoding` and `Connection` are the server's to set and are dropped. A body
/// with `isBase64Encoded` is decoded. In 2.0, a value that is not an object with a
/// `statusCode` is the body of a 200 JSON reply (a string as its text), as AWS documents.
///
/// Anything else that is not a valid proxy response is an `Err` saying what was wrong;
/// [`invalid_response`] turns it into the 502 the caller answers.
pub fn encode(body: &[u8], version: PayloadVersion) -> Result<Reply, String> {
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

/// The 502 of a function output that is not a valid proxy response.
pub fn invalid_response(message: &str) -> Reply {
    reply::error(StatusCode::BAD_GATEWAY, "InvalidProxyResponse", message)
}

/// The reply of any outcome. A function error keeps the passthrough reply (500 with
/// `X-Amz-Function-Error` and the error's JSON) rather than AWS's opaque
/// 502 `{"message": "Internal server error"}`: 500 is what users of the Go runtime got for
/// a function error in API Gateway mode (its mapper kept the runtime's 500; its last
/// version passed through), and 502 stays the sign of a malformed proxy response. A
/// deadline is 504 and a failed runner 502, as everywhere.
pub fn encode_outcome(request_id: &str, outcome: Outcome, version: PayloadVersion) -> Reply {
    match outcome {
        Outcome::Response { body, .. } => {
            encode(&body, version).unwrap_or_else(|message| invalid_response(&message))
        }
        other => super::encode(request_id, other),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::InvocationError;
    use crate::lambda_error::Diagnostic;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/src/wrapper/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn event(parts: &Parts, body: &[u8], version: PayloadVersion) -> Value {
        let peer = Some("192.168.196.186".parse().unwrap());
        let e = decode(parts, Bytes::copy_from_slice(body), version, peer).unwrap();
        assert_eq!(e.content_type.as_deref(), Some("application/json"));
        serde_json::from_slice(&e.body).unwrap()
    }

    /// The request AWS's 1.0 sample event describes, as it reaches the host.
    fn sample_v1_request(multi: bool) -> (Parts, &'static [u8]) {
        let query = if multi {
            "/hello/world?name=me&name=me2"
        } else {
            "/hello/world?name=me"
        };
        let mut headers = vec![
            ("Accept", "*/*"),
            ("Accept-Encoding", "gzip, deflate"),
            ("cache-control", "no-cache"),
            ("Content-Type", "application/json"),
            ("Host", "gy415nuibc.execute-api.us-east-1.amazonaws.com"),
            ("Postman-Token", "9f583ef0-ed83-4a38-aef3-eb9ce3f7a57f"),
            ("User-Agent", "PostmanRuntime/2.4.5"),
            ("X-Forwarded-For", "54.240.196.186, 54.182.214.83"),
            ("X-Forwarded-Port", "443"),
            ("X-Forwarded-Proto", "https"),
        ];
        if multi {
            headers.push(("headerName", "headerValue"));
            headers.push(("headerName", "headerValue2"));
        } else {
            headers.push(("headerName", "headerValue"));
        }
        (parts("POST", query, &headers), b"{\r\n\t\"a\": 1\r\n}")
    }

    /// Header names as the canonical form gives them (`cache-control` → `Cache-Control`).
    fn canonical_keys(v: &Value) -> Map<String, Value> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (canonical_header_name(k), v.clone()))
            .collect()
    }

    #[test]
    fn payload_versions_parse_with_and_without_minor() {
        assert_eq!(parse_version("1.0"), Ok(PayloadVersion::V1));
        assert_eq!(parse_version("1"), Ok(PayloadVersion::V1));
        assert_eq!(parse_version(" 2.0 "), Ok(PayloadVersion::V2));
        assert_eq!(parse_version("2"), Ok(PayloadVersion::V2));
        assert_eq!(PayloadVersion::default(), PayloadVersion::V1);
        let err = parse_version("3.0").unwrap_err();
        assert!(
            err.contains("API_GATEWAY_PAYLOAD_VERSION") && err.contains("3.0"),
            "{err}"
        );
    }

    #[test]
    fn v1_event_matches_aws_sample_event() {
        let aws = fixture("example-apigw-request.json");
        let (p, body) = sample_v1_request(false);
        let ours = event(&p, body, PayloadVersion::V1);
        for key in [
            "resource",
            "path",
            "httpMethod",
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "pathParameters",
            "body",
        ] {
            assert_eq!(ours[key], aws[key], "{key}");
        }
        assert_eq!(ours["isBase64Encoded"], json!(false));
        let (aws_headers, aws_multi) = (
            canonical_keys(&aws["headers"]),
            canonical_keys(&aws["multiValueHeaders"]),
        );
        for (name, value) in ours["headers"].as_object().unwrap() {
            assert_eq!(Some(value), aws_headers.get(name), "headers.{name}");
            assert_eq!(ours["multiValueHeaders"][name], aws_multi[name], "{name}");
        }
        assert_eq!(ours["headers"]["Content-Type"], "application/json");
        assert_eq!(ours["headers"]["Cache-Control"], "no-cache");

        let (ctx, aws_ctx) = (&ours["requestContext"], &aws["requestContext"]);
        for key in ["resourcePath", "httpMethod", "path", "protocol"] {
            assert_eq!(ctx[key], aws_ctx[key], "requestContext.{key}");
        }
        assert_eq!(ctx["identity"]["sourceIp"], aws_ctx["identity"]["sourceIp"]);
        assert_eq!(
            ctx["identity"]["userAgent"],
            aws_ctx["identity"]["userAgent"]
        );
        assert_eq!(
            ctx["domainName"],
            "gy415nuibc.execute-api.us-east-1.amazonaws.com"
        );
        assert_eq!(
            (&ctx["domainPrefix"], &ctx["apiId"]),
            (&json!("gy415nuibc"), &json!("gy415nuibc"))
        );
        assert_eq!(ctx["stage"], "$default");
        assert_eq!(ctx["accountId"], ACCOUNT_ID);
        assert!(uuid::Uuid::parse_str(ctx["requestId"].as_str().unwrap()).is_ok());
        assert!(ctx["requestTimeEpoch"].as_i64().unwrap() > 1_600_000_000_000);
        assert_eq!(ours["stageVariables"], Value::Null);
    }

    #[test]
    fn v1_event_parses_as_the_crates_request_type() {
        let (p, body) = sample_v1_request(true);
        let e = decode(&p, Bytes::from_static(body), PayloadVersion::V1, None).unwrap();
        let parsed: ApiGatewayProxyRequest = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(parsed.http_method, Method::POST);
        assert_eq!(parsed.path_parameters["proxy"], "hello/world");
        assert_eq!(
            parsed.multi_value_query_string_parameters.all("name"),
            Some(vec!["me", "me2"])
        );
        assert_eq!(parsed.request_context.stage.as_deref(), Some("$default"));
    }

    #[test]
    fn v1_repeated_values_follow_aws_multi_value_sample() {
        let aws = fixture("example-apigw-request-multi-value-parameters.json");
        let (p, body) = sample_v1_request(true);
        let ours = event(&p, body, PayloadVersion::V1);
        assert_eq!(ours["queryStringParameters"], aws["queryStringParameters"]);
        assert_eq!(
            ours["multiValueQueryStringParameters"],
            aws["multiValueQueryStringParameters"]
        );
        assert_eq!(ours["headers"]["Headername"], aws["headers"]["headerName"]);
        assert_eq!(
            ours["multiValueHeaders"]["Headername"],
            aws["multiValueHeaders"]["headerName"]
        );
    }

    #[test]
    fn v1_root_path_is_the_root_resource_without_path_parameters() {
        let ours = event(&parts("GET", "/", &[]), b"", PayloadVersion::V1);
        assert_eq!(ours["resource"], "/");
        assert_eq!(ours["requestContext"]["resourcePath"], "/");
        assert_eq!(ours["pathParameters"], Value::Null);
        assert_eq!(ours["queryStringParameters"], Value::Null);
        assert_eq!(ours["multiValueQueryStringParameters"], Value::Null);
        assert_eq!(ours["body"], Value::Null, "an empty body is null in 1.0");
        assert_eq!(ours["isBase64Encoded"], json!(false));
        assert_eq!(ours["requestContext"]["domainName"], "localhost");
    }

    #[test]
    fn v1_keeps_the_cookie_header_and_encoded_path_parameters() {
        let p = parts("GET", "/a%20b/c", &[("cookie", "a=1; b=2")]);
        let ours = event(&p, b"", PayloadVersion::V1);
        assert_eq!(ours["headers"]["Cookie"], "a=1; b=2");
        assert_eq!(ours["pathParameters"]["proxy"], "a%20b/c");
        assert_eq!(ours["path"], "/a%20b/c");
        assert!(ours.get("cookies").is_none());
    }

    #[test]
    fn query_strings_are_percent_and_plus_decoded() {
        let p = parts("GET", "/?q=a+b%2Bc&empty&x=%E2%9C%93&bad=%zz&k%20ey=1", &[]);
        let ours = event(&p, b"", PayloadVersion::V1);
        let q = &ours["multiValueQueryStringParameters"];
        assert_eq!(q["q"], json!(["a b+c"]));
        assert_eq!(q["empty"], json!([""]));
        assert_eq!(q["x"], json!(["✓"]));
        assert_eq!(q["bad"], json!(["%zz"]));
        assert_eq!(q["k ey"], json!(["1"]));
        let v2 = event(&p, b"", PayloadVersion::V2);
        assert_eq!(
            v2["rawQueryString"],
            "q=a+b%2Bc&empty&x=%E2%9C%93&bad=%zz&k%20ey=1"
        );
        assert_eq!(v2["queryStringParameters"]["q"], "a b+c");
    }

    #[test]
    fn binary_bodies_are_base64_and_text_bodies_are_not() {
        let png = b"\x89PNG\r\n\x1a\n\0\0";
        let ours = event(
            &parts("POST", "/up", &[("content-type", "image/png")]),
            png,
            PayloadVersion::V1,
        );
        assert_eq!(ours["isBase64Encoded"], json!(true));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(ours["body"].as_str().unwrap())
            .unwrap();
        assert_eq!(decoded, png);
        for ct in [
            "text/plain; charset=utf-8",
            "application/json",
            "application/vnd.api+json",
            "application/soap+xml",
            "application/x-www-form-urlencoded",
            "application/javascript",
        ] {
            let ours = event(
                &parts("POST", "/", &[("content-type", ct)]),
                b"a=1",
                PayloadVersion::V2,
            );
            assert_eq!(
                (&ours["body"], &ours["isBase64Encoded"]),
                (&json!("a=1"), &json!(false)),
                "{ct}"
            );
        }
        let ours = event(
            &parts("POST", "/", &[("content-type", "application/octet-stream")]),
            b"abc",
            PayloadVersion::V1,
        );
        assert_eq!(
            (&ours["body"], &ours["isBase64Encoded"]),
            (&json!("YWJj"), &json!(true))
        );
        // Text that is not UTF-8 cannot be a JSON string.
        let ours = event(
            &parts("POST", "/", &[("content-type", "text/plain")]),
            b"\xff",
            PayloadVersion::V1,
        );
        assert_eq!(ours["isBase64Encoded"], json!(true));
        let ours = event(&parts("POST", "/", &[]), b"hello", PayloadVersion::V1);
        assert_eq!(
            (&ours["body"], &ours["isBase64Encoded"]),
            (&json!("hello"), &json!(false))
        );
    }

    #[test]
    fn v2_event_matches_aws_sample_event() {
        let aws = fixture("example-apigw-v2-request-no-authorizer.json");
        let p = parts(
            "GET",
            "/",
            &[
                ("accept", "*/*"),
                ("content-length", "0"),
                ("host", "aaaaaaaaaa.execute-api.us-west-2.amazonaws.com"),
                ("user-agent", "curl/7.58.0"),
                (
                    "x-amzn-trace-id",
                    "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c",
                ),
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-port", "443"),
                ("x-forwarded-proto", "https"),
            ],
        );
        let e = decode(
            &p,
            Bytes::new(),
            PayloadVersion::V2,
            Some("127.0.0.1".parse().unwrap()),
        )
        .unwrap();
        assert_eq!(
            e.trace_id.as_deref(),
            Some("Root=1-5e9f0c65-1de4d666d4dd26aced652b6c")
        );
        let ours: Value = serde_json::from_slice(&e.body).unwrap();
        for key in [
            "version",
            "routeKey",
            "rawPath",
            "rawQueryString",
            "headers",
            "isBase64Encoded",
        ] {
            assert_eq!(ours[key], aws[key], "{key}");
        }
        let (ctx, aws_ctx) = (&ours["requestContext"], &aws["requestContext"]);
        for key in ["domainName", "domainPrefix", "apiId", "routeKey", "stage"] {
            assert_eq!(ctx[key], aws_ctx[key], "requestContext.{key}");
        }
        assert_eq!(
            ctx["http"], aws_ctx["http"],
            "method, path, protocol, sourceIp (forwarded), userAgent"
        );
        let mut ours_keys: Vec<&String> = ours.as_object().unwrap().keys().collect();
        let mut aws_keys: Vec<&String> = aws.as_object().unwrap().keys().collect();
        ours_keys.sort();
        aws_keys.sort();
        assert_eq!(ours_keys, aws_keys, "no body, cookies or crate-only fields");
        let time = ctx["time"].as_str().unwrap();
        assert_eq!(time.len(), "21/Apr/2020:15:08:21 +0000".len(), "{time}");
        assert!(time.ends_with(" +0000"));
    }

    #[test]
    fn v2_repeated_values_and_cookies_follow_aws_sample() {
        let aws = fixture("example-apigw-v2-request-multi-value-parameters.json");
        let p = parts(
            "POST",
            "/my/path?Parameter1=value1&Parameter1=value2",
            &[
                ("Header2", "value1"),
                ("Header2", "value2"),
                ("Cookie", "cookie1; cookie2"),
                ("content-type", "application/json"),
            ],
        );
        let ours = event(&p, b"{\r\n\t\"a\": 1\r\n}", PayloadVersion::V2);
        for key in [
            "rawPath",
            "rawQueryString",
            "cookies",
            "queryStringParameters",
            "body",
        ] {
            assert_eq!(ours[key], aws[key], "{key}");
        }
        assert_eq!(ours["headers"]["header2"], aws["headers"]["Header2"]);
        assert!(
            ours["headers"].get("cookie").is_none(),
            "cookies move out of headers"
        );
        let parsed: ApiGatewayV2httpRequest = serde_json::from_value(ours).unwrap();
        assert_eq!(parsed.request_context.http.method, Method::POST);
        assert_eq!(
            parsed.cookies,
            Some(vec!["cookie1".into(), "cookie2".into()])
        );
    }

    #[test]
    fn source_ip_is_the_peer_unless_a_local_proxy_forwarded_the_request() {
        let h = |xff: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", xff.parse().unwrap());
            h
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(ip("10.0.0.7"), &h("1.2.3.4")), "10.0.0.7");
        assert_eq!(client_ip(ip("::ffff:10.0.0.7"), &h("1.2.3.4")), "10.0.0.7");
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h("1.2.3.4, 10.0.0.1")),
            "1.2.3.4"
        );
        assert_eq!(client_ip(ip("::1"), &h("not an ip")), "::1");
        assert_eq!(client_ip(None, &HeaderMap::new()), "127.0.0.1");
    }

    #[test]
    fn request_time_has_api_gateways_format() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_587_481_701_067);
        assert_eq!(
            request_time(t),
            ("21/Apr/2020:15:08:21 +0000".into(), 1_587_481_701_067)
        );
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(request_time(leap).0, "29/Feb/2000:00:00:00 +0000");
        assert_eq!(request_time(UNIX_EPOCH).0, "01/Jan/1970:00:00:00 +0000");
    }

    #[test]
    fn bad_client_context_is_a_bad_request_as_in_passthrough() {
        let p = parts("GET", "/", &[("x-amz-client-context", "not base64!")]);
        assert!(decode(&p, Bytes::new(), PayloadVersion::V1, None).is_err());
    }

    fn body_of(reply: &Reply) -> Bytes {
        use http_body_util::BodyExt;
        let body = reply.body().clone();
        futures_now(body.collect()).unwrap().to_bytes()
    }

    /// `Full` bodies are ready at once.
    fn futures_now<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("a Full body is always ready"),
        }
    }

    #[test]
    fn aws_sample_response_becomes_the_reply() {
        let sample = serde_json::to_vec(&fixture("example-apigw-response.json")).unwrap();
        for version in [PayloadVersion::V1, PayloadVersion::V2] {
            let r = encode(&sample, version).unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["x-forwarded-port"], "443");
            assert_eq!(r.headers().get_all("accept-language").iter().count(), 1);
            assert_eq!(
                r.headers()["content-type"],
                "application/json",
                "the default"
            );
            assert_eq!(body_of(&r), "Hello World");
        }
    }

    #[test]
    fn multi_value_headers_win_over_headers_and_keep_every_value() {
        let out = json!({
            "statusCode": 201,
            "headers": {"X-One": "single", "X-Both": "from-headers", "Content-Type": "text/html"},
            "multiValueHeaders": {"X-Both": ["a", "b"], "Set-Cookie": ["c=1", "d=2"]},
            "body": "<p>hi</p>"
        });
        let r = encode(out.to_string().as_bytes(), PayloadVersion::V1).unwrap();
        assert_eq!(r.status(), 201);
        let all = |n: &str| -> Vec<&str> {
            r.headers()
                .get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(all("x-one"), ["single"]);
        assert_eq!(all("x-both"), ["a", "b"]);
        assert_eq!(all("set-cookie"), ["c=1", "d=2"]);
        assert_eq!(all("content-type"), ["text/html"]);
    }

    #[test]
    fn base64_bodies_are_decoded_to_bytes() {
        let out = json!({
            "statusCode": 200,
            "headers": {"content-type": "image/png"},
            "body": "iVBORw0KGgo=\n",
            "isBase64Encoded": true
        });
        let r = encode(out.to_string().as_bytes(), PayloadVersion::V2).unwrap();
        assert_eq!(body_of(&r), &b"\x89PNG\r\n\x1a\n"[..]);
        assert_eq!(r.headers()["content-type"], "image/png");
    }

    #[test]
    fn v2_cookies_become_set_cookie_headers() {
        let out = json!({
            "statusCode": 302,
            "headers": {"location": "/home"},
            "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
        });
        let r = encode(out.to_string().as_bytes(), PayloadVersion::V2).unwrap();
        assert_eq!(r.status(), 302);
        let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2; HttpOnly"]);
        assert_eq!(body_of(&r), "");
    }

    #[test]
    fn v2_infers_a_200_json_reply_from_any_other_value() {
        // AWS's documented examples: a string is the body's text, an object its JSON.
        let r = encode(br#""Hello from Lambda!""#, PayloadVersion::V2).unwrap();
        assert_eq!(
            (r.status(), body_of(&r)),
            (StatusCode::OK, Bytes::from("Hello from Lambda!"))
        );
        assert_eq!(r.headers()["content-type"], "application/json");
        let r = encode(
            br#" {"message": "Hello from Lambda!"} "#,
            PayloadVersion::V2,
        )
        .unwrap();
        assert_eq!(body_of(&r), r#"{"message": "Hello from Lambda!"}"#);
        let r = encode(b"[1,2]", PayloadVersion::V2).unwrap();
        assert_eq!(body_of(&r), "[1,2]");
        let r = encode(b"42", PayloadVersion::V2).unwrap();
        assert_eq!(
            (r.status(), body_of(&r)),
            (StatusCode::OK, Bytes::from("42"))
        );
    }

    #[test]
    fn server_owned_headers_from_the_function_are_dropped() {
        let out = json!({"statusCode": 200, "headers": {"Content-Length": "999", "Connection": "close"}, "body": "ok"});
        let r = encode(out.to_string().as_bytes(), PayloadVersion::V1).unwrap();
        assert!(r.headers().get("content-length").is_none());
        assert!(r.headers().get("connection").is_none());
    }

    #[test]
    fn invalid_proxy_responses_say_what_was_wrong() {
        let cases: &[(&[u8], PayloadVersion, &str)] = &[
            (b"not json", PayloadVersion::V1, "not JSON"),
            (b"not json", PayloadVersion::V2, "not JSON"),
            (br#""a string""#, PayloadVersion::V1, "not a JSON object"),
            (
                br#"{"body": "x"}"#,
                PayloadVersion::V1,
                "statusCode is missing",
            ),
            (
                br#"{"statusCode": "200"}"#,
                PayloadVersion::V1,
                "statusCode must be an integer",
            ),
            (
                br#"{"statusCode": null}"#,
                PayloadVersion::V2,
                "statusCode must be an integer",
            ),
            (
                br#"{"statusCode": 99}"#,
                PayloadVersion::V1,
                "statusCode 99",
            ),
            (
                br#"{"statusCode": 600}"#,
                PayloadVersion::V2,
                "statusCode 600",
            ),
            (br#"{"statusCode": 100}"#, PayloadVersion::V1, "200 to 599"),
            (
                br#"{"statusCode": 200, "body": {"a": 1}}"#,
                PayloadVersion::V1,
                "body must be a string",
            ),
            (
                br#"{"statusCode": 200, "body": "%%%", "isBase64Encoded": true}"#,
                PayloadVersion::V1,
                "not base64",
            ),
            (
                br#"{"statusCode": 200, "isBase64Encoded": "yes"}"#,
                PayloadVersion::V1,
                "isBase64Encoded must be a boolean",
            ),
            (
                br#"{"statusCode": 200, "headers": {"bad name": "v"}}"#,
                PayloadVersion::V1,
                "\"bad name\" in headers is not a header name",
            ),
            (
                br#"{"statusCode": 200, "multiValueHeaders": {"x": [1]}}"#,
                PayloadVersion::V1,
                "header \"x\" in multiValueHeaders",
            ),
            (
                br#"{"statusCode": 200, "headers": []}"#,
                PayloadVersion::V1,
                "headers must be an object",
            ),
            (
                br#"{"statusCode": 200, "headers": {"x": "a\nb"}}"#,
                PayloadVersion::V2,
                "header",
            ),
            (
                br#"{"statusCode": 200, "cookies": ["a\nb"]}"#,
                PayloadVersion::V2,
                "cookie",
            ),
        ];
        for (out, version, want) in cases {
            let err = encode(out, *version).unwrap_err();
            assert!(
                err.starts_with("Malformed Lambda proxy response: "),
                "{err}"
            );
            assert!(
                err.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(out)
            );
        }
        let r = invalid_response("Malformed Lambda proxy response: statusCode is missing");
        assert_eq!(r.status(), 502);
        let body: Value = serde_json::from_slice(&body_of(&r)).unwrap();
        assert_eq!(body["errorType"], "InvalidProxyResponse");
        assert!(
            body["errorMessage"]
                .as_str()
                .unwrap()
                .contains("statusCode")
        );
    }

    #[test]
    fn outcomes_map_to_statuses_in_api_gateway_mode() {
        let ok = Outcome::Response {
            body: Bytes::from_static(br#"{"statusCode": 404, "body": "nope"}"#),
            content_type: None,
        };
        assert_eq!(encode_outcome("id", ok, PayloadVersion::V1).status(), 404);
        let bad = Outcome::Response {
            body: Bytes::from_static(b"{}"),
            content_type: None,
        };
        assert_eq!(encode_outcome("id", bad, PayloadVersion::V1).status(), 502);
        let err = Diagnostic::from_post(br#"{"errorMessage":"m","errorType":"T"}"#, None);
        let r = encode_outcome("id", Outcome::FunctionError(err), PayloadVersion::V2);
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()["x-amz-function-error"], "Unhandled");
        let timeout = Outcome::Failed(InvocationError::Timeout(std::time::Duration::from_secs(1)));
        assert_eq!(
            encode_outcome("id", timeout, PayloadVersion::V1).status(),
            504
        );
    }
}
