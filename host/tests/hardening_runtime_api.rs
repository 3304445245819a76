//! Issue 19 from outside, as a runtime: what a bootstrap (or the test playing one) can send
//! the real binary's Runtime API, bounded in count and time, asserting statuses and order.

mod common;

use std::time::Duration;

use common::{Host, raw, script_dir};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_owned()
}

/// Waits for the test's own poll of `/next` (INVOKER_COUNT=0) to be handed `body`.
async fn deliver(
    host: &Host,
    next: &str,
    body: &'static str,
) -> (String, tokio::task::JoinHandle<reqwest::Response>) {
    let poll = tokio::spawn(reqwest::Client::new().get(next.to_owned()).send());
    host.ready(Duration::from_secs(10)).await;
    let req = host.client.post(host.url("/")).body(body);
    let caller = tokio::spawn(async move { req.send().await.unwrap() });
    let r = poll.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let id = header(&r, "lambda-runtime-aws-request-id");
    assert_eq!(r.text().await.unwrap(), body);
    (id, caller)
}

#[tokio::test]
async fn a_stalled_response_upload_ends_by_the_deadline_and_the_host_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::spawn(
        dir.path(),
        &[("INVOKER_COUNT", "0"), ("FUNCTION_TTL", "2s")],
    );
    let api = host.addresses.runtime_api[0];
    let base = format!("http://{api}/2018-06-01/runtime/invocation");
    let next = format!("{base}/next");
    let (id, caller) = deliver(&host, &next, "stalled").await;

    let mut upload = TcpStream::connect(api).await.unwrap();
    let path = format!("/2018-06-01/runtime/invocation/{id}/response");
    let stall = raw::post_head(&path, 100_000) + "{";
    upload.write_all(stall.as_bytes()).await.unwrap();

    let reply = timeout(Duration::from_secs(15), caller).await;
    let reply = reply.unwrap_or_else(|_| panic!("the caller waits on:\n{}", host.logs()));
    let reply = reply.unwrap();
    assert_eq!(reply.status(), 504);
    let body: Value = serde_json::from_str(&reply.text().await.unwrap()).unwrap();
    assert_eq!(body["errorType"], "Sandbox.Timedout");
    // The upload is cut too, instead of holding its connection and buffer for ever.
    let cut = timeout(Duration::from_secs(15), raw::read_response(&mut upload)).await;
    let (status, _) = cut
        .unwrap_or_else(|_| panic!("the stalled upload is still open:\n{}", host.logs()))
        .unwrap();
    assert_eq!(status, 408);

    let (id, caller) = deliver(&host, &next, "after").await;
    let accepted = reqwest::Client::new()
        .post(format!("{base}/{id}/response"))
        .body("served")
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let reply = caller.await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.text().await.unwrap(), "served");
}

/// Writes "RUNTIME_API REQUEST_ID" to `held` for the invocation it takes, then answers
/// "genuine" once the file `go` appears.
const HOLD_UNTIL_GO: &str = r#"#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while true; do
  curl -sS -o /dev/null -D "headers.$BOOTSTRAP_INDEX" "$api/next" || exit 1
  id=$(grep -i '^lambda-runtime-aws-request-id:' "headers.$BOOTSTRAP_INDEX" | tr -d '\r' | cut -d' ' -f2)
  echo "$AWS_LAMBDA_RUNTIME_API $id" > "held.$BOOTSTRAP_INDEX" && mv "held.$BOOTSTRAP_INDEX" held
  while [ ! -e go ]; do sleep 0.05; done
  rm -f go
  curl -sS -o /dev/null -X POST --data-binary genuine "$api/$id/response"
done
"#;

#[tokio::test]
async fn an_answer_posted_on_another_bootstraps_runtime_api_is_refused() {
    let dir = script_dir(HOLD_UNTIL_GO);
    let host = Host::start(dir.path(), &[("INVOKER_COUNT", "2")]);
    assert_eq!(host.addresses.runtime_api.len(), 2, "{:?}", host.addresses);
    let req = host.client.post(host.url("/")).body("event");
    let caller = tokio::spawn(async move { req.send().await.unwrap() });

    let held = dir.path().join("held");
    let text = timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(t) = std::fs::read_to_string(&held) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no bootstrap took the invocation:\n{}", host.logs()));
    let (holder, id) = text.trim().split_once(' ').unwrap();
    let other = host
        .addresses
        .runtime_api
        .iter()
        .find(|a| a.to_string() != holder)
        .unwrap();
    let http = reqwest::Client::new();
    for kind in ["response", "error"] {
        let r = http
            .post(format!(
                "http://{other}/2018-06-01/runtime/invocation/{id}/{kind}"
            ))
            .body(r#"{"errorMessage":"forged","errorType":"Forged"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{kind}");
        let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})
        );
    }
    std::fs::write(dir.path().join("go"), "").unwrap();
    let reply = timeout(Duration::from_secs(10), caller)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.text().await.unwrap(), "genuine");
}

#[tokio::test]
async fn a_4_mb_init_error_message_is_logged_cut_short() {
    const MAX_LINE: usize = 8 << 10;
    let dir = tempfile::tempdir().unwrap();
    let host = Host::spawn(dir.path(), &[("INVOKER_COUNT", "0")]);
    let api = host.addresses.runtime_api[0];
    let message = "m".repeat(4 << 20);
    let r = reqwest::Client::new()
        .post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.Huge")
        .body(json!({"errorMessage": message, "errorType": "Runtime.Huge"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    host.wait_log("runtime init error", Duration::from_secs(10));
    let logs = host.logs();
    let longest = logs.lines().map(str::len).max().unwrap_or(0);
    assert!(longest <= MAX_LINE, "a log line of {longest} bytes");
    assert!(
        logs.contains(&"m".repeat(1024)),
        "the start of the message is logged"
    );
}
