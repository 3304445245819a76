//! Tenant isolation (`TENANT_ISOLATION_MODE=PER_TENANT`) through the real binary, for every
//! kind of function: a bash + curl bootstrap, the crates.io `lambda_runtime` probe, the SDK
//! guest in both isolations as a core module and as a Lambda component, and a plain WASI
//! command. Each test function remembers, in memory and
//! in its `/tmp` (native: `$TMPDIR`), which tenants it served, so an environment that ever
//! served two tenants shows it. Also: the 400 answers, fairness by order, the per-tenant
//! queue share (429), crashes, metrics. Scratch folders and their confinement: scratch.rs.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Host;
use common::tenants::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_environment_ever_serves_two_tenants_and_one_tenant_lands_warm() {
    for kind in KINDS {
        let dir = function(kind);
        let host = Arc::new(start_kind(kind, &dir, &[]));
        // Eight tenants, two callers each at once, interleaved over three environments.
        let mut calls = tokio::task::JoinSet::new();
        for caller in 0..16 {
            let host = host.clone();
            calls.spawn(async move {
                let tenant = format!("tenant-{}", caller % 8);
                for _ in 0..4 {
                    let body = remember(&host, &tenant).await;
                    assert_one_tenant(&body, &tenant);
                }
            });
        }
        while let Some(done) = calls.join_next().await {
            done.unwrap_or_else(|e| panic!("{kind}: {e}\n{}", host.logs()));
        }
        // One tenant alone, call after call: always its warm environment (where anything
        // survives a call: not in invocation isolation, where /tmp is new each time).
        let fresh_each_call = kind.ends_with("-invocation");
        let mut last = 0;
        for i in 0..4 {
            let body = remember(&host, "solo @tenant").await;
            assert_one_tenant(&body, "solo @tenant");
            let tmp = remembered(&body, "tmp").len();
            if fresh_each_call {
                assert_eq!(tmp, 1, "{kind}: {body}");
                continue;
            }
            if i > 0 {
                assert_eq!(tmp, last + 1, "{kind}: call {i} was not warm: {body}");
            }
            last = tmp;
            if kind != "wasm-command" {
                assert_eq!(remembered(&body, "memory").len(), tmp, "{kind}: {body}");
            }
        }
        let metrics = host
            .client
            .get(host.metrics_url())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let switches = counter(&metrics, "aws_custom_runtime_tenant_switches_total{");
        let resets = counter(&metrics, "cause=\"tenant_switch\"}");
        assert!(
            switches > 0,
            "{kind}: nine tenants on three environments must switch"
        );
        assert_eq!(
            resets, switches,
            "{kind}: every switch resets once:\n{metrics}"
        );
        if !fresh_each_call {
            assert!(counter(&metrics, "aws_custom_runtime_env_warm_hits_total{") >= 3);
        }
        assert!(metrics.contains("tenant=\"solo @tenant\""), "{metrics}");
    }
}

