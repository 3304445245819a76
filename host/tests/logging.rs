//! A host whose stderr nobody reads (a full pipe) keeps answering: log lines are dropped
//! and counted, never waited for.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, script_dir};

/// Echoes every event and writes 3,000 lines to stderr per invocation.
const CHATTY: &str = r#"#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while true; do
  headers=$(mktemp)
  body=$(curl -sS -D "$headers" "$api/next")
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | tr -d '\r' | cut -d' ' -f2)
  rm -f "$headers"
  seq 1 3000 | sed 's/^/chatty log line number /' >&2
  curl -sS -X POST --data-binary "$body" "$api/$id/response" >/dev/null
done
"#;

#[tokio::test]
async fn a_stuck_stderr_drops_log_lines_and_never_stalls_requests() {
    let dir = script_dir(CHATTY);
    let state = tempfile::tempdir().unwrap();
    let address_file = state.path().join("addresses.json");
    // stderr is a pipe that this test never reads: it fills after 64 KiB.
    let mut child = Command::new(BIN)
        .env("PORT", "0")
        .env("ADDRESS_FILE", &address_file)
        .env("METRICS_PROMETHEUS_PORT", "0")
        .env("LAMBDA_TASK_ROOT", dir.path())
        .env("INVOKER_COUNT", "1")
        .env("LOG_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let addresses: serde_json::Value = loop {
        if let Ok(text) = std::fs::read_to_string(&address_file) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never bound");
        std::thread::sleep(Duration::from_millis(10));
    };
    let port_of = |name: &str| -> u16 {
        let addr: std::net::SocketAddr = addresses[name].as_str().unwrap().parse().unwrap();
        addr.port()
    };
    let (port, metrics_port) = (port_of("public"), port_of("metrics"));
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/");
    let run = async {
        while client
            .get(&url)
            .header("k-kubelet-probe", "1")
            .send()
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // 30 invocations log 90,000 lines: far more than the pipe and the buffer hold.
        for i in 0..30 {
            let r = client
                .post(&url)
                .body(format!("event-{i}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "request {i}");
            assert_eq!(r.text().await.unwrap(), format!("event-{i}"));
        }
        client
            .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let metrics = tokio::time::timeout(Duration::from_secs(60), run).await;
    let _ = child.kill();
    let _ = child.wait();
    let metrics = metrics.expect("requests stalled behind a stuck stderr");
    let dropped: u64 = metrics
        .lines()
        .find(|l| l.starts_with("aws_custom_runtime_log_lines_dropped_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no drop counter in:\n{metrics}"));
    assert!(dropped > 0, "lines were dropped and counted:\n{metrics}");
}
