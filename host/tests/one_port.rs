//! One Runtime API port for every bootstrap, as AWS and the Go runtime give it: bootstrap N
//! is served on `127.0.0.(N+1):P`, the host listens on no other Runtime API port, and it
//! still knows which bootstrap holds which invocation. And the invocation ids
//! (`Lambda-Runtime-Invocation-Id`): a fresh nonce per delivery, a stale echo refused with
//! 410. Real binary, real HTTP, the host's sockets read from /proc.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use common::{Host, built, script_dir};
use serde_json::{Value, json};

/// A function whose bootstrap writes its Runtime API address and pid to `api-N`, then
/// becomes the lambda_runtime probe.
fn recording_probe() -> tempfile::TempDir {
    let dir = script_dir(
        "#!/bin/sh\n\
         echo \"$AWS_LAMBDA_RUNTIME_API $$\" > \"$LAMBDA_TASK_ROOT/api-$BOOTSTRAP_INDEX.tmp\"\n\
         mv \"$LAMBDA_TASK_ROOT/api-$BOOTSTRAP_INDEX.tmp\" \"$LAMBDA_TASK_ROOT/api-$BOOTSTRAP_INDEX\"\n\
         exec \"$LAMBDA_TASK_ROOT/probe\"\n",
    );
    std::fs::copy(built("probe-function"), dir.path().join("probe")).unwrap();
    dir
}

/// What bootstrap `n` recorded: its `AWS_LAMBDA_RUNTIME_API` and its pid.
fn recorded(dir: &Path, n: usize) -> (String, String) {
    let path = dir.join(format!("api-{n}"));
    for _ in 0..1000 {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let (api, pid) = text.trim().split_once(' ').unwrap();
            return (api.to_owned(), pid.to_owned());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("bootstrap {n} never started");
}

/// A port free on 127.0.0.1 now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every TCP socket the process `pid` listens on, from /proc (IPv4 and IPv6 tables).
fn listening(pid: u32) -> BTreeSet<SocketAddr> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut out = BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A: LISTEN), inode.
            if f.len() < 10 || f[3] != "0A" || !inodes.contains(f[9]) {
                continue;
            }
            let (ip, port) = f[1].split_once(':').unwrap();
            let port = u16::from_str_radix(port, 16).unwrap();
            let addr = if ip.len() == 8 {
                let raw = u32::from_str_radix(ip, 16).unwrap();
                // /proc prints the address in host byte order (little-endian here).
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(raw.swap_bytes()), port))
            } else {
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port))
            };
            out.insert(addr);
        }
    }
    out
}

/// The host's sockets: the public one, metrics, and `runners` Runtime API listeners on
/// `127.0.0.(N+1):port`, nothing else.
fn assert_only_these_listen(host: &Host, port: u16, runners: usize) {
    let sockets = listening(host.pid());
    let api: BTreeSet<SocketAddr> = (0..runners)
        .map(|n| SocketAddr::from((Ipv4Addr::new(127, 0, 0, n as u8 + 1), port)))
        .collect();
    let others: BTreeSet<u16> = sockets
        .iter()
        .filter(|a| !api.contains(a))
        .map(|a| a.port())
        .collect();
    let expected: BTreeSet<u16> = [host.port, host.addresses.metrics.unwrap().port()].into();
    assert!(api.is_subset(&sockets), "{api:?} not all in {sockets:?}");
    assert_eq!(others, expected, "other listening sockets: {sockets:?}");
}

