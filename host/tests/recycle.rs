//! Bootstrap recycling (`BOOTSTRAP_MAX_INVOCATIONS`, `BOOTSTRAP_MAX_AGE`), driven from
//! outside: the real binary, the crates.io `lambda_runtime` probe, HTTP.

mod common;

use std::time::Duration;

use common::{Host, built, function_dir};
use serde_json::json;

/// The pid of the bootstrap that answered.
async fn pid(host: &Host) -> u64 {
    let (status, v) = host.invoke(json!({"context": true})).await;
    assert_eq!(status, 200, "{v}\n{}", host.logs());
    v["pid"].as_u64().unwrap()
}

#[tokio::test]
async fn a_bootstrap_is_recycled_after_its_maximum_invocations_and_nothing_fails() {
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(
        dir.path(),
        &[("INVOKER_COUNT", "1"), ("BOOTSTRAP_MAX_INVOCATIONS", "3")],
    );
    let mut pids = Vec::new();
    for _ in 0..9 {
        pids.push(pid(&host).await);
    }
    for chunk in pids.chunks(3) {
        assert!(chunk.iter().all(|p| *p == chunk[0]), "{pids:?}");
    }
    assert!(
        pids[0] != pids[3] && pids[3] != pids[6],
        "a fresh bootstrap after every three: {pids:?}"
    );
}

#[tokio::test]
async fn a_bootstrap_is_recycled_once_it_reaches_its_maximum_age() {
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(
        dir.path(),
        &[("INVOKER_COUNT", "1"), ("BOOTSTRAP_MAX_AGE", "400ms")],
    );
    let first = pid(&host).await;
    // Order, not speed: the age passes, then the next invocation meets a new process.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let later = pid(&host).await;
    assert_ne!(first, later, "an old bootstrap was replaced");
}
