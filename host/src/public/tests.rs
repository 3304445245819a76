//! The public endpoint driven with in-memory requests: no socket, no binary.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{Public, upload_slots};
use crate::dispatch::{Dispatcher, Outcome};
use crate::metrics::{Labels, Metrics};
use crate::wrapper::{Wrapper, WrapperKind};

fn public(queue_size: usize) -> Arc<Public> {
    let labels = Labels {
        name: "f".into(),
        namespace: "ns".into(),
        resource_group: "rg".into(),
        component: "c".into(),
    };
    Arc::new(Public {
        dispatcher: Dispatcher::new(1, queue_size),
        body_limit: 1 << 20,
        function_ttl: Duration::from_secs(30),
        read_timeout: Duration::from_secs(2),
        uploads: Semaphore::new(upload_slots(queue_size)),
        wrapper: Wrapper::new(WrapperKind::Passthrough),
        sink: None,
        ce_overrides: None,
        metrics: Arc::new(Metrics::new(&labels)),
        tenancy: Default::default(),
        request_head: false,
    })
}

/// A runner that answers every invocation with its own event.
fn echo_runner(public: &Arc<Public>) {
    let dispatcher = public.dispatcher.clone();
    tokio::spawn(async move {
        loop {
            let inv = dispatcher.next(0).await;
            let outcome = Outcome::Response {
                body: inv.event.body.clone(),
                content_type: Some("text/plain".into()),
            };
            let _ = dispatcher.complete(&inv.id, outcome);
        }
    });
}

fn post(body: &'static str) -> Request<Full<Bytes>> {
    Request::post("/")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

type Frames = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;
type Stalled = Request<StreamBody<ReceiverStream<Result<Frame<Bytes>, Infallible>>>>;

/// A request whose body sends `first` and then stalls while the sender lives.
fn stalled(first: &'static str) -> (Stalled, Frames) {
    let (tx, rx) = mpsc::channel(4);
    tx.try_send(Ok(Frame::data(Bytes::from_static(first.as_bytes()))))
        .unwrap();
    let req = Request::post("/")
        .body(StreamBody::new(ReceiverStream::new(rx)))
        .unwrap();
    (req, tx)
}

async fn text(reply: crate::serve::ServedReply) -> (StatusCode, String) {
    let status = reply.status();
    let body = reply.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_request_is_one_invocation_and_its_reply() {
    let p = public(4);
    echo_runner(&p);
    let (status, body) = text(p.handle(post("hello")).await).await;
    assert_eq!(status, 200);
    assert_eq!(body, "hello");
}

#[tokio::test]
async fn kubelet_probes_are_not_invocations() {
    let p = public(4);
    let req = Request::get("/")
        .header("user-agent", "kube-probe/1.31")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, body) = text(p.handle(req).await).await;
    assert_eq!(status, 200);
    assert!(body.contains("ready"), "{body}");
    assert_eq!(p.dispatcher.queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stops_arriving_gets_408_at_the_read_timeout() {
    let p = public(4);
    let (req, _sender) = stalled("{");
    let (status, body) = text(p.handle(req).await).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert!(body.contains("REQUEST_READ_TIMEOUT"), "{body}");
    assert!(p.dispatcher.admit().is_ok(), "its admission came back");
}

#[tokio::test]
async fn slow_uploads_cannot_take_the_admissions_of_complete_requests() {
    let p = public(4);
    echo_runner(&p);
    let mut senders = Vec::new();
    let mut stalls = Vec::new();
    for _ in 0..upload_slots(4) {
        let (req, tx) = stalled("{");
        senders.push(tx);
        let p = p.clone();
        stalls.push(tokio::spawn(async move { p.handle(req).await.status() }));
    }
    // Let the stalled ones take their upload slots.
    while p.uploads.available_permits() > 0 {
        tokio::task::yield_now().await;
    }
    let (req, _tx) = stalled("{");
    let (status, body) = text(p.handle(req).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("TooManyRequestsException"), "{body}");
    for i in 0..3 {
        let (status, body) = text(p.handle(post("whole")).await).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "whole"),
            "request {i}"
        );
    }
    // The stalled uploads finish and are served too.
    for tx in senders {
        tx.send(Ok(Frame::data(Bytes::from_static(b"}"))))
            .await
            .unwrap();
    }
    for stall in stalls {
        assert_eq!(stall.await.unwrap(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_reply_holds_its_admission_until_it_has_been_written() {
    let p = public(1);
    echo_runner(&p);
    let reply = p.handle(post("big")).await;
    assert!(
        p.dispatcher.admit().is_err(),
        "the unread reply holds its place"
    );
    let (status, body) = text(reply).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "big"));
    assert!(p.dispatcher.admit().is_ok(), "written: the place is free");
}

#[tokio::test]
async fn a_full_queue_is_a_503_with_retry_after() {
    let p = public(1);
    let _held = p.dispatcher.admit().unwrap();
    let reply = p.handle(post("x")).await;
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers()["retry-after"], "1");
}
