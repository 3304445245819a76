//! Response streaming end to end with real clients: the crates.io `lambda_runtime` crate's
//! streaming responses (raw and with an HTTP prelude), a bash + curl runtime streaming a
//! chunked upload, and the public endpoint's chunked replies, trailers, limits and hang-ups.
//! Time to first byte is asserted as an order: the function waits for a signal file that
//! the test writes only once it has read the first chunk.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{Host, built, function_dir, repo_root};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn streamer() -> tempfile::TempDir {
    function_dir(&built("stream-function"), &[])
}

fn bash_stream() -> tempfile::TempDir {
    function_dir(
        &repo_root().join("tests/functions/bash-stream/bootstrap"),
        &[],
    )
}

/// Reads the rest of a reply's body, or says how far it got before it broke.
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

async fn metric(host: &Host, name: &str) -> u64 {
    let text = reqwest::get(host.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The first chunk arrives while the function still waits to write its last.
async fn first_chunk_before_the_last(host: &Host, event: String, signal: &Path, first: &str) {
    let mut r = host.post("/", event).await;
    assert_eq!(r.status(), 200, "{}", host.logs());
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(first) {
        let chunk = r.chunk().await.unwrap().expect("the stream ended early");
        seen.extend_from_slice(&chunk);
    }
    assert!(
        !String::from_utf8_lossy(&seen).contains("signal"),
        "the last chunk came before the signal"
    );
    std::fs::write(signal, b"go").unwrap();
    seen.extend(rest(r).await.unwrap());
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.ends_with("after-signal\n") || text.ends_with("last\n"),
        "{text:?}"
    );
}

#[tokio::test]
async fn lambda_runtime_streams_chunks_as_it_writes_them() {
    let f = streamer();
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1")]);
    let signal = f.path().join("signal");
    let event = json!({"chunks": 2, "signal": signal}).to_string();
    first_chunk_before_the_last(&host, event, &signal, "chunk 0\n").await;
}

#[tokio::test]
async fn lambda_runtime_prelude_sets_status_headers_and_cookies() {
    let f = streamer();
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1")]);
    let event = json!({
        "chunks": 2,
        "prelude": {
            "statusCode": 201,
            "headers": {"content-type": "text/event-stream", "x-stream": "yes"},
            "cookies": ["session=abc; Path=/", "theme=dark"]
        }
    });
    let r = host.post("/", event.to_string()).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert_eq!(r.headers()["x-stream"], "yes");
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["session=abc; Path=/", "theme=dark"]);
    assert_eq!(rest(r).await.unwrap(), b"chunk 0\nchunk 1\n");
}

#[tokio::test]
async fn lambda_runtime_error_before_any_byte_is_a_500() {
    let f = streamer();
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1")]);
    let (status, body) = host.invoke(json!({"chunks": 2, "fail_after": 0})).await;
    assert_eq!(status, 500);
    assert_eq!(body["errorType"], "Runtime.StreamError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("broke on purpose")
    );
}

/// A GET-less POST over a plain hyper connection that asks for trailers.
async fn post_with_trailers(host: &Host, body: String) -> (u16, Bytes, Option<http::HeaderMap>) {
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
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
    let reply = send.send_request(req).await.unwrap();
    let status = reply.status().as_u16();
    let collected = reply.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (status, collected.to_bytes(), trailers)
}

#[tokio::test]
async fn lambda_runtime_mid_stream_error_reaches_a_caller_as_trailers() {
    let f = streamer();
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1")]);
    let event = json!({"chunks": 3, "fail_after": 1}).to_string();
    let (status, body, trailers) = post_with_trailers(&host, event).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"chunk 0\n");
    let trailers = trailers.expect("trailers");
    assert_eq!(
        trailers["lambda-runtime-function-error-type"],
        "Runtime.StreamError"
    );
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(trailers["lambda-runtime-function-error-body"].as_bytes())
        .unwrap();
    assert!(String::from_utf8_lossy(&decoded).contains("broke on purpose"));
    host.wait_log(
        "function error in its response stream",
        Duration::from_secs(10),
    );
    let user_errors = metric(&host, "user_managed=\"true\"").await;
    assert!(user_errors >= 1, "the error counts as a function error");
}

