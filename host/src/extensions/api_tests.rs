use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use super::super::Extensions;
use crate::config::{Args, Config};
use crate::dispatch::{Event, Invocation};
use crate::metrics::Metrics;

fn extensions() -> Arc<Extensions> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let args = Args::try_parse_from([
        "host",
        "--invoker-count=0",
        "--extensions-dir=off",
        "--function-name=f",
        "--task-root",
        root.as_str(),
    ])
    .unwrap();
    let config = Config::build(args, dir.path()).unwrap();
    Extensions::new(&config, Arc::new(Metrics::new(&config.metric_labels)))
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

async fn call(ext: &Extensions, req: Request<Full<Bytes>>) -> (StatusCode, http::HeaderMap, Value) {
    let reply = ext.handle(req).await;
    let (parts, body) = reply.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, json)
}

async fn register(ext: &Extensions, name: &str, events: &str) -> String {
    let (status, headers, body) = call(
        ext,
        request(
            "POST",
            "/2020-01-01/extension/register",
            &[
                ("Lambda-Extension-Name", name),
                ("Lambda-Extension-Accept-Feature", "accountId"),
            ],
            events,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["functionName"], "f");
    assert!(body["accountId"].is_string(), "{body}");
    headers["Lambda-Extension-Identifier"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn next(id: &str) -> Request<Full<Bytes>> {
    request(
        "GET",
        "/2020-01-01/extension/event/next",
        &[("Lambda-Extension-Identifier", id)],
        "",
    )
}

fn invocation(id: &str) -> Invocation {
    Invocation {
        id: id.into(),
        event: Event {
            trace_id: Some("Root=1-abc".into()),
            ..Event::default()
        },
        deadline: Instant::now() + Duration::from_secs(5),
        deadline_ms: 42,
    }
}

#[tokio::test]
async fn next_long_polls_until_an_invoke_and_then_holds_the_runner() {
    let ext = extensions();
    let id = register(&ext, "ext", r#"{"events":["INVOKE","SHUTDOWN"]}"#).await;
    let poll = tokio::spawn({
        let ext = ext.clone();
        let id = id.clone();
        async move { call(&ext, next(&id)).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!poll.is_finished(), "long polls");
    ext.invoke(0, &invocation("req-1"));
    let (status, headers, body) = poll.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains_key("Lambda-Extension-Event-Identifier"));
    assert_eq!(body["eventType"], "INVOKE");
    assert_eq!(body["requestId"], "req-1");
    assert_eq!(body["deadlineMs"], 42);
    assert_eq!(body["invokedFunctionArn"], ext.meta.arn);
    assert_eq!(body["tracing"]["type"], "X-Amzn-Trace-Id");
    assert_eq!(body["tracing"]["value"], "Root=1-abc");
    // The runner waits for the extension's next call.
    let gate = tokio::spawn({
        let ext = ext.clone();
        async move { ext.before_next(0).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!gate.is_finished(), "held until the extension asks again");
    let again = tokio::spawn({
        let ext = ext.clone();
        async move { call(&ext, next(&id)).await }
    });
    gate.await.unwrap();
    again.abort();
}

#[tokio::test]
async fn misuse_is_answered_with_403_and_lambda_s_error_types() {
    let ext = extensions();
    let cases: Vec<(Request<Full<Bytes>>, &str)> = vec![
        (
            request(
                "POST",
                "/2020-01-01/extension/register",
                &[],
                r#"{"events":[]}"#,
            ),
            "Extension.MissingHeader",
        ),
        (
            request(
                "POST",
                "/2020-01-01/extension/register",
                &[("Lambda-Extension-Name", "x")],
                r#"{"events":["BOGUS"]}"#,
            ),
            "Extension.InvalidEventType",
        ),
        (
            request("GET", "/2020-01-01/extension/event/next", &[], ""),
            "Extension.MissingHeader",
        ),
        (next("not-a-uuid"), "Extension.UnknownExtensionIdentifier"),
        (
            next(&uuid::Uuid::new_v4().to_string()),
            "Extension.UnknownExtensionIdentifier",
        ),
        (
            request(
                "POST",
                "/2020-01-01/extension/init/error",
                &[(
                    "Lambda-Extension-Identifier",
                    &uuid::Uuid::new_v4().to_string(),
                )],
                "",
            ),
            "Extension.MissingHeader",
        ),
    ];
    for (req, expected) in cases {
        let path = req.uri().path().to_owned();
        let (status, _, body) = call(&ext, req).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["errorType"], expected, "{path}");
        assert!(body["errorMessage"].is_string());
    }
    let id = register(&ext, "twice", "{}").await;
    let (status, _, body) = call(
        &ext,
        request(
            "POST",
            "/2020-01-01/extension/register",
            &[("Lambda-Extension-Name", "twice")],
            "{}",
        ),
    )
    .await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("Extension.InvalidExtensionState")
        )
    );
    // Past its first `next`, an init error is a state error.
    let poll = tokio::spawn({
        let ext = ext.clone();
        let id = id.clone();
        async move { call(&ext, next(&id)).await }
    });
    ext.ready().await;
    let (status, _, body) = call(
        &ext,
        request(
            "POST",
            "/2020-01-01/extension/init/error",
            &[
                ("Lambda-Extension-Identifier", &id),
                ("Lambda-Extension-Function-Error-Type", "E.x"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(
        body["errorType"], "Extension.InvalidExtensionState",
        "{status}"
    );
    poll.abort();
    // Init ended: registration is closed.
    let (status, _, body) = call(
        &ext,
        request(
            "POST",
            "/2020-01-01/extension/register",
            &[("Lambda-Extension-Name", "late")],
            "{}",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["errorType"], "Extension.RegistrationClosed");
}

#[tokio::test]
async fn the_logs_api_points_to_the_telemetry_api() {
    let ext = extensions();
    let (status, _, body) = call(&ext, request("PUT", "/2020-08-15/logs", &[], "{}")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["errorType"], "Logs.NotSupported");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Telemetry API")
    );
}
