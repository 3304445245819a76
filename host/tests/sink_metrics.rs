//! K_SINK forwarding to a real local sink server, and `/metrics` counting what was sent.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_custom_runtime::reply;
use bytes::Bytes;
use common::{Host, built, function_dir};
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// What the sink saw: content type and body of every POST.
type Seen = Arc<Mutex<Vec<(Option<String>, Bytes)>>>;

/// A local sink answering every request with `status` and `body`.
async fn sink(status: StatusCode, body: &'static str) -> (String, Seen, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let stop = CancellationToken::new();
    let record = seen.clone();
    tokio::spawn(aws_custom_runtime::serve::serve(
        listener,
        stop.clone(),
        aws_custom_runtime::serve::Options::default(),
        move |req: http::Request<hyper::body::Incoming>| {
            let record = record.clone();
            async move {
                let ct = req
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let bytes = req.into_body().collect().await.unwrap().to_bytes();
                record.lock().unwrap().push((ct, bytes));
                reply::with_body(status, HeaderValue::from_static("text/plain"), body.into())
                    .map(aws_custom_runtime::serve::Served::from)
            }
        },
    ));
    (url, seen, stop)
}

#[tokio::test]
async fn results_go_to_the_sink_and_the_caller_gets_its_reply() {
    let (url, seen, _stop) = sink(StatusCode::ACCEPTED, "ack").await;
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(dir.path(), &[("K_SINK", &url), ("INVOKER_COUNT", "1")]);
    let r = host.post("/", r#"{"to":"sink"}"#).await;
    assert_eq!(
        r.status(),
        200,
        "the function's status, as the Go runtime gives"
    );
    assert_eq!(
        r.text().await.unwrap(),
        "ack",
        "the sink's reply body is passed back"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0.as_deref(), Some("application/json"));
    assert_eq!(&seen[0].1[..], br#"{"to":"sink"}"#);
}

#[tokio::test]
async fn a_failing_sink_is_retried_a_few_times_then_the_caller_gets_502() {
    let (url, seen, _stop) = sink(StatusCode::SERVICE_UNAVAILABLE, "down").await;
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(dir.path(), &[("K_SINK", &url), ("INVOKER_COUNT", "1")]);
    let (status, body) = host.invoke(json!({"x": 1})).await;
    assert_eq!(status, 502);
    assert_eq!(body["errorType"], "SinkUnavailable");
    assert_eq!(seen.lock().unwrap().len(), 3, "bounded retries");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let host = Host::start(
        dir.path(),
        &[
            ("K_SINK", &format!("http://127.0.0.1:{closed}/")),
            ("INVOKER_COUNT", "1"),
        ],
    );
    let (status, body) = host.invoke(json!({"x": 2})).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("cannot reach"),
        "{body}"
    );
}

#[tokio::test]
async fn an_invalid_sink_url_stops_start_up() {
    let dir = function_dir(&built("probe-function"), &[]);
    let (status, out) = common::run_to_exit(&[
        ("LAMBDA_TASK_ROOT", dir.path().to_str().unwrap()),
        ("K_SINK", "ftp://nowhere"),
    ]);
    assert!(!status.success());
    assert!(out.contains("K_SINK"), "{out}");
}

#[tokio::test]
async fn metrics_count_what_was_sent() {
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(
        dir.path(),
        &[
            ("INVOKER_COUNT", "1"),
            ("NAME", "my-fn"),
            ("NAMESPACE", "team-a"),
            ("FUNCTION_TTL", "1s"),
        ],
    );
    for i in 0..3 {
        assert_eq!(host.invoke(json!({"i": i})).await.0, 200);
    }
    assert_eq!(host.invoke(json!({"fail": "no"})).await.0, 500);
    assert_eq!(host.invoke(json!({"sleep_ms": 3000})).await.0, 504);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = reqwest::get(host.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let labels = r#"name="my-fn",namespace_name="team-a",resource_group="functions.extensions.triggermesh.io",event_type="plain-http",event_source="unknown""#;
    let has = |line: String| assert!(text.contains(&line), "missing {line}:\n{text}");
    has(format!(
        "function_event_processing_success_count{{{labels}}} 3\n"
    ));
    has(format!(
        "function_event_processing_error_count{{{labels},user_managed=\"true\"}} 1\n"
    ));
    has(format!(
        "function_event_processing_error_count{{{labels},user_managed=\"false\"}} 1\n"
    ));
    has(format!(
        "function_event_processing_latencies_count{{{labels}}} 5\n"
    ));
    has("# TYPE function_event_processing_latencies histogram".into());
    assert!(
        text.contains("aws_custom_runtime_deadlines_total{"),
        "{text}"
    );
    assert!(
        text.contains("aws_custom_runtime_bootstrap_restarts_total{"),
        "{text}"
    );
    let restarts = text
        .lines()
        .find(|l| l.starts_with("aws_custom_runtime_deadlines_total"))
        .unwrap();
    assert!(restarts.ends_with(" 1"), "{restarts}");
}
