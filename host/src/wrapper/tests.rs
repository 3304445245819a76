use base64::Engine;

use super::*;
use crate::dispatch::InvocationError;
use crate::lambda_error::Diagnostic;

const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";

fn passthrough(h: &HeaderMap, body: Bytes) -> Result<Event, BadRequest> {
    decode(h, body, &ContextOptions::default())
}

#[test]
fn decode_takes_body_type_and_context() {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("text/csv"));
    let cc = base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"k":"v"}}"#);
    h.insert("x-amz-client-context", cc.parse().unwrap());
    h.insert(
        "x-amz-cognito-identity",
        HeaderValue::from_static(r#"{"cognitoIdentityId":"i","cognitoIdentityPoolId":"p"}"#),
    );
    h.insert("x-amzn-trace-id", HeaderValue::from_static(TRACE));
    let e = passthrough(&h, Bytes::from_static(b"a,b")).unwrap();
    assert_eq!(&e.body[..], b"a,b");
    assert_eq!(e.content_type.as_deref(), Some("text/csv"));
    assert_eq!(e.client_context.as_deref(), Some(r#"{"custom":{"k":"v"}}"#));
    assert_eq!(
        e.cognito_identity.as_deref(),
        Some(r#"{"cognitoIdentityId":"i","cognitoIdentityPoolId":"p"}"#)
    );
    assert_eq!(e.trace_id.as_deref(), Some(TRACE));
}

#[test]
fn no_trace_id_is_made_unless_tracing_is_active() {
    let e = passthrough(&HeaderMap::new(), Bytes::new()).unwrap();
    assert_eq!(e.trace_id, None);
    let active = ContextOptions {
        active_tracing: true,
        ..ContextOptions::default()
    };
    let e = decode(&HeaderMap::new(), Bytes::new(), &active).unwrap();
    assert!(e.trace_id.unwrap().starts_with("Root=1-"));
}

#[test]
fn hostile_context_headers_are_400s_naming_the_header() {
    let cases = [
        ("x-amz-cognito-identity", "{}".to_owned()),
        (
            "x-amz-client-context",
            base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"a":1}}"#),
        ),
        (
            "x-amzn-trace-id",
            format!("Root={}", "1".repeat(150 * 1024)),
        ),
        ("x-amzn-trace-id", "Root=1-a-b".to_owned()),
    ];
    let wrapper = Wrapper::new(WrapperKind::Passthrough);
    for (name, value) in cases {
        let (parts, ()) = http::Request::builder()
            .header(name, value)
            .body(())
            .unwrap()
            .into_parts();
        let err = match wrapper.decode(&parts, Bytes::new(), None) {
            Ok(_) => panic!("{name} accepted"),
            Err(e) => e,
        };
        assert!(
            err.0.to_ascii_lowercase().contains(name),
            "{name}: {}",
            err.0
        );
        assert_eq!(err.into_reply().status(), 400);
    }
}

#[test]
fn response_content_types() {
    let ct = |d, b: &[u8]| response_content_type(d, b);
    assert_eq!(ct(Some("image/png"), b"\x89PNG"), "image/png");
    assert_eq!(
        ct(Some("application/x-www-form-urlencoded"), b"{}"),
        "application/json"
    );
    assert_eq!(ct(None, b"\"hi\""), "application/json");
    assert_eq!(ct(None, b"hello"), "text/plain; charset=utf-8");
    assert_eq!(ct(None, b"\xff\x00"), "application/octet-stream");
    assert_eq!(ct(None, b""), "text/plain; charset=utf-8");
    // Past the parsed size, the shape decides; text and bytes stay what they are.
    let big = |open: &str, fill: u8, close: &str| {
        let mut b = open.as_bytes().to_vec();
        b.resize(open.len() + PARSED_UP_TO, fill);
        b.extend_from_slice(close.as_bytes());
        b
    };
    assert_eq!(
        ct(None, &big("{\"a\":\"", b'x', "\"}\n")),
        "application/json"
    );
    assert_eq!(ct(None, &big("[", b' ', "]")), "application/json");
    assert_eq!(ct(None, &big("", b'x', "")), "text/plain; charset=utf-8");
    assert_eq!(ct(None, &big("{", 0xff, "}")), "application/octet-stream");
    // Only the ends of a large body are read: text cut mid-character at the inner edge of
    // either end is still text, bytes at either end are bytes.
    let mut cut = format!("x{}x", "é".repeat(PARSED_UP_TO)).into_bytes();
    assert_eq!(ct(None, &cut), "text/plain; charset=utf-8");
    *cut.last_mut().unwrap() = 0xff;
    assert_eq!(ct(None, &cut), "application/octet-stream");
    let mut ends = big("[", b' ', "]");
    ends[1] = 0xff;
    assert_eq!(ct(None, &ends), "application/octet-stream");
}

#[test]
fn outcomes_map_to_statuses() {
    let err = Diagnostic::from_post(br#"{"errorMessage":"m","errorType":"T"}"#, None);
    let r = encode("id", Outcome::FunctionError(err));
    assert_eq!(r.status(), 500);
    assert_eq!(r.headers()["x-amz-function-error"], "Unhandled");
    let r = encode(
        "id",
        Outcome::Failed(InvocationError::Timeout(std::time::Duration::from_secs(1))),
    );
    assert_eq!(r.status(), 504);
    let r = encode(
        "id",
        Outcome::Failed(InvocationError::RunnerExited("x".into())),
    );
    assert_eq!(r.status(), 502);
}

#[test]
fn bad_replies_are_502s_with_their_error_type() {
    let r = BadReply::ProxyResponse("m".into()).into_reply();
    assert_eq!(r.status(), 502);
    let r = BadReply::CloudEvent("m".into()).into_reply();
    assert_eq!(r.status(), 502);
}
