//! The PyPI `awslambdaric` runtime client against the real binary: every context header the
//! host accepts is one it survives, and the hostile ones never reach it. The client lives
//! in `target/ric-venv` (`make functions` installs it).

mod common;

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use common::{Host, repo_root};
use serde_json::{Value, json};

const HANDLER: &str = r#"import json, os

def handle(event, context):
    cc = context.client_context
    identity = context.identity
    return {
        "pid": os.getpid(),
        "request_id": context.aws_request_id,
        "custom": getattr(cc, "custom", None) if cc else None,
        "identity": getattr(identity, "cognito_identity_id", None) if identity else None,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "w3c": context.w3c() if hasattr(context, "w3c") else None,
        "event": event,
    }
"#;

fn python_function() -> Option<tempfile::TempDir> {
    let python = repo_root().join("target/ric-venv/bin/python");
    if !python.exists() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap");
    let script = format!(
        "#!/bin/sh\nexec {} -m awslambdaric handler.handle\n",
        python.display()
    );
    std::fs::write(&bootstrap, script).unwrap();
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("handler.py"), HANDLER).unwrap();
    Some(dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn awslambdaric_survives_every_context_header_the_host_accepts() {
    let Some(dir) = python_function() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "target/ric-venv is missing: run `make functions`"
        );
        eprintln!("skipped: target/ric-venv is missing (run `make functions`)");
        return;
    };
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let host = Host::start(dir.path(), &[("INVOKER_COUNT", "1")]);
    let call = |headers: Vec<(&'static str, String)>| {
        let mut req = host.client.post(host.url("/")).body(r#"{"n":1}"#);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            (status, body)
        }
    };
    let (status, first) = call(vec![]).await;
    assert_eq!(status, 200, "{first}\n{}", host.logs());
    assert_eq!(first["event"], json!({"n": 1}));
    assert!(first["trace"].is_null(), "no trace id invented: {first}");

    for (name, value) in [
        ("x-amz-cognito-identity", "{}".to_owned()),
        ("x-amz-cognito-identity", "[1]".to_owned()),
        ("x-amz-client-context", b64(r#"{"custom":{"a":1}}"#)),
        ("x-amz-client-context", b64(r#"{"custom":"text"}"#)),
        ("x-amz-client-context", b64("[]")),
        ("x-amzn-trace-id", format!("Root={}", "1".repeat(150 << 10))),
    ] {
        let (status, body) = call(vec![(name, value)]).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["errorType"], "InvalidRequestContentException");
    }

    let client = r#"{"client":{"installation_id":"i","app_title":"t","app_version_name":"n","app_version_code":"c","app_package_name":"p"},"custom":{"k":"日本"},"env":{"locale":"en"},"w3c":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","tracestate":"rojo=00f067aa0ba902b7","baggage":"userId=alice"}}"#;
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let (status, seen) = call(vec![
        ("x-amz-client-context", b64(client)),
        (
            "x-amz-cognito-identity",
            r#"{"cognitoIdentityId":"us-east-1:id","cognitoIdentityPoolId":"us-east-1:pool"}"#
                .to_owned(),
        ),
        ("x-amzn-trace-id", trace.to_owned()),
    ])
    .await;
    assert_eq!(status, 200, "{seen}\n{}", host.logs());
    assert_eq!(seen["custom"], json!({"k": "日本"}));
    assert_eq!(seen["identity"], "us-east-1:id");
    assert_eq!(
        seen["w3c"],
        json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
               "tracestate": "rojo=00f067aa0ba902b7", "baggage": "userId=alice"}),
        "awslambdaric 4.x serves the W3C trace context"
    );
    assert_eq!(seen["trace"], trace);
    assert_eq!(seen["pid"], first["pid"], "the runtime never restarted");
}
