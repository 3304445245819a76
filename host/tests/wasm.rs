//! WASI functions through the public endpoint of the real binary, in both isolation modes:
//! the SDK test guest (`guest-probe`), a plain WASI command (`stdio-probe`). What every kind of
//! function must do alike (echo, errors, deadlines, crashes, oversized answers, the context) is
//! in parity.rs; this file holds what only a WASI function has: isolation modes, the sandbox,
//! CPU-bound guests stopped at the deadline, memory caps, traps, stdio commands and the
//! precompiled-module cache.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Host, target_root};
use serde_json::{Value, json};

const MODES: [&str; 2] = ["loop", "invocation"];

fn guest(name: &str) -> PathBuf {
    let p = target_root()
        .join("wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run `make test` (it builds the wasm guests first)",
        p.display()
    );
    p
}

/// A function folder holding `name` as bootstrap.wasm and a readable data file.
fn wasm_function(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guest(name), dir.path().join("bootstrap.wasm")).unwrap();
    std::fs::write(dir.path().join("data.txt"), "function data").unwrap();
    dir
}

fn start(dir: &tempfile::TempDir, mode: &str, env: &[(&str, &str)]) -> Host {
    let mut all = vec![("WASM_ISOLATION", mode), ("INVOKER_COUNT", "2")];
    all.extend_from_slice(env);
    Host::start(dir.path(), &all)
}

