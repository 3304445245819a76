use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::*;
use crate::dispatch::stream::{self, Head};
use crate::wrapper::apigateway::PayloadVersion;
use crate::wrapper::cloudevents::settings;

fn streamed(head: Option<Head>, content_type: Option<&str>) -> Streamed {
    let (w, body) = stream::channel(4, 100);
    w.finish();
    Streamed {
        head,
        content_type: content_type.map(str::to_owned),
        body,
    }
}

fn streaming(encoded: Encoded) -> http::Response<BodyStream> {
    match encoded {
        Encoded::Stream(r) => r,
        _ => panic!("expected a streamed reply"),
    }
}

#[test]
fn the_functions_head_is_the_reply_head_with_one_set_cookie_per_cookie() {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/html"));
    headers.insert("content-length", HeaderValue::from_static("99"));
    let head = Head {
        status: StatusCode::CREATED,
        headers,
        cookies: vec!["a=1".into(), "b=2; Secure".into()],
    };
    for kind in [
        WrapperKind::Passthrough,
        WrapperKind::ApiGateway(PayloadVersion::V2),
    ] {
        let reply =
            streaming(Wrapper::new(kind).encode_stream("id", streamed(Some(head.clone()), None)));
        assert_eq!(reply.status(), StatusCode::CREATED);
        assert_eq!(reply.headers()["content-type"], "text/html");
        assert!(!reply.headers().contains_key("content-length"));
        let cookies: Vec<_> = reply.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2; Secure"]);
    }
}

#[test]
fn a_plain_stream_is_200_with_its_content_type_or_bytes() {
    let w = Wrapper::new(WrapperKind::Passthrough);
    let reply = streaming(w.encode_stream("id", streamed(None, Some("text/plain"))));
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.headers()["content-type"], "text/plain");
    let reply = streaming(w.encode_stream(
        "id",
        streamed(None, Some("application/x-www-form-urlencoded")),
    ));
    assert_eq!(reply.headers()["content-type"], "application/octet-stream");
}

#[test]
fn cloudevents_data_mode_sends_the_ce_headers_first() {
    let s = settings(Some("com.example.t".into()), Some("src".into()), None, None).unwrap();
    let w = Wrapper::new(WrapperKind::CloudEvents(s));
    let reply = streaming(w.encode_stream("req-1", streamed(None, Some("text/plain"))));
    assert_eq!(reply.headers()["ce-id"], "req-1");
    assert_eq!(reply.headers()["ce-type"], "com.example.t");
    assert_eq!(reply.headers()["ce-source"], "src");
    assert_eq!(reply.headers()["ce-specversion"], "1.0");
    assert_eq!(reply.headers()["content-type"], "text/plain");
}

#[test]
fn cloudevents_event_mode_buffers_and_no_type_is_no_event() {
    let event = settings(None, None, None, Some("event".into())).unwrap();
    let w = Wrapper::new(WrapperKind::CloudEvents(event));
    assert!(matches!(
        w.encode_stream("id", streamed(None, None)),
        Encoded::Buffer(_)
    ));
    let untyped = settings(Some(String::new()), None, None, None).unwrap();
    let w = Wrapper::new(WrapperKind::CloudEvents(untyped));
    match w.encode_stream("id", streamed(None, None)) {
        Encoded::Whole(r) => assert_eq!(r.status(), StatusCode::NO_CONTENT),
        _ => panic!("expected no event"),
    }
}

#[tokio::test]
async fn the_body_streams_after_the_head() {
    let (mut w, body) = stream::channel(4, 100);
    let s = Streamed {
        head: None,
        content_type: None,
        body,
    };
    let mut reply = streaming(Wrapper::new(WrapperKind::Passthrough).encode_stream("id", s));
    w.send(Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(reply.body_mut().next().await, Ok(Bytes::from_static(b"x")));
}
