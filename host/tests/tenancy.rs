//! Tenant isolation (`TENANT_ISOLATION_MODE=PER_TENANT`) through the real binary, for every
//! kind of function: a bash + curl bootstrap, the crates.io `lambda_runtime` probe, the SDK
//! guest in loop mode and a plain WASI command. Each test function remembers, in memory and
//! in its `/tmp` (native: `$TMPDIR`), which tenants it served, so an environment that ever
//! served two tenants shows it. Also: the 400 answers, fairness by order, the per-tenant
//! queue share (429), Landlock between native environments, the WASI `/tmp` cap, metrics.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Host, built, function_dir, repo_root, target_dir};
use serde_json::{Value, json};

const TENANT: &str = "X-Amz-Tenant-Id";

fn guest(name: &str) -> PathBuf {
    let p = target_dir()
        .parent()
        .unwrap()
        .join("wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run `make functions`",
        p.display()
    );
    p
}

/// The function folders of the four kinds, by name.
fn function(kind: &str) -> tempfile::TempDir {
    match kind {
        "bash" => function_dir(
            &repo_root().join("tests/functions/tenant-bash/bootstrap"),
            &[],
        ),
        "lambda_runtime" => function_dir(&built("probe-function"), &[]),
        "wasm-sdk" | "wasm-sdk-invocation" | "wasm-command" => {
            let name = if kind == "wasm-command" {
                "stdio-probe"
            } else {
                "guest-probe"
            };
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy(guest(name), dir.path().join("bootstrap.wasm")).unwrap();
            dir
        }
        other => panic!("no function kind {other}"),
    }
}

/// Every kind; `wasm-sdk-invocation` is the SDK guest with `WASM_ISOLATION=invocation`.
const KINDS: [&str; 5] = [
    "bash",
    "lambda_runtime",
    "wasm-sdk",
    "wasm-sdk-invocation",
    "wasm-command",
];

fn start(dir: &tempfile::TempDir, env: &[(&str, &str)]) -> Host {
    start_kind("", dir, env)
}

fn start_kind(kind: &str, dir: &tempfile::TempDir, env: &[(&str, &str)]) -> Host {
    let isolation = if kind == "wasm-sdk-invocation" {
        "invocation"
    } else {
        "loop"
    };
    let mut all = vec![
        ("WASM_ISOLATION", isolation),
        ("TENANT_ISOLATION_MODE", "PER_TENANT"),
        ("INVOKER_COUNT", "3"),
        ("FUNCTION_TTL", "60s"),
    ];
    all.extend_from_slice(env);
    Host::start(dir.path(), &all)
}

/// Invokes `event` as `tenant`; status and JSON body.
async fn invoke(host: &Host, tenant: Option<&str>, event: &Value) -> (u16, Value, Option<String>) {
    let mut req = host.client.post(host.url("/")).body(event.to_string());
    if let Some(t) = tenant {
        req = req.header(TENANT, t);
    }
    let r = req.send().await.expect("request failed");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}\n{}", host.logs()));
    (status, body, retry)
}

async fn remember(host: &Host, tenant: &str) -> Value {
    let (status, body, _) = invoke(host, Some(tenant), &json!({"op": "remember"})).await;
    assert_eq!(status, 200, "{body}\n{}", host.logs());
    body
}

