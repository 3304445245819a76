//! Streamed replies of the public endpoint, driven in memory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::sync::Semaphore;

use super::wants_trailers;
use crate::dispatch::stream::{self, StreamError, StreamWriter};
use crate::dispatch::{Dispatcher, Outcome, Streamed};
use crate::metrics::{Labels, Metrics};
use crate::public::{Public, upload_slots};
use crate::wrapper::{Wrapper, WrapperKind};

fn public() -> Arc<Public> {
    let labels = Labels {
        name: "f".into(),
        namespace: "ns".into(),
        resource_group: "rg".into(),
        component: "c".into(),
    };
    Arc::new(Public {
        dispatcher: Dispatcher::new(1, 8),
        body_limit: 1 << 20,
        function_ttl: Duration::from_secs(30),
        read_timeout: Duration::from_secs(2),
        uploads: Semaphore::new(upload_slots(8)),
        wrapper: Wrapper::new(WrapperKind::Passthrough),
        sink: None,
        ce_overrides: None,
        metrics: Arc::new(Metrics::new(&labels)),
        tenancy: Default::default(),
        request_head: false,
    })
}

/// A runner that answers the next invocation with a stream, handing its writer back.
fn streaming_runner(public: &Arc<Public>) -> tokio::sync::oneshot::Receiver<StreamWriter> {
    let dispatcher = public.dispatcher.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let inv = dispatcher.next(0).await;
        let (writer, body) = stream::channel(4, 1 << 20);
        let streamed = Streamed {
            head: None,
            content_type: Some("text/plain".into()),
            body,
        };
        let _ = dispatcher.complete(&inv.id, Outcome::Stream(streamed));
        let _ = tx.send(writer);
    });
    rx
}

#[tokio::test]
async fn a_stream_is_served_as_it_arrives_with_trailers_for_a_caller_that_wants_them() {
    let public = public();
    let writer = streaming_runner(&public);
    let req = Request::post("/")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let p = public.clone();
    let reply = tokio::spawn(async move { p.handle(req).await });
    let mut writer = writer.await.unwrap();
    let mut reply = reply.await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.headers()["content-type"], "text/plain");
    assert!(
        reply.headers()["trailer"]
            .to_str()
            .unwrap()
            .contains("Error-Type")
    );
    writer.send(Bytes::from_static(b"one")).await.unwrap();
    let frame = reply.body_mut().frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "one");
    writer.fail(StreamError {
        error_type: "Oops".into(),
        body: Bytes::from_static(b"x"),
    });
    let rest = reply.into_body().collect().await.unwrap();
    assert_eq!(
        rest.trailers().unwrap()["lambda-runtime-function-error-type"],
        "Oops"
    );
    let metrics = public.metrics.render(0, 0);
    assert!(metrics.contains("user_managed=\"true\"} 1"), "{metrics}");
}

#[test]
fn trailers_are_for_callers_that_ask_for_them() {
    let mut h = HeaderMap::new();
    assert!(!wants_trailers(&h));
    h.insert("te", HeaderValue::from_static("gzip, Trailers"));
    assert!(wants_trailers(&h));
    h.insert("te", HeaderValue::from_static("gzip"));
    assert!(!wants_trailers(&h));
}
