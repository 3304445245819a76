//! A test function on the real `lambda_runtime` client. An event `{"op": ...}` asks for one of
//! the parity ops every test function understands alike (see tests/guests/README.md):
//! `echo`, `error`, `sleep`, `crash`, `big`, `context`. The older keys stay for the tests that
//! use them: `{"sleep_ms": n}`, `{"fail": "message"}`, `{"context": true}` (the
//! process view: environment, cwd, pid); anything else is echoed.

use lambda_runtime::{Context, Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn probe(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, ctx) = event.into_parts();
    if let Some(op) = payload.get("op").and_then(Value::as_str) {
        return parity_op(op, &payload, &ctx).await;
    }
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        return Ok(json!({ "slept_ms": ms, "pid": std::process::id() }));
    }
    if let Some(msg) = payload.get("fail").and_then(Value::as_str) {
        return Err(failure("ProbeFailure", msg));
    }
    if payload.get("context").is_some() {
        return Ok(process_view(ctx));
    }
    Ok(payload)
}

/// The ops shared with the WASI probes: same event, same answer.
async fn parity_op(op: &str, payload: &Value, ctx: &Context) -> Result<Value, Diagnostic> {
    let text = |field: &str| payload.get(field).and_then(Value::as_str).unwrap_or("");
    let number = |field: &str| payload.get(field).and_then(Value::as_u64).unwrap_or(0);
    Ok(match op {
        "echo" => json!({ "payload": payload.get("data").cloned().unwrap_or(Value::Null) }),
        "error" => return Err(failure("ProbeFailure", text("message"))),
        "sleep" => {
            tokio::time::sleep(std::time::Duration::from_millis(number("ms"))).await;
            json!({ "slept_ms": number("ms") })
        }
        "crash" => std::process::exit(3),
        "remember" => remember(ctx.tenant_id.as_deref().unwrap_or("")),
        "big" => Value::String("x".repeat(number("bytes") as usize)),
        "context" => json!({
            "request_id": ctx.request_id,
            "deadline_ms": ctx.deadline,
            "function_arn": ctx.invoked_function_arn,
            "trace_id": ctx.xray_trace_id,
            "client_custom": ctx.client_context.as_ref().map(|c| &c.custom),
        }),
        other => return Err(failure("UnknownOp", &format!("unknown op {other:?}"))),
    })
}

/// Tenants this process served: in its memory, and in `$TMPDIR/tenants`.
static SERVED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Records `tenant` in memory and in the scratch folder, and answers what both remember
/// (tenant isolation tests: an environment must never remember two tenants).
fn remember(tenant: &str) -> Value {
    use std::io::Write;
    let memory = {
        let mut served = SERVED.lock().unwrap_or_else(|e| e.into_inner());
        served.push(tenant.to_owned());
        served.clone()
    };
    let path = std::env::temp_dir().join("tenants");
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{tenant}"));
    let tmp = match appended.and_then(|()| std::fs::read_to_string(&path)) {
        Ok(text) => json!(text.lines().collect::<Vec<_>>()),
        Err(e) => json!({ "error": e.to_string() }),
    };
    json!({ "tenant": tenant, "memory": memory, "tmp": tmp, "pid": std::process::id() })
}

fn failure(error_type: &str, message: &str) -> Diagnostic {
    Diagnostic {
        error_type: error_type.into(),
        error_message: message.into(),
    }
}

/// What the bootstrap process sees: its context, Lambda environment, folder and pid.
fn process_view(ctx: Context) -> Value {
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
    json!({
        "request_id": ctx.request_id,
        "deadline": ctx.deadline,
        "arn": ctx.invoked_function_arn,
        "trace_id": ctx.xray_trace_id,
        "client_context": ctx.client_context.map(|c| json!({"custom": c.custom})),
        "identity": ctx.identity.map(|i| i.identity_id),
        "env": env,
        "cwd": std::env::current_dir().ok(),
        "pid": std::process::id(),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(probe)).await
}
