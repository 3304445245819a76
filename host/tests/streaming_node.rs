//! npm `aws-lambda-ric`'s response streaming (`awslambda.streamifyResponse`) against the
//! real binary, running `tests/functions/node/stream.js`: chunks reach the caller as the
//! handler writes them, and `HttpResponseStream.from` sets the status, headers and cookies.
//! The client lives in `target/node-ric` (`make functions` installs it).

mod common;

use std::path::PathBuf;

use common::{Host, repo_root};
use serde_json::json;

/// The Node function folder, or `None` (a skip outside CI) when the client is not installed.
fn node_function() -> Option<PathBuf> {
    let ric = repo_root().join("target/node-ric/installed");
    if !ric.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "target/node-ric is missing: run `make functions`"
        );
        eprintln!("skipped: target/node-ric is missing (run `make functions`)");
        return None;
    }
    Some(repo_root().join("tests/functions/node"))
}

fn start(dir: &std::path::Path) -> Host {
    Host::start(
        dir,
        &[("INVOKER_COUNT", "1"), ("_HANDLER", "stream.handler")],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn streamify_response_chunks_reach_the_caller_as_written() {
    let Some(dir) = node_function() else { return };
    let host = start(&dir);
    let signals = tempfile::tempdir().unwrap();
    let signal = signals.path().join("signal");
    let mut r = host.post("/", json!({"signal": signal}).to_string()).await;
    assert_eq!(r.status(), 200, "{}", host.logs());
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("first\n") {
        seen.extend_from_slice(&r.chunk().await.unwrap().expect("ended early"));
    }
    assert!(!String::from_utf8_lossy(&seen).contains("signal"));
    std::fs::write(&signal, b"go").unwrap();
    while let Some(c) = r.chunk().await.unwrap() {
        seen.extend_from_slice(&c);
    }
    assert_eq!(String::from_utf8_lossy(&seen), "first\nafter-signal\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_response_stream_sets_status_headers_and_cookies() {
    let Some(dir) = node_function() else { return };
    let host = start(&dir);
    let prelude = json!({
        "statusCode": 201,
        "headers": {"content-type": "text/plain", "x-node": "yes"},
        "cookies": ["a=1", "b=2; Secure"]
    });
    let r = host
        .post("/", json!({"prelude": prelude}).to_string())
        .await;
    assert_eq!(r.status(), 201, "{}", host.logs());
    assert_eq!(r.headers()["x-node"], "yes");
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2; Secure"]);
    assert_eq!(r.text().await.unwrap(), "first\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_after_the_first_chunk_reaches_the_caller_as_trailers() {
    use http_body_util::BodyExt;
    let Some(dir) = node_function() else { return };
    let host = start(&dir);
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", host.port))
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let body = json!({"fail": "node broke mid-stream"}).to_string();
    let req = http::Request::post("/")
        .header("host", "localhost")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let reply = send.send_request(req).await.unwrap();
    assert_eq!(reply.status(), 200);
    let collected = reply.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    assert_eq!(&collected.to_bytes()[..], b"first\n", "{}", host.logs());
    let trailers = trailers.unwrap_or_else(|| panic!("no trailers:\n{}", host.logs()));
    assert!(trailers.contains_key("lambda-runtime-function-error-type"));
}
