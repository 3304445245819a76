//! Scratch folders of execution environments through the real binary: Landlock keeps a
//! native environment out of another's scratch folder, a WASI `/tmp` is capped by
//! `WASM_TMP_LIMIT` and fresh per call in invocation isolation, and `awslambdaric` runs
//! confined, with its packages in the function's folder as on AWS. A host that was killed
//! leaves its scratch folders behind; the next one on the same temp folder removes them.

mod common;

use std::time::Duration;

use common::tenants::*;
use common::{Host, repo_root};
use serde_json::{Value, json};

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
    // Signals across environments: refused where the kernel has Landlock scopes (ABI 6).
    let pid = remember(&host, "alice").await["pid"].clone();
    let signal = json!({"op": "signal", "pid": pid});
    let (_, own, _) = invoke(&host, Some("alice"), &signal).await;
    assert_eq!(own["ok"], true, "alice signals herself: {own}");
    let (_, other, _) = invoke(&host, Some("mallory"), &signal).await;
    let abi = aws_custom_runtime::tenancy::confine::kernel_abi().unwrap_or(0);
    if abi >= 6 {
        assert_eq!(
            other["ok"], false,
            "mallory signalled alice's bootstrap: {other}"
        );
    } else {
        eprintln!("Landlock ABI {abi} has no signal scope: cross-environment signals not checked");
    }
}

#[tokio::test]
async fn wasi_tmp_is_capped_and_fresh_per_call_in_invocation_isolation() {
    // The SDK guest as a core module and as a Lambda component (wasm32-wasip2), whose files
    // are written through wasi:filesystem streams.
    for kind in ["wasm-sdk", "component"] {
        let dir = function(kind);
        let host = Host::start(
            dir.path(),
            &[("INVOKER_COUNT", "1"), ("WASM_TMP_LIMIT", "1MiB")],
        );
        // Mode NONE, loop isolation: one /tmp per environment, kept between calls.
        let first = host.invoke(json!({"op": "remember"})).await.1;
        let second = host.invoke(json!({"op": "remember"})).await.1;
        assert_eq!(
            remembered(&second, "tmp").len(),
            remembered(&first, "tmp").len() + 1,
            "{kind}: {second}"
        );
        let (_, tmpdir) = host.invoke(json!({"op": "env", "name": "TMPDIR"})).await;
        assert_eq!(tmpdir["value"], "/tmp", "{kind}");
        let (_, small) = host
            .invoke(json!({"op": "fill", "bytes": 256 * 1024}))
            .await;
        assert_eq!(small["error"], Value::Null, "{kind}: {small}");
        let (_, big) = host.invoke(json!({"op": "fill", "bytes": 8 << 20})).await;
        let written = big["written"].as_u64().unwrap();
        assert!(written <= 1 << 20, "{kind}: wrote past the cap: {big}");
        let error = big["error"].as_str().unwrap_or_default().to_lowercase();
        // The refusal is ENOSPC on both, but Rust's wasm32-wasip2 libc does not import
        // `filesystem-error-code`, through which a stream's error tells its code: it says EIO.
        let expected = if kind == "component" {
            "i/o error"
        } else {
            "no space"
        };
        assert!(error.contains(expected), "{kind}: {big}");
        // A refused write leaves the environment serving.
        let (status, _) = host.invoke(json!({"op": "remember"})).await;
        assert_eq!(status, 200, "{kind}");
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
                "{kind}: a fresh /tmp per call: {body}"
            );
        }
    }
}

/// A PID that names no process: one of a child that has exited.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    child.id()
}

/// `<tmp>/aws-custom-runtime-<pid>/wasm-0/left`, as a host with that PID makes it.
fn host_folder(tmp: &std::path::Path, pid: u32) -> std::path::PathBuf {
    let root = tmp.join(format!("aws-custom-runtime-{pid}"));
    std::fs::create_dir_all(root.join("wasm-0")).unwrap();
    std::fs::write(root.join("wasm-0/left"), b"x").unwrap();
    root
}

#[tokio::test]
async fn a_killed_hosts_scratch_folders_are_removed_by_the_next_host() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_dir = tmp.path().to_str().unwrap();
    let dir = function("wasm-sdk");
    let env = [("INVOKER_COUNT", "1"), ("TMPDIR", tmp_dir)];
    let left = host_folder(tmp.path(), dead_pid());
    // A host that is alive but takes no lock (an older version), and one in another PID
    // namespace (its PID names no process here, but it holds its folder): both are kept.
    let mut alive = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let unlocked = host_folder(tmp.path(), alive.id());
    let held = host_folder(tmp.path(), dead_pid());
    let lock = std::fs::File::open(&held).unwrap();
    lock.try_lock().unwrap();
    let other = tmp.path().join("aws-custom-runtime-cache-of-someone");
    std::fs::create_dir(&other).unwrap();

    let mut first = Host::start(dir.path(), &env);
    assert_eq!(first.invoke(json!({"op": "remember"})).await.0, 200);
    let own = tmp
        .path()
        .join(format!("aws-custom-runtime-{}", first.pid()));
    assert!(own.join("wasm-0").is_dir(), "no scratch folder at {own:?}");
    assert!(!left.exists(), "a gone host's folder is still there");
    assert!(unlocked.join("wasm-0/left").exists());
    assert!(held.join("wasm-0/left").exists());
    assert!(other.exists());

    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    assert!(
        own.is_dir(),
        "SIGKILL leaves the folder (nothing could remove it)"
    );
    let mut second = Host::start(dir.path(), &env);
    let body = second.invoke(json!({"op": "remember"})).await.1;
    assert_eq!(remembered(&body, "tmp").len(), 1, "{body}");
    assert!(!own.exists(), "the killed host's folder is still there");
    let next = tmp
        .path()
        .join(format!("aws-custom-runtime-{}", second.pid()));
    assert!(next.join("wasm-0").is_dir());
    second.signal("TERM");
    second.wait_exit(Duration::from_secs(30));
    assert!(!next.exists(), "a host that stops removes its folder");
    assert!(held.exists() && unlocked.exists());
    let _ = alive.kill();
    let _ = alive.wait();
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
