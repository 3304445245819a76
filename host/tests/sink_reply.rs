//! What a caller gets back when the `K_SINK` reply body cannot simply be passed back: over
//! the 1 MiB bound, or broken off. Real local sinks (raw TCP, so the reply is exactly what
//! the test writes) and the real binary.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Host, built, function_dir};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1 << 20;

/// A sink that reads each request in full, then writes `head` (status line and headers,
/// `Content-Length` included) and `body`, and closes. Counts the requests.
async fn sink(head: String, body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let reply: Arc<[u8]> = [head.into_bytes(), body].concat().into();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let reply = reply.clone();
            tokio::spawn(async move {
                read_request(&mut conn).await;
                let _ = conn.write_all(&reply).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (url, count)
}

/// Reads one request's head and its `Content-Length` body.
async fn read_request(conn: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let Ok(n) = conn.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            return;
        }
    }
}

fn ok_head(length: usize) -> String {
    format!(
        "HTTP/1.1 202 Accepted\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

async fn call(url: &str) -> (u16, Vec<u8>, Host) {
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(dir.path(), &[("K_SINK", url), ("INVOKER_COUNT", "1")]);
    let r = host.post("/", r#"{"to":"sink"}"#).await;
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap().to_vec();
    (status, body, host)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_reply_of_exactly_1_mib_reaches_the_caller_whole() {
    let body = vec![b's'; MIB];
    let (url, count) = sink(ok_head(MIB), body.clone()).await;
    let (status, got, _host) = call(&url).await;
    assert_eq!(status, 200);
    assert_eq!(got.len(), MIB);
    assert!(got == body);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_reply_over_1_mib_is_a_clear_502_not_an_empty_body() {
    let (url, count) = sink(ok_head(2 * MIB), vec![b's'; 2 * MIB]).await;
    let (status, got, host) = call(&url).await;
    let body: Value = serde_json::from_slice(&got)
        .unwrap_or_else(|_| panic!("not JSON ({status}, {} bytes)\n{}", got.len(), host.logs()));
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["errorType"], "SinkReplyTooLarge");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("202") && message.contains("1048576"),
        "{message}"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the sink took the event: not sent again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_reply_that_breaks_off_is_a_clear_502() {
    let (url, count) = sink(ok_head(1000), b"only part".to_vec()).await;
    let (status, got, host) = call(&url).await;
    let body: Value = serde_json::from_slice(&got)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {got:?}\n{}", host.logs()));
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["errorType"], "SinkReplyBroken");
    assert_eq!(count.load(Ordering::SeqCst), 1, "not sent again");
}
