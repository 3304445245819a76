use std::net::IpAddr;
use std::time::UNIX_EPOCH;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use base64::Engine;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Map, Value, json};

use super::request::{canonical_header_name, client_ip, request_time};
use super::*;
use crate::dispatch::InvocationError;
use crate::lambda_error::Diagnostic;
use crate::wrapper::BadReply;

fn decode(
    parts: &Parts,
    body: Bytes,
    version: PayloadVersion,
    peer: Option<IpAddr>,
) -> Result<Event, BadRequest> {
    super::decode(parts, body, version, peer, &ContextOptions::default())
}

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
        let r = proxy_reply(&sample, version).unwrap();
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
    let r = proxy_reply(out.to_string().as_bytes(), PayloadVersion::V1).unwrap();
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
    let r = proxy_reply(out.to_string().as_bytes(), PayloadVersion::V2).unwrap();
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
    let r = proxy_reply(out.to_string().as_bytes(), PayloadVersion::V2).unwrap();
    assert_eq!(r.status(), 302);
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2; HttpOnly"]);
    assert_eq!(body_of(&r), "");
}

#[test]
fn v2_infers_a_200_json_reply_from_any_other_value() {
    // AWS's documented examples: a string is the body's text, an object its JSON.
    let r = proxy_reply(br#""Hello from Lambda!""#, PayloadVersion::V2).unwrap();
    assert_eq!(
        (r.status(), body_of(&r)),
        (StatusCode::OK, Bytes::from("Hello from Lambda!"))
    );
    assert_eq!(r.headers()["content-type"], "application/json");
    let r = proxy_reply(
        br#" {"message": "Hello from Lambda!"} "#,
        PayloadVersion::V2,
    )
    .unwrap();
    assert_eq!(body_of(&r), r#"{"message": "Hello from Lambda!"}"#);
    let r = proxy_reply(b"[1,2]", PayloadVersion::V2).unwrap();
    assert_eq!(body_of(&r), "[1,2]");
    let r = proxy_reply(b"42", PayloadVersion::V2).unwrap();
    assert_eq!(
        (r.status(), body_of(&r)),
        (StatusCode::OK, Bytes::from("42"))
    );
}

#[test]
fn server_owned_headers_from_the_function_are_dropped() {
    let out = json!({"statusCode": 200, "headers": {"Content-Length": "999", "Connection": "close"}, "body": "ok"});
    let r = proxy_reply(out.to_string().as_bytes(), PayloadVersion::V1).unwrap();
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
        let err = proxy_reply(out, *version).unwrap_err().to_string();
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
    let r =
        BadReply::ProxyResponse("Malformed Lambda proxy response: statusCode is missing".into())
            .into_reply();
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
    assert_eq!(encode("id", ok, PayloadVersion::V1).status(), 404);
    let bad = Outcome::Response {
        body: Bytes::from_static(b"{}"),
        content_type: None,
    };
    assert_eq!(encode("id", bad, PayloadVersion::V1).status(), 502);
    let err = Diagnostic::from_post(br#"{"errorMessage":"m","errorType":"T"}"#, None);
    let r = encode("id", Outcome::FunctionError(err), PayloadVersion::V2);
    assert_eq!(r.status(), 500);
    assert_eq!(r.headers()["x-amz-function-error"], "Unhandled");
    let timeout = Outcome::Failed(InvocationError::Timeout(std::time::Duration::from_secs(1)));
    assert_eq!(encode("id", timeout, PayloadVersion::V1).status(), 504);
}
