//! Precompiled artifacts: `aws-custom-runtime compile` writes bootstrap.cwasm beside the
//! module and a start loads it without compiling; an artifact that is foreign (another
//! module's), made by another engine, stale (module changed since), truncated or bit-flipped
//! is never run, in the image (bootstrap.cwasm) or in the module cache (WASM_CACHE_DIR): the
//! host logs why, compiles, and answers with the real function.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Host, target_root};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_aws-custom-runtime");

fn guest(name: &str) -> PathBuf {
    let p = target_root()
        .join("wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run `make functions`",
        p.display()
    );
    p
}

fn function(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guest(name), dir.path().join("bootstrap.wasm")).unwrap();
    dir
}

/// Runs `aws-custom-runtime compile <target>` with the tests' engine settings.
fn compile(target: &Path) -> String {
    let out = Command::new(BIN)
        .arg("compile")
        .arg(target)
        .env("INVOKER_COUNT", "2")
        .env("RUST_LOG", "info")
        .env_remove("LAMBDA_TASK_ROOT")
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "compile failed: {log}");
    log
}

fn start(dir: &Path, env: &[(&str, &str)]) -> Host {
    let mut all = vec![("INVOKER_COUNT", "2"), ("WASM_CACHE_DIR", "off")];
    all.extend_from_slice(env);
    Host::start(dir, &all)
}

/// The real function (guest-probe) answers its echo; a foreign one would not.
async fn assert_real_function_answers(host: &Host) {
    let (status, body) = host.invoke(json!({"op": "echo", "data": 7})).await;
    assert_eq!((status, &body["payload"]), (200, &json!(7)), "{body}");
}

/// Damages a compiled function folder.
type Spoil = fn(&Path);
/// Damages a cache file (in its cache folder).
type SpoilCache = fn(&Path, &Path);

fn artifact(dir: &Path) -> PathBuf {
    dir.join("bootstrap.cwasm")
}

fn record(artifact: &Path) -> PathBuf {
    PathBuf::from(format!("{}.integrity", artifact.display()))
}

