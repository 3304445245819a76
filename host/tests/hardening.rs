//! Issue 19 from outside, as a public caller: hostile clients of the real binary on
//! 127.0.0.1, each bounded in count and time. They assert statuses, order and the host's
//! resident memory, never speed. What a runtime can do is in `hardening_runtime_api.rs`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Host, built, function_dir, raw, repo_root};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

fn probe() -> tempfile::TempDir {
    function_dir(&built("probe-function"), &[])
}

fn public(host: &Host) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], host.port))
}

fn error_type(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(body)));
    v["errorType"].as_str().unwrap_or_default().to_owned()
}

/// A whole POST of a JSON event of exactly `size` bytes, which the probe echoes.
fn big_post(size: usize) -> Vec<u8> {
    let filler = size - r#"{"s":""}"#.len();
    let event = format!(r#"{{"s":"{}"}}"#, "a".repeat(filler));
    let mut request = raw::post_head("/", event.len()).into_bytes();
    request.extend_from_slice(event.as_bytes());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_bodies_get_408_and_never_lock_out_complete_requests() {
    const STALLED: usize = 20;
    // Half of QUEUE_SIZE may wait on bodies still arriving (`public::upload_slots`).
    const UPLOAD_SLOTS: usize = 4;
    // Long enough that the complete requests below surely land while the stalls hold.
    const READ_TIMEOUT: Duration = Duration::from_secs(3);
    let dir = probe();
    let host = Host::start(
        dir.path(),
        &[
            ("INVOKER_COUNT", "2"),
            ("QUEUE_SIZE", "8"),
            ("REQUEST_READ_TIMEOUT", "3s"),
        ],
    );
    let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let mut stalls = Vec::new();
    for _ in 0..STALLED {
        let mut s = TcpStream::connect(public(&host)).await.unwrap();
        let sent = Instant::now();
        let stall = raw::post_head("/", 100_000) + "{";
        s.write_all(stall.as_bytes()).await.unwrap();
        let answered = answered.clone();
        stalls.push(tokio::spawn(async move {
            let answer = timeout(Duration::from_secs(20), raw::read_response(&mut s)).await;
            let (status, body) = match answer {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => panic!("a stalled upload got no answer: {e}"),
                Err(_) => panic!("a stalled upload was never answered"),
            };
            let _ = answered.send(status);
            (status, error_type(&body), sent.elapsed())
        }));
    }
    // The stalls that found no upload slot are refused at once; once all of them are, the
    // slots are held by stalls only and no refusal is still in flight.
    let mut refused = 0;
    while refused < STALLED - UPLOAD_SLOTS {
        match timeout(Duration::from_secs(15), answers.recv()).await {
            Ok(Some(503)) => refused += 1,
            other => panic!("after {refused} refusals: {other:?}\n{}", host.logs()),
        }
    }
    for i in 0..8 {
        let (status, v) = host.invoke(json!({ "complete": i })).await;
        assert_eq!(status, 200, "complete request {i}: {v}\n{}", host.logs());
        assert_eq!(v, json!({ "complete": i }));
    }
    assert!(
        answers.try_recv().is_err(),
        "the complete requests were served while every slot was held by a stall"
    );
    let mut timed_out = 0;
    for stall in stalls {
        let (status, error, waited) = stall.await.unwrap();
        match status {
            408 => {
                timed_out += 1;
                assert_eq!(error, "RequestTimeout");
                assert!(
                    waited >= READ_TIMEOUT,
                    "a 408 before the deadline: {waited:?}"
                );
            }
            503 => assert_eq!(error, "TooManyRequestsException"),
            other => panic!("a stalled upload got {other}"),
        }
    }
    assert_eq!(
        timed_out, UPLOAD_SLOTS,
        "the stalls that held a slot hit the deadline"
    );
    let (status, _) = host.invoke(json!({ "after": true })).await;
    assert_eq!(status, 200);
}

/// What `serve` logs (at debug) for a connection whose reply could not be written.
const WRITE_FAILED: &str = "connection ended: error writing";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_nobody_reads_hold_their_admission_until_the_write_timeout() {
    let dir = probe();
    // The write timeout leaves room for the second upload and invocation on a busy machine
    // before the first silent client is given up on.
    let host = Host::start(
        dir.path(),
        &[
            ("INVOKER_COUNT", "2"),
            ("QUEUE_SIZE", "2"),
            ("RESPONSE_WRITE_TIMEOUT", "4s"),
            ("FUNCTION_TTL", "30s"),
            ("RUST_LOG", "info,aws_custom_runtime::serve=debug"),
        ],
    );
    // Larger than the host's socket send buffer (tcp_wmem's 4 MiB at most) plus the small
    // receive window of the client: the reply cannot all leave the host.
    let request = big_post(4_900_000);
    let mut silent = Vec::new();
    for _ in 0..2 {
        // One after the other: a body still arriving would take QUEUE_SIZE's one upload slot.
        let mut s = raw::connect_small_window(public(&host), 16 << 10).await;
        s.write_all(&request).await.unwrap();
        // The reply has started: the invocation is over, the reply waits on its reader.
        let status = timeout(Duration::from_secs(30), raw::peek_status(&s)).await;
        assert!(matches!(status, Ok(Ok(200))), "{status:?}\n{}", host.logs());
        silent.push(s);
    }
    let r = host.post("/", "{}").await;
    assert_eq!(r.status(), 503, "replies not yet written hold QUEUE_SIZE");
    // Past the write timeout the host gives up on both silent clients (its debug log says
    // so for each), and both admissions are back.
    let given_up = timeout(Duration::from_secs(20), async {
        while host.logs().matches(WRITE_FAILED).count() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        given_up.is_ok(),
        "the silent clients were kept:\n{}",
        host.logs()
    );
    let (a, b) = tokio::join!(host.post("/", "{}"), host.post("/", "{}"));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    for mut s in silent {
        // The host closed them: what is left of each reply ends early.
        let read = timeout(Duration::from_secs(10), raw::read_response(&mut s)).await;
        assert!(
            !matches!(read, Ok(Ok((200, ref body))) if body.len() == 4_900_000),
            "a reply was still delivered whole after the write timeout"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_of_replies_nobody_reads_is_bounded_by_queue_size() {
    const CLIENTS: usize = 32;
    const QUEUE: u64 = 8;
    const LIMIT_BYTES: u64 = 5_000_000; // REQUEST_SIZE_LIMIT's default, 5 MB
    let dir = probe();
    let host = Host::start(
        dir.path(),
        &[
            ("INVOKER_COUNT", "2"),
            ("QUEUE_SIZE", "8"),
            ("RESPONSE_WRITE_TIMEOUT", "60s"),
            ("FUNCTION_TTL", "60s"),
        ],
    );
    assert_eq!(host.invoke(json!({"warm": 1})).await.0, 200);
    let before = host.memory_kb("VmRSS");
    let request = big_post(4_900_000);
    let mut held = Vec::new();
    let mut refused = 0;
    // One after the other, each until its answer starts, so that every client meets the
    // replies before it still unwritten (and no upload waits on another's).
    for _ in 0..CLIENTS {
        let mut s = raw::connect_small_window(public(&host), 16 << 10).await;
        // A refused client is answered before its body is read: the host may close while
        // it still sends.
        let _ = s.write_all(&request).await;
        match timeout(Duration::from_secs(30), raw::peek_status(&s)).await {
            Ok(Ok(200)) => held.push(s),
            Ok(_) => refused += 1,
            Err(_) => panic!("a client got no answer within 30 s:\n{}", host.logs()),
        }
    }
    let peak = host.memory_kb("VmHWM");
    let growth = peak.saturating_sub(before) * 1024;
    let bound = QUEUE * LIMIT_BYTES * 2;
    eprintln!(
        "host RSS before {before} kB, peak {peak} kB: grew {} MB for {} unread replies (bound {} MB)",
        growth / 1_000_000,
        held.len(),
        bound / 1_000_000
    );
    // An admitted invocation holds its event and then its reply; twice the limit each.
    assert!(
        growth < bound,
        "{} MB of growth is over {} MB",
        growth / 1_000_000,
        bound / 1_000_000
    );
    assert_eq!(
        held.len() as u64,
        QUEUE,
        "only QUEUE_SIZE replies are ever unwritten"
    );
    assert_eq!(refused, CLIENTS - QUEUE as usize);
}

#[test]
fn the_public_listen_backlog_is_the_systems_maximum() {
    let somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if std::process::Command::new("ss").arg("-V").output().is_err() {
        eprintln!("skipped: no `ss` (iproute2) to read the listen backlog");
        return;
    }
    let dir = probe();
    let host = Host::start(dir.path(), &[("INVOKER_COUNT", "1")]);
    let out = std::process::Command::new("ss")
        .args(["-ltnH"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let port = format!(":{}", host.port);
    // State, Recv-Q, Send-Q, local address: a listening socket's Send-Q is its backlog.
    let backlog: Vec<u64> = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 3 && f[3].ends_with(&port))
        .filter_map(|f| f[2].parse().ok())
        .collect();
    assert_eq!(backlog, [somaxconn], "{table}");
}

/// The bash example, which a 150 KB header used to kill (curl's header limit).
#[tokio::test]
async fn hostile_context_headers_are_400s_and_the_bash_bootstrap_survives_the_accepted_ones() {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let host = Host::start(&repo_root().join("example/bash"), &[("INVOKER_COUNT", "1")]);
    let call = |body: &'static str, headers: Vec<(&'static str, String)>| {
        let mut req = host.client.post(host.url("/")).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        }
    };
    assert_eq!(call("first", vec![]).await, (200, b"first".to_vec()));
    let hostile = [
        ("x-amz-cognito-identity", "{}".to_owned()),
        ("x-amz-client-context", b64(r#"{"custom":{"a":1}}"#)),
        (
            "x-amzn-trace-id",
            format!(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Pad={}",
                "a".repeat(150 << 10)
            ),
        ),
    ];
    for (name, value) in hostile {
        let (status, body) = call("{}", vec![(name, value)]).await;
        assert_eq!(status, 400, "{name}");
        assert_eq!(error_type(&body), "InvalidRequestContentException");
    }
    // The largest values the host accepts are forwarded, and bash's curl takes them.
    let root = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1;Pad=";
    let trace = format!("{root}{}", "p".repeat(256 - root.len()));
    let context = b64(&format!(r#"{{"custom":{{"k":"{}"}}}}"#, "v".repeat(2_600)));
    assert!(context.len() <= 3_583);
    let accepted = vec![
        ("x-amzn-trace-id", trace),
        ("x-amz-client-context", context),
        (
            "x-amz-cognito-identity",
            r#"{"cognitoIdentityId":"us-east-1:id","cognitoIdentityPoolId":"us-east-1:pool"}"#
                .to_owned(),
        ),
    ];
    assert_eq!(call("big", accepted).await, (200, b"big".to_vec()));
    assert_eq!(call("last", vec![]).await, (200, b"last".to_vec()));
    let logs = host.logs();
    assert_eq!(logs.matches("bootstrap started").count(), 1, "{logs}");
    assert!(!logs.contains("bootstrap exited"), "{logs}");
}

fn is_xray(trace: &str) -> bool {
    let Some(root) = trace.split(';').find_map(|f| f.strip_prefix("Root=1-")) else {
        return false;
    };
    let parts: Vec<&str> = root.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 2 && hex(parts[0], 8) && hex(parts[1], 24)
}

#[tokio::test]
async fn a_trace_id_reaches_the_bootstrap_only_when_the_caller_sent_one_or_tracing_is_active() {
    let caller_trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
    for (mode, makes_one) in [("PassThrough", false), ("", false), ("Active", true)] {
        let dir = probe();
        let host = Host::start(
            dir.path(),
            &[("INVOKER_COUNT", "1"), ("TRACING_MODE", mode)],
        );
        let (status, ctx) = host.invoke(json!({"context": true})).await;
        assert_eq!(status, 200, "{ctx}");
        match ctx["trace_id"].as_str() {
            None => assert!(!makes_one, "{mode}: no trace id was made"),
            Some(t) => assert!(makes_one && is_xray(t), "{mode}: {t:?}"),
        }
        let r = host
            .client
            .post(host.url("/"))
            .header("x-amzn-trace-id", caller_trace)
            .body(json!({"context": true}).to_string())
            .send()
            .await
            .unwrap();
        let ctx: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(
            ctx["trace_id"], caller_trace,
            "{mode}: the caller's is kept"
        );
    }
}