#[tokio::test]
async fn bash_curl_runtime_streams_a_chunked_upload() {
    let f = bash_stream();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1"), ("STREAM_TEST_DIR", d)]);
    let signal = dir.path().join("signal");
    first_chunk_before_the_last(&host, "stream".into(), &signal, "first\n").await;
    assert_eq!(answer(dir.path()).await, "202");
}

/// Invokes the bash runtime with the one-word event `word`: status and JSON body.
async fn invoke_word(host: &Host, word: &'static str) -> (u16, Value) {
    let r = host.post("/", word).await;
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body)
}

/// What the Runtime API answered the bash runtime's last upload.
async fn answer(dir: &Path) -> String {
    let path = dir.join("answer.status");
    for _ in 0..500 {
        if let Ok(s) = std::fs::read_to_string(&path)
            && !s.trim().is_empty()
        {
            let _ = std::fs::remove_file(&path);
            return s.trim().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the runtime never got an answer");
}

#[tokio::test]
async fn bash_runtime_trailers_after_data_reach_the_caller_and_count_as_errors() {
    let f = bash_stream();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1"), ("STREAM_TEST_DIR", d)]);
    let (status, body, trailers) = post_with_trailers(&host, "trailers".into()).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"partial\n");
    let trailers = trailers.expect("trailers");
    assert_eq!(
        trailers["lambda-runtime-function-error-type"],
        "Function.Broke"
    );
    assert_eq!(answer(dir.path()).await, "202");
    host.wait_log("Function.Broke", Duration::from_secs(10));
    assert!(metric(&host, "user_managed=\"true\"").await >= 1);
}

#[tokio::test]
async fn a_bad_mode_is_400_to_the_runtime_and_502_to_the_caller() {
    let f = bash_stream();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1"), ("STREAM_TEST_DIR", d)]);
    let (status, body) = invoke_word(&host, "badmode").await;
    assert_eq!(status, 502);
    assert_eq!(body["errorType"], "Runtime.InvalidResponseModeHeader");
    assert_eq!(answer(dir.path()).await, "400");
    let runtime_saw = std::fs::read_to_string(dir.path().join("answer.body")).unwrap();
    assert!(
        runtime_saw.contains("InvalidFunctionResponseMode"),
        "{runtime_saw}"
    );
}

#[tokio::test]
async fn a_malformed_prelude_is_a_502_saying_what_is_wrong() {
    let f = bash_stream();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1"), ("STREAM_TEST_DIR", d)]);
    let (status, body) = invoke_word(&host, "badprelude").await;
    assert_eq!(status, 502);
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("statusCode must be a number"), "{message}");
}

#[tokio::test]
async fn two_cookies_become_two_set_cookie_headers() {
    let f = bash_stream();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1"), ("STREAM_TEST_DIR", d)]);
    let r = host.post("/", "cookies").await;
    assert_eq!(r.status(), 203);
    assert_eq!(r.headers()["content-type"], "text/html");
    assert_eq!(r.headers()["x-kind"], "prelude");
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2; HttpOnly"]);
    assert_eq!(rest(r).await.unwrap(), b"<p>hi</p>\n");
}

#[tokio::test]
async fn a_stream_larger_than_the_buffered_limit_passes_whole() {
    let f = streamer();
    // 1 MB buffered; the stream is 2.6 MB.
    let host = Host::start(
        f.path(),
        &[("INVOKER_COUNT", "1"), ("REQUEST_SIZE_LIMIT", "1")],
    );
    let event = json!({"chunks": 40, "size": 65536}).to_string();
    let r = host.post("/", event).await;
    assert_eq!(r.status(), 200);
    let body = rest(r).await.expect("a whole stream");
    assert_eq!(body.len(), 40 * 65536);
    assert_eq!(body[65536 * 39], b'a' + 13);
}

