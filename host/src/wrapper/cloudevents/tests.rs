use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::dispatch::{Event, InvocationError, Outcome};
use crate::lambda_error::Diagnostic;
use crate::reply::Reply;
use crate::wrapper::{BadRequest, ContextOptions};

fn decode(headers: &HeaderMap, body: Bytes) -> Result<(Event, Option<CeAttrs>), BadRequest> {
    super::decode(headers, body, &ContextOptions::default())
}

fn fixture(name: &str) -> String {
    let path = format!("{}/src/wrapper/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

/// Headers and body of a `.http` fixture (request line, headers, blank line, body).
fn http_fixture(name: &str) -> (HeaderMap, Bytes) {
    let text = fixture(name);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut headers = HeaderMap::new();
    for line in head.lines().skip(1) {
        let (k, v) = line.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
            v.trim().parse().unwrap(),
        );
    }
    (headers, Bytes::from(body.to_owned()))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn structured_headers() -> HeaderMap {
    headers(&[("content-type", "application/cloudevents+json")])
}

fn custom(event: &Event) -> Value {
    let cc: Value = serde_json::from_str(event.client_context.as_deref().unwrap()).unwrap();
    cc["custom"].clone()
}

fn body_of(reply: &Reply) -> Bytes {
    use http_body_util::BodyExt;
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut collect = std::pin::pin!(reply.body().clone().collect());
    match collect.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(body) => body.unwrap().to_bytes(),
        std::task::Poll::Pending => panic!("a Full body is always ready"),
    }
}

fn response(body: &'static [u8]) -> Outcome {
    Outcome::Response {
        body: Bytes::from_static(body),
        content_type: None,
    }
}

fn defaults() -> Settings {
    settings(None, None, None, None).unwrap()
}

/// A reply read back as the sink or a caller would read it: a binary-mode event.
fn read_back(reply: &Reply) -> (Event, CeAttrs) {
    let (event, attrs) = decode(reply.headers(), body_of(reply)).unwrap();
    (event, attrs.expect("the reply is a CloudEvent"))
}

#[test]
fn structured_spec_example_gives_its_data_and_attributes() {
    let (event, attrs) = decode(
        &structured_headers(),
        fixture("cloudevents-structured-xml.json").into(),
    )
    .unwrap();
    assert_eq!(&event.body[..], br#"<much wow="xml"/>"#);
    assert_eq!(event.content_type.as_deref(), Some("text/xml"));
    assert_eq!(
        custom(&event),
        json!({
            "specversion": "1.0",
            "type": "com.example.someevent",
            "source": "/mycontext",
            "id": "A234-1234-1234",
            "time": "2018-04-05T17:31:00Z",
            "comexampleextension1": "value",
            "comexampleothervalue": "5",
            "datacontenttype": "text/xml"
        }),
        "every attribute, as text, under its own name (the Go runtime's map)"
    );
    assert_eq!(
        attrs,
        Some(CeAttrs {
            event_type: "com.example.someevent".into(),
            source: "/mycontext".into()
        })
    );
    assert_eq!(event.trace_id, None, "none sent, none made");
}

#[test]
fn structured_json_data_is_the_payload() {
    let (event, _) = decode(
        &structured_headers(),
        fixture("cloudevents-structured-json.json").into(),
    )
    .unwrap();
    let data: Value = serde_json::from_slice(&event.body).unwrap();
    assert_eq!(
        data,
        json!({"appinfoA": "abc", "appinfoB": 123, "appinfoC": true})
    );
    assert_eq!(event.content_type.as_deref(), Some("application/json"));
    assert!(custom(&event).get("subject").is_none(), "null is unset");
}

#[test]
fn structured_data_base64_is_decoded_to_bytes() {
    let (event, _) = decode(
        &structured_headers(),
        fixture("cloudevents-structured-base64.json").into(),
    )
    .unwrap();
    assert_eq!(
        &event.body[..],
        b"\x80\x01\x00\x01\x00\x00\x00\x03add\x00\x00\x00\x00\xff"
    );
    assert_eq!(
        event.content_type.as_deref(),
        Some("application/vnd.apache.thrift.binary")
    );
    let custom = custom(&event);
    assert!(custom.get("data_base64").is_none());
    assert!(custom.get("unsetextension").is_none());
}

#[test]
fn structured_mode_accepts_content_type_parameters() {
    let (h, body) = http_fixture("cloudevents-structured.http");
    let (event, attrs) = decode(&h, body).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&event.body).unwrap(),
        json!({"appinfoA": "abc"})
    );
    assert_eq!(event.content_type.as_deref(), Some("application/json"));
    assert_eq!(attrs.unwrap().source, "/mycontext");
}

