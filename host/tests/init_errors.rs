//! Init errors served as Knative and AWS would, in each runtime client's dialect: Python's
//! awslambdaric and Node's aws-lambda-ric (`/init/error`, then exit), the bash example (`/init/error` with a header),
//! and a Rust `lambda_runtime` bootstrap that exits before its first poll (reports
//! nothing). At start-up a failing function never opens its public port while the host
//! stays up and retries, logging each error; once it has been ready, a restart that fails
//! init makes every invocation fail at once with the reported error, until init succeeds
//! again. A function fails init while the file `init-fail` is in its folder.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Host, built, function_dir, repo_root, script_dir};
use serde_json::{Value, json};

/// A dialect: its function folder, and the errorType / errorMessage part it reports.
struct Dialect {
    dir: tempfile::TempDir,
    error_type: &'static str,
    message: &'static str,
}

fn python() -> Option<Dialect> {
    let python = repo_root().join("target/ric-venv/bin/python");
    if !python.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "target/ric-venv is missing: run `make functions`"
        );
        eprintln!("skipped: target/ric-venv is missing (run `make functions`)");
        return None;
    }
    let dir = script_dir(&format!(
        "#!/bin/sh\nexec {} -m awslambdaric handler.handle\n",
        python.display()
    ));
    let handler = "import os\n\
                   if os.path.exists(os.path.join(os.environ['LAMBDA_TASK_ROOT'], 'init-fail')):\n\
                   \x20   raise ImportError('init-fail is present')\n\
                   def handle(event, context):\n\
                   \x20   return {'ok': True, 'pid': os.getpid()}\n";
    std::fs::write(dir.path().join("handler.py"), handler).unwrap();
    Some(Dialect {
        dir,
        error_type: "Runtime.ImportModuleError",
        message: "Unable to import module 'handler': init-fail is present",
    })
}

fn node() -> Option<Dialect> {
    let ric = repo_root().join("target/node-ric");
    if !ric.join("installed").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "target/node-ric is missing: run `make functions`"
        );
        eprintln!("skipped: target/node-ric is missing (run `make functions`)");
        return None;
    }
    let entry = ric.join("node_modules/aws-lambda-ric/bin/index.mjs");
    let dir = script_dir(&format!(
        "#!/bin/sh\nexec node {} handler.handler\n",
        entry.display()
    ));
    let handler = "const fs = require('fs');\n\
                   const path = require('path');\n\
                   if (fs.existsSync(path.join(process.env.LAMBDA_TASK_ROOT, 'init-fail'))) {\n\
                   \x20 throw new Error('init-fail is present');\n\
                   }\n\
                   exports.handler = async () => ({ ok: true, pid: process.pid });\n";
    std::fs::write(dir.path().join("handler.js"), handler).unwrap();
    Some(Dialect {
        dir,
        error_type: "Error",
        message: "init-fail is present",
    })
}

/// A bash function whose handler file is `handler`, failing init with `error_type`.
fn bash_with(handler: &str, error_type: &'static str, message: &'static str) -> Dialect {
    let dir = function_dir(
        &repo_root().join("example/bash/bootstrap"),
        &[("function.sh", handler)],
    );
    Dialect {
        dir,
        error_type,
        message,
    }
}

fn bash() -> Dialect {
    let handler = "[ -e \"$LAMBDA_TASK_ROOT/init-fail\" ] && return 1\n\
                   handler() { cat >/dev/null; printf '{\"ok\":true,\"pid\":%s}' $$; }\n";
    bash_with(
        handler,
        "Runtime.HandlerNotFound",
        "cannot load handler from",
    )
}

/// A runtime that reports its init error and then stays alive instead of exiting.
fn lingering() -> Dialect {
    let handler = "[ -e \"$LAMBDA_TASK_ROOT/init-fail\" ] && { \
                   curl -sS -o /dev/null -X POST -d '{\"errorType\":\"Runtime.Lingering\",\
                   \"errorMessage\":\"config missing, waiting forever\"}' \
                   \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/init/error\"; exec sleep 1000; }\n\
                   handler() { cat >/dev/null; printf '{\"ok\":true,\"pid\":%s}' $$; }\n";
    bash_with(
        handler,
        "Runtime.Lingering",
        "config missing, waiting forever",
    )
}

