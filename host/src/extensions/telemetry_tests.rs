use std::net::Ipv4Addr;

use super::*;
use crate::extensions::subscription::SCHEMAS;

fn sub(body: &str) -> Result<Subscription, String> {
    Subscription::parse(body.as_bytes())
}

#[test]
fn the_lambda_extension_crate_s_subscription_is_accepted() {
    let s = sub(
        r#"{"schemaVersion":"2022-07-01","types":["platform","function"],
        "buffering":{"maxItems":10000,"maxBytes":262144,"timeoutMs":100},
        "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:9003"}}"#,
    )
    .unwrap();
    assert!(s.platform && s.function && !s.extension);
    assert_eq!(s.destination, SocketAddr::from((Ipv4Addr::LOCALHOST, 9003)));
    assert_eq!(s.path, "/");
    assert_eq!(s.timeout, Duration::from_millis(100));
}

#[test]
fn every_schema_version_and_default_buffering() {
    for v in SCHEMAS {
        let s = sub(&format!(
            r#"{{"schemaVersion":"{v}","types":["extension"],
            "destination":{{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080/lambda_logs"}}}}"#
        ))
        .unwrap();
        assert_eq!((s.max_items, s.max_bytes), (10_000, 262_144));
        assert_eq!(s.path, "/lambda_logs");
    }
}

#[test]
fn out_of_bounds_and_unknown_values_are_refused_with_the_reason() {
    let base = |schema: &str, types: &str, buffering: &str, uri: &str| {
        format!(
            r#"{{"schemaVersion":"{schema}","types":{types},"buffering":{buffering},
            "destination":{{"protocol":"HTTP","URI":"{uri}"}}}}"#
        )
    };
    let ok_uri = "http://sandbox.localdomain:1";
    for (body, says) in [
        (base("2021-03-18", "[]", "{}", ok_uri), "schemaVersion"),
        (base("2022-07-01", r#"["bogus"]"#, "{}", ok_uri), "bogus"),
        (
            base("2022-07-01", "[]", r#"{"maxItems":10}"#, ok_uri),
            "maxItems",
        ),
        (
            base("2022-07-01", "[]", r#"{"maxBytes":2000000}"#, ok_uri),
            "maxBytes",
        ),
        (
            base("2022-07-01", "[]", r#"{"timeoutMs":5}"#, ok_uri),
            "timeoutMs",
        ),
        (
            base("2022-07-01", "[]", "{}", "http://example.com:80"),
            "sandbox.localdomain",
        ),
        (
            base("2022-07-01", "[]", "{}", "http://sandbox.localdomain"),
            "PORT",
        ),
    ] {
        let err = sub(&body).unwrap_err();
        assert!(err.contains(says), "{err:?} should name {says}");
    }
}

fn subscriber(max_items: usize) -> Subscriber {
    Subscriber {
        extension: uuid::Uuid::new_v4(),
        sub: Subscription {
            platform: true,
            function: true,
            extension: false,
            max_items,
            max_bytes: 262_144,
            timeout: Duration::from_millis(25),
            destination: SocketAddr::from((Ipv4Addr::LOCALHOST, 1)),
            path: "/".into(),
        },
        buffer: Mutex::new(Buffer {
            items: VecDeque::new(),
            bytes: 0,
            dropped: 0,
            dropped_bytes: 0,
        }),
        wake: Notify::new(),
        stop: tokio_util::sync::CancellationToken::new(),
    }
}

#[test]
fn batches_hold_at_most_max_items_and_are_json_arrays() {
    let s = subscriber(1_000);
    for i in 0..1_500 {
        assert!(s.push(&record("function", Value::String(format!("line {i}")))));
    }
    let (first, n) = take_batch(&s).unwrap();
    assert_eq!(n, 1_000);
    let parsed: Vec<Value> = serde_json::from_slice(&first).unwrap();
    assert_eq!(parsed[0]["type"], "function");
    assert_eq!(parsed[0]["record"], "line 0");
    assert!(parsed[0]["time"].is_string());
    let (_, n) = take_batch(&s).unwrap();
    assert_eq!(n, 500);
    assert!(take_batch(&s).is_none());
}

#[test]
fn a_full_buffer_drops_and_the_next_batch_reports_it() {
    let s = subscriber(10_000);
    let line = record("function", Value::String("x".into()));
    let mut dropped = 0;
    for _ in 0..MAX_BUFFERED + 5 {
        if !s.push(&line) {
            dropped += 1;
        }
    }
    assert_eq!(dropped, 5);
    let (batch, _) = take_batch(&s).unwrap();
    let parsed: Vec<Value> = serde_json::from_slice(&batch).unwrap();
    assert_eq!(parsed[0]["type"], "platform.logsDropped");
    assert_eq!(parsed[0]["record"]["droppedRecords"], 5);
}

#[tokio::test]
async fn records_reach_a_destination_that_starts_listening_late() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let mut s = subscriber(1_000);
    s.sub.destination = addr;
    s.push(&record("function", Value::String("hello".into())));
    let (batch, _) = take_batch(&s).unwrap();
    let server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0; 4096];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("hello") {
            let n = conn.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&got).into_owned()
    });
    send(&s.sub, batch).await.unwrap();
    let got = server.await.unwrap();
    assert!(got.starts_with("POST / HTTP/1.1"), "{got}");
}