/// The tenants an answer says its environment remembers, in memory and in /tmp.
fn remembered(body: &Value, field: &str) -> Vec<String> {
    body[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} list: {body}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn assert_one_tenant(body: &Value, tenant: &str) {
    assert_eq!(body["tenant"], tenant, "{body}");
    for field in ["memory", "tmp"] {
        let seen = remembered(body, field);
        assert!(
            seen.iter().all(|t| t == tenant),
            "an environment of {tenant} remembers other tenants in {field}: {body}"
        );
    }
}

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
        let fresh_each_call = kind == "wasm-sdk-invocation";
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

/// The value of the first metrics line containing `needle`.
fn counter(metrics: &str, needle: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {needle} in\n{metrics}"))
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

/// Waits until the metrics gauge `name` reaches `at_least`.
async fn wait_gauge(host: &Host, name: &str, at_least: u64) {
    let start = Instant::now();
    loop {
        let text = host
            .client
            .get(host.metrics_url())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if counter(&text, &format!("{name}{{")) >= at_least {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name} never reached {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
async fn a_native_environment_cannot_read_another_environments_scratch() {
    if aws_custom_runtime::tenancy::confine::kernel_abi().is_none() {
        eprintln!(
            "SKIPPED: this kernel does not enforce Landlock, so native environments are not \
             confined and this test cannot show it"
        );
        return;
    }
    let dir = function("bash");
    let host = start(&dir, &[("INVOKER_COUNT", "2")]);
    host.wait_log(
        "Landlock confines native environments",
        Duration::from_secs(10),
    );
    let (_, secret, _) = invoke(&host, Some("alice"), &json!({"op": "secret"})).await;
    let path = secret["path"].as_str().unwrap().to_owned();
    let read = json!({"op": "read", "path": path});
    let (_, own, _) = invoke(&host, Some("alice"), &read).await;
    assert_eq!(
        own["ok"], true,
        "an environment reads its own scratch: {own}"
    );
    assert_eq!(own["text"], "secret of alice");
    let (_, other, _) = invoke(&host, Some("mallory"), &read).await;
    assert_eq!(other["ok"], false, "mallory read alice's scratch: {other}");
}

#[tokio::test]
async fn wasi_tmp_is_capped_and_fresh_per_call_in_invocation_isolation() {
    let dir = function("wasm-sdk");
    let host = Host::start(
        dir.path(),
        &[("INVOKER_COUNT", "1"), ("WASM_TMP_LIMIT", "1MiB")],
    );
    // Mode NONE, loop isolation: one /tmp per environment, kept between calls.
    let first = host.invoke(json!({"op": "remember"})).await.1;
    let second = host.invoke(json!({"op": "remember"})).await.1;
    assert_eq!(
        remembered(&second, "tmp").len(),
        remembered(&first, "tmp").len() + 1
    );
    let (_, small) = host
        .invoke(json!({"op": "fill", "bytes": 256 * 1024}))
        .await;
    assert_eq!(small["error"], Value::Null, "{small}");
    let (_, big) = host.invoke(json!({"op": "fill", "bytes": 8 << 20})).await;
    let written = big["written"].as_u64().unwrap();
    assert!(written <= 1 << 20, "wrote past the cap: {big}");
    let error = big["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("no space"), "{big}");
    drop(host);
    let host = Host::start(
        dir.path(),
        &[("INVOKER_COUNT", "1"), ("WASM_ISOLATION", "invocation")],
    );
    for _ in 0..2 {
        let body = host.invoke(json!({"op": "remember"})).await.1;
        assert_eq!(
            remembered(&body, "tmp").len(),
            1,
            "a fresh /tmp per call: {body}"
        );
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

const PYTHON_HANDLER: &str = r#"import json, os

SERVED = []

def handle(event, context):
    SERVED.append(context.tenant_id)
    path = os.path.join(os.environ["TMPDIR"], "tenants")
    with open(path, "a") as f:
        f.write(context.tenant_id + "\n")
    with open(path) as f:
        tmp = f.read().splitlines()
    return {"tenant": context.tenant_id, "memory": SERVED, "tmp": tmp}
"#;

/// awslambdaric, confined: its packages live in the function's folder, as on AWS.
#[tokio::test]
async fn awslambdaric_sees_its_tenant_and_keeps_it() {
    let site = repo_root().join("target/ric-venv/lib/python3.11/site-packages");
    if !site.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "target/ric-venv is missing: run `make functions`"
        );
        eprintln!("skipped: target/ric-venv is missing (run `make functions`)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(&site)
        .arg(dir.path().join("site"))
        .status()
        .unwrap();
    assert!(copied.success());
    let bootstrap = dir.path().join("bootstrap");
    std::fs::write(
        &bootstrap,
        "#!/bin/sh\nPYTHONPATH=\"$LAMBDA_TASK_ROOT/site\" exec python3 -m awslambdaric handler.handle\n",
    )
    .unwrap();
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("handler.py"), PYTHON_HANDLER).unwrap();
    let host = start(&dir, &[("INVOKER_COUNT", "2")]);
    for tenant in ["blue", "green", "blue", "green", "blue"] {
        assert_one_tenant(&remember(&host, tenant).await, tenant);
    }
    // Its next call lands warm (how many calls before it did depends on when the second
    // bootstrap came up, so only that the environment was reused is certain).
    let body = remember(&host, "blue").await;
    let before = remembered(&body, "memory").len();
    let body = remember(&host, "blue").await;
    assert_eq!(
        remembered(&body, "memory").len(),
        before + 1,
        "blue warm: {body}"
    );
}
