//! The streaming upload driven with in-memory bodies: frames go in one by one, the caller's
//! stream comes out.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::*;
use crate::dispatch::stream::Ending;
use crate::dispatch::{Dispatcher, Event, Ticket};

type Upload = StreamBody<ReceiverStream<Result<Frame<Bytes>, Infallible>>>;

fn api(limit: u64) -> std::sync::Arc<RuntimeApi> {
    std::sync::Arc::new(RuntimeApi {
        dispatcher: Dispatcher::new(1, 8),
        function_arn: HeaderValue::from_static("arn:aws:lambda:us-east-1:0:function:f"),
        body_limit: 1024,
        streaming_limit: limit,
        read_timeout: Duration::from_secs(5),
        extensions: None,
    })
}

async fn invocation(api: &RuntimeApi) -> (Ticket, String) {
    let ticket = api.dispatcher.enqueue(
        api.dispatcher.admit().unwrap(),
        Event::default(),
        Duration::from_secs(30),
    );
    let inv = api.dispatcher.next(0).await;
    (ticket, inv.id.to_string())
}

/// Starts a streaming upload; the frames go through the returned sender.
fn upload(
    api: &std::sync::Arc<RuntimeApi>,
    id: &str,
    mode: &str,
    content_type: Option<&str>,
) -> (
    mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
    tokio::task::JoinHandle<crate::reply::Reply>,
) {
    let (tx, rx) = mpsc::channel(4);
    let mut req = Request::post(format!("/2018-06-01/runtime/invocation/{id}/response"))
        .header(MODE_HEADER, mode);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(Upload::new(ReceiverStream::new(rx))).unwrap();
    let api = api.clone();
    (tx, tokio::spawn(async move { api.handle(req, 0).await }))
}

fn data(b: &'static [u8]) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(Bytes::from_static(b)))
}

fn error_trailers(ty: &'static str, body_b64: &'static str) -> Result<Frame<Bytes>, Infallible> {
    let mut t = HeaderMap::new();
    t.insert(stream::ERROR_TYPE_TRAILER, HeaderValue::from_static(ty));
    t.insert(
        stream::ERROR_BODY_TRAILER,
        HeaderValue::from_static(body_b64),
    );
    Ok(Frame::trailers(t))
}

fn streamed(outcome: Outcome) -> Streamed {
    match outcome {
        Outcome::Stream(s) => s,
        other => panic!("expected a stream, got {other:?}"),
    }
}