#[tokio::test]
async fn every_bootstrap_is_served_on_internal_api_port_and_the_host_opens_no_other() {
    let dir = recording_probe();
    let port = free_port();
    let host = Host::start(
        dir.path(),
        &[
            ("INVOKER_COUNT", "3"),
            ("INTERNAL_API_PORT", &port.to_string()),
        ],
    );
    for n in 0..3 {
        let (api, _) = recorded(dir.path(), n);
        assert_eq!(api, format!("127.0.0.{}:{port}", n + 1), "bootstrap {n}");
        assert!(api.ends_with(&format!(":{port}")));
    }
    let reported: Vec<u16> = host
        .addresses
        .runtime_api
        .iter()
        .map(|a| a.port())
        .collect();
    assert_eq!(reported, [port; 3]);
    assert_only_these_listen(&host, port, 3);
    let (status, ctx) = host.invoke(json!({"context": true})).await;
    assert_eq!(status, 200);
    let api = ctx["env"]["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap();
    assert!(api.ends_with(&format!(":{port}")), "{api}");
}

#[tokio::test]
async fn unset_the_port_is_one_the_os_assigned_shared_by_every_bootstrap() {
    let dir = recording_probe();
    let host = Host::start(dir.path(), &[("INVOKER_COUNT", "4")]);
    let port = host.addresses.runtime_api[0].port();
    for n in 0..4 {
        assert_eq!(
            recorded(dir.path(), n).0,
            format!("127.0.0.{}:{port}", n + 1)
        );
    }
    assert_only_these_listen(&host, port, 4);
}

#[tokio::test]
async fn with_no_bootstrap_the_runtime_api_is_127_0_0_1_on_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let host = Host::spawn(
        dir.path(),
        &[
            ("INVOKER_COUNT", "0"),
            ("INTERNAL_API_PORT", &port.to_string()),
        ],
    );
    let want = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    assert_eq!(host.addresses.runtime_api, [want]);
    let r = reqwest::get(format!("http://{want}/2018-06-01/ping"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(listening(host.pid()).contains(&want));
}

#[test]
fn a_taken_internal_api_port_is_refused_at_start_up_by_address() {
    let taken = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = recording_probe();
    let root = dir.path().to_str().unwrap();
    let (status, out) = common::run_to_exit(&[
        ("LAMBDA_TASK_ROOT", root),
        ("INVOKER_COUNT", "2"),
        ("INTERNAL_API_PORT", &port),
        ("METRICS_PROMETHEUS_PORT", "off"),
    ]);
    assert!(!status.success());
    assert!(out.contains(&format!("127.0.0.2:{port}")), "{out}");
}

/// In-flight invocations, as the host's metrics say.
async fn in_flight(host: &Host) -> u64 {
    let text = reqwest::get(host.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // `aws_custom_runtime_in_flight{labels} N`
    text.lines()
        .filter(|l| l.starts_with("aws_custom_runtime_in_flight"))
        .find_map(|l| l.rsplit(' ').next()?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_dead_bootstrap_fails_its_own_invocation_at_once_and_no_other() {
    let dir = recording_probe();
    let host = Host::start(
        dir.path(),
        &[("INVOKER_COUNT", "2"), ("FUNCTION_TTL", "60s")],
    );
    let (_, victim) = recorded(dir.path(), 1);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..2 {
        let req = host.client.post(host.url("/")).body(r#"{"sleep_ms":8000}"#);
        let tx = tx.clone();
        tokio::spawn(async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            let _ = tx.send((status, body));
        });
    }
    for tries in 0.. {
        if in_flight(&host).await == 2 {
            break;
        }
        assert!(tries < 1000, "never two in flight:\n{}", host.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-9", &victim])
        .status()
        .unwrap();
    assert!(killed.success());
    // The killed bootstrap's invocation ends first, long before the other's sleep.
    let (status, body) = rx.recv().await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["errorType"], "Runtime.ExitError");
    let (status, body) = rx.recv().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["slept_ms"], 8000);
}

/// A host with no bootstrap: the test is the runtime.
struct External {
    host: Host,
    api: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl External {
    fn start() -> External {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::spawn(
            dir.path(),
            &[("INVOKER_COUNT", "0"), ("FUNCTION_TTL", "30s")],
        );
        let api = format!("http://{}/2018-06-01/runtime", host.runtime_api(0));
        External {
            host,
            api,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Polls `/next`: the request id and the delivery's invocation id.
    async fn next(&self) -> (String, String) {
        let r = self
            .http
            .get(format!("{}/invocation/next", self.api))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let header = |name: &str| {
            r.headers()
                .get(name)
                .unwrap_or_else(|| panic!("no {name}"))
                .to_str()
                .unwrap()
                .to_owned()
        };
        (
            header("lambda-runtime-aws-request-id"),
            header("lambda-runtime-invocation-id"),
        )
    }

    async fn post(&self, id: &str, kind: &str, nonce: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/invocation/{id}/{kind}", self.api))
            .body(body.to_owned());
        if let Some(n) = nonce {
            req = req.header("Lambda-Runtime-Invocation-Id", n);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn invoke(&self, body: &'static str) -> tokio::task::JoinHandle<(u16, String)> {
        let req = self.host.client.post(self.host.url("/")).body(body);
        tokio::spawn(async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }
}

#[tokio::test]
async fn an_answer_echoing_another_delivery_is_gone_and_answers_nothing() {
    let rt = External::start();
    let poll = tokio::spawn({
        let (http, url) = (rt.http.clone(), format!("{}/invocation/next", rt.api));
        async move { http.get(url).send().await.unwrap() }
    });
    rt.host.ready(Duration::from_secs(10)).await;
    let caller = rt.invoke("first");
    let first = poll.await.unwrap();
    let id = first.headers()["lambda-runtime-aws-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let nonce = first.headers()["lambda-runtime-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!nonce.is_empty());
    for kind in ["response", "error"] {
        let (status, body) = rt.post(&id, kind, Some("not-this-delivery"), "stale").await;
        assert_eq!(status, 410, "{kind}: {body}");
        assert_eq!(body["errorType"], "InvokeTimeout");
        assert!(
            body["errorMessage"].as_str().unwrap().contains(&id),
            "{body}"
        );
    }
    assert!(!caller.is_finished(), "a stale answer answered nothing");
    let (status, _) = rt.post(&id, "response", Some(&nonce), "right").await;
    assert_eq!(status, 202);
    assert_eq!(caller.await.unwrap(), (200, "right".to_owned()));
    // Once answered, the same delivery's id is gone too.
    let (status, _) = rt.post(&id, "response", Some(&nonce), "again").await;
    assert_eq!(status, 410);

    // Every delivery has its own nonce; an answer with none is not checked.
    let caller = rt.invoke("second");
    let (id2, nonce2) = rt.next().await;
    assert_ne!(nonce2, nonce);
    let (status, _) = rt.post(&id2, "response", None, "unchecked").await;
    assert_eq!(status, 202);
    assert_eq!(caller.await.unwrap(), (200, "unchecked".to_owned()));
}
