//! Streamed responses through the wrappers and the sink, with the real `lambda_runtime`
//! streaming function: API_GATEWAY and CLOUDEVENTS (binary, `ce-*` headers first) stream;
//! `K_SINK` gets the whole, buffered response.

mod common;

use std::sync::{Arc, Mutex};

use aws_custom_runtime::reply;
use bytes::Bytes;
use common::{Host, built, function_dir};
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;

fn streamer() -> tempfile::TempDir {
    function_dir(&built("stream-function"), &[])
}

#[tokio::test]
async fn api_gateway_streams_the_functions_reply() {
    let f = streamer();
    let host = Host::start(
        f.path(),
        &[("INVOKER_COUNT", "1"), ("RESPONSE_FORMAT", "API_GATEWAY")],
    );
    // The event is API Gateway's JSON of this request: the function streams its 3 chunks.
    let r = host.post("/path?x=1", "{}").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    assert_eq!(r.text().await.unwrap(), "chunk 0\nchunk 1\nchunk 2\n");
}

#[tokio::test]
async fn cloudevents_binary_mode_sends_ce_headers_then_streams_the_data() {
    let f = streamer();
    let host = Host::start(
        f.path(),
        &[
            ("INVOKER_COUNT", "1"),
            ("RESPONSE_FORMAT", "CLOUDEVENTS"),
            ("CE_TYPE", "com.example.streamed"),
        ],
    );
    let r = host.post("/", "{}").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["ce-type"], "com.example.streamed");
    assert_eq!(r.headers()["ce-specversion"], "1.0");
    assert!(r.headers().contains_key("ce-id"));
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    assert_eq!(r.text().await.unwrap(), "chunk 0\nchunk 1\nchunk 2\n");
}

#[tokio::test]
async fn the_sink_gets_the_whole_streamed_response() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let stop = CancellationToken::new();
    let record = seen.clone();
    tokio::spawn(aws_custom_runtime::serve::serve(
        listener,
        stop.clone(),
        aws_custom_runtime::serve::Options::default(),
        move |req: http::Request<hyper::body::Incoming>| {
            let record = record.clone();
            async move {
                let bytes = req.into_body().collect().await.unwrap().to_bytes();
                record.lock().unwrap().push(bytes);
                reply::with_body(
                    StatusCode::ACCEPTED,
                    HeaderValue::from_static("text/plain"),
                    "ack".into(),
                )
                .map(aws_custom_runtime::serve::Served::from)
            }
        },
    ));
    let f = streamer();
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1"), ("K_SINK", &url)]);
    let r = host.post("/", r#"{"chunks": 2}"#).await;
    assert!(r.status().is_success(), "{}", r.status());
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent, [Bytes::from_static(b"chunk 0\nchunk 1\n")]);
    stop.cancel();
}
