//! Helpers of the tenant isolation tests (tenancy.rs, scratch.rs): the test functions of
//! every kind, which remember the tenants they served, and calls that name a tenant.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Host, built, function_dir, repo_root, target_root};

pub const TENANT: &str = "X-Amz-Tenant-Id";

pub fn guest(name: &str) -> PathBuf {
    built_guest("wasm32-wasip1", name)
}

/// The test guest `name` built for `target` (`wasm32-wasip2`: a Lambda component).
pub fn built_guest(target: &str, name: &str) -> PathBuf {
    let p = target_root()
        .join(target)
        .join("release")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run `make functions`",
        p.display()
    );
    p
}

/// The function folder of each kind, by name.
pub fn function(kind: &str) -> tempfile::TempDir {
    match kind {
        "bash" => function_dir(
            &repo_root().join("tests/functions/tenant-bash/bootstrap"),
            &[],
        ),
        "lambda_runtime" => function_dir(&built("probe-function"), &[]),
        "wasm-sdk" | "wasm-sdk-invocation" | "wasm-command" => {
            let name = if kind == "wasm-command" {
                "stdio-probe"
            } else {
                "guest-probe"
            };
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy(guest(name), dir.path().join("bootstrap.wasm")).unwrap();
            dir
        }
        "component" | "component-invocation" => {
            let dir = tempfile::tempdir().unwrap();
            let probe = built_guest("wasm32-wasip2", "guest-probe");
            std::fs::copy(probe, dir.path().join("bootstrap.wasm")).unwrap();
            dir
        }
        other => panic!("no function kind {other}"),
    }
}

/// Every kind; `*-invocation` is the SDK guest with `WASM_ISOLATION=invocation`, `component`
/// the same guest built as a Lambda component (`wasm32-wasip2`).
pub const KINDS: [&str; 7] = [
    "bash",
    "lambda_runtime",
    "wasm-sdk",
    "wasm-sdk-invocation",
    "wasm-command",
    "component",
    "component-invocation",
];

pub fn start(dir: &tempfile::TempDir, env: &[(&str, &str)]) -> Host {
    start_kind("", dir, env)
}

pub fn start_kind(kind: &str, dir: &tempfile::TempDir, env: &[(&str, &str)]) -> Host {
    let isolation = if kind.ends_with("-invocation") {
        "invocation"
    } else {
        "loop"
    };
    let mut all = vec![
        ("WASM_ISOLATION", isolation),
        ("TENANT_ISOLATION_MODE", "PER_TENANT"),
        ("INVOKER_COUNT", "3"),
        ("FUNCTION_TTL", "60s"),
    ];
    all.extend_from_slice(env);
    Host::start(dir.path(), &all)
}

/// Invokes `event` as `tenant`; status and JSON body.
pub async fn invoke(
    host: &Host,
    tenant: Option<&str>,
    event: &Value,
) -> (u16, Value, Option<String>) {
    let mut req = host.client.post(host.url("/")).body(event.to_string());
    if let Some(t) = tenant {
        req = req.header(TENANT, t);
    }
    let r = req.send().await.expect("request failed");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}\n{}", host.logs()));
    (status, body, retry)
}

pub async fn remember(host: &Host, tenant: &str) -> Value {
    let (status, body, _) = invoke(host, Some(tenant), &json!({"op": "remember"})).await;
    assert_eq!(status, 200, "{body}\n{}", host.logs());
    body
}

/// The tenants an answer says its environment remembers, in memory and in /tmp.
pub fn remembered(body: &Value, field: &str) -> Vec<String> {
    body[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} list: {body}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

pub fn assert_one_tenant(body: &Value, tenant: &str) {
    assert_eq!(body["tenant"], tenant, "{body}");
    for field in ["memory", "tmp"] {
        let seen = remembered(body, field);
        assert!(
            seen.iter().all(|t| t == tenant),
            "an environment of {tenant} remembers other tenants in {field}: {body}"
        );
    }
}

/// The value of the first metrics line containing `needle`.
pub fn counter(metrics: &str, needle: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {needle} in\n{metrics}"))
}

/// Waits until the metrics gauge `name` reaches `at_least`.
pub async fn wait_gauge(host: &Host, name: &str, at_least: u64) {
    let start = Instant::now();
    loop {
        let text = host
            .client
            .get(host.metrics_url())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if counter(&text, &format!("{name}{{")) >= at_least {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name} never reached {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
