//! The Lambda-world test function (host/tests/components_lambda.rs), built for `wasm32-wasip2`
//! with the SDK, so it is a component of guest-sdk/wit. example/python-lambda answers alike.
//!
//! An API Gateway event (1.0 `httpMethod`, 2.0 `requestContext.http`) gets a proxy response
//! echoing the method, path and body. Any other event is `{"op": ...}`: `echo` answers
//! `{"payload": data}`, `context` the context fields, `error` a function error, `count` the
//! invocations this instance served, `spin` never ends, `grow` allocates until the cap stops
//! it, `trap` traps.

use lambda_wasi::{Context, Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

/// Invocations this instance served: kept in `loop` isolation, new in `invocation`.
static COUNT: AtomicU64 = AtomicU64::new(0);

fn main() -> Result<(), lambda_wasi::Error> {
    lambda_wasi::run_sync(handle)
}

fn handle(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (event, context) = event.into_parts();
    COUNT.fetch_add(1, Ordering::Relaxed);
    if let Some(method) = event
        .get("httpMethod")
        .or_else(|| event.pointer("/requestContext/http/method"))
    {
        let path = event.get("path").or_else(|| event.get("rawPath"));
        let echo = json!({ "method": method, "path": path, "body": event.get("body") });
        return Ok(json!({
            "statusCode": 200,
            "headers": { "content-type": "application/json", "x-lambda-world": "rust" },
            "body": echo.to_string(),
        }));
    }
    let op = event.get("op").and_then(Value::as_str).unwrap_or("echo");
    Ok(match op {
        "echo" => json!({ "payload": event.get("data").cloned().unwrap_or(Value::Null) }),
        "context" => describe(&context),
        "count" => json!({ "count": COUNT.load(Ordering::Relaxed) }),
        "error" => {
            return Err(Diagnostic {
                error_type: "EchoFailure".into(),
                error_message: event
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
            });
        }
        "spin" => spin(),
        "grow" => grow(),
        "trap" => trap(),
        other => {
            return Err(Diagnostic {
                error_type: "UnknownOp".into(),
                error_message: format!("unknown op {other:?}"),
            });
        }
    })
}

/// The context as every Lambda-world test function answers `context`.
fn describe(context: &Context) -> Value {
    json!({
        "request_id": context.request_id,
        "deadline_ms": context.deadline,
        "function_arn": context.invoked_function_arn,
        "trace_id": context.xray_trace_id,
        "client_custom": context.client_context.as_ref().map(|c| &c.custom),
        "identity_pool": context.identity.as_ref().map(|i| &i.identity_pool_id),
        "tenant_id": context.tenant_id,
        "content_type": context.content_type,
    })
}

fn spin() -> ! {
    let mut n = 0_u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates and touches 1 MiB after 1 MiB, keeping them all, until the allocator fails.
fn grow() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; 1 << 20]);
        black_box(&hoard);
    }
}

fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    panic!("traps");
}
