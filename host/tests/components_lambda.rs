//! Lambda components (guest-sdk/wit, world `lambda:function/lambda-function`) through the
//! public endpoint of the real binary: a Rust function built with the SDK for
//! `wasm32-wasip2` (wit-bindgen) and a Python one built with componentize-py, under every
//! wrapper, in both isolation modes and with tenant isolation; function errors, the context fields, traps, deadlines,
//! memory caps, a failed initialisation, the sandbox, outgoing HTTP denied; and the
//! JavaScript example (jco). `make functions` builds them all (tests/guests `lambda-echo`,
//! `guest-probe` and `init-error-probe` for wasm32-wasip2, example/python-lambda,
//! example/js-lambda); `lambda-echo` and the examples answer the same events alike.

mod common;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Host, repo_root, target_dir, target_root};
use serde_json::{Value, json};

const MODES: [&str; 2] = ["loop", "invocation"];

/// The two Lambda-world functions: (language, component).
fn functions() -> [(&'static str, PathBuf); 2] {
    let target = target_root();
    let rust = target.join("wasm32-wasip2/release/lambda-echo.wasm");
    let python = repo_root().join("target/lambda-components/python-lambda.wasm");
    for p in [&rust, &python] {
        assert!(
            p.exists(),
            "{} is missing: run `make functions` (it builds the Lambda components)",
            p.display()
        );
    }
    [("rust", rust), ("python", python)]
}

/// One start at a time: the first compiles the (large) Python component into the shared
/// cache, and the others then load it instead of compiling it again in parallel.
static STARTS: Mutex<()> = Mutex::new(());

fn start(component: &PathBuf, mode: &str, env: &[(&str, &str)]) -> (Host, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(component, dir.path().join("bootstrap.wasm")).unwrap();
    let cache = target_dir().join("lambda-component-cache");
    let cache = cache.to_str().unwrap().to_owned();
    let mut all = vec![
        ("WASM_ISOLATION", mode),
        ("INVOKER_COUNT", "1"),
        ("WASM_CACHE_DIR", cache.as_str()),
    ];
    all.extend_from_slice(env);
    let _one = STARTS.lock().unwrap_or_else(|e| e.into_inner());
    let host = Host::spawn(dir.path(), &all);
    host.wait_ready(Duration::from_secs(600));
    (host, dir)
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn passthrough_events_echo_in_both_modes_and_loop_mode_keeps_the_instance() {
    for (lang, component) in functions() {
        for mode in MODES {
            let (host, _dir) = start(&component, mode, &[]);
            let (status, body) = host.invoke(json!({"op": "echo", "data": [1, "two"]})).await;
            assert_eq!(status, 200, "{lang} {mode}: {body}");
            assert_eq!(body, json!({"payload": [1, "two"]}), "{lang} {mode}");
            let mut counts = Vec::new();
            for _ in 0..3 {
                counts.push(host.invoke(json!({"op": "count"})).await.1["count"].clone());
            }
            let want = if mode == "loop" {
                json!([2, 3, 4])
            } else {
                json!([1, 1, 1])
            };
            assert_eq!(json!(counts), want, "{lang} {mode}");
        }
    }
}

#[tokio::test]
async fn api_gateway_1_0_and_2_0_events_reach_the_component_and_its_proxy_reply_is_served() {
    for (lang, component) in functions() {
        for mode in MODES {
            for version in ["1.0", "2.0"] {
                let (host, _dir) = start(
                    &component,
                    mode,
                    &[
                        ("RESPONSE_FORMAT", "API_GATEWAY"),
                        ("API_GATEWAY_PAYLOAD_VERSION", version),
                    ],
                );
                let r = host
                    .client
                    .post(host.url("/items/3?x=1"))
                    .body("hello")
                    .send()
                    .await
                    .unwrap();
                let case = format!("{lang} {mode} {version}");
                assert_eq!(r.status(), 200, "{case}");
                assert_eq!(header(&r, "x-lambda-world"), lang, "{case}");
                assert_eq!(header(&r, "content-type"), "application/json", "{case}");
                let echo: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
                assert_eq!(
                    echo,
                    json!({"method": "POST", "path": "/items/3", "body": "hello"}),
                    "{case}"
                );
            }
        }
    }
}

#[tokio::test]
async fn cloudevents_reach_the_component_and_its_answer_is_the_reply_event() {
    for (lang, component) in functions() {
        for mode in MODES {
            let (host, _dir) = start(
                &component,
                mode,
                &[
                    ("RESPONSE_FORMAT", "CLOUDEVENTS"),
                    ("CE_TYPE", "com.example.reply"),
                ],
            );
            let r = host
                .client
                .post(host.url("/"))
                .header("ce-specversion", "1.0")
                .header("ce-id", "evt-1")
                .header("ce-type", "com.example.ping")
                .header("ce-source", "/cli")
                .header("content-type", "application/json")
                .body(r#"{"op":"echo","data":7}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{lang} {mode}");
            assert_eq!(header(&r, "ce-specversion"), "1.0", "{lang} {mode}");
            assert_eq!(header(&r, "ce-type"), "com.example.reply", "{lang} {mode}");
            let data: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            assert_eq!(data, json!({"payload": 7}), "{lang} {mode}");
        }
    }
}

#[tokio::test]
async fn error_results_are_the_usual_500_function_error() {
    for (lang, component) in functions() {
        for mode in MODES {
            let (host, _dir) = start(&component, mode, &[]);
            let r = host
                .post(
                    "/",
                    json!({"op": "error", "message": "no such item"}).to_string(),
                )
                .await;
            assert_eq!(r.status(), 500, "{lang} {mode}");
            assert_eq!(header(&r, "x-amz-function-error"), "Unhandled");
            let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            assert_eq!(
                body,
                json!({"errorType": "EchoFailure", "errorMessage": "no such item"}),
                "{lang} {mode}"
            );
            let (status, _) = host.invoke(json!({"op": "echo"})).await;
            assert_eq!(status, 200, "{lang} {mode}: the function goes on");
        }
    }
}

#[tokio::test]
async fn context_fields_reach_the_component_exactly() {
    // base64 of {"custom":{"k":"v"}}, as the AWS SDKs send a client context.
    const CLIENT_CONTEXT: &str = "eyJjdXN0b20iOnsiayI6InYifX0=";
    const TRACE: &str =
        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1";
    for (lang, component) in functions() {
        for mode in MODES {
            let (host, _dir) = start(
                &component,
                mode,
                &[
                    ("FUNCTION_TTL", "30s"),
                    ("AWS_LAMBDA_FUNCTION_NAME", "lambda-world"),
                ],
            );
            let sent = now_ms();
            let r = host
                .client
                .post(host.url("/"))
                .header("x-amz-client-context", CLIENT_CONTEXT)
                .header("x-amzn-trace-id", TRACE)
                .header("content-type", "application/json")
                .body(r#"{"op":"context"}"#)
                .send()
                .await
                .unwrap();
            let answered = now_ms();
            assert_eq!(r.status(), 200, "{lang} {mode}");
            let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            let id = body["request_id"].as_str().unwrap_or_default().to_owned();
            assert!(
                id.len() == 36 && id.matches('-').count() == 4,
                "{lang} {mode}: request id {id:?}"
            );
            let deadline = body["deadline_ms"].as_u64().unwrap_or_default();
            assert!(
                (sent + 30_000..=answered + 30_000).contains(&deadline),
                "{lang} {mode}: deadline {deadline} is not the arrival ({sent}..={answered}) + 30 s"
            );
            assert_eq!(
                body,
                json!({
                    "request_id": id,
                    "deadline_ms": deadline,
                    "function_arn": "arn:aws:lambda:us-east-1:000000000000:function:lambda-world",
                    "trace_id": TRACE,
                    "client_custom": {"k": "v"},
                    "identity_pool": null,
                    "tenant_id": null,
                    "content_type": "application/json",
                }),
                "{lang} {mode}"
            );
        }
    }
}

#[tokio::test]
async fn traps_deadlines_and_memory_caps_fail_the_invocation_and_a_fresh_instance_follows() {
    for (lang, component) in functions() {
        for mode in MODES {
            let (host, _dir) = start(
                &component,
                mode,
                &[("FUNCTION_TTL", "2s"), ("WASM_MEMORY_LIMIT", "96MiB")],
            );
            let crash = if lang == "rust" { "trap" } else { "crash" };
            let (status, body) = host.invoke(json!({"op": crash})).await;
            assert_eq!(status, 502, "{lang} {mode}: {body}");
            assert_eq!(body["errorType"], "Runtime.WasmTrap", "{lang} {mode}");
            let (status, body) = host.invoke(json!({"op": "echo", "data": 1})).await;
            assert_eq!(
                (status, &body),
                (200, &json!({"payload": 1})),
                "{lang} {mode}"
            );

            let (status, body) = host.invoke(json!({"op": "spin"})).await;
            assert_eq!(status, 504, "{lang} {mode}: {body}");
            assert_eq!(body["errorType"], "Sandbox.Timedout", "{lang} {mode}");
            let (status, _) = host.invoke(json!({"op": "echo", "data": 2})).await;
            assert_eq!(status, 200, "{lang} {mode}: served after the deadline");

            let (status, body) = host.invoke(json!({"op": "grow"})).await;
            assert_eq!(status, 502, "{lang} {mode}: {body}");
            assert_eq!(body["errorType"], "Runtime.WasmTrap", "{lang} {mode}");
            let (status, _) = host.invoke(json!({"op": "echo", "data": 3})).await;
            assert_eq!(status, 200, "{lang} {mode}: served after the memory bomb");
            let (_, body) = host.invoke(json!({"op": "count"})).await;
            let fresh = if mode == "loop" { 2 } else { 1 };
            assert_eq!(
                body["count"], fresh,
                "{lang} {mode}: a fresh instance after each"
            );
        }
    }
}

#[tokio::test]
async fn the_javascript_example_serves_echoes_errors_and_context() {
    let js = repo_root().join("target/lambda-components/js-lambda.wasm");
    assert!(
        js.exists(),
        "{} is missing: run `make functions`",
        js.display()
    );
    for mode in MODES {
        let (host, _dir) = start(&js, mode, &[]);
        let (status, body) = host.invoke(json!({"op": "echo", "data": {"a": 1}})).await;
        assert_eq!(
            (status, &body),
            (200, &json!({"payload": {"a": 1}})),
            "{mode}"
        );
        let (status, body) = host.invoke(json!({"op": "error", "message": "m"})).await;
        assert_eq!(status, 500, "{mode}: {body}");
        assert_eq!(
            body,
            json!({"errorType": "EchoFailure", "errorMessage": "m"}),
            "{mode}"
        );
        let (status, body) = host.invoke(json!({"op": "context"})).await;
        assert_eq!(status, 200, "{mode}: {body}");
        assert_eq!(
            body["function_arn"]
                .as_str()
                .map(|a| a.starts_with("arn:aws:lambda:")),
            Some(true)
        );
        assert_eq!(body["content_type"], "application/json", "{mode}");
        assert!(
            body["deadline_ms"].as_u64().is_some_and(|d| d > now_ms()),
            "{mode}"
        );
    }
}

/// Invokes `event` as `tenant` (no header when `None`).
async fn invoke_as(host: &Host, tenant: Option<&str>, event: Value) -> (u16, Value) {
    let mut req = host.client.post(host.url("/")).body(event.to_string());
    if let Some(t) = tenant {
        req = req.header("X-Amz-Tenant-Id", t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn with_tenant_isolation_an_instance_serves_one_tenant_and_stays_warm_for_it() {
    for (lang, component) in functions() {
        let (host, _dir) = start(
            &component,
            "loop",
            &[
                ("TENANT_ISOLATION_MODE", "PER_TENANT"),
                ("INVOKER_COUNT", "2"),
            ],
        );
        // Three tenants over two instances: switches happen, and each tenant's count (the
        // instance's invocations) goes up by one per call on a warm instance or starts at 1
        // on a new one. Another tenant's call in between would show as a jump.
        let order = ["a", "a", "b", "b", "a", "c", "b", "c", "a", "a", "c", "b"];
        let mut last: std::collections::HashMap<&str, u64> = Default::default();
        let mut warm = 0;
        for tenant in order {
            let (status, body) = invoke_as(&host, Some(tenant), json!({"op": "count"})).await;
            assert_eq!(status, 200, "{lang} {tenant}: {body}\n{}", host.logs());
            let count = body["count"].as_u64().unwrap();
            let before = last.insert(tenant, count);
            match before {
                Some(n) if count == n + 1 => warm += 1,
                _ => assert_eq!(
                    count, 1,
                    "{lang}: tenant {tenant} got an instance another tenant used ({body}, \
                     its last count {before:?})"
                ),
            }
        }
        assert!(
            warm >= 2,
            "{lang}: a tenant's calls in a row land warm ({warm})"
        );
        for tenant in ["a", "b", "c"] {
            let (status, body) = invoke_as(&host, Some(tenant), json!({"op": "context"})).await;
            assert_eq!(status, 200, "{lang}: {body}");
            assert_eq!(body["tenant_id"], tenant, "{lang}: {body}");
        }
        let (status, body) = invoke_as(&host, None, json!({"op": "count"})).await;
        assert_eq!(status, 400, "{lang}: {body}");
        assert_eq!(
            body["errorType"], "InvalidParameterValueException",
            "{lang}"
        );
    }
}

#[tokio::test]
async fn a_failed_initialisation_fails_the_invocation_as_an_init_error() {
    // The SDK's init-error probe built for wasm32-wasip2: its `main` (the component's
    // `wasi:cli/run`) reports an init error, which exits.
    let probe = target_root().join("wasm32-wasip2/release/init-error-probe.wasm");
    assert!(
        probe.exists(),
        "{} is missing: run `make functions`",
        probe.display()
    );
    for mode in MODES {
        let (host, _dir) = start(&probe, mode, &[]);
        for _ in 0..2 {
            let (status, body) = host.invoke(json!({})).await;
            assert_eq!(status, 502, "{mode}: {body}");
            assert_eq!(body["errorType"], "Runtime.InitError", "{mode}");
            let msg = body["errorMessage"].as_str().unwrap_or_default();
            assert!(
                msg.contains("ProbeInitFailure: init-error-probe never starts"),
                "{mode}: {msg}"
            );
        }
    }
}

#[tokio::test]
async fn outgoing_http_is_denied_by_default_and_makes_no_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let [_, (_, python)] = functions();
    for mode in MODES {
        let (host, _dir) = start(&python, mode, &[]);
        let (status, body) = host
            .invoke(json!({"op": "fetch", "authority": authority}))
            .await;
        assert_eq!(status, 200, "{mode}: {body}");
        assert_eq!(
            body,
            json!({"status": null, "error": "ErrorCode_HttpRequestDenied"}),
            "{mode}"
        );
        host.wait_log("outgoing request denied", std::time::Duration::from_secs(5));
    }
    assert!(
        listener.accept().is_err(),
        "a denied request must not connect"
    );
}

#[tokio::test]
async fn a_component_has_the_sandbox_of_every_wasi_function() {
    // The SDK test guest built for wasm32-wasip2: it tries the escapes itself.
    let probe = target_root().join("wasm32-wasip2/release/guest-probe.wasm");
    assert!(
        probe.exists(),
        "{} is missing: run `make functions`",
        probe.display()
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    for mode in MODES {
        let (host, dir) = start(&probe, mode, &[("HOST_SECRET", "s3cr3t")]);
        let root = dir.path().to_str().unwrap().to_string();
        std::fs::write(dir.path().join("data.txt"), "function data").unwrap();
        let (_, own) = host
            .invoke(json!({"op": "read", "path": format!("{root}/data.txt")}))
            .await;
        assert_eq!(own["text"], "function data", "{mode}: {own}");
        for path in [
            "/etc/passwd".to_string(),
            format!("{root}/../../../../etc/passwd"),
        ] {
            let (_, r) = host.invoke(json!({"op": "read", "path": path})).await;
            assert_eq!(r["ok"], false, "{mode}: read {path}: {r}");
        }
        let (_, w) = host
            .invoke(json!({"op": "write", "path": format!("{root}/planted.txt")}))
            .await;
        assert_eq!(w["ok"], false, "{mode}: {w}");
        assert!(!dir.path().join("planted.txt").exists());
        let (_, e) = host
            .invoke(json!({"op": "env", "name": "HOST_SECRET"}))
            .await;
        assert_eq!(e["value"], Value::Null, "{mode}");
        let (_, e) = host
            .invoke(json!({"op": "env", "name": "AWS_LAMBDA_FUNCTION_NAME"}))
            .await;
        assert!(
            e["value"].is_string(),
            "{mode}: the Lambda environment is there"
        );
        let (_, c) = host.invoke(json!({"op": "connect", "addr": addr})).await;
        assert_eq!(c["ok"], false, "{mode}: {c}");
        host.invoke(json!({"op": "log", "message": "hello-log"}))
            .await;
        host.wait_log("probe stderr: hello-log", Duration::from_secs(5));
        let logs = host.logs();
        let line = logs.lines().find(|l| l.contains("probe stdout: hello-log"));
        assert!(
            line.is_some_and(|l| l.contains("request_id=")),
            "{mode}: {logs}"
        );
    }
}

#[tokio::test]
async fn a_component_without_the_lambda_handler_is_refused_at_start() {
    // A plain WASI command built for wasm32-wasip2 exports only `wasi:cli/run`.
    let command = target_root().join("wasm32-wasip2/release/stdio-probe.wasm");
    assert!(
        command.exists(),
        "{} is missing: run `make functions`",
        command.display()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&command, dir.path().join("bootstrap.wasm")).unwrap();
    let (status, out) = common::run_to_exit(&[
        ("LAMBDA_TASK_ROOT", dir.path().to_str().unwrap()),
        ("WASM_CACHE_DIR", "off"),
    ]);
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("does not export lambda:function/handler"),
        "the refusal names what is missing: {out}"
    );
}

#[test]
fn a_component_that_cannot_be_instantiated_within_the_limits_stops_the_start() {
    // The Rust component's initial memory (its 1 MiB stack and data) is above a 512 KiB cap:
    // the start fails saying so, instead of every invocation failing.
    let [(_, rust), _] = functions();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&rust, dir.path().join("bootstrap.wasm")).unwrap();
    let (status, out) = common::run_to_exit(&[
        ("LAMBDA_TASK_ROOT", dir.path().to_str().unwrap()),
        ("WASM_CACHE_DIR", "off"),
        ("WASM_MEMORY_LIMIT", "512KiB"),
    ]);
    assert!(!status.success(), "{out}");
    // wasmtime's pool refuses the memory when the component is loaded; a limit it checks only
    // at instantiation (core instances, memories) is caught by the start-up instantiation.
    assert!(
        out.contains("does not fit in pooling allocator")
            || out.contains("cannot be instantiated within the limits"),
        "the refusal says why: {out}"
    );
}
