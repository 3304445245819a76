//! `wasi:http` components through the public endpoint of the real binary, built by
//! `make functions` with the real toolchains: Rust (`wasm32-wasip2`, the `wasi` crate),
//! Python (componentize-py) and JavaScript (jco). Each language's component echoes the
//! request, sets status and headers, streams and takes a 5 MB body; the Rust one also shows
//! the sandbox (deadline, memory cap, environment, file system), the outbound allow-list
//! against a local server, concurrency, K_SINK, and the start-up refusals; the Python one its
//! capped /tmp.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Host, run_to_exit, target_root};

fn component(name: &str) -> PathBuf {
    let p = target_root()
        .join("components")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run `make functions` (it builds the test components)",
        p.display()
    );
    p
}

/// A function folder holding component `name` as bootstrap.wasm and a readable data file.
fn function(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(component(name), dir.path().join("bootstrap.wasm")).unwrap();
    std::fs::write(dir.path().join("data.txt"), "function data").unwrap();
    dir
}

/// Compiling a Python or JavaScript component takes tens of seconds: the tests share one
/// cache, so that only the first start of each compiles.
fn cache_dir() -> String {
    target_root().join("components-cache").display().to_string()
}

fn start(dir: &tempfile::TempDir, env: &[(&str, &str)]) -> Host {
    let cache = cache_dir();
    let mut all = vec![("WASM_CACHE_DIR", cache.as_str()), ("INVOKER_COUNT", "2")];
    all.extend_from_slice(env);
    let host = Host::spawn(dir.path(), &all);
    // An uncached componentize-py component compiles for ~30 s on a loaded machine.
    host.wait_ready(std::time::Duration::from_secs(300));
    host
}

