//! One scenario table run against every kind of function the host runs: a native bootstrap on
//! `lambda_runtime` (`probe-function`), an SDK guest in `loop` and in `invocation` isolation
//! (`guest-probe`), a plain WASI command (`stdio-probe`), and a Lambda component in both
//! isolation modes (`guest-probe` built for `wasm32-wasip2`). Every probe understands the same
//! events (`{"op": "echo" | "error" | "sleep" | "crash" | "big" | "context"}`) and answers them
//! alike, so each row states one expected answer for all kinds. Where a kind answers otherwise
//! by design, `DIVERGENCES` says so and why; any other difference fails the test with a table of
//! which kind drifted on which row.
//!
//! Each kind gets one host for the whole table, the hosts run side by side, and the assertions
//! are about statuses, error types and the order of answers, never about how long they took.

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Host, built, function_dir, target_root};
use serde_json::{Value, json};

/// Deadline of every invocation: short, so the deadline row ends soon, and long enough for a
/// replaced bootstrap or instance to answer the request queued behind it.
const TTL: Duration = Duration::from_secs(3);
/// `REQUEST_SIZE_LIMIT` in MB (10^6 bytes): 10,000 bytes, so `big` can pass it cheaply.
const SIZE_LIMIT_MB: &str = "0.01";
const BIG_BYTES: u64 = 20_000;
const FUNCTION_NAME: &str = "parity-fn";
const CLIENT_CONTEXT: &str = r#"{"custom":{"k":"v"}}"#;
const TRACE_ID: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Native,
    WasiLoop,
    WasiInvocation,
    WasiCommand,
    ComponentLoop,
    ComponentInvocation,
}

const KINDS: [Kind; 6] = [
    Kind::Native,
    Kind::WasiLoop,
    Kind::WasiInvocation,
    Kind::WasiCommand,
    Kind::ComponentLoop,
    Kind::ComponentInvocation,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Native => "native",
            Kind::WasiLoop => "wasi-loop",
            Kind::WasiInvocation => "wasi-invocation",
            Kind::WasiCommand => "wasi-command",
            Kind::ComponentLoop => "component-loop",
            Kind::ComponentInvocation => "component-invocation",
        }
    }

    /// The function folder of this kind's probe and the settings that select the kind.
    fn function(self) -> (tempfile::TempDir, Vec<(&'static str, &'static str)>) {
        match self {
            Kind::Native => (function_dir(&built("probe-function"), &[]), vec![]),
            Kind::WasiLoop => (
                wasm_function("guest-probe"),
                vec![("WASM_ISOLATION", "loop")],
            ),
            Kind::WasiInvocation => (
                wasm_function("guest-probe"),
                vec![("WASM_ISOLATION", "invocation")],
            ),
            // A command gets a fresh instance per invocation whatever the isolation says.
            Kind::WasiCommand => (wasm_function("stdio-probe"), vec![]),
            Kind::ComponentLoop => (
                built_for("wasm32-wasip2", "guest-probe"),
                vec![("WASM_ISOLATION", "loop")],
            ),
            Kind::ComponentInvocation => (
                built_for("wasm32-wasip2", "guest-probe"),
                vec![("WASM_ISOLATION", "invocation")],
            ),
        }
    }
}

fn wasm_function(name: &str) -> tempfile::TempDir {
    built_for("wasm32-wasip1", name)
}

/// A function folder holding the guest `name` built for `target` as bootstrap.wasm.
fn built_for(target: &str, name: &str) -> tempfile::TempDir {
    let module: PathBuf = target_root()
        .join(target)
        .join("release")
        .join(format!("{name}.wasm"));
    assert!(
        module.exists(),
        "{} is missing: run `make functions` (it builds the wasm guests)",
        module.display()
    );
    let dir = tempfile::tempdir().expect("temporary folder");
    std::fs::copy(module, dir.path().join("bootstrap.wasm")).expect("copy the guest");
    dir
}

/// What a caller sees: the status, the `errorType` of an error body, and whether the host
/// marked the answer as the function's own error (`X-Amz-Function-Error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    status: u16,
    error_type: Option<&'static str>,
    function_error: bool,
}

const OK: Answer = Answer {
    status: 200,
    error_type: None,
    function_error: false,
};

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.error_type.unwrap_or("-"))?;
        if self.function_error {
            f.write_str(" +X-Amz-Function-Error")?;
        }
        Ok(())
    }
}

/// One scenario: the event, the answer every kind must give, and what its body must say.
struct Row {
    name: &'static str,
    event: Value,
    headers: &'static [(&'static str, &'static str)],
    expect: Answer,
    /// Checks the body beyond status and error type; `sent` is the span (ms since the epoch)
    /// in which the request was sent and answered.
    body: fn(&Value, (u64, u64)) -> Result<(), String>,
}

