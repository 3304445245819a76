//! Native bootstraps through the public endpoint of the real binary: the bash example, the
//! `lambda_runtime` example, and a probe function on `lambda_runtime`. What every kind of
//! function must do alike (echo, errors, deadlines, crashes, oversized answers, the context) is
//! in parity.rs; this file holds what only a native bootstrap has: processes, their
//! environment, signals and restarts.

mod common;

use std::time::{Duration, Instant};

use common::{Host, built, function_dir, repo_root, run_to_exit, script_dir};
use serde_json::{Value, json};

fn bash_example() -> std::path::PathBuf {
    repo_root().join("example/bash")
}

/// A folder with the bash example's bootstrap and `function.sh` holding `handler`.
fn bash_function(handler: &str) -> tempfile::TempDir {
    function_dir(
        &bash_example().join("bootstrap"),
        &[("function.sh", handler)],
    )
}

fn probe() -> tempfile::TempDir {
    function_dir(&built("probe-function"), &[])
}

async fn status_and_bytes(host: &Host, body: Vec<u8>) -> (u16, Vec<u8>) {
    let r = host.post("/", body).await;
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn the_bash_example_round_trips_any_bytes_exactly() {
    let host = Host::start(
        &bash_example(),
        &[("REQUEST_SIZE_LIMIT", "2"), ("INVOKER_COUNT", "2")],
    );
    let mut binary: Vec<u8> = (0..=255u8).collect();
    binary.extend_from_slice(b"\0\0\n\n\r\n");
    let payloads: Vec<Vec<u8>> = vec![
        vec![],
        "héllo wörld ✓ 日本語 🎉\n".as_bytes().to_vec(),
        binary,
        b"\n\ntrailing newlines\n\n".to_vec(),
        vec![b'm'; 1_000_000],
        vec![b'u'; 2_000_000],
    ];
    for p in payloads {
        let (status, body) = status_and_bytes(&host, p.clone()).await;
        assert_eq!(status, 200, "{} bytes", p.len());
        assert!(
            body == p,
            "{} bytes came back as {} bytes",
            p.len(),
            body.len()
        );
    }
    let (status, _) = status_and_bytes(&host, vec![b'o'; 2_000_001]).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn the_lambda_runtime_example_round_trips_json_exactly() {
    let dir = function_dir(&built("bootstrap"), &[]);
    let host = Host::start(dir.path(), &[("REQUEST_SIZE_LIMIT", "2")]);
    let big = format!("\"{}\"", "x".repeat(1_999_998));
    let payloads = [
        r#"{"a":1,"b":[true,null,"c"]}"#.to_string(),
        r#""héllo ✓ 日本語 🎉""#.to_string(),
        r#""""#.to_string(),
        "[]".to_string(),
        format!("\"{}\"", "y".repeat(1_000_000)),
        big,
    ];
    for p in payloads {
        let r = host.post("/", p.clone()).await;
        assert_eq!(r.status(), 200, "{} bytes", p.len());
        assert_eq!(r.headers()["content-type"], "application/json");
        let body = r.text().await.unwrap();
        assert!(body == p, "{} bytes came back as {}", p.len(), body.len());
    }
    let (status, _) = status_and_bytes(&host, vec![b'1'; 2_000_001]).await;
    assert_eq!(status, 413);
    // Not JSON: lambda_runtime cannot read it and reports an error invocation.
    let (status, body) = status_and_bytes(&host, b"not json".to_vec()).await;
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn five_hundred_concurrent_requests_each_get_their_own_answer() {
    let dir = function_dir(&built("bootstrap"), &[]);
    let host = Host::start(dir.path(), &[("INVOKER_COUNT", "4")]);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500 {
        let req = host
            .client
            .post(host.url("/"))
            .body(json!({"n": i, "pad": "p".repeat(i % 37)}).to_string());
        tasks.spawn(async move {
            let r = req.send().await.unwrap();
            (i, r.status().as_u16(), r.text().await.unwrap())
        });
    }
    let mut seen = 0;
    while let Some(done) = tasks.join_next().await {
        let (i, status, body) = done.unwrap();
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["n"], i, "request {i} got someone else's answer");
        seen += 1;
    }
    assert_eq!(seen, 500);
}

#[tokio::test]
async fn a_failing_bash_handler_is_a_500_naming_its_exit_status() {
    let bash = bash_function("handler() { echo 'bad input' >&2; return 3; }\n");
    let host = Host::start(bash.path(), &[("INVOKER_COUNT", "1")]);
    let (status, body) = host.invoke(json!({})).await;
    assert_eq!(status, 500);
    assert_eq!(body["errorType"], "HandlerError");
    assert_eq!(body["errorMessage"], "handler exited with status 3");
    host.wait_log("bad input", Duration::from_secs(5));
}

#[tokio::test]
async fn a_deadline_replaces_the_bootstrap_process() {
    let dir = probe();
    let host = Host::start(
        dir.path(),
        &[("INVOKER_COUNT", "1"), ("FUNCTION_TTL", "1s")],
    );
    let (_, before) = host.invoke(json!({"context": true})).await;
    let (status, body) = host.invoke(json!({"sleep_ms": 20_000})).await;
    assert_eq!(status, 504, "{body}");
    host.wait_log("bootstrap reset", Duration::from_secs(5));
    let (status, after) = host.invoke(json!({"context": true})).await;
    assert_eq!(status, 200);
    assert_ne!(before["pid"], after["pid"], "a fresh bootstrap answers");
}

#[tokio::test]
async fn a_bootstrap_killed_mid_invocation_fails_it_at_once_and_is_restarted() {
    let dir = probe();
    let host = Host::start(
        dir.path(),
        &[("INVOKER_COUNT", "1"), ("FUNCTION_TTL", "30s")],
    );
    let (_, ctx) = host.invoke(json!({"context": true})).await;
    let pid = ctx["pid"].as_u64().unwrap().to_string();
    let slow = {
        let req = host
            .client
            .post(host.url("/"))
            .body(r#"{"sleep_ms":25000}"#);
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    let r = slow.await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(killed.elapsed() < Duration::from_secs(3));
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["errorType"], "Runtime.ExitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Runtime exited"),
        "{body}"
    );

    let (status, after) = host.invoke(json!({"context": true})).await;
    assert_eq!(status, 200);
    assert_ne!(after["pid"].as_u64().unwrap().to_string(), pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_requests_in_flight_and_exits_0() {
    let dir = probe();
    let mut host = Host::start(
        dir.path(),
        &[("INVOKER_COUNT", "4"), ("FUNCTION_TTL", "10s")],
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let req = host
            .client
            .post(host.url("/"))
            .body(json!({"sleep_ms": 700, "i": i}).to_string());
        tasks.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    host.signal("TERM");
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200, "a request in flight was lost");
    }
    let status = tokio::task::block_in_place(|| host.wait_exit(Duration::from_secs(15)));
    assert!(status.success(), "exit status {status:?}");
    assert!(!host.is_listening());
}

#[tokio::test]
async fn the_public_port_opens_only_once_a_bootstrap_polls() {
    let probe_bin = built("probe-function");
    let dir = script_dir(&format!(
        "#!/bin/sh\nsleep 1.5\nexec {}\n",
        probe_bin.display()
    ));
    let host = Host::spawn(dir.path(), &[("INVOKER_COUNT", "1")]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !host.is_listening(),
        "listening before any bootstrap polled"
    );
    host.ready(Duration::from_secs(10)).await;
    let (status, _) = host.invoke(json!({"ok": true})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_bootstrap_sees_the_lambda_environment() {
    let dir = probe();
    let host = Host::start(
        dir.path(),
        &[
            ("INVOKER_COUNT", "1"),
            ("_HANDLER", "probe.handler"),
            ("AWS_LAMBDA_FUNCTION_NAME", "my-fn"),
            ("HOST_SECRET", "visible-to-native"),
        ],
    );
    let (status, ctx) = host.invoke(json!({"context": true})).await;
    assert_eq!(status, 200);
    let env = &ctx["env"];
    let root = dir.path().to_str().unwrap();
    assert_eq!(env["LAMBDA_TASK_ROOT"], root);
    assert_eq!(ctx["cwd"], root);
    assert_eq!(env["_HANDLER"], "probe.handler");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "my-fn");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "128");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/my-fn");
    assert!(
        env["AWS_LAMBDA_LOG_STREAM_NAME"]
            .as_str()
            .unwrap()
            .contains("[$LATEST]")
    );
    assert!(
        env["AWS_LAMBDA_RUNTIME_API"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(env["LD_LIBRARY_PATH"].as_str().unwrap().contains(root));
    assert_eq!(env["TZ"], ":UTC");
    assert!(env["LAMBDA_RUNTIME_DIR"].is_string());
    assert_eq!(
        env["HOST_SECRET"], "visible-to-native",
        "native bootstraps inherit the host env"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_bootstrap_is_restarted_and_never_takes_the_host_down() {
    let dir = script_dir("#!/bin/sh\necho 'about to crash' >&2\nexit 7\n");
    let mut host = Host::spawn(dir.path(), &[("INVOKER_COUNT", "2")]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let logs = host.logs();
    assert!(
        logs.matches("bootstrap exited: exit status 7").count() >= 4,
        "{logs}"
    );
    assert!(
        logs.contains("about to crash") && logs.contains("bootstrap=1"),
        "{logs}"
    );
    host.signal("TERM");
    let status = tokio::task::block_in_place(|| host.wait_exit(Duration::from_secs(10)));
    assert!(status.success());
}

#[tokio::test]
async fn the_bash_example_leaves_no_temporary_files() {
    let tmp = tempfile::tempdir().unwrap();
    let host = Host::start(
        &bash_example(),
        &[
            ("INVOKER_COUNT", "1"),
            ("TMPDIR", tmp.path().to_str().unwrap()),
        ],
    );
    for i in 0..5 {
        let (status, _) = status_and_bytes(&host, format!("event {i}").into_bytes()).await;
        assert_eq!(status, 200);
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bad_configuration_stops_start_up_naming_the_variable() {
    let example = bash_example();
    let root = example.to_str().unwrap();
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    );
    let cases: [Case; 6] = [
        (&[("FUNCTION_TTL", "10x")], &["FUNCTION_TTL", "10x"]),
        (&[("INVOKER_COUNT", "many")], &["INVOKER_COUNT", "many"]),
        (
            &[("REQUEST_SIZE_LIMIT", "-3")],
            &["REQUEST_SIZE_LIMIT", "-3"],
        ),
        (&[("PORT", "99999")], &["PORT", "99999"]),
        (&[("RESPONSE_FORMAT", "XML")], &["RESPONSE_FORMAT", "XML"]),
        (
            &[("LAMBDA_TASK_ROOT", "/no/such/folder")],
            &["LAMBDA_TASK_ROOT", "/no/such/folder"],
        ),
    ];
    for (env, expected) in cases {
        let mut all = vec![("LAMBDA_TASK_ROOT", root)];
        all.extend_from_slice(env);
        let (status, out) = run_to_exit(&all);
        assert!(!status.success(), "{env:?} was accepted");
        for e in expected {
            assert!(out.contains(e), "{env:?}: message lacks {e}: {out}");
        }
    }
    let empty = tempfile::tempdir().unwrap();
    let (status, out) = run_to_exit(&[("LAMBDA_TASK_ROOT", empty.path().to_str().unwrap())]);
    assert!(!status.success());
    assert!(out.contains("bootstrap"), "{out}");
    let not_exec = function_dir(&bash_example().join("function.sh"), &[]);
    let (status, out) = run_to_exit(&[("LAMBDA_TASK_ROOT", not_exec.path().to_str().unwrap())]);
    assert!(!status.success());
    assert!(out.contains("not an executable"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_context_headers_are_400s_and_a_lambda_runtime_bootstrap_takes_every_accepted_one()
{
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let dir = probe();
    let host = Host::start(
        dir.path(),
        &[("INVOKER_COUNT", "1"), ("_HANDLER", "probe.handler")],
    );
    let call = |headers: Vec<(&'static str, String)>| {
        let mut req = host
            .client
            .post(host.url("/"))
            .body(json!({"context": true}).to_string());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let (_, first) = host.invoke(json!({"context": true})).await;
    let hostile = [
        ("x-amz-cognito-identity", "{}".to_owned()),
        ("x-amz-client-context", b64(r#"{"custom":{"a":1}}"#)),
        (
            "x-amzn-trace-id",
            format!("Root={}", "1".repeat(150 * 1024)),
        ),
        ("x-amzn-trace-id", "Root=1-a-b".to_owned()),
    ];
    for (name, value) in hostile {
        let r = call(vec![(name, value)]).await.unwrap();
        assert_eq!(r.status(), 400, "{name}");
        let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(body["errorType"], "InvalidRequestContentException");
        assert!(
            body["errorMessage"].as_str().unwrap().contains("X-Amz"),
            "{body}"
        );
    }
    let client = r#"{"client":{"installation_id":"i","app_title":"t","app_version_name":"n","app_version_code":"c","app_package_name":"p"},"custom":{"k":"日本"},"env":{"locale":"en"},"w3c":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","tracestate":"rojo=00f067aa0ba902b7","baggage":"userId=alice"}}"#;
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let r = call(vec![
        ("x-amz-client-context", b64(client)),
        (
            "x-amz-cognito-identity",
            r#"{"cognitoIdentityId":"us-east-1:id","cognitoIdentityPoolId":"us-east-1:pool"}"#
                .to_owned(),
        ),
        ("x-amzn-trace-id", trace.to_owned()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", host.logs());
    let ctx: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(ctx["client_context"]["custom"], json!({"k": "日本"}));
    assert_eq!(ctx["identity"], "us-east-1:id");
    assert_eq!(ctx["trace_id"], trace);
    assert_eq!(ctx["pid"], first["pid"], "the bootstrap never restarted");
}

/// A shell bootstrap that serves one invocation (echoing its event) and exits.
const ONE_SHOT: &str = r#"#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
headers=$(mktemp)
body=$(curl -sS -D "$headers" "$api/next")
id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | tr -d '\r' | cut -d' ' -f2)
rm -f "$headers"
curl -sS -X POST --data-binary "$body" "$api/$id/response" >/dev/null
exit 0
"#;

#[tokio::test]
async fn a_bootstrap_that_exits_after_every_invocation_keeps_serving_without_backoff() {
    let dir = script_dir(ONE_SHOT);
    let host = Host::start(dir.path(), &[("INVOKER_COUNT", "1")]);
    // With a doubling backoff the twentieth restart would wait its 10 s cap many times.
    let all = async {
        for i in 0..20 {
            let (status, body) = status_and_bytes(&host, format!("event-{i}").into_bytes()).await;
            assert_eq!(status, 200, "request {i}");
            assert_eq!(body, format!("event-{i}").into_bytes(), "request {i}");
        }
    };
    tokio::time::timeout(Duration::from_secs(40), all)
        .await
        .unwrap_or_else(|_| panic!("20 one-shot invocations took too long:\n{}", host.logs()));
}

fn pid_is_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie is dead; only its entry waits for a reaper.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: &str, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if pid_is_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn pids_in(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn kill_all(pids: &[String]) {
    for pid in pids {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn children_that_left_the_bootstraps_session_die_at_its_reset_and_at_the_hosts_stop() {
    let probe_bin = built("probe-function");
    let pids = tempfile::NamedTempFile::new().unwrap();
    let dir = script_dir(&format!(
        "#!/bin/sh\nsetsid sleep 1000 </dev/null >/dev/null 2>&1 &\necho $! >> \"$CHILD_PIDS\"\nexec {}\n",
        probe_bin.display()
    ));
    let mut host = Host::start(
        dir.path(),
        &[
            ("INVOKER_COUNT", "1"),
            ("FUNCTION_TTL", "1s"),
            ("CHILD_PIDS", pids.path().to_str().unwrap()),
        ],
    );
    let (status, _) = host.invoke(json!({"sleep_ms": 20_000})).await;
    assert_eq!(status, 504);
    host.wait_log("bootstrap reset", Duration::from_secs(5));
    let (status, _) = host.invoke(json!({"ok": true})).await;
    assert_eq!(status, 200);
    let started = pids_in(pids.path());
    assert_eq!(started.len(), 2, "one child per bootstrap: {started:?}");
    let first_gone = wait_gone(&started[0], Duration::from_secs(5));
    assert!(
        !pid_is_gone(&started[1]),
        "the live bootstrap's child is left alone"
    );
    host.signal("TERM");
    tokio::task::block_in_place(|| host.wait_exit(Duration::from_secs(10)));
    let second_gone = wait_gone(&started[1], Duration::from_secs(5));
    kill_all(&started);
    assert!(
        first_gone,
        "the setsid child outlived its bootstrap's reset"
    );
    assert!(second_gone, "the setsid child outlived the host's stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bootstrap_dies_with_a_host_killed_by_sigkill() {
    let dir = probe();
    let mut host = Host::start(dir.path(), &[("INVOKER_COUNT", "1")]);
    let (_, ctx) = host.invoke(json!({"context": true})).await;
    let pid = ctx["pid"].as_u64().unwrap().to_string();
    host.signal("KILL");
    tokio::task::block_in_place(|| host.wait_exit(Duration::from_secs(5)));
    let gone = wait_gone(&pid, Duration::from_secs(5));
    kill_all(std::slice::from_ref(&pid));
    assert!(gone, "the bootstrap outlived the host");
}