#[tokio::test]
async fn two_hundred_concurrent_requests_are_matched_to_their_callers() {
    let dir = wasm_function("guest-probe");
    for mode in MODES {
        let host = start(&dir, mode, &[("INVOKER_COUNT", "4")]);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            let req = host
                .client
                .post(host.url("/"))
                .body(json!({"op": "echo", "data": i}).to_string());
            tasks.spawn(async move {
                let r = req.send().await.unwrap();
                (i, r.status().as_u16(), r.text().await.unwrap())
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (i, status, body) = done.unwrap();
            assert_eq!(status, 200, "{mode}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["payload"], i, "{mode}: request {i} got another's answer");
        }
    }
}

#[tokio::test]
async fn globals_persist_in_loop_mode_and_not_in_invocation_mode() {
    let dir = wasm_function("guest-probe");
    let host = start(&dir, "loop", &[("INVOKER_COUNT", "1")]);
    let mut counts = Vec::new();
    for _ in 0..3 {
        counts.push(host.invoke(json!({"op": "count"})).await.1["count"].clone());
    }
    assert_eq!(counts, [json!(1), json!(2), json!(3)]);

    let host = start(&dir, "invocation", &[("INVOKER_COUNT", "1")]);
    for _ in 0..3 {
        assert_eq!(host.invoke(json!({"op": "count"})).await.1["count"], 1);
    }
}

/// A fresh instance starts from the module's image even when the pages the one before it
/// dirtied were swapped out while it ran (the slot's reset must not skip them): in
/// invocation isolation and across a tenant switch in loop isolation, on one slot, for the
/// SDK guest as a core module and as a Lambda component.
#[tokio::test]
async fn a_fresh_instance_never_reads_the_last_ones_memory_back_from_swap() {
    let Some(_swap) = common::swap::Swap::on() else {
        return;
    };
    let mb = 1 << 20;
    let module = wasm_function("guest-probe");
    let component = common::tenants::function("component");
    let cases = [
        ("module", &module, "invocation", false),
        ("module", &module, "loop", true),
        ("component", &component, "invocation", false),
        ("component", &component, "loop", true),
    ];
    for (kind, dir, mode, tenants) in cases {
        let case = format!("{kind} in {mode} isolation");
        let mut env = vec![("INVOKER_COUNT", "1")];
        if tenants {
            env.push(("TENANT_ISOLATION_MODE", "PER_TENANT"));
        }
        let host = start(dir, mode, &env);
        let call = |tenant: &'static str, body: Value| {
            let mut req = host.client.post(host.url("/")).body(body.to_string());
            if tenants {
                req = req.header(common::tenants::TENANT, tenant);
            }
            async move {
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                (
                    status,
                    serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
                )
            }
        };
        let marking = tokio::spawn(call(
            "a",
            json!({"op": "mark", "bytes": mb, "sleep_ms": 1500}),
        ));
        // The pattern is written first thing; push the instance's pages out while it sleeps.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pid = host.pid();
        let reclaimed = tokio::task::spawn_blocking(move || common::swap::page_out(pid))
            .await
            .unwrap();
        let (status, marked) = marking.await.unwrap();
        assert_eq!(status, 200, "{case}: {marked}");
        assert!(
            reclaimed >= mb,
            "{case}: only {reclaimed} bytes went to swap"
        );
        let (status, seen) = call(
            "b",
            json!({"op": "peek", "addr": marked["addr"], "bytes": mb}),
        )
        .await;
        assert_eq!(status, 200, "{case}: {seen}");
        // The peek's own event and buffers may hold a few such bytes; the earlier
        // instance's megabyte may not.
        let leaked = seen["marked"].as_u64().unwrap();
        assert!(
            leaked < 4096,
            "{case}: the fresh instance read {leaked} bytes of the last one's memory"
        );
    }
}

#[tokio::test]
async fn an_endless_loop_ends_at_the_deadline_and_a_fresh_instance_serves_next() {
    let dir = wasm_function("guest-probe");
    for mode in MODES {
        let host = start(
            &dir,
            mode,
            &[("INVOKER_COUNT", "1"), ("FUNCTION_TTL", "1s")],
        );
        // Long enough idle for the epoch ticker to park: the spin must wake it.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let started = Instant::now();
        let (status, body) = host.invoke(json!({"op": "spin"})).await;
        let took = started.elapsed();
        assert_eq!(status, 504, "{mode}: {body}");
        assert_eq!(body["errorType"], "Sandbox.Timedout");
        assert!(took < Duration::from_millis(1500), "{mode}: took {took:?}");
        let (status, _) = host.invoke(json!({"op": "echo", "data": 1})).await;
        assert_eq!(status, 200, "{mode}: the next invocation is served");
    }
}

#[tokio::test]
async fn a_memory_bomb_stops_at_the_cap_and_traps_do_not_outlive_their_invocation() {
    let dir = wasm_function("guest-probe");
    for mode in MODES {
        let host = start(
            &dir,
            mode,
            &[("INVOKER_COUNT", "1"), ("WASM_MEMORY_LIMIT", "32MiB")],
        );
        let (status, body) = host.invoke(json!({"op": "grow"})).await;
        assert_eq!(status, 502, "{mode}: {body}");
        let msg = body["errorMessage"].as_str().unwrap();
        assert!(msg.contains("memory allocation"), "{mode}: {msg}");

        let (status, body) = host.invoke(json!({"op": "trap"})).await;
        assert_eq!(status, 502, "{mode}: {body}");
        assert_eq!(body["errorType"], "Runtime.WasmTrap");
        assert!(
            body["errorMessage"]
                .as_str()
                .unwrap()
                .contains("unreachable"),
            "{body}"
        );
        let (status, body) = host.invoke(json!({"op": "panic", "message": "boom"})).await;
        assert_eq!(status, 502, "{mode}");
        assert!(
            body["errorMessage"].as_str().unwrap().contains("boom"),
            "{body}"
        );
        for i in 0..3 {
            let (status, body) = host.invoke(json!({"op": "echo", "data": i})).await;
            assert_eq!((status, &body["payload"]), (200, &json!(i)), "{mode}");
        }
    }
}

#[tokio::test]
async fn escape_attempts_are_refused() {
    let dir = wasm_function("guest-probe");
    let root = dir.path().to_str().unwrap().to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    for mode in MODES {
        let host = start(&dir, mode, &[("HOST_SECRET", "s3cr3t")]);
        let (_, own) = host
            .invoke(json!({"op": "read", "path": format!("{root}/data.txt")}))
            .await;
        assert_eq!(own["text"], "function data", "{mode}: {own}");
        for path in [
            "/etc/passwd".to_string(),
            format!("{root}/../../../../etc/passwd"),
            "../etc/passwd".to_string(),
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
    }
}

/// The environment a guest reads (the host answers WASI's `environ_get` from a block laid
/// out once per slot): every instance of either mode sees the same Lambda variables, with
/// `TMPDIR`, and nothing of the host's own environment; the SDK's configuration (which it
/// reads from that block with WASI's calls, not through std) holds the same values.
#[tokio::test]
async fn every_instance_sees_the_same_lambda_environment() {
    let dir = wasm_function("guest-probe");
    let (mut seen, mut configs) = (Vec::new(), Vec::new());
    for mode in MODES {
        let host = start(&dir, mode, &[("HOST_SECRET", "s3cr3t")]);
        for _ in 0..3 {
            let (status, r) = host.invoke(json!({"op": "env"})).await;
            assert_eq!(status, 200, "{mode}: {r}");
            seen.push((mode, r["vars"].clone()));
            configs.push((mode, r["config"].clone(), r["vars"].clone()));
        }
    }
    let (_, first) = &seen[0];
    let vars = first.as_object().expect("the probe lists its variables");
    assert_eq!(vars["TMPDIR"], "/tmp", "{first}");
    assert_eq!(
        vars["LAMBDA_TASK_ROOT"],
        dir.path().display().to_string(),
        "{first}"
    );
    for name in ["AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION", "TZ", "LANG"] {
        assert!(vars[name].is_string(), "{name} missing: {first}");
    }
    for name in ["HOST_SECRET", "PATH", "LD_LIBRARY_PATH", "HOME"] {
        assert!(!vars.contains_key(name), "{name} leaked: {first}");
    }
    // The SDK reads its configuration from the environment block itself, not through std.
    for (mode, config, vars) in &configs {
        let memory: i64 = vars["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
            .as_str()
            .and_then(|m| m.parse().ok())
            .expect("a memory size");
        assert_eq!(config["memory"], memory, "{mode}: {config}");
        for (field, name) in [
            ("function_name", "AWS_LAMBDA_FUNCTION_NAME"),
            ("version", "AWS_LAMBDA_FUNCTION_VERSION"),
            ("log_stream", "AWS_LAMBDA_LOG_STREAM_NAME"),
            ("log_group", "AWS_LAMBDA_LOG_GROUP_NAME"),
        ] {
            assert!(vars[name].as_str().is_some_and(|v| !v.is_empty()), "{name}");
            assert_eq!(config[field], vars[name], "{mode}: {field}");
        }
    }
    // The log stream is named once per host process; nothing else may differ.
    let without_stream = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut()
            .unwrap()
            .remove("AWS_LAMBDA_LOG_STREAM_NAME");
        v
    };
    for runs in seen.chunks(3) {
        let (mode, one) = &runs[0];
        assert!(runs.iter().all(|(_, v)| v == one), "{mode}: {runs:?}");
        assert_eq!(without_stream(one), without_stream(first), "{mode}");
    }
}

#[tokio::test]
async fn guest_output_is_logged_with_the_request_id() {
    let dir = wasm_function("guest-probe");
    let host = start(&dir, "loop", &[]);
    let r = host
        .post("/", r#"{"op":"log","message":"hello-log"}"#)
        .await;
    assert_eq!(r.status(), 200);
    host.wait_log("probe stderr: hello-log", Duration::from_secs(5));
    let logs = host.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("probe stdout: hello-log"))
        .unwrap();
    assert!(line.contains("request_id="), "{line}");

    // A carriage return or an escape sequence inside a line is written escaped: it can
    // neither overwrite the line on a terminal nor pass for a host line of its own.
    let forged = r#"{"op":"log","message":"forged\r2026-12-07T00:00:00Z  INFO \u001b[2Kdone"}"#;
    assert_eq!(host.post("/", forged).await.status(), 200);
    let escaped = r"probe stderr: forged\r2026-12-07T00:00:00Z  INFO \x1b[2Kdone";
    host.wait_log(escaped, Duration::from_secs(5));
    let logs = host.logs();
    assert!(!logs.contains(['\r', '\x1b']), "{logs}");
}

#[tokio::test]
async fn plain_wasi_commands_use_stdin_stdout_and_exit_codes() {
    let dir = wasm_function("stdio-probe");
    for mode in MODES {
        let host = start(
            &dir,
            mode,
            &[("FUNCTION_TTL", "1s"), ("HOST_SECRET", "s3cr3t")],
        );
        let r = host.post("/", "héllo stdio").await;
        assert_eq!(r.status(), 200, "{mode}");
        assert_eq!(r.text().await.unwrap(), "héllo stdio");

        let r = host.post("/", "trap").await;
        assert_eq!(r.status(), 500, "{mode}");
        let text = r.text().await.unwrap();
        assert!(
            text.contains("stdio-probe traps as asked"),
            "{mode}: {text}"
        );

        let r = host.post("/", "spin").await;
        assert_eq!(r.status(), 504, "{mode}");

        let env = host.post("/", "env").await.text().await.unwrap();
        assert!(env.contains("AWS_LAMBDA_FUNCTION_NAME="), "{env}");
        assert!(env.lines().any(|l| l == "TMPDIR=/tmp"), "{env}");
        assert!(!env.contains("HOST_SECRET"), "{env}");
        // A command's context is in its environment, its own at every invocation: three on
        // two slots reuse one, which must not keep (or add to) the last one's.
        let mut ids = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let env = host.post("/", "env").await.text().await.unwrap();
            let lines: Vec<_> = env
                .lines()
                .filter(|l| l.starts_with("AWS_LAMBDA_REQUEST_ID="))
                .collect();
            assert_eq!(lines.len(), 1, "{mode}: {env}");
            assert_eq!(
                env.matches("AWS_LAMBDA_DEADLINE_MS=").count(),
                1,
                "{mode}: {env}"
            );
            ids.insert(lines[0].to_string());
        }
        assert_eq!(ids.len(), 3, "{mode}: {ids:?}");
        let r = host.post("/", "read:/etc/passwd").await;
        assert_eq!(r.status(), 500, "{mode}");
    }
}

#[tokio::test]
async fn a_cached_precompiled_module_skips_compilation() {
    let dir = wasm_function("wasm-echo");
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("modules");
    let env = [("WASM_CACHE_DIR", cache_dir.to_str().unwrap())];
    let first = start(&dir, "loop", &env);
    first.wait_log("precompiled module cached at", Duration::from_secs(5));
    assert!(!first.logs().contains("compilation skipped"));
    drop(first);
    let second = start(&dir, "loop", &env);
    second.wait_log(
        "loaded precompiled module from cache",
        Duration::from_secs(5),
    );
    assert!(second.logs().contains("compilation skipped"));
    assert!(!second.logs().contains("compiled bootstrap.wasm in"));
    let (status, _) = second.invoke(json!({"name": "cache"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_init_error_fails_invocations_with_its_message() {
    let dir = wasm_function("init-error-probe");
    let host = Host::spawn(
        dir.path(),
        &[("WASM_ISOLATION", "invocation"), ("INVOKER_COUNT", "1")],
    );
    host.ready(Duration::from_secs(30)).await;
    let (status, body) = host.invoke(json!({})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["errorType"], "Runtime.InitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("never starts"),
        "{body}"
    );
}