#[test]
fn binary_spec_example_gives_body_and_header_attributes() {
    let (h, body) = http_fixture("cloudevents-binary.http");
    let (event, attrs) = decode(&h, body.clone()).unwrap();
    assert_eq!(event.body, body);
    assert_eq!(
        event.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        custom(&event),
        json!({
            "specversion": "1.0",
            "type": "com.example.someevent",
            "time": "2018-04-05T03:56:24Z",
            "id": "1234-1234-1234",
            "source": "/mycontext/subcontext",
            "subject": "123",
            "comexampleextension1": "value",
            "datacontenttype": "application/json; charset=utf-8"
        })
    );
    assert_eq!(attrs.unwrap().event_type, "com.example.someevent");
}

#[test]
fn binary_events_with_text_or_bytes_keep_their_attributes() {
    // The Go runtime read binary mode only with application/json.
    for (ct, body) in [
        ("text/plain", &b"hello"[..]),
        ("application/octet-stream", b"\x00\xff"),
    ] {
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-type", "t"),
            ("ce-source", "s"),
            ("content-type", ct),
        ]);
        let (event, attrs) = decode(&h, Bytes::copy_from_slice(body)).unwrap();
        assert_eq!(&event.body[..], body);
        assert_eq!(custom(&event)["id"], "1", "{ct}");
        assert!(attrs.is_some());
    }
}

#[test]
fn binary_header_values_are_percent_decoded_and_repeats_joined() {
    let h = headers(&[
        ("ce-specversion", "1.0"),
        ("ce-id", "1"),
        ("ce-type", "t"),
        ("ce-source", "s"),
        ("ce-subject", "caf%C3%A9%20au%20lait"),
        ("ce-tags", "a"),
        ("ce-tags", "b"),
    ]);
    let (event, _) = decode(&h, Bytes::new()).unwrap();
    let cc = event.client_context.unwrap();
    assert!(cc.is_ascii(), "{cc}");
    let custom: Value = serde_json::from_str::<Value>(&cc).unwrap()["custom"].clone();
    assert_eq!(custom["subject"], "café au lait");
    assert_eq!(custom["tags"], "a,b");
}

