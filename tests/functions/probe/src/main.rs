//! A test function on the real `lambda_runtime` client. The event says what to do:
//! `{"sleep_ms": n}`, `{"fail": "message"}`, `{"exit": code}`, `{"context": true}`;
//! anything else is echoed.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn probe(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, ctx) = event.into_parts();
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        return Ok(json!({ "slept_ms": ms, "pid": std::process::id() }));
    }
    if let Some(msg) = payload.get("fail").and_then(Value::as_str) {
        return Err(Diagnostic {
            error_type: "ProbeFailure".into(),
            error_message: msg.into(),
        });
    }
    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        std::process::exit(code as i32);
    }
    if payload.get("context").is_some() {
        let env: serde_json::Map<String, Value> = std::env::vars()
            .filter(|(k, _)| {
                k.starts_with("AWS_")
                    || k.starts_with("LAMBDA_")
                    || k == "_HANDLER"
                    || k == "TZ"
                    || k == "LD_LIBRARY_PATH"
                    || k == "BOOTSTRAP_INDEX"
                    || k == "HOST_SECRET"
            })
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        return Ok(json!({
            "request_id": ctx.request_id,
            "deadline": ctx.deadline,
            "arn": ctx.invoked_function_arn,
            "trace_id": ctx.xray_trace_id,
            "client_context": ctx.client_context.map(|c| json!({"custom": c.custom})),
            "identity": ctx.identity.map(|i| i.identity_id),
            "env": env,
            "cwd": std::env::current_dir().ok(),
            "pid": std::process::id(),
        }));
    }
    Ok(payload)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(probe)).await
}
