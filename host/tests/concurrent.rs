//! Concurrent runtimes (Lambda Managed Instances): with `AWS_LAMBDA_MAX_CONCURRENCY=4` and
//! one bootstrap on `lambda_runtime::run_concurrent`, four invocations run at once in one
//! process and never more; a crash fails every one it held; the deadline reset of one fails
//! its siblings with a message saying so. Overlap is shown by what the invocations saw
//! inside the process, not by timing.

mod common;

use std::time::Duration;

use common::{Host, all, built, function_dir, invoke};
use serde_json::json;

fn concurrent_host(ttl: &str) -> (Host, tempfile::TempDir) {
    let dir = function_dir(&built("concurrent-probe"), &[]);
    let host = Host::start(
        dir.path(),
        &[
            ("INVOKER_COUNT", "1"),
            ("AWS_LAMBDA_MAX_CONCURRENCY", "4"),
            ("FUNCTION_TTL", ttl),
        ],
    );
    (host, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn run_concurrent_runs_four_at_once_in_one_process_and_never_more() {
    let (host, _dir) = concurrent_host("120s");
    // Each waits until four run at once: only four overlapping invocations can all answer.
    let gather = json!({"op": "gather", "n": 4, "wait_ms": 100_000});
    let answers = all((0..4).map(|_| invoke(&host, gather.clone())).collect()).await;
    let pid = &answers[0].1["pid"];
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}\n{}", host.logs());
        assert_eq!(body["seen"], 4, "{body}");
        assert_eq!(&body["pid"], pid, "one process holds all four");
        assert_eq!(body["max_concurrency"], "4");
    }
    // Five asked for: the fifth waits for a free slot, so none ever sees five.
    let five = json!({"op": "gather", "n": 5, "wait_ms": 1500});
    let answers = all((0..5).map(|_| invoke(&host, five.clone())).collect()).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert!(body["seen"].as_u64().unwrap() <= 4, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_fails_all_four_invocations_the_process_held() {
    let (host, _dir) = concurrent_host("120s");
    let hang = json!({"op": "gather", "n": 4, "wait_ms": 100_000, "then": "hang"});
    let crash = json!({"op": "gather", "n": 4, "wait_ms": 100_000, "then": "crash"});
    let mut calls: Vec<_> = (0..3).map(|_| invoke(&host, hang.clone())).collect();
    calls.push(invoke(&host, crash));
    for (status, body) in all(calls).await {
        assert_eq!(status, 502, "{body}\n{}", host.logs());
        assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    }
    // A fresh process serves again.
    let (status, body) = invoke(&host, json!({"op": "echo"})).await.unwrap();
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_reset_fails_the_siblings_with_a_message_saying_so() {
    let (host, _dir) = concurrent_host("5s");
    let hang = json!({"op": "gather", "n": 0, "then": "hang"});
    let first = invoke(&host, hang.clone());
    host.wait_log("arrived 1", Duration::from_secs(30));
    // The sibling's deadline comes well after the first one's.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sibling = invoke(&host, hang);
    host.wait_log("arrived 2", Duration::from_secs(30));
    let (status, body) = first.await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["errorType"], "Sandbox.Timedout");
    let (status, body) = sibling.await.unwrap();
    assert_eq!(status, 502, "{body}\n{}", host.logs());
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("reset because another invocation it was running passed its deadline"),
        "{body}"
    );
}
