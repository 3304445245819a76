//! Response streaming from WASI guests: the guest SDK's `run_with_streaming_response` (in
//! both isolation modes) and a plain WASI command's stdout. Time to first byte is an order:
//! the guest waits for a signal file, in its read-only function folder, that the test
//! writes once it has read the first chunk.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use common::{Host, target_root};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::json;

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

fn wasm_function(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guest(name), dir.path().join("bootstrap.wasm")).unwrap();
    dir
}

async fn rest(mut r: reqwest::Response) -> Result<Vec<u8>, usize> {
    let mut all = Vec::new();
    loop {
        match r.chunk().await {
            Ok(Some(c)) => all.extend_from_slice(&c),
            Ok(None) => return Ok(all),
            Err(_) => return Err(all.len()),
        }
    }
}

async fn first_chunk_before_the_last(host: &Host, event: String, signal: &Path, first: &str) {
    let mut r = host.post("/", event).await;
    assert_eq!(r.status(), 200, "{}", host.logs());
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(first) {
        let chunk = r.chunk().await.unwrap().expect("the stream ended early");
        seen.extend_from_slice(&chunk);
    }
    assert!(!String::from_utf8_lossy(&seen).contains("signal"));
    std::fs::write(signal, b"go").unwrap();
    seen.extend(rest(r).await.unwrap());
    let text = String::from_utf8_lossy(&seen);
    assert!(text.ends_with("after-signal\n"), "{text:?}");
}

#[tokio::test]
async fn sdk_guest_streams_chunks_as_it_writes_them_in_both_modes() {
    for mode in ["loop", "invocation"] {
        let f = wasm_function("stream-probe");
        let host = Host::start(
            f.path(),
            &[("WASM_ISOLATION", mode), ("INVOKER_COUNT", "1")],
        );
        let signal = f.path().join("signal");
        let event = json!({"chunks": 2, "signal": signal}).to_string();
        first_chunk_before_the_last(&host, event, &signal, "chunk 0\n").await;
        // The instance (or the next one) serves the next invocation.
        let r = host.post("/", json!({"chunks": 1}).to_string()).await;
        assert_eq!(rest(r).await.unwrap(), b"chunk 0\n", "{mode}");
    }
}

#[tokio::test]
async fn sdk_guest_prelude_sets_status_headers_and_cookies() {
    let f = wasm_function("stream-probe");
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1")]);
    let event = json!({"chunks": 1, "prelude": {
        "statusCode": 206, "headers": {"content-type": "text/csv"}, "cookies": ["a=1", "b=2"]
    }});
    let r = host.post("/", event.to_string()).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-type"], "text/csv");
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(rest(r).await.unwrap(), b"chunk 0\n");
}

#[tokio::test]
async fn sdk_guest_mid_stream_error_reaches_the_caller_as_trailers() {
    let f = wasm_function("stream-probe");
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1")]);
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", host.port))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let body = json!({"chunks": 3, "fail_after": 1}).to_string();
    let req = http::Request::post("/")
        .header("host", "localhost")
        .header("te", "trailers")
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
    let reply = send.send_request(req).await.unwrap();
    assert_eq!(reply.status(), 200);
    let collected = reply.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(&collected.to_bytes()[..], b"chunk 0\n");
    assert_eq!(
        trailers["lambda-runtime-function-error-type"],
        "Runtime.StreamError"
    );
}

#[tokio::test]
async fn sdk_guest_stream_past_the_limit_is_cut() {
    let f = wasm_function("stream-probe");
    let host = Host::start(
        f.path(),
        &[("INVOKER_COUNT", "1"), ("STREAMING_RESPONSE_LIMIT", "1")],
    );
    let r = host
        .post("/", json!({"chunks": 40, "size": 65536}).to_string())
        .await;
    let got = rest(r).await.expect_err("an incomplete response");
    assert!(got <= 1_000_000, "{got}");
    host.wait_log("response stream cut", Duration::from_secs(10));
}

#[tokio::test]
async fn a_plain_wasi_command_streams_its_stdout_as_it_writes_it() {
    let f = wasm_function("stdio-probe");
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1")]);
    let signal = f.path().join("signal");
    let event = format!("stream:{}", signal.display());
    first_chunk_before_the_last(&host, event, &signal, "first\n").await;
}

#[tokio::test]
async fn a_plain_wasi_command_failing_mid_stream_ends_with_trailers() {
    let f = wasm_function("stdio-probe");
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1")]);
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", host.port))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("/")
        .header("host", "localhost")
        .header("te", "trailers")
        .body(http_body_util::Full::new(Bytes::from_static(b"late-fail")))
        .unwrap();
    let reply = send.send_request(req).await.unwrap();
    assert_eq!(reply.status(), 200);
    let collected = reply.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(&collected.to_bytes()[..], b"started\n");
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD
        .decode(trailers["lambda-runtime-function-error-body"].as_bytes())
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("late failure on purpose"));
}

#[tokio::test]
async fn a_plain_wasi_command_failing_before_any_byte_is_a_500_with_its_stderr() {
    let f = wasm_function("stdio-probe");
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1")]);
    let r = host.post("/", "read:/nonexistent").await;
    assert_eq!(r.status(), 500);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("cannot read")
    );
}