#[tokio::test]
async fn a_stream_past_the_streaming_limit_is_cut() {
    let f = streamer();
    let host = Host::start(
        f.path(),
        &[("INVOKER_COUNT", "1"), ("STREAMING_RESPONSE_LIMIT", "1")],
    );
    let event = json!({"chunks": 40, "size": 65536}).to_string();
    let r = host.post("/", event).await;
    assert_eq!(r.status(), 200);
    let got = rest(r)
        .await
        .expect_err("the caller sees an incomplete response");
    assert!(got <= 1_000_000, "{got} bytes passed the 1 MB limit");
    host.wait_log("response stream cut", Duration::from_secs(10));
    assert_eq!(
        metric(&host, "aws_custom_runtime_response_streams_cut_total").await,
        1
    );
    // The runtime was answered and takes the next invocation.
    let r = host.post("/", json!({"chunks": 1}).to_string()).await;
    assert_eq!(rest(r).await.unwrap(), b"chunk 0\n");
}

#[tokio::test]
async fn a_caller_that_hangs_up_mid_stream_ends_the_upload_cleanly() {
    let f = streamer();
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1")]);
    let signal = f.path().join("signal");
    let event = json!({"chunks": 2, "signal": signal}).to_string();
    // A raw connection, closed once the first chunk is in: a caller that hangs up.
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", host.port))
        .await
        .unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{event}",
        event.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("chunk 0") {
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "the reply ended before its first chunk");
        seen.extend_from_slice(&buf[..n]);
    }
    drop(conn);
    host.wait_log("the caller hung up", Duration::from_secs(30));
    std::fs::write(&signal, b"go").unwrap();
    // The same runtime, answered, goes on to the next invocation.
    let r = host.post("/", json!({"chunks": 1}).to_string()).await;
    assert_eq!(rest(r).await.unwrap(), b"chunk 0\n");
    assert_eq!(
        metric(&host, "aws_custom_runtime_bootstrap_restarts_total").await,
        0
    );
    assert_eq!(
        metric(&host, "aws_custom_runtime_in_flight").await,
        0,
        "nothing left in flight"
    );
}

#[tokio::test]
async fn the_deadline_covers_the_whole_stream() {
    let f = streamer();
    let host = Host::start(f.path(), &[("INVOKER_COUNT", "1"), ("FUNCTION_TTL", "2s")]);
    let signal = f.path().join("signal");
    // The function writes its first chunk, then waits for a signal that comes only after
    // the deadline has cut the stream.
    let event = json!({"chunks": 2, "signal": signal}).to_string();
    let mut r = host.post("/", event).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.chunk().await.unwrap().unwrap(), "chunk 0\n");
    rest(r)
        .await
        .expect_err("the stream is cut at the deadline");
    std::fs::write(&signal, b"go").unwrap();
    host.wait_log("response stream cut", Duration::from_secs(10));
    assert!(metric(&host, "aws_custom_runtime_deadlines_total").await >= 1);
    // As AWS resets an environment whose invocation timed out: the runtime is restarted.
    host.wait_log(
        "the response stream passed the invocation's deadline: the runtime is reset",
        Duration::from_secs(10),
    );
    host.wait_log("bootstrap reset", Duration::from_secs(10));
    // And the new one serves the next invocation.
    let r = host.post("/", json!({"chunks": 1}).to_string()).await;
    assert_eq!(rest(r).await.unwrap(), b"chunk 0\n");
    assert_eq!(
        metric(&host, "aws_custom_runtime_bootstrap_restarts_total").await,
        1
    );
}

#[tokio::test]
async fn a_bootstrap_due_for_recycling_finishes_its_stream_first() {
    let f = streamer();
    let host = Host::start(
        f.path(),
        &[("INVOKER_COUNT", "1"), ("BOOTSTRAP_MAX_INVOCATIONS", "1")],
    );
    let signal = f.path().join("signal");
    let event = json!({"chunks": 2, "signal": signal}).to_string();
    // Its one invocation ends for the Dispatcher at the first byte; the recycle waits for
    // the stream to end.
    first_chunk_before_the_last(&host, event, &signal, "chunk 0\n").await;
    let r = host.post("/", json!({"chunks": 1}).to_string()).await;
    assert_eq!(rest(r).await.unwrap(), b"chunk 0\n");
}
