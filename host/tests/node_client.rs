//! The npm `aws-lambda-ric` runtime client against the real binary, running the Node
//! handler in `tests/functions/node/`: a round trip with every context field, Node's error
//! shape, an init error, and the hostile context headers refused before they reach it.
//! The client lives in `target/node-ric` (`make functions` installs it).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use common::{Host, repo_root};
use serde_json::{Value, json};

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

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn call(host: &Host, body: &str, headers: &[(&str, String)]) -> (u16, Value, String) {
    let mut req = host.client.post(host.url("/")).body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let function_error = r
        .headers()
        .get("x-amz-function-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}\n{}", host.logs()));
    (status, body, function_error)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_round_trip_carries_every_context_field() {
    let Some(dir) = node_function() else { return };
    let host = Host::start(
        &dir,
        &[
            ("INVOKER_COUNT", "1"),
            ("AWS_LAMBDA_FUNCTION_NAME", "node-fn"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCOUNT_ID", "123456789012"),
            ("FUNCTION_TTL", "30"),
        ],
    );
    let (status, plain, _) = call(&host, r#"{"n":1}"#, &[]).await;
    assert_eq!(status, 200, "{plain}\n{}", host.logs());
    assert_eq!(plain["event"], json!({"n": 1}));
    assert_eq!(plain["functionName"], "node-fn");
    assert_eq!(
        plain["functionArn"],
        "arn:aws:lambda:eu-west-1:123456789012:function:node-fn"
    );
    let remaining = plain["remainingMs"].as_i64().unwrap();
    assert!(
        remaining > 0 && remaining <= 30_000,
        "the deadline is within FUNCTION_TTL: {plain}"
    );
    assert!(plain["clientContext"].is_null(), "{plain}");
    assert!(plain["identity"].is_null(), "{plain}");
    assert!(plain["trace"].is_null(), "no trace id invented: {plain}");

    let client = json!({
        "client": {"installation_id": "i", "app_title": "t", "app_version_name": "n",
                   "app_version_code": "c", "app_package_name": "p"},
        "custom": {"k": "日本"},
        "env": {"locale": "en"},
        "w3c": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "tracestate": "rojo=00f067aa0ba902b7", "baggage": "userId=alice"},
    });
    let identity =
        json!({"cognitoIdentityId": "us-east-1:id", "cognitoIdentityPoolId": "us-east-1:pool"});
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let (status, seen, _) = call(
        &host,
        "[1,2]",
        &[
            ("x-amz-client-context", b64(&client.to_string())),
            ("x-amz-cognito-identity", identity.to_string()),
            ("x-amzn-trace-id", trace.to_owned()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{seen}\n{}", host.logs());
    assert_eq!(seen["event"], json!([1, 2]));
    assert_eq!(seen["clientContext"], client);
    assert_eq!(seen["identity"], identity);
    assert_eq!(seen["trace"], trace);
    let (a, b) = (plain["requestId"].as_str(), seen["requestId"].as_str());
    assert!(a.is_some_and(|a| !a.is_empty()) && a != b, "{plain} {seen}");
    assert_eq!(seen["pid"], plain["pid"], "the runtime never restarted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thrown_error_is_a_500_in_nodes_shape() {
    let Some(dir) = node_function() else { return };
    let host = Host::start(&dir, &[("INVOKER_COUNT", "1")]);
    let (status, body, function_error) = call(&host, r#"{"fail":"no tea here"}"#, &[]).await;
    assert_eq!(status, 500, "{body}\n{}", host.logs());
    assert_eq!(function_error, "Unhandled");
    assert_eq!(body["errorType"], "TeapotError");
    assert_eq!(body["errorMessage"], "no tea here");
    let trace = body["stackTrace"].as_array().or(body["trace"].as_array());
    assert!(
        trace.is_some_and(|t| t
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.contains("handler.js")))),
        "the stack reaches the caller: {body}"
    );
    // The runtime client keeps serving after a function error.
    let (status, body, _) = call(&host, "{}", &[]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exception_at_module_load_is_an_init_error() {
    let Some(dir) = node_function() else { return };
    // The public port opens once a bootstrap polls, which this one never does.
    let host = Host::spawn(
        &dir,
        &[("INVOKER_COUNT", "1"), ("_HANDLER", "broken.handler")],
    );
    host.wait_log("runtime init error", Duration::from_secs(60));
    let logs = host.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("runtime init error"))
        .unwrap_or_else(|| panic!("no init error logged:\n{logs}"));
    assert!(
        line.contains("broken at load: missing configuration")
            && line.contains(r#"error_type="Error""#),
        "Node's error message and type are logged: {line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_context_headers_are_refused_and_the_client_stays_up() {
    let Some(dir) = node_function() else { return };
    let host = Host::start(&dir, &[("INVOKER_COUNT", "1")]);
    let (status, first, _) = call(&host, "{}", &[]).await;
    assert_eq!(status, 200, "{first}\n{}", host.logs());
    for (name, value) in [
        ("x-amz-cognito-identity", "{}".to_owned()),
        ("x-amz-cognito-identity", "[1]".to_owned()),
        (
            "x-amz-cognito-identity",
            r#"{"cognitoIdentityId":7}"#.to_owned(),
        ),
        ("x-amz-cognito-identity", "{not json".to_owned()),
        ("x-amz-client-context", b64(r#"{"custom":{"a":1}}"#)),
        ("x-amz-client-context", b64(r#"{"custom":{"a":{"b":"c"}}}"#)),
        ("x-amz-client-context", b64(r#"{"env":{"locale":null}}"#)),
        ("x-amz-client-context", b64(r#"{"custom":"text"}"#)),
        ("x-amz-client-context", b64("[]")),
        ("x-amz-client-context", "not base64!".to_owned()),
        ("x-amzn-trace-id", format!("Root={}", "1".repeat(150 << 10))),
        ("x-amzn-trace-id", "Root=x".repeat(100)),
    ] {
        let (status, body, _) = call(&host, "{}", &[(name, value)]).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["errorType"], "InvalidRequestContentException");
        assert!(
            body["errorMessage"]
                .as_str()
                .is_some_and(|m| m.to_lowercase().contains(&name[..12])),
            "the message names the header: {body}"
        );
    }
    // An event that is not JSON fails in the client's JSON.parse, as on AWS: a 500 for
    // that invocation only.
    for body in ["hello", ""] {
        let (status, err, function_error) = call(&host, body, &[]).await;
        assert_eq!(
            (status, function_error.as_str()),
            (500, "Unhandled"),
            "{err}"
        );
        assert_eq!(err["errorType"], "SyntaxError", "{err}");
    }
    let (status, last, _) = call(&host, "{}", &[]).await;
    assert_eq!(status, 200, "{last}\n{}", host.logs());
    assert_eq!(
        last["pid"], first["pid"],
        "the Node bootstrap never restarted"
    );
}