#[test]
fn attributes_join_the_callers_client_context() {
    let cc = base64::engine::general_purpose::STANDARD
        .encode(r#"{"client":{"installation_id":"i","app_title":"x","app_version_name":"n","app_version_code":"c","app_package_name":"p"},"custom":{"k":"v","id":"old"}}"#);
    let mut h = headers(&[
        ("ce-specversion", "1.0"),
        ("ce-id", "new"),
        ("ce-type", "t"),
        ("ce-source", "s"),
    ]);
    h.insert("x-amz-client-context", cc.parse().unwrap());
    let (event, _) = decode(&h, Bytes::new()).unwrap();
    let cc: Value = serde_json::from_str(event.client_context.as_deref().unwrap()).unwrap();
    assert_eq!(cc["client"]["app_title"], "x");
    assert_eq!(cc["custom"]["k"], "v");
    assert_eq!(cc["custom"]["id"], "new", "the event wins");
}

#[test]
fn requests_that_are_not_cloudevents_pass_through() {
    let h = headers(&[("content-type", "application/json")]);
    let (event, attrs) = decode(&h, Bytes::from_static(b"{\"a\":1}")).unwrap();
    assert_eq!(&event.body[..], b"{\"a\":1}");
    assert_eq!(event.content_type.as_deref(), Some("application/json"));
    assert_eq!(event.client_context, None);
    assert_eq!(attrs, None);
}

#[test]
fn invalid_cloudevents_are_bad_requests() {
    let structured = |body: &str| decode(&structured_headers(), Bytes::from(body.to_owned()));
    let cases = [
        (structured("{not json"), "not JSON"),
        (structured("[1]"), "not a JSON object"),
        (
            structured(r#"{"specversion":"1.0","type":"t","source":"s"}"#),
            "id",
        ),
        (
            structured(r#"{"specversion":"2.0","id":"1","type":"t","source":"s"}"#),
            "2.0",
        ),
        (
            structured(r#"{"id":"1","type":"t","source":"s"}"#),
            "specversion",
        ),
        (
            structured(r#"{"specversion":"1.0","id":"","type":"t","source":"s"}"#),
            "`id` is empty",
        ),
        (
            structured(
                r#"{"specversion":"1.0","id":"1","type":"t","source":"s","time":"yesterday"}"#,
            ),
            "",
        ),
        (
            structured(
                r#"{"specversion":"1.0","id":"1","type":"t","source":"s","data_base64":"%%"}"#,
            ),
            "",
        ),
    ];
    for (result, want) in cases {
        let err = result.unwrap_err().0;
        assert!(err.starts_with("invalid structured CloudEvent"), "{err}");
        assert!(err.contains(want), "{err}");
    }
    let binary = |pairs: &[(&str, &str)]| decode(&headers(pairs), Bytes::new());
    let cases = [
        (
            binary(&[
                ("ce-specversion", "1.0"),
                ("ce-type", "t"),
                ("ce-source", "s"),
            ]),
            "id",
        ),
        (
            binary(&[
                ("ce-specversion", "9.9"),
                ("ce-id", "1"),
                ("ce-type", "t"),
                ("ce-source", "s"),
            ]),
            "9.9",
        ),
        (
            binary(&[
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-type", "t"),
                ("ce-source", "s"),
                ("ce-time", "noon"),
            ]),
            "time",
        ),
        (
            binary(&[
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-type", "t"),
                ("ce-source", ""),
            ]),
            "source",
        ),
        (
            binary(&[("ce-id", "1"), ("ce-type", "t"), ("ce-source", "s")]),
            "ce-specversion",
        ),
    ];
    for (result, want) in cases {
        let err = result.unwrap_err().0;
        assert!(err.starts_with("invalid binary-mode CloudEvent"), "{err}");
        assert!(err.contains(want), "{err}");
    }
    let batch = headers(&[("content-type", "application/cloudevents-batch+json")]);
    assert!(
        decode(&batch, Bytes::from_static(b"[]"))
            .unwrap_err()
            .0
            .contains("batched")
    );
}

#[test]
fn settings_default_to_the_go_runtimes() {
    let s = defaults();
    assert_eq!(s.event_type.as_deref(), Some("ce.klr.triggermesh.io"));
    assert_eq!(s.source, "knative-lambda-runtime");
    assert_eq!(s.subject.as_deref(), Some("klr-response"));
    assert_eq!(s.mode, ResponseMode::Data);
    let s = settings(
        Some("my.type".into()),
        Some("src".into()),
        Some("".into()),
        Some("Event".into()),
    )
    .unwrap();
    assert_eq!(
        (s.event_type.as_deref(), s.source.as_str()),
        (Some("my.type"), "src")
    );
    assert_eq!((s.subject, s.mode), (None, ResponseMode::Event));
    assert_eq!(
        settings(Some(" ".into()), None, None, None)
            .unwrap()
            .event_type,
        None
    );
    assert!(
        settings(None, Some("".into()), None, None)
            .unwrap_err()
            .contains("CE_OVERRIDES_SOURCE")
    );
    assert!(
        settings(None, None, None, Some("both".into()))
            .unwrap_err()
            .contains("CE_FUNCTION_RESPONSE_MODE")
    );
}

#[test]
fn json_replies_become_binary_mode_events_with_the_overrides() {
    let r = encode("req-1", response(b"{\"a\": 1}\n"), &defaults());
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["ce-specversion"], "1.0");
    assert_eq!(h["ce-id"], "req-1");
    assert_eq!(h["ce-type"], "ce.klr.triggermesh.io");
    assert_eq!(h["ce-source"], "knative-lambda-runtime");
    assert_eq!(h["ce-subject"], "klr-response");
    assert_eq!(h["content-type"], "application/json");
    assert!(h.contains_key("ce-time"));
    assert_eq!(body_of(&r), "{\"a\": 1}", "as the function wrote it");
    let (event, attrs) = read_back(&r);
    assert_eq!(attrs.event_type, "ce.klr.triggermesh.io");
    assert_eq!(custom(&event)["subject"], "klr-response");
}

#[test]
fn text_replies_become_text_data_as_the_go_runtime_made_them() {
    let r = encode("id", response(b"\"hello \\\"you\\\"\""), &defaults());
    assert_eq!(
        (r.headers()["content-type"].to_str().unwrap(), body_of(&r)),
        ("text/plain", Bytes::from("hello \"you\""))
    );
    let r = encode("id", response(b"  plain words \n"), &defaults());
    assert_eq!(body_of(&r), "plain words");
    let r = encode("id", response(b"42"), &defaults());
    assert_eq!(
        (r.headers()["content-type"].to_str().unwrap(), body_of(&r)),
        ("text/plain", Bytes::from("42"))
    );
    let png = Outcome::Response {
        body: Bytes::from_static(b"\x89PNG\xff"),
        content_type: Some("image/png".into()),
    };
    let r = encode("id", png, &defaults());
    assert_eq!(
        (r.headers()["content-type"].to_str().unwrap(), body_of(&r)),
        ("image/png", Bytes::from_static(b"\x89PNG\xff"))
    );
}

#[test]
fn attribute_values_are_percent_encoded_in_headers() {
    let s = settings(None, Some("/src".into()), Some("café 100%".into()), None).unwrap();
    let r = encode("id", response(b"{}"), &s);
    assert_eq!(r.headers()["ce-subject"], "caf%C3%A9%20100%25");
    let (event, _) = read_back(&r);
    assert_eq!(custom(&event)["subject"], "café 100%");
}

#[test]
fn empty_replies_and_an_empty_type_send_no_event() {
    assert_eq!(encode("id", response(b""), &defaults()).status(), 204);
    assert_eq!(encode("id", response(b" \n"), &defaults()).status(), 204);
    let no_type = settings(Some("".into()), None, None, None).unwrap();
    let r = encode("id", response(b"{}"), &no_type);
    assert_eq!(
        (r.status(), body_of(&r)),
        (StatusCode::NO_CONTENT, Bytes::new())
    );
    assert!(!r.headers().contains_key("ce-id"));
}

#[test]
fn event_mode_fills_in_missing_attributes() {
    let s = settings(None, None, None, Some("event".into())).unwrap();
    let r = encode(
        "req-9",
        response(br#"{"data": {"x": 1}, "subject": "mine"}"#),
        &s,
    );
    assert_eq!(r.status(), 200);
    let h = |name: &str| r.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(
        (h("ce-id"), h("ce-type"), h("ce-source")),
        (
            "req-9".into(),
            "ce.klr.triggermesh.io".into(),
            "knative-lambda-runtime".into()
        )
    );
    assert_eq!(
        (h("ce-specversion"), h("ce-subject")),
        ("1.0".into(), "mine".into())
    );
    assert!(r.headers().contains_key("ce-time"));
    assert_eq!(h("content-type"), "application/json");
    assert_eq!(
        serde_json::from_slice::<Value>(&body_of(&r)).unwrap(),
        json!({"x": 1})
    );

    let own = br#"{"specversion":"1.0","id":"e1","type":"my.t","source":"/me","time":"2020-01-01T00:00:00Z","ext":"v","datacontenttype":"text/plain","data":"hi"}"#;
    let r = encode("req-9", response(own), &s);
    let h = |name: &str| r.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(
        [h("ce-id"), h("ce-type"), h("ce-source"), h("ce-ext")],
        ["e1", "my.t", "/me", "v"]
    );
    assert!(
        h("ce-time").starts_with("2020-01-01T00:00:00"),
        "{}",
        h("ce-time")
    );
    assert_eq!(
        (h("content-type"), body_of(&r)),
        ("text/plain".into(), Bytes::from("hi"))
    );
}

#[test]
fn event_mode_refuses_replies_that_are_not_events() {
    let s = settings(None, None, None, Some("event".into())).unwrap();
    for bad in [
        &b"not json"[..],
        b"[1]",
        br#"{"specversion":"0.1"}"#,
        br#"{"id":""}"#,
    ] {
        let r = encode("id", response(bad), &s);
        assert_eq!(r.status(), 502, "{}", String::from_utf8_lossy(bad));
        let body: Value = serde_json::from_slice(&body_of(&r)).unwrap();
        assert_eq!(body["errorType"], "InvalidCloudEvent");
    }
}

#[test]
fn errors_and_failures_keep_the_passthrough_replies() {
    let err = Diagnostic::from_post(br#"{"errorMessage":"m","errorType":"T"}"#, None);
    let r = encode("id", Outcome::FunctionError(err), &defaults());
    assert_eq!(r.status(), 500);
    assert!(!r.headers().contains_key("ce-id"));
    let r = encode(
        "id",
        Outcome::Failed(InvocationError::Timeout(std::time::Duration::from_secs(1))),
        &defaults(),
    );
    assert_eq!(r.status(), 504);
}

#[test]
fn attributes_too_large_for_the_client_context_are_a_bad_request() {
    let big = "x".repeat(crate::wrapper::context::MAX_CLIENT_CONTEXT_JSON);
    let event = json!({"specversion": "1.0", "id": "1", "type": "t", "source": "s", "ext": big});
    let err = decode(&structured_headers(), Bytes::from(event.to_string()))
        .unwrap_err()
        .0;
    assert!(err.contains("client context"), "{err}");
}