#[tokio::test]
async fn the_first_chunk_reaches_the_caller_before_the_runtime_sends_the_next() {
    let api = api(1 << 20);
    let (ticket, id) = invocation(&api).await;
    let (tx, answer) = upload(&api, &id, "streaming", Some("text/plain"));
    tx.send(data(b"first")).await.unwrap();
    let mut s = streamed(ticket.outcome().await.0);
    assert_eq!(s.content_type.as_deref(), Some("text/plain"));
    assert_eq!(s.body.next().await, Ok(Bytes::from_static(b"first")));
    tx.send(data(b"second")).await.unwrap();
    assert_eq!(s.body.next().await, Ok(Bytes::from_static(b"second")));
    drop(tx);
    assert_eq!(s.body.next().await, Err(Ending::Complete));
    assert_eq!(answer.await.unwrap().status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn an_error_after_data_ends_the_stream_with_it() {
    let api = api(1 << 20);
    let (ticket, id) = invocation(&api).await;
    let (tx, answer) = upload(&api, &id, "streaming", None);
    tx.send(data(b"partial")).await.unwrap();
    tx.send(error_trailers("Oops", "Ym9vbQ==")).await.unwrap();
    drop(tx);
    let mut s = streamed(ticket.outcome().await.0);
    assert_eq!(s.body.next().await, Ok(Bytes::from_static(b"partial")));
    let Err(Ending::Error(e)) = s.body.next().await else {
        panic!("expected the function's error");
    };
    assert_eq!((e.error_type.as_str(), &e.body[..]), ("Oops", &b"boom"[..]));
    assert_eq!(answer.await.unwrap().status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn an_error_before_any_byte_is_a_function_error() {
    let api = api(1 << 20);
    let (ticket, id) = invocation(&api).await;
    let (tx, answer) = upload(&api, &id, "streaming", None);
    tx.send(error_trailers("Oops", "Ym9vbQ==")).await.unwrap();
    drop(tx);
    match ticket.outcome().await.0 {
        Outcome::FunctionError(d) => {
            assert_eq!(
                (d.error_type.as_str(), d.error_message.as_str()),
                ("Oops", "boom")
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(answer.await.unwrap().status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn lambda_runtimes_in_band_error_chunk_is_an_error() {
    let e = in_band_error(
        b"Lambda-Runtime-Function-Error-Type: Runtime.StreamError\r\nLambda-Runtime-Function-Error-Body: Ym9vbQ==\r\n",
    )
    .unwrap();
    assert_eq!(
        (e.error_type.as_str(), &e.body[..]),
        ("Runtime.StreamError", &b"boom"[..])
    );
    assert_eq!(
        in_band_error(b"Lambda-Runtime-Function-Error-Type: x"),
        None
    );
    assert_eq!(in_band_error(b"ordinary data"), None);
}

#[tokio::test]
async fn a_prelude_gives_the_head_and_the_payload_follows() {
    let api = api(1 << 20);
    let (ticket, id) = invocation(&api).await;
    let (tx, answer) = upload(&api, &id, "streaming", Some(prelude::CONTENT_TYPE));
    tx.send(data(
        br#"{"statusCode":201,"headers":{"content-type":"text/csv"},"cookies":["a=1","b=2"]}"#,
    ))
    .await
    .unwrap();
    tx.send(data(b"\0\0\0\0\0\0\0\0a,b\n")).await.unwrap();
    drop(tx);
    let mut s = streamed(ticket.outcome().await.0);
    let head = s.head.clone().unwrap();
    assert_eq!(head.status, StatusCode::CREATED);
    assert_eq!(head.headers["content-type"], "text/csv");
    assert_eq!(head.cookies, ["a=1", "b=2"]);
    assert_eq!(s.content_type, None);
    assert_eq!(s.body.next().await, Ok(Bytes::from_static(b"a,b\n")));
    assert_eq!(s.body.next().await, Err(Ending::Complete));
    assert_eq!(answer.await.unwrap().status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_malformed_prelude_fails_the_invocation_saying_why() {
    let api = api(1 << 20);
    let (ticket, id) = invocation(&api).await;
    let (tx, _answer) = upload(&api, &id, "streaming", Some(prelude::CONTENT_TYPE));
    tx.send(data(b"{\"statusCode\":\"x\"}\0\0\0\0\0\0\0\0body"))
        .await
        .unwrap();
    drop(tx);
    match ticket.outcome().await.0 {
        Outcome::Failed(InvocationError::MalformedPrelude(why)) => {
            assert!(why.contains("statusCode"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_bad_mode_is_refused_to_the_runtime_and_fails_the_caller() {
    let api = api(1 << 20);
    let (ticket, id) = invocation(&api).await;
    let (tx, answer) = upload(&api, &id, "sideways", None);
    drop(tx);
    let reply = answer.await.unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    let body = reply.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("InvalidFunctionResponseMode"));
    match ticket.outcome().await.0 {
        Outcome::Failed(e @ InvocationError::InvalidResponseMode(_)) => {
            assert_eq!(e.error_type(), "Runtime.InvalidResponseModeHeader")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_stream_past_the_limit_is_cut_and_the_runtime_told() {
    let api = api(8);
    let (ticket, id) = invocation(&api).await;
    let (tx, answer) = upload(&api, &id, "streaming", None);
    tx.send(data(b"12345")).await.unwrap();
    let mut s = streamed(ticket.outcome().await.0);
    tx.send(data(b"67890")).await.unwrap();
    drop(tx);
    assert_eq!(s.body.next().await, Ok(Bytes::from_static(b"12345")));
    assert_eq!(s.body.next().await, Ok(Bytes::from_static(b"678")));
    assert_eq!(
        s.body.next().await,
        Err(Ending::Cut(Cut::PastLimit { limit: 8 }))
    );
    assert_eq!(
        answer.await.unwrap().status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn a_caller_that_hangs_up_ends_the_upload_with_an_answer() {
    let api = api(1 << 20);
    let (ticket, id) = invocation(&api).await;
    let (tx, answer) = upload(&api, &id, "streaming", None);
    tx.send(data(b"first")).await.unwrap();
    let s = streamed(ticket.outcome().await.0);
    drop(s);
    // The runtime goes on sending; its upload is read to its end and answered.
    tx.send(data(b"more")).await.unwrap();
    drop(tx);
    assert_eq!(answer.await.unwrap().status(), StatusCode::GONE);
}

#[test]
fn modes() {
    let mut h = HeaderMap::new();
    assert_eq!(mode(&h), Ok(Mode::Buffered));
    h.insert(MODE_HEADER, HeaderValue::from_static("Streaming"));
    assert_eq!(mode(&h), Ok(Mode::Streaming));
    h.insert(MODE_HEADER, HeaderValue::from_static("buffered"));
    assert_eq!(mode(&h), Ok(Mode::Buffered));
    h.insert(MODE_HEADER, HeaderValue::from_static("chunky"));
    assert_eq!(mode(&h), Err("chunky".into()));
}
