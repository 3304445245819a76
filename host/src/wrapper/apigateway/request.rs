//! The request half of the API Gateway wrapper: an HTTP request as the proxy event of
//! payload 1.0 or 2.0, as AWS builds it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyRequestContext, ApiGatewayV2httpRequest,
    ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
};
use aws_lambda_events::query_map::QueryMap;
use base64::Engine;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, header};
use serde_json::{Map, Value};

use super::{ACCOUNT_ID, PROXY_RESOURCE, PayloadVersion, ROUTE_KEY, STAGE};

/// The proxy event of a request, as JSON.
pub(super) fn event(
    parts: &Parts,
    body: &[u8],
    version: PayloadVersion,
    peer: Option<IpAddr>,
    now: SystemTime,
) -> serde_json::Result<Vec<u8>> {
    let request = Incoming::new(parts, body, peer, now);
    match version {
        PayloadVersion::V1 => v1_event(&request),
        PayloadVersion::V2 => v2_event(&request),
    }
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

/// `name=value` pairs in order, decoded as API Gateway decodes them (`+` is a space,
/// invalid escapes kept, bytes that are not UTF-8 replaced).
fn parse_query(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
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
pub(super) fn canonical_header_name(name: &str) -> String {
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

pub(super) fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap) -> String {
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
pub(super) fn request_time(now: SystemTime) -> (String, i64) {
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let time = chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .format("%d/%b/%Y:%H:%M:%S +0000")
        .to_string();
    (time, millis)
}