fn rust_exit() -> Dialect {
    Dialect {
        dir: function_dir(&built("concurrent-probe"), &[]),
        error_type: "Runtime.ExitError",
        message: "Runtime exited with error: exit status 4",
    }
}

fn fail_init(dir: &Path, fail: bool) {
    let flag = dir.join("init-fail");
    if fail {
        std::fs::write(&flag, "").unwrap();
    } else {
        let _ = std::fs::remove_file(&flag);
    }
}

/// The processes whose parent is `pid` (the host's bootstraps).
fn children(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so read after its ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(name);
        }
    }
    out
}

async fn invoke(host: &Host) -> (u16, Value) {
    let r = host
        .client
        .post(host.url("/"))
        .body(json!({"op": "echo"}).to_string())
        // Far below FUNCTION_TTL: an init error is answered at once, never at the deadline.
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer: {e}\n{}", host.logs()));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn assert_init_error(d: &Dialect, status: u16, body: &Value, host: &Host) {
    assert_eq!(status, 502, "{body}\n{}", host.logs());
    assert_eq!(body["errorType"], d.error_type, "{body}");
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains(d.message), "{body}");
}

/// Start-up: host up, port closed, retries logged; then ready once init succeeds; then a
/// restart that fails init answers invocations at once with the error; then recovery.
async fn served_in_every_phase(d: Dialect) {
    fail_init(d.dir.path(), true);
    let host = Host::spawn(
        d.dir.path(),
        &[("INVOKER_COUNT", "1"), ("FUNCTION_TTL", "120s")],
    );
    let logged = format!("error_type=\"{}\"", d.error_type);
    for tries in 0.. {
        let logs = host.logs();
        let failures = logs
            .lines()
            .filter(|l| l.contains("bootstrap failed init") && l.contains(&logged))
            .count();
        if failures >= 2 {
            assert!(logs.contains(d.message), "the message is logged:\n{logs}");
            break;
        }
        assert!(tries < 3000, "init errors not retried and logged:\n{logs}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!host.is_listening(), "a function failing init is not ready");

    fail_init(d.dir.path(), false);
    host.ready(Duration::from_secs(60)).await;
    let (status, body) = invoke(&host).await;
    assert_eq!(status, 200, "{body}");

    // Crash it while its next init fails: every invocation gets the init error at once.
    fail_init(d.dir.path(), true);
    for pid in children(host.pid()) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status();
    }
    // Until the host has seen the crash, its poll may still look open: an invocation handed
    // to it would fail with the crash (Runtime.ExitError), not with the next init's error.
    for tries in 0.. {
        if host.logs().contains("bootstrap exited: signal: SIGKILL") {
            break;
        }
        assert!(tries < 3000, "the crash was never seen:\n{}", host.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..3 {
        let (status, body) = invoke(&host).await;
        assert_init_error(&d, status, &body, &host);
    }
    assert!(host.is_listening(), "once ready, the port stays open");

    fail_init(d.dir.path(), false);
    for tries in 0.. {
        let (status, body) = invoke(&host).await;
        if status == 200 {
            break;
        }
        assert_init_error(&d, status, &body, &host);
        assert!(tries < 300, "never recovered:\n{}", host.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_awslambdaric_init_errors_are_served() {
    if let Some(d) = python() {
        served_in_every_phase(d).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn node_aws_lambda_ric_init_errors_are_served() {
    if let Some(d) = node() {
        served_in_every_phase(d).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bash_init_errors_are_served() {
    served_in_every_phase(bash()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_that_stays_alive_after_its_init_error_is_ended_and_retried() {
    served_in_every_phase(lingering()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rust_runtime_exiting_in_init_is_served_as_an_exit_error() {
    served_in_every_phase(rust_exit()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn init_error_is_answered_202() {
    // The status awslambdaric insists on, from a runtime the test plays.
    let dir = tempfile::tempdir().unwrap();
    let host = Host::spawn(dir.path(), &[("INVOKER_COUNT", "0")]);
    let r = reqwest::Client::new()
        .post(format!(
            "http://{}/2018-06-01/runtime/init/error",
            host.runtime_api(0)
        ))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.Custom")
        .body(r#"{"errorType":"Runtime.Custom","errorMessage":"nope"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    host.wait_log("nope", Duration::from_secs(10));
    assert!(!host.is_listening());
}
