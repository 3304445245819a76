//! npm `aws-lambda-ric` 4 on Node 22 as a concurrent runtime (Lambda Managed Instances),
//! running the handler in `tests/functions/node-concurrent/`: with
//! `AWS_LAMBDA_MAX_CONCURRENCY=4` and one bootstrap, four invocations run at once in one
//! process; a crash of that process fails all four; a handler's `process.exit` ends only
//! its worker thread, whose invocation then fails at its deadline and resets the runtime.
//!
//! How ric 4 runs concurrently: with `AWS_LAMBDA_MAX_CONCURRENCY` set (any value) its main
//! thread starts worker threads (`AWS_LAMBDA_NODEJS_WORKER_COUNT`, else 8 per CPU of the
//! cgroup's `cpu.max`, 1 CPU when that is unreadable); each loads the handler and polls
//! `/next` again as soon as it has been given an invocation, so one worker holds several.
//! The polls block threads of libuv's pool (4 by default) in the native client. Overlap is
//! shown by files the invocations write, not by timing. The clients live in
//! `target/node22` and `target/node-ric4` (`make functions` installs them).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Host, all, invoke, repo_root};
use serde_json::{Value, json};

/// The function folder, or `None` (a skip outside CI) when ric 4 is not installed.
fn ric4_function() -> Option<PathBuf> {
    let ric = repo_root().join("target/node-ric4/installed");
    if !ric.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "target/node-ric4 is missing: run `make functions`"
        );
        eprintln!("skipped: target/node-ric4 is missing (run `make functions`)");
        return None;
    }
    Some(repo_root().join("tests/functions/node-concurrent"))
}

fn concurrent_host(dir: &Path, ttl: &str) -> Host {
    let host = Host::spawn(
        dir,
        &[
            ("INVOKER_COUNT", "1"),
            ("AWS_LAMBDA_MAX_CONCURRENCY", "4"),
            ("FUNCTION_TTL", ttl),
        ],
    );
    // Node 22 starts its worker threads before the first poll opens the public port.
    host.wait_ready(Duration::from_secs(60));
    host
}

/// An event that records its arrival in `dir` and waits until `n` have arrived.
fn gather(dir: &Path, n: u64, wait_ms: u64) -> Value {
    json!({"dir": dir, "n": n, "wait_ms": wait_ms})
}

#[tokio::test(flavor = "multi_thread")]
async fn four_invocations_run_at_once_in_one_node_process_and_never_more() {
    let Some(function) = ric4_function() else {
        return;
    };
    let host = concurrent_host(&function, "120s");
    // Each waits until four run at once: only four overlapping invocations can all answer.
    let met = tempfile::tempdir().unwrap();
    let event = gather(met.path(), 4, 100_000);
    let answers = all((0..4).map(|_| invoke(&host, event.clone())).collect()).await;
    let pid = &answers[0].1["pid"];
    let mut ids = Vec::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}\n{}", host.logs());
        assert_eq!(body["seen"], 4, "{body}");
        assert_eq!(&body["pid"], pid, "one process holds all four: {answers:?}");
        assert_eq!(body["maxConcurrency"], "4", "{body}");
        assert!(
            body["threadId"].as_u64().is_some_and(|t| t > 0),
            "ric 4 runs handlers in worker threads: {body}"
        );
        ids.push(body["requestId"].as_str().unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "four invocations: {answers:?}");
    // Five asked for: the fifth waits for a free slot, so none ever sees five.
    let five = tempfile::tempdir().unwrap();
    let event = gather(five.path(), 5, 1500);
    for (status, body) in all((0..5).map(|_| invoke(&host, event.clone())).collect()).await {
        assert_eq!(status, 200, "{body}");
        assert!(body["seen"].as_u64().unwrap() <= 4, "{body}");
        assert_eq!(&body["pid"], pid, "the same process serves on: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_of_the_node_process_fails_all_four_invocations_it_held() {
    let Some(function) = ric4_function() else {
        return;
    };
    let host = concurrent_host(&function, "120s");
    let met = tempfile::tempdir().unwrap();
    let mut hang = gather(met.path(), 4, 100_000);
    hang["then"] = json!("hang");
    let mut kill = hang.clone();
    kill["then"] = json!("kill");
    let mut calls: Vec<_> = (0..3).map(|_| invoke(&host, hang.clone())).collect();
    calls.push(invoke(&host, kill));
    for (status, body) in all(calls).await {
        assert_eq!(status, 502, "{body}\n{}", host.logs());
        assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    }
    // A fresh process serves again.
    let again = tempfile::tempdir().unwrap();
    let (status, body) = invoke(&host, gather(again.path(), 1, 100_000))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}\n{}", host.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn process_exit_ends_one_worker_and_its_invocation_fails_at_the_deadline() {
    let Some(function) = ric4_function() else {
        return;
    };
    let host = concurrent_host(&function, "10s");
    let met = tempfile::tempdir().unwrap();
    let signals = tempfile::tempdir().unwrap();
    let go = signals.path().join("go");
    let mut exit = gather(met.path(), 4, 100_000);
    exit["then"] = json!("exit");
    exit["go"] = json!(go);
    let exiting = invoke(&host, exit);
    let event = gather(met.path(), 4, 100_000);
    let siblings = all((0..3).map(|_| invoke(&host, event.clone())).collect()).await;
    let pid = &siblings[0].1["pid"];
    for (status, body) in &siblings {
        assert_eq!(*status, 200, "{body}\n{}", host.logs());
        assert_eq!(body["seen"], 4, "{body}");
    }
    // The three have answered: only now does the fourth call process.exit(1), which ends
    // its worker thread and not the process, so the host hears nothing of it.
    std::fs::write(&go, "").unwrap();
    let (status, body) = exiting.await.unwrap();
    assert_eq!(status, 504, "{body}\n{}", host.logs());
    assert_eq!(body["errorType"], "Sandbox.Timedout", "{body}");
    // The deadline reset the runtime: once the new process has started, it serves. (Until
    // the old one is killed, its workers' open polls may still be handed work, which then
    // fails with the reset.)
    let start = std::time::Instant::now();
    while host.logs().matches("bootstrap started").count() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the runtime was never started again:\n{}",
            host.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = tempfile::tempdir().unwrap();
    let (status, body) = invoke(&host, gather(again.path(), 1, 100_000))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}\n{}", host.logs());
    assert_ne!(&body["pid"], pid, "the runtime was reset: {body}");
}
