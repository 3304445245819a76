//! Lambda extensions next to real runtimes: test extensions built on the crates.io
//! `lambda-extension` crate (tests/functions/extension) with the `lambda_runtime` probe and
//! the bash example function; the Extensions API's misuse cases in raw HTTP.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Host, built, function_dir, repo_root};
use serde_json::{Value, json};

/// A folder of extensions: the test extension installed under each of `names` (its file
/// name chooses what it does), and a folder where they record what they get.
struct Layer {
    dir: tempfile::TempDir,
    log: tempfile::TempDir,
}

impl Layer {
    fn new(names: &[&str]) -> Layer {
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            std::fs::copy(built("test-extension"), dir.path().join(name)).unwrap();
        }
        Layer {
            dir,
            log: tempfile::tempdir().unwrap(),
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "LAMBDA_EXTENSIONS_DIR",
                self.dir.path().display().to_string(),
            ),
            ("EXTENSION_LOG", self.log.path().display().to_string()),
        ]
    }

    /// What extension `name` recorded, one JSON value per line.
    fn records(&self, name: &str) -> Vec<Value> {
        std::fs::read_to_string(self.log.path().join(name))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `name` recorded something `found` accepts.
    fn wait_for(&self, host: &Host, name: &str, what: &str, found: impl Fn(&[Value]) -> bool) {
        let start = Instant::now();
        while !found(&self.records(name)) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{name} never recorded {what}: {:?}\n{}",
                self.records(name),
                host.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn start(task_root: &Path, layer: &Layer, extra: &[(&str, &str)]) -> Host {
    let env = layer.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    Host::start(task_root, &all)
}

/// The bash example runtime with a handler that logs a line and answers its request id.
fn bash_function() -> tempfile::TempDir {
    let handler = r#"handler() {
  cat >/dev/null
  echo "function-line ${REQUEST_ID}" >&2
  printf '{"request_id":"%s"}' "${REQUEST_ID}"
}
"#;
    function_dir(
        &repo_root().join("example/bash/bootstrap"),
        &[("function.sh", handler)],
    )
}

fn invokes(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["eventType"] == "INVOKE")
        .collect()
}