fn table() -> Vec<Row> {
    vec![
        Row {
            name: "context",
            event: json!({"op": "context"}),
            headers: &[
                // base64 of CLIENT_CONTEXT, as the AWS SDKs send it.
                ("x-amz-client-context", "eyJjdXN0b20iOnsiayI6InYifX0="),
                ("x-amzn-trace-id", TRACE_ID),
            ],
            expect: OK,
            body: context_reaches_the_function,
        },
        Row {
            name: "echo",
            event: json!({"op": "echo", "data": {"text": "héllo ✓ 日本語", "n": [1, 2.5, null]}}),
            headers: &[],
            expect: OK,
            body: |body, _| {
                let data = json!({"text": "héllo ✓ 日本語", "n": [1, 2.5, null]});
                same(body, &json!({ "payload": data }))
            },
        },
        Row {
            name: "error",
            event: json!({"op": "error", "message": "nope"}),
            headers: &[],
            expect: Answer {
                status: 500,
                error_type: Some("ProbeFailure"),
                function_error: true,
            },
            body: |body, _| same(&body["errorMessage"], &json!("nope")),
        },
        Row {
            name: "big",
            event: json!({"op": "big", "bytes": BIG_BYTES}),
            headers: &[],
            expect: Answer {
                status: 502,
                error_type: Some("Function.ResponseSizeTooLarge"),
                function_error: false,
            },
            body: |body, _| message_says(body, "exceeded maximum allowed payload size"),
        },
        Row {
            name: "crash",
            event: json!({"op": "crash"}),
            headers: &[],
            expect: Answer {
                status: 502,
                error_type: Some("Runtime.ExitError"),
                function_error: false,
            },
            body: |body, _| message_says(body, "exit status 3"),
        },
        Row {
            name: "deadline",
            event: json!({"op": "sleep", "ms": 60_000}),
            headers: &[],
            expect: Answer {
                status: 504,
                error_type: Some("Sandbox.Timedout"),
                function_error: false,
            },
            body: |body, (sent, answered)| {
                // The host answered before the function would have: it did not wait for it.
                if answered.saturating_sub(sent) >= 60_000 {
                    return Err("the 504 came after the function's sleep ended".into());
                }
                message_says(body, "Task timed out after 3.00 seconds")
            },
        },
    ]
}

/// Where a kind answers a row otherwise by design: (kind, row, its answer, why).
const DIVERGENCES: &[(Kind, &str, Answer, &str)] = &[
    (
        Kind::WasiCommand,
        "error",
        Answer {
            status: 500,
            error_type: Some("Runtime.ExitError"),
            function_error: true,
        },
        "a command reports a function error by a non-zero exit (guest-sdk/ABI.md): it cannot \
         name the error type",
    ),
    (
        Kind::WasiCommand,
        "crash",
        Answer {
            status: 500,
            error_type: Some("Runtime.ExitError"),
            function_error: true,
        },
        "a command's non-zero exit is its function error (guest-sdk/ABI.md), not a crash",
    ),
];

fn expected(kind: Kind, row: &Row) -> Answer {
    DIVERGENCES
        .iter()
        .find(|(k, name, _, _)| *k == kind && *name == row.name)
        .map_or(row.expect, |(_, _, answer, _)| *answer)
}

/// The request id, deadline, ARN, client context and trace id the host gave the invocation,
/// in the one shape every probe answers `context` with.
fn context_reaches_the_function(body: &Value, (sent, answered): (u64, u64)) -> Result<(), String> {
    let id = body["request_id"].as_str().unwrap_or_default();
    if id.len() != 36 || id.matches('-').count() != 4 {
        return Err(format!("request_id {id:?} is not a UUID"));
    }
    // The deadline is the arrival plus the TTL, and the request arrived in [sent, answered].
    let ttl = TTL.as_millis() as u64;
    let deadline = body["deadline_ms"].as_u64().unwrap_or_default();
    if !(sent + ttl..=answered + ttl).contains(&deadline) {
        return Err(format!(
            "deadline_ms {deadline} is not the arrival ({sent}..={answered}) + {ttl} ms"
        ));
    }
    let custom: Value = serde_json::from_str(CLIENT_CONTEXT).map_err(|e| e.to_string())?;
    same(
        body,
        &json!({
            "request_id": id,
            "deadline_ms": deadline,
            "function_arn": format!("arn:aws:lambda:us-east-1:000000000000:function:{FUNCTION_NAME}"),
            "trace_id": TRACE_ID,
            "client_custom": custom["custom"],
        }),
    )
}