async fn get(host: &Host, path: &str) -> (u16, String) {
    let r = host.client.get(host.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// 8 MiB written to /tmp under `WASM_TMP_LIMIT=1MiB`: refused by the time 1 MiB is written.
async fn fills_to_the_cap(host: &Host) {
    let (_, big) = get(host, &format!("/fill?{}", 8 << 20)).await;
    let written: u64 = big
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{big}"));
    assert!(written <= 1 << 20 && big.contains("error"), "{big}");
}

/// What every language's component must serve alike.
async fn serves_http(name: &str) {
    let dir = function(name);
    let host = start(&dir, &[("REQUEST_SIZE_LIMIT", "6")]);

    let r = host
        .client
        .put(host.url("/some/path?a=1&b=two"))
        .header("x-custom", "value 1")
        .body("the body")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{name}");
    assert_eq!(r.headers()["x-echo"], "yes", "{name}");
    let text = r.text().await.unwrap();
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    assert_eq!(
        lines.next(),
        Some("PUT /some/path?a=1&b=two"),
        "{name}: {text}"
    );
    let headers: Vec<&str> = lines.collect();
    assert!(headers.contains(&"x-custom: value 1"), "{name}: {text}");
    assert!(headers.contains(&"content-length: 8"), "{name}: {text}");
    assert_eq!(body, "the body", "{name}");

    let r = host
        .client
        .get(host.url("/status?201"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{name}");
    assert_eq!(r.headers()["x-guest"], "set", "{name}");
    assert_eq!(r.headers()["content-type"], "text/x-probe", "{name}");
    assert_eq!(r.text().await.unwrap(), "status set", "{name}");
    let (status, _) = get(&host, "/status?404").await;
    assert_eq!(status, 404, "{name}: the guest's status, not the host's");

    let (status, text) = get(&host, "/stream").await;
    assert_eq!(status, 200, "{name}");
    let expected: String = (0..5).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(text, expected, "{name}: every flushed chunk, in order");

    let big: Vec<u8> = (0..5_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let r = host
        .client
        .post(host.url("/big"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{name}");
    let echoed = r.bytes().await.unwrap();
    let body = &echoed[echoed.windows(2).position(|w| w == b"\n\n").unwrap() + 2..];
    assert!(
        body == big.as_slice(),
        "{name}: the 5 MB body comes back whole"
    );
}

#[tokio::test]
async fn a_rust_component_serves_http() {
    serves_http("rust-http").await;
}

#[tokio::test]
async fn a_python_component_serves_http() {
    serves_http("python-http").await;
}

/// A componentize-py component writes through CPython's own file layer into its /tmp: fresh
/// per request, capped at WASM_TMP_LIMIT (the write past the cap fails; wasi-libc reports a
/// failed stream write as EIO whatever the host's error code).
#[tokio::test]
async fn a_python_component_has_a_fresh_capped_tmp() {
    let dir = function("python-http");
    let host = start(&dir, &[("INVOKER_COUNT", "1"), ("WASM_TMP_LIMIT", "1MiB")]);
    let (status, small) = get(&host, "/fill?262144").await;
    assert_eq!((status, small.as_str()), (200, "written 262144 ok"));
    let (_, seen) = get(&host, "/tmp-seen").await;
    assert_eq!(
        seen, "tmpdir /tmp seen no",
        "the last request's file is gone"
    );
    fills_to_the_cap(&host).await;
}

#[tokio::test]
async fn a_javascript_component_serves_http() {
    serves_http("js-http").await;
}

#[tokio::test]
async fn a_reply_streams_past_the_buffered_limit_and_is_cut_at_the_streaming_limit() {
    let dir = function("rust-http");
    let host = start(
        &dir,
        &[
            ("REQUEST_SIZE_LIMIT", "2"),
            ("STREAMING_RESPONSE_LIMIT", "1"),
        ],
    );
    let big = |n: usize| {
        host.client
            .post(host.url("/big"))
            .body(vec![b'x'; n])
            .send()
    };
    // Under the streaming limit: whole, though a buffered reply could not be this large
    // with REQUEST_SIZE_LIMIT=1.
    let r = big(900_000).await.unwrap();
    assert_eq!(r.status(), 200);
    let whole = r.bytes().await.unwrap();
    assert!(whole.len() >= 900_000, "{}", whole.len());
    // Past it: the caller sees the stream break off (no final chunk).
    let r = big(1_500_000).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.is_err(),
        "a cut stream must not end cleanly"
    );
}

#[tokio::test]
async fn the_sandbox_holds_deadline_memory_environment_and_files() {
    let dir = function("rust-http");
    let host = start(
        &dir,
        &[
            ("INVOKER_COUNT", "1"),
            ("FUNCTION_TTL", "2s"),
            ("WASM_MEMORY_LIMIT", "32MiB"),
            ("WASM_TMP_LIMIT", "1MiB"),
            ("HOST_SECRET_TOKEN", "do-not-leak"),
        ],
    );
    let (status, body) = get(&host, "/loop").await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("Sandbox.Timedout"), "{body}");
    let (status, _) = get(&host, "/status?200").await;
    assert_eq!(
        status, 200,
        "a fresh instance serves after the endless loop"
    );

    let (status, body) = get(&host, "/bomb").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("Runtime.WasmTrap"), "{body}");
    let (status, _) = get(&host, "/status?200").await;
    assert_eq!(status, 200, "a fresh instance serves after the memory bomb");

    let (status, env) = get(&host, "/env").await;
    assert_eq!(status, 200);
    assert!(env.contains("AWS_LAMBDA_FUNCTION_NAME="), "{env}");
    assert!(!env.contains("do-not-leak"), "{env}");
    assert!(!env.contains("HOST_SECRET_TOKEN"), "{env}");
    assert!(!env.lines().any(|l| l.starts_with("PATH=")), "{env}");

    let (status, fs) = get(&host, "/fs").await;
    assert_eq!(status, 200);
    assert!(fs.contains("etc-passwd: refused"), "{fs}");
    assert!(fs.contains("escape: refused"), "{fs}");
    assert!(fs.contains("task-read: ok function data"), "{fs}");
    assert!(fs.contains("task-write: refused"), "{fs}");
    assert!(!dir.path().join("new.txt").exists());
    assert!(fs.contains("tmp-write: ok"), "{fs}");
    assert!(fs.contains("tmpdir: /tmp"), "{fs}");
    // A fresh /tmp per request: the last request's file is gone.
    let (_, fs) = get(&host, "/fs").await;
    assert!(fs.contains("tmp-seen: refused (NotFound)"), "{fs}");
    // Capped at WASM_TMP_LIMIT.
    let (status, small) = get(&host, "/fill?262144").await;
    assert_eq!(status, 200);
    assert_eq!(small, "written 262144 ok");
    fills_to_the_cap(&host).await;
}

#[tokio::test]
async fn fifty_concurrent_requests_get_their_own_answers() {
    let dir = function("rust-http");
    let host = start(&dir, &[("INVOKER_COUNT", "4")]);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let req = host
            .client
            .post(host.url(&format!("/n/{i}")))
            .body(format!("body {i}"));
        tasks.spawn(async move {
            let r = req.send().await.unwrap();
            (i, r.status().as_u16(), r.text().await.unwrap())
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (i, status, text) = done.unwrap();
        assert_eq!(status, 200, "{text}");
        assert!(text.starts_with(&format!("POST /n/{i}\n")), "{i}: {text}");
        assert!(text.ends_with(&format!("\n\nbody {i}")), "{i}: {text}");
    }
}

/// A local HTTP server that counts the connections it accepts.
async fn test_server() -> (u16, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = "from the test server";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    (port, seen)
}

fn denied_count(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("aws_custom_runtime_wasm_outbound_denied_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no outbound denied counter:\n{metrics}"))
}

#[tokio::test]
async fn outbound_requests_are_denied_unless_allowed_by_name() {
    let (port, seen) = test_server().await;
    let dir = function("rust-http");

    let host = start(&dir, &[]);
    let (status, text) = get(&host, &format!("/fetch?127.0.0.1:{port}")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, "error HTTP-request-denied");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "a denied request makes no connection"
    );
    host.wait_log(
        "is not in WASM_ALLOWED_OUTBOUND_HOSTS",
        std::time::Duration::from_secs(5),
    );
    let metrics = host.client.get(host.metrics_url()).send().await.unwrap();
    assert_eq!(denied_count(&metrics.text().await.unwrap()), 1);
    drop(host);

    let allowed = format!("http://localhost:{port}");
    let host = start(&dir, &[("WASM_ALLOWED_OUTBOUND_HOSTS", &allowed)]);
    let (status, text) = get(&host, &format!("/fetch?localhost:{port}")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, "status 200: from the test server");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    // The same server by another name, or another port, stays closed.
    let (_, text) = get(&host, &format!("/fetch?127.0.0.1:{port}")).await;
    assert_eq!(text, "error HTTP-request-denied");
    let (_, text) = get(&host, &format!("/fetch?localhost:{}", port.wrapping_add(1))).await;
    assert_eq!(text, "error HTTP-request-denied");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[test]
fn start_up_refuses_a_malformed_allow_list_and_a_wrapper() {
    let dir = function("rust-http");
    let root = dir.path().display().to_string();
    let (status, out) = run_to_exit(&[
        ("LAMBDA_TASK_ROOT", &root),
        ("WASM_ALLOWED_OUTBOUND_HOSTS", "http://ok:80,ftp://files:21"),
    ]);
    assert!(!status.success(), "{out}");
    assert!(out.contains("WASM_ALLOWED_OUTBOUND_HOSTS"), "{out}");
    assert!(out.contains("ftp://files:21"), "{out}");

    let (status, out) = run_to_exit(&[
        ("LAMBDA_TASK_ROOT", &root),
        ("RESPONSE_FORMAT", "API_GATEWAY"),
        ("WASM_CACHE_DIR", "off"),
    ]);
    assert!(!status.success(), "{out}");
    assert!(out.contains("RESPONSE_FORMAT must be PASSTHROUGH"), "{out}");
}

#[tokio::test]
async fn k_sink_still_receives_a_components_reply() {
    use http_body_util::BodyExt;
    type Seen = Arc<std::sync::Mutex<Vec<(Option<String>, bytes::Bytes)>>>;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(aws_custom_runtime::serve::serve(
        listener,
        stop.clone(),
        aws_custom_runtime::serve::Options::default(),
        move |req: http::Request<hyper::body::Incoming>| {
            let record = record.clone();
            async move {
                let ct = req
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let bytes = req.into_body().collect().await.unwrap().to_bytes();
                record.lock().unwrap().push((ct, bytes));
                let ack = http::HeaderValue::from_static("text/plain");
                aws_custom_runtime::reply::with_body(http::StatusCode::ACCEPTED, ack, "ack".into())
                    .map(aws_custom_runtime::serve::Served::from)
            }
        },
    ));
    let dir = function("rust-http");
    let host = start(&dir, &[("K_SINK", &url)]);
    let (status, text) = get(&host, "/status?200").await;
    assert_eq!(status, 200, "the function's status, as for any function");
    assert_eq!(text, "ack", "the sink's reply body is passed back");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0.as_deref(), Some("text/x-probe"));
    assert_eq!(&seen[0].1[..], b"status set");
    stop.cancel();
}

#[tokio::test]
async fn with_tenant_isolation_every_tenant_is_served_and_switches_reset_the_slot() {
    let dir = function("rust-http");
    let host = start(&dir, &[("TENANT_ISOLATION_MODE", "PER_TENANT")]);
    // Five tenants in turn over two instance slots: most calls need a switch first.
    for round in 0..3 {
        for t in 0..5 {
            let r = host
                .client
                .post(host.url(&format!("/t/{t}")))
                .header("X-Amz-Tenant-Id", format!("tenant-{t}"))
                .body(format!("round {round}"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert_eq!(status, 200, "tenant-{t}: {text}\n{}", host.logs());
            assert!(text.starts_with(&format!("POST /t/{t}\n")), "{text}");
            assert!(text.ends_with(&format!("round {round}")), "{text}");
        }
    }
    let metrics = host.metrics().await;
    let switches = common::tenants::counter(&metrics, "aws_custom_runtime_tenant_switches_total{");
    assert!(switches >= 10, "{switches} switches:\n{metrics}");
    let r = host
        .client
        .post(host.url("/"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a call without a tenant is refused");
}
