//! A test function on `lambda_runtime::run_concurrent` (Lambda Managed Instances): with
//! `AWS_LAMBDA_MAX_CONCURRENCY=N` it long-polls N times from one process. An event
//! `{"op": "gather", "n": N}` waits until N invocations have run in this process at once
//! (or `wait_ms` passed) and answers the most it saw (`seen`), so that overlap is shown by what the
//! invocations saw, not by timing; `"then": "crash"` exits the process after gathering,
//! `"then": "hang"` never answers. Each arrival is printed (`arrived K`) for tests to follow.
//! If `init-fail` exists in its folder, it exits with status 4 before polling (an init
//! failure that reports nothing).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static ARRIVED: AtomicUsize = AtomicUsize::new(0);
/// The most invocations that ever ran at once in this process: a waiter that wakes after a
/// sibling already answered still sees that they overlapped.
static PEAK: AtomicUsize = AtomicUsize::new(0);

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, ctx) = event.into_parts();
    let number = |field: &str| payload.get(field).and_then(Value::as_u64).unwrap_or(0);
    let arrived = ARRIVED.fetch_add(1, Ordering::SeqCst) + 1;
    let running = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(running, Ordering::SeqCst);
    println!("arrived {arrived}");
    let want = number("n") as usize;
    let mut waited = 0;
    while PEAK.load(Ordering::SeqCst) < want && waited < number("wait_ms") {
        tokio::time::sleep(Duration::from_millis(5)).await;
        waited += 5;
    }
    let seen = PEAK.load(Ordering::SeqCst);
    match payload.get("then").and_then(Value::as_str) {
        Some("crash") => std::process::exit(3),
        Some("hang") => std::future::pending::<()>().await,
        _ => {}
    }
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    Ok(json!({
        "pid": std::process::id(),
        "seen": seen,
        "request_id": ctx.request_id,
        "max_concurrency": std::env::var("AWS_LAMBDA_MAX_CONCURRENCY").ok(),
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    if std::path::Path::new("init-fail").exists() {
        eprintln!("init-fail is present: exiting before the first poll");
        std::process::exit(4);
    }
    lambda_runtime::run_concurrent(service_fn(handle)).await
}