#[tokio::test]
async fn tenant_headers_that_do_not_fit_the_mode_are_refused() {
    let dir = function("lambda_runtime");
    let host = start(&dir, &[("INVOKER_COUNT", "1")]);
    let event = json!({"op": "remember"});
    let long = "x".repeat(257);
    for (tenant, why) in [
        (None, "needs"),
        (Some(""), "empty"),
        (Some("a;b"), "only letters"),
        (Some(long.as_str()), "257"),
    ] {
        let (status, body, _) = invoke(&host, tenant, &event).await;
        assert_eq!(status, 400, "{tenant:?}: {body}");
        assert_eq!(body["errorType"], "InvalidParameterValueException");
        let message = body["errorMessage"].as_str().unwrap();
        assert!(message.contains(why), "{tenant:?}: {message}");
    }
    let longest = "y".repeat(256);
    assert_one_tenant(&remember(&host, &longest).await, &longest);
    drop(host);

    // Without tenant isolation a tenant header is refused, as AWS refuses it.
    let host = Host::start(dir.path(), &[("INVOKER_COUNT", "1")]);
    let (status, body, _) = invoke(&host, Some("a"), &event).await;
    assert_eq!(
        (status, &body["errorType"]),
        (400, &json!("InvalidParameterValueException"))
    );
    let (status, body, _) = invoke(&host, None, &event).await;
    assert_eq!(status, 200, "{body}");
    drop(host);

    // A gateway's own header replaces AWS's.
    let host = start(
        &dir,
        &[("INVOKER_COUNT", "1"), ("TENANT_ID_HEADER", "X-Customer")],
    );
    let (status, _, _) = invoke(&host, Some("c1"), &event).await;
    assert_eq!(status, 400, "only X-Customer counts now");
    let r = host
        .client
        .post(host.url("/"))
        .header("X-Customer", "c1")
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["tenant"], "c1", "lambda_runtime's Context.tenant_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_call_of_another_tenant_is_served_ahead_of_a_flood() {
    for kind in ["lambda_runtime", "wasm-sdk"] {
        let dir = function(kind);
        let host = Arc::new(start(&dir, &[("INVOKER_COUNT", "1")]));
        let order = Arc::new(AtomicUsize::new(0));
        let flood = 12;
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..flood {
            let (host, order) = (host.clone(), order.clone());
            calls.spawn(async move {
                let (status, body, _) =
                    invoke(&host, Some("flood"), &json!({"op": "sleep", "ms": 30})).await;
                assert_eq!(status, 200, "{body}");
                ("flood", order.fetch_add(1, Ordering::SeqCst))
            });
        }
        // The flood waits in the queue before the other tenant's call arrives.
        wait_gauge(&host, "aws_custom_runtime_queue_depth", flood as u64 - 2).await;
        let (h, o) = (host.clone(), order.clone());
        calls.spawn(async move {
            let (status, body, _) = invoke(&h, Some("single"), &json!({"op": "echo"})).await;
            assert_eq!(status, 200, "{body}");
            ("single", o.fetch_add(1, Ordering::SeqCst))
        });
        let mut single_at = None;
        while let Some(done) = calls.join_next().await {
            let (who, at) = done.unwrap();
            if who == "single" {
                single_at = Some(at);
            }
        }
        let at = single_at.unwrap();
        assert!(
            at < 4,
            "{kind}: the single call ended {at}th of {}, behind the flood",
            flood + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_past_its_queue_share_gets_429_and_others_do_not() {
    let dir = function("lambda_runtime");
    let host = Arc::new(start(
        &dir,
        &[("INVOKER_COUNT", "1"), ("TENANT_QUEUE_SHARE", "2")],
    ));
    let slow = json!({"op": "sleep", "ms": 1500});
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let host = host.clone();
        let slow = slow.clone();
        calls.spawn(async move { invoke(&host, Some("greedy"), &slow).await.0 });
    }
    // One runs, two wait: the share is full.
    wait_gauge(&host, "aws_custom_runtime_queue_depth", 2).await;
    let (status, body, retry) = invoke(&host, Some("greedy"), &slow).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errorType"], "TooManyRequestsException");
    assert!(retry.is_some(), "429 without Retry-After");
    let (status, body, _) = invoke(&host, Some("modest"), &json!({"op": "echo"})).await;
    assert_eq!(status, 200, "another tenant is unaffected: {body}");
    while let Some(done) = calls.join_next().await {
        assert_eq!(done.unwrap(), 200);
    }
}

#[tokio::test]
async fn a_crash_resets_the_environment_and_its_scratch() {
    for kind in ["lambda_runtime", "wasm-sdk"] {
        let dir = function(kind);
        let host = start(&dir, &[("INVOKER_COUNT", "1")]);
        remember(&host, "a").await;
        let body = remember(&host, "a").await;
        assert_eq!(remembered(&body, "tmp").len(), 2, "{kind}: {body}");
        let (status, body, _) = invoke(&host, Some("a"), &json!({"op": "crash"})).await;
        assert_eq!(status, 502, "{kind}: {body}");
        // A new process or instance, an empty scratch folder.
        let body = remember(&host, "a").await;
        assert_eq!(remembered(&body, "memory"), ["a"], "{kind}: {body}");
        assert_eq!(remembered(&body, "tmp"), ["a"], "{kind}: {body}");
        let body = remember(&host, "b").await;
        assert_one_tenant(&body, "b");
        let metrics = host
            .client
            .get(host.metrics_url())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            counter(&metrics, "cause=\"crash\"}") >= 1,
            "{kind}:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_deadline_resets_only_that_environment_and_its_tenant_goes_on() {
    for (kind, stuck) in [
        ("lambda_runtime", json!({"op": "sleep", "ms": 20_000})),
        ("wasm-sdk", json!({"op": "spin"})),
    ] {
        let dir = function(kind);
        let host = start(&dir, &[("INVOKER_COUNT", "2"), ("FUNCTION_TTL", "1s")]);
        assert_one_tenant(&remember(&host, "steady").await, "steady");
        let (status, body, _) = invoke(&host, Some("stuck"), &stuck).await;
        assert_eq!(status, 504, "{kind}: {body}");
        // The other tenant's warm environment was not touched.
        let body = remember(&host, "steady").await;
        assert_eq!(remembered(&body, "memory").len(), 2, "{kind}: {body}");
        // The stuck tenant is served again, by a reset environment.
        let body = remember(&host, "stuck").await;
        assert_one_tenant(&body, "stuck");
        assert_eq!(remembered(&body, "tmp").len(), 1, "{kind}: {body}");
        let metrics = host
            .client
            .get(host.metrics_url())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            counter(&metrics, "cause=\"deadline\"}") >= 1,
            "{kind}:\n{metrics}"
        );
    }
}