fn request_ids(records: &[Value]) -> BTreeSet<String> {
    invokes(records)
        .iter()
        .map(|r| r["requestId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Sends `n` invocations at once; returns the request ids the function saw.
async fn invoke_all(host: &Host, n: usize, event: Value) -> BTreeSet<String> {
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, url, body) = (host.client.clone(), host.url("/"), event.to_string());
        calls.spawn(async move {
            let res = client.post(url).body(body).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        });
    }
    let mut ids = BTreeSet::new();
    while let Some(done) = calls.join_next().await {
        let (status, text) = done.unwrap();
        assert_eq!(status, 200, "{text}\n{}", host.logs());
        let body: Value = serde_json::from_str(&text).unwrap();
        ids.insert(body["request_id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn every_invocation_reaches_each_extension_once_as_invoke_with_four_bootstraps() {
    let layer = Layer::new(&["events-a", "events-b"]);
    let function = function_dir(&built("probe-function"), &[]);
    let host = start(function.path(), &layer, &[("INVOKER_COUNT", "4")]);
    let ids = invoke_all(&host, 12, json!({"context": true})).await;
    assert_eq!(ids.len(), 12);
    for name in ["events-a", "events-b"] {
        layer.wait_for(&host, name, "12 INVOKEs", |r| invokes(r).len() >= 12);
        let records = layer.records(name);
        assert_eq!(
            invokes(&records).len(),
            12,
            "exactly once each: {records:?}"
        );
        assert_eq!(
            request_ids(&records),
            ids,
            "{name} saw the function's request ids"
        );
        for r in invokes(&records) {
            assert!(
                r["invokedFunctionArn"]
                    .as_str()
                    .unwrap()
                    .starts_with("arn:aws:lambda:"),
                "{r}"
            );
            assert!(r["deadlineMs"].as_u64().unwrap() > 0);
        }
    }
    assert!(
        host.logs().contains("events-a got"),
        "output tagged:\n{}",
        host.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bash_function_s_invocations_reach_the_extension_and_sigterm_sends_spindown() {
    let layer = Layer::new(&["events"]);
    let function = bash_function();
    let mut host = start(function.path(), &layer, &[("INVOKER_COUNT", "1")]);
    let ids = invoke_all(&host, 3, json!({})).await;
    layer.wait_for(&host, "events", "3 INVOKEs", |r| invokes(r).len() >= 3);
    assert_eq!(request_ids(&layer.records("events")), ids);
    host.signal("TERM");
    let status = host.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", host.logs());
    let records = layer.records("events");
    let last = records.last().unwrap();
    assert_eq!(last["eventType"], "SHUTDOWN", "{records:?}");
    assert_eq!(last["shutdownReason"], "spindown");
}

#[tokio::test(flavor = "multi_thread")]
async fn function_log_lines_and_platform_events_reach_the_telemetry_extension() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let layer = Layer::new(&["telemetry"]);
    let function = bash_function();
    let host = start(
        function.path(),
        &layer,
        &[("INVOKER_COUNT", "4"), ("TELEMETRY_PORT", port.as_str())],
    );
    let ids = invoke_all(&host, 4, json!({})).await;
    for id in &ids {
        let line = format!("function-line {id}");
        layer.wait_for(&host, "telemetry", "the function's line", |r| {
            r.iter()
                .any(|t| t["type"] == "function" && t["record"] == line.as_str())
        });
        layer.wait_for(&host, "telemetry", "platform.runtimeDone", |r| {
            r.iter().any(|t| {
                t["type"] == "platform.runtimeDone"
                    && t["record"]["requestId"] == id.as_str()
                    && t["record"]["status"] == "success"
                    && t["record"]["metrics"]["durationMs"].is_number()
            })
        });
    }
    let records = layer.records("telemetry");
    // The memory a function is given, and the most its runtime process has used.
    let report = records
        .iter()
        .find(|t| t["type"] == "platform.report")
        .map(|t| &t["record"]["metrics"]);
    let report = report.expect("a platform.report");
    assert_eq!(report["memorySizeMB"], 128, "{report}");
    let used = report["maxMemoryUsedMB"].as_u64().unwrap_or(0);
    assert!((1..128).contains(&used), "{report}");
    for kind in ["platform.initStart", "platform.start", "platform.report"] {
        assert!(
            records.iter().any(|t| t["type"] == kind),
            "no {kind}: {records:?}"
        );
    }
    assert!(
        records.iter().any(|t| t["type"] == "extension"
            && t["record"]
                .as_str()
                .is_some_and(|l| l.contains("telemetry got"))),
        "the extension's own lines are extension records"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_extension_is_restarted_and_invocations_keep_being_answered() {
    let layer = Layer::new(&["crash", "events"]);
    let function = bash_function();
    let host = start(function.path(), &layer, &[("INVOKER_COUNT", "1")]);
    for _ in 0..4 {
        let ids = invoke_all(&host, 1, json!({})).await;
        assert_eq!(ids.len(), 1);
    }
    host.wait_log("extension exited", Duration::from_secs(30));
    assert!(
        host.logs().contains("reason=\"failure\""),
        "{}",
        host.logs()
    );
    // The restart is counted when it happens, after the backoff the log line announces.
    common::tenants::wait_gauge(&host, "aws_custom_runtime_extension_restarts_total", 1).await;
    layer.wait_for(&host, "events", "4 INVOKEs", |r| invokes(r).len() >= 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_extension_is_reset_at_the_deadline_and_never_holds_the_next_invocation() {
    let layer = Layer::new(&["hang"]);
    let function = bash_function();
    let host = start(
        function.path(),
        &layer,
        &[("INVOKER_COUNT", "1"), ("FUNCTION_TTL", "1s")],
    );
    // The first is answered at once; the extension then holds the bootstrap until that
    // invocation's deadline.
    invoke_all(&host, 1, json!({})).await;
    // One queued meanwhile is answered by its own deadline: served once the extension is
    // reset, or timed out if too little of its time was left.
    let (status, text) = post(&host, "{}").await;
    assert!(
        status == 200 || status == 504,
        "{status} {text}\n{}",
        host.logs()
    );
    host.wait_log("extension reset", Duration::from_secs(30));
    host.wait_log("extension restarted after a reset", Duration::from_secs(30));
    // After the reset, the function serves again with its full time.
    let (status, text) = post(&host, "{}").await;
    assert_eq!(status, 200, "{text}\n{}", host.logs());
}

async fn post(host: &Host, body: &str) -> (u16, String) {
    let res = host
        .client
        .post(host.url("/"))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extension_that_exits_during_init_fails_it_and_is_retried() {
    use std::os::unix::fs::PermissionsExt;
    let layer = Layer::new(&[]);
    // Registers, then exits before its first `next`.
    let script = layer.dir.path().join("quitter");
    std::fs::write(
        &script,
        "#!/bin/sh\ncurl -sS -o /dev/null -X POST -H 'Lambda-Extension-Name: quitter' \\\n  \
         -d '{\"events\":[\"INVOKE\"]}' \"http://$AWS_LAMBDA_RUNTIME_API/2020-01-01/extension/register\"\n\
         exit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let function = bash_function();
    let env = layer.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("INVOKER_COUNT", "1"));
    let host = Host::spawn(function.path(), &all);
    host.wait_log(
        "extension registered extension=\"quitter\"",
        Duration::from_secs(30),
    );
    host.wait_log("extension exited", Duration::from_secs(30));
    // Retried: it registers again after its backoff.
    let start = Instant::now();
    while host
        .logs()
        .matches("extension registered extension=\"quitter\"")
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not retried:\n{}",
            host.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !host.is_listening(),
        "init never ended, so the function is not ready"
    );
}

/// Raw Extensions API calls, against a host whose runtime is the test (`INVOKER_COUNT=0`),
/// so that the test decides when init ends.
mod misuse {
    use super::*;

    async fn call(
        host: &Host,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let url = format!("http://{}{path}", host.runtime_api(0));
        let mut req = host
            .client
            .request(method.parse().unwrap(), url)
            .body(body.to_owned());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    async fn register(host: &Host, name: &str) -> (u16, String, Value) {
        let (status, headers, body) = call(
            host,
            "POST",
            "/2020-01-01/extension/register",
            &[("Lambda-Extension-Name", name)],
            r#"{"events":["INVOKE","SHUTDOWN"]}"#,
        )
        .await;
        let id = headers
            .get("Lambda-Extension-Identifier")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, id, body)
    }

    fn assert_forbidden(got: (u16, Value), error_type: &str) {
        assert_eq!(got.0, 403, "{}", got.1);
        assert_eq!(got.1["errorType"], error_type, "{}", got.1);
        assert!(got.1["errorMessage"].is_string(), "{}", got.1);
    }

    fn external_runtime() -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::spawn(
            dir.path(),
            &[("INVOKER_COUNT", "0"), ("LAMBDA_EXTENSIONS_DIR", "off")],
        );
        (dir, host)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn every_misuse_is_a_403_with_lambda_s_error_type() {
        let (_dir, host) = external_runtime();
        let (status, id, body) = register(&host, "first").await;
        assert_eq!(status, 200, "{body}");
        assert!(uuid_like(&id), "{id:?}");
        for (body, want) in [
            (
                call(&host, "POST", "/2020-01-01/extension/register", &[], "{}").await,
                "Extension.MissingHeader",
            ),
            (
                call(
                    &host,
                    "POST",
                    "/2020-01-01/extension/register",
                    &[("Lambda-Extension-Name", "x")],
                    r#"{"events":["INVOKE","FUNCTION_ERROR"]}"#,
                )
                .await,
                "Extension.InvalidEventType",
            ),
            (
                call(&host, "GET", "/2020-01-01/extension/event/next", &[], "").await,
                "Extension.MissingHeader",
            ),
            (
                call(
                    &host,
                    "GET",
                    "/2020-01-01/extension/event/next",
                    &[(
                        "Lambda-Extension-Identifier",
                        "00000000-0000-0000-0000-000000000000",
                    )],
                    "",
                )
                .await,
                "Extension.UnknownExtensionIdentifier",
            ),
            (
                call(
                    &host,
                    "POST",
                    "/2020-01-01/extension/exit/error",
                    &[("Lambda-Extension-Identifier", id.as_str())],
                    "",
                )
                .await,
                "Extension.MissingHeader",
            ),
        ] {
            assert_forbidden((body.0, body.2), want);
        }
        let again = register(&host, "first").await;
        assert_forbidden((again.0, again.2), "Extension.InvalidExtensionState");
        // Ten at most.
        for i in 1..10 {
            assert_eq!(register(&host, &format!("e{i}")).await.0, 200);
        }
        let eleventh = register(&host, "eleventh").await;
        assert_forbidden((eleventh.0, eleventh.2), "Extension.TooManyExtensions");
        // An init error, then `next` from the same extension is a state error.
        let init_error = call(
            &host,
            "POST",
            "/2020-01-01/extension/init/error",
            &[
                ("Lambda-Extension-Identifier", id.as_str()),
                (
                    "Lambda-Extension-Function-Error-Type",
                    "Extension.ConfigInvalid",
                ),
            ],
            "",
        )
        .await;
        assert_eq!(init_error.0, 202, "{}", init_error.2);
        let next = call(
            &host,
            "GET",
            "/2020-01-01/extension/event/next",
            &[("Lambda-Extension-Identifier", id.as_str())],
            "",
        )
        .await;
        assert_forbidden((next.0, next.2), "Extension.InvalidExtensionState");
        // The Logs API points to the Telemetry API.
        let logs = call(&host, "PUT", "/2020-08-15/logs", &[], "{}").await;
        assert!(
            logs.2["errorMessage"]
                .as_str()
                .unwrap()
                .contains("Telemetry API")
        );
        // A telemetry subscription out of bounds says why.
        let bad = call(
            &host,
            "PUT",
            "/2022-07-01/telemetry",
            &[("Lambda-Extension-Identifier", id.as_str())],
            r#"{"schemaVersion":"2022-07-01","types":["function"],"buffering":{"timeoutMs":1},
                "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1"}}"#,
        )
        .await;
        assert!(bad.0 >= 400, "{}", bad.2);
        assert!(
            bad.2["errorMessage"]
                .as_str()
                .unwrap()
                .contains("timeoutMs")
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn init_ends_when_the_runtime_and_every_extension_call_next_then_registration_closes() {
        let (_dir, host) = external_runtime();
        let (_, id, _) = register(&host, "ext").await;
        let api = host.runtime_api(0);
        let client = host.client.clone();
        let runtime = tokio::spawn(async move {
            client
                .get(format!("http://{api}/2018-06-01/runtime/invocation/next"))
                .send()
                .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !host.is_listening(),
            "the extension has not called next yet"
        );
        let url = format!(
            "http://{}/2020-01-01/extension/event/next",
            host.runtime_api(0)
        );
        let client = host.client.clone();
        let ext_id = id.clone();
        let poll = tokio::spawn(async move {
            client
                .get(url)
                .header("Lambda-Extension-Identifier", ext_id)
                .send()
                .await
        });
        host.ready(Duration::from_secs(30)).await;
        let late = register(&host, "late").await;
        assert_forbidden((late.0, late.2), "Extension.RegistrationClosed");
        runtime.abort();
        poll.abort();
    }

    fn uuid_like(s: &str) -> bool {
        s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
    }
}