fn same(seen: &Value, want: &Value) -> Result<(), String> {
    if seen == want {
        Ok(())
    } else {
        Err(format!("body {seen} is not {want}"))
    }
}

fn message_says(body: &Value, needle: &str) -> Result<(), String> {
    let message = body["errorMessage"].as_str().unwrap_or_default();
    if message.contains(needle) {
        Ok(())
    } else {
        Err(format!("errorMessage {message:?} does not say {needle:?}"))
    }
}

/// How `kind`'s body for `row` is checked: the row's check, unless the kind says otherwise by
/// design.
fn body_check(kind: Kind, row: &Row) -> fn(&Value, (u64, u64)) -> Result<(), String> {
    match (kind, row.name) {
        // WASI 0.2's `exit` carries only success or failure: a component's exit(3) is status 1.
        (Kind::ComponentLoop | Kind::ComponentInvocation, "crash") => {
            |body, _| message_says(body, "exit status 1")
        }
        _ => row.body,
    }
}

/// What one kind answered to one row, and to the echo sent right after it.
struct Seen {
    status: u16,
    error_type: Option<String>,
    function_error: bool,
    body: Value,
    sent: (u64, u64),
    next: (u16, Value),
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn send(host: &Host, event: &Value, headers: &[(&str, &str)]) -> (u16, bool, Value) {
    let mut request = host.client.post(host.url("/")).body(event.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request failed");
    let status = response.status().as_u16();
    let function_error = response.headers().contains_key("x-amz-function-error");
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, function_error, body)
}

/// Runs the table on one host of `kind`, in order; each row is followed by an echo, which
/// must be served whatever the row did to the function.
async fn run_table(kind: Kind, rows: &[Row]) -> (Host, tempfile::TempDir, Vec<Seen>) {
    let (dir, mut env) = kind.function();
    env.extend([
        ("INVOKER_COUNT", "1"),
        ("FUNCTION_TTL", "3s"),
        ("REQUEST_SIZE_LIMIT", SIZE_LIMIT_MB),
        ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME),
    ]);
    let host = Host::spawn(dir.path(), &env);
    host.ready(Duration::from_secs(60)).await;
    let mut seen = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let before = now_ms();
        let (status, function_error, body) = send(&host, &row.event, row.headers).await;
        let sent = (before, now_ms());
        let echo = json!({"op": "echo", "data": n});
        let (next_status, _, next_body) = send(&host, &echo, &[]).await;
        seen.push(Seen {
            status,
            error_type: body["errorType"].as_str().map(str::to_owned),
            function_error,
            body,
            sent,
            next: (next_status, next_body["payload"].clone()),
        });
    }
    (host, dir, seen)
}

/// Why `seen` is not what `kind` should answer to `row`, if it is not.
fn drift(kind: Kind, row: &Row, n: usize, seen: &Seen) -> Option<String> {
    let want = expected(kind, row);
    let answer_matches = seen.status == want.status
        && seen.error_type.as_deref() == want.error_type
        && seen.function_error == want.function_error;
    let problem = if !answer_matches {
        let mut got = format!(
            "{} {}",
            seen.status,
            seen.error_type.as_deref().unwrap_or("-")
        );
        if seen.function_error {
            got.push_str(" +X-Amz-Function-Error");
        }
        format!("expected {want}, got {got}: {}", seen.body)
    } else if let Err(e) = body_check(kind, row)(&seen.body, seen.sent) {
        e
    } else if seen.next != (200, json!(n)) {
        format!("the echo after it got {} {}", seen.next.0, seen.next.1)
    } else {
        return None;
    };
    Some(format!("{:<9} {:<16} {problem}", row.name, kind.name()))
}

#[tokio::test]
async fn every_kind_of_function_answers_every_scenario_alike() {
    let mut runs = tokio::task::JoinSet::new();
    for kind in KINDS {
        runs.spawn(async move { (kind, run_table(kind, &table()).await) });
    }
    let mut results = Vec::new();
    while let Some(done) = runs.join_next().await {
        results.push(done.expect("a kind's run panicked"));
    }
    results.sort_by_key(|(kind, _)| KINDS.iter().position(|k| k == kind));

    let rows = table();
    let mut report = String::new();
    for (n, row) in rows.iter().enumerate() {
        for (kind, (_, _, seen)) in &results {
            if let Some(line) = drift(*kind, row, n, &seen[n]) {
                let _ = writeln!(report, "{line}");
            }
        }
    }
    assert!(
        report.is_empty(),
        "kinds drifted from the table (row, kind, what differs):\n{report}"
    );
}