fn flip_bytes(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    for i in [bytes.len() / 3, bytes.len() / 2, bytes.len() * 2 / 3] {
        bytes[i] ^= 0x5a;
    }
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

/// Appends a custom section: still a valid module, but not the bytes compiled.
fn change_module(dir: &Path) {
    let wasm = dir.join("bootstrap.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    bytes.extend_from_slice(&[0, 4, 3, b'n', b'e', b'w']);
    std::fs::write(wasm, bytes).unwrap();
}

/// Puts another function's artifact and record under `dir`'s expected names.
fn plant_foreign(dir: &Path) {
    let other = function("wasm-echo");
    compile(other.path());
    std::fs::copy(artifact(other.path()), artifact(dir)).unwrap();
    std::fs::copy(record(&artifact(other.path())), record(&artifact(dir))).unwrap();
}

fn other_engine(artifact: &Path) {
    let path = record(artifact);
    let mut r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    r["engine"] = json!("0".repeat(64));
    std::fs::write(path, r.to_string()).unwrap();
}

#[tokio::test]
async fn a_precompiled_module_starts_without_compiling() {
    let dir = function("guest-probe");
    let log = compile(dir.path());
    assert!(log.contains("wrote precompiled artifact"), "{log}");
    assert!(artifact(dir.path()).is_file());
    assert!(record(&artifact(dir.path())).is_file());
    let host = start(dir.path(), &[]);
    host.wait_log("compilation skipped", Duration::from_secs(5));
    assert!(host.logs().contains("loaded precompiled artifact"));
    assert!(!host.logs().contains("compiled bootstrap.wasm in"));
    assert_real_function_answers(&host).await;
}

#[tokio::test]
async fn compile_takes_a_file_and_refuses_what_is_not_there() {
    let dir = function("guest-probe");
    compile(&dir.path().join("bootstrap.wasm"));
    assert!(artifact(dir.path()).is_file());
    let out = Command::new(BIN)
        .args(["compile", "/nonexistent/function"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to compile"));
    // A native function's folder: nothing to do, and that is no error (one image recipe).
    let native = tempfile::tempdir().unwrap();
    let log = compile(native.path());
    assert!(log.contains("nothing to precompile"), "{log}");
    assert!(!artifact(native.path()).exists());
}

#[tokio::test]
async fn a_bad_image_artifact_is_never_run_the_module_is_compiled() {
    let cases: [(&str, Spoil, &str); 6] = [
        (
            "bit-flipped",
            |d| flip_bytes(&artifact(d)),
            "does not match the record",
        ),
        (
            "truncated",
            |d| truncate(&artifact(d)),
            "does not match the record",
        ),
        ("stale", change_module, "made from another module"),
        ("foreign", plant_foreign, "made from another module"),
        (
            "other engine",
            |d| other_engine(&artifact(d)),
            "another engine",
        ),
        (
            "no record",
            |d| std::fs::remove_file(record(&artifact(d))).unwrap(),
            "no integrity record",
        ),
    ];
    for (case, spoil, reason) in cases {
        let dir = function("guest-probe");
        compile(dir.path());
        spoil(dir.path());
        let host = start(dir.path(), &[]);
        host.wait_log("not using the precompiled artifact", Duration::from_secs(5));
        let logs = host.logs();
        assert!(logs.contains(reason), "{case}: {logs}");
        assert!(
            logs.contains("compiled bootstrap.wasm in"),
            "{case}: {logs}"
        );
        assert!(!logs.contains("compilation skipped"), "{case}: {logs}");
        assert_real_function_answers(&host).await;
    }
}

/// The one cache file (and its record) a start wrote to `cache`.
fn cached_artifact(cache: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.remove(0)
}

#[tokio::test]
async fn a_bad_cache_file_is_a_miss_never_run() {
    let cases: [(&str, SpoilCache); 4] = [
        ("bit-flipped", |f, _| flip_bytes(f)),
        ("truncated", |f, _| truncate(f)),
        ("other engine", |f, _| other_engine(f)),
        ("foreign", |f, cache| {
            // Another function compiled into the same cache, then renamed to this one's key.
            let other = function("wasm-echo");
            let host = start(other.path(), &[("WASM_CACHE_DIR", cache.to_str().unwrap())]);
            host.wait_log("precompiled module cached at", Duration::from_secs(5));
            drop(host);
            let foreign = std::fs::read_dir(cache)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == "cwasm") && p != f)
                .unwrap();
            std::fs::rename(record(&foreign), record(f)).unwrap();
            std::fs::rename(foreign, f).unwrap();
        }),
    ];
    for (case, spoil) in cases {
        let dir = function("guest-probe");
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("modules");
        let env = [("WASM_CACHE_DIR", cache.to_str().unwrap())];
        let first = start(dir.path(), &env);
        first.wait_log("precompiled module cached at", Duration::from_secs(5));
        drop(first);
        let file = cached_artifact(&cache);
        spoil(&file, &cache);
        let host = start(dir.path(), &env);
        host.wait_log("cache miss", Duration::from_secs(5));
        let logs = host.logs();
        assert!(
            logs.contains("compiled bootstrap.wasm in"),
            "{case}: {logs}"
        );
        assert!(!logs.contains("compilation skipped"), "{case}: {logs}");
        assert_real_function_answers(&host).await;
        drop(host);
        // The miss rewrote a good entry: the next start loads it.
        let third = start(dir.path(), &env);
        third.wait_log(
            "loaded precompiled module from cache",
            Duration::from_secs(5),
        );
        assert_real_function_answers(&third).await;
    }
}

/// A built component: the Rust wasi:http echo or the Rust Lambda component.
fn component(path: &str) -> tempfile::TempDir {
    let p = target_root().join(path);
    assert!(
        p.exists(),
        "{} is missing: run `make functions`",
        p.display()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(p, dir.path().join("bootstrap.wasm")).unwrap();
    dir
}

#[tokio::test]
async fn precompiled_components_start_without_compiling() {
    // A wasi:http component: its engine (a component pool) is the one `compile` builds.
    let dir = component("components/rust-http.wasm");
    compile(dir.path());
    let host = start(dir.path(), &[]);
    host.wait_log("compilation skipped", Duration::from_secs(30));
    assert!(host.logs().contains("loaded precompiled artifact"));
    assert!(!host.logs().contains("compiled bootstrap.wasm in"));
    let r = host.post("/status?201", "x").await;
    assert_eq!(r.status().as_u16(), 201, "{}", host.logs());
    drop(host);

    // A Lambda component (guest-sdk/wit), with the engine of Lambda components.
    let dir = component("wasm32-wasip2/release/lambda-echo.wasm");
    compile(dir.path());
    let host = start(dir.path(), &[]);
    host.wait_log("compilation skipped", Duration::from_secs(30));
    assert!(host.logs().contains("loaded precompiled artifact"));
    assert!(!host.logs().contains("compiled bootstrap.wasm in"));
    let (status, body) = host.invoke(json!({"op": "echo", "data": 5})).await;
    assert_eq!((status, &body["payload"]), (200, &json!(5)), "{body}");

    // A tampered component artifact is not run: compiled instead, same answer.
    flip_bytes(&artifact(dir.path()));
    drop(host);
    let host = start(dir.path(), &[]);
    host.wait_log(
        "not using the precompiled artifact",
        Duration::from_secs(30),
    );
    let (status, body) = host.invoke(json!({"op": "echo", "data": 6})).await;
    assert_eq!((status, &body["payload"]), (200, &json!(6)), "{body}");
}
