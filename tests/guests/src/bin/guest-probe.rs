//! An SDK guest for the host's tests. The event `{"op": ...}` says what to do; see the match in
//! `probe` for the ops and their fields. `echo`, `error`, `sleep`, `crash`, `big` and `context`
//! answer exactly as the other test functions do (host/tests/parity.rs). Misbehaving ops
//! (`spin`, `grow`, `trap`, `panic`) exist to test the host's deadlines, limits and
//! recovery.

use lambda_wasi::{Context, Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use std::{
    hint::black_box,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Invocations this instance has served: survives between invocations in `loop` isolation,
/// starts over in `invocation` isolation.
static COUNT: AtomicU64 = AtomicU64::new(0);

fn main() -> Result<(), lambda_wasi::Error> {
    lambda_wasi::run_sync(probe)
}

fn probe(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, context) = event.into_parts();
    let op = payload.get("op").and_then(Value::as_str).unwrap_or("echo");
    let text = |field: &str| payload.get(field).and_then(Value::as_str).unwrap_or("");
    let number = |field: &str| payload.get(field).and_then(Value::as_u64).unwrap_or(0);
    Ok(match op {
        "echo" => json!({ "payload": payload.get("data").cloned().unwrap_or(Value::Null) }),
        "context" => describe(&context),
        "count" => json!({ "count": COUNT.fetch_add(1, Ordering::Relaxed) + 1 }),
        "remember" => remember(context.tenant_id.as_deref().unwrap_or("")),
        "fill" => fill(number("bytes")),
        "error" => return Err(failure("ProbeFailure", text("message"))),
        "crash" => std::process::exit(3),
        "big" => Value::String("x".repeat(usize::try_from(number("bytes")).unwrap_or(0))),
        "spin" => spin(),
        "grow" => grow(),
        "mark" => mark(number("bytes"), number("sleep_ms")),
        "peek" => peek(number("addr"), number("bytes")),
        "trap" => trap(),
        "panic" => panic!("probe panics: {}", text("message")),
        "read" => match std::fs::read(text("path")) {
            Ok(bytes) => json!({
                "ok": true,
                "len": bytes.len(),
                "text": String::from_utf8(bytes).ok(),
                "error": null,
            }),
            Err(err) => json!({ "ok": false, "len": null, "error": err.to_string() }),
        },
        "write" => {
            let data = payload
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or("probe");
            outcome(std::fs::write(text("path"), data))
        }
        "env" => match payload.get("name").and_then(Value::as_str) {
            Some(name) => json!({ "value": std::env::var(name).ok() }),
            // The environment as std reads it, and the SDK's configuration as it read it.
            None => json!({
                "vars": std::env::vars().collect::<std::collections::BTreeMap<_, _>>(),
                "config": *context.env_config,
            }),
        },
        "connect" => outcome(std::net::TcpStream::connect(text("addr")).map(drop)),
        "sleep" => {
            std::thread::sleep(Duration::from_millis(number("ms")));
            json!({ "slept_ms": number("ms") })
        }
        "log" => {
            println!("probe stdout: {}", text("message"));
            eprintln!("probe stderr: {}", text("message"));
            json!({ "logged": true })
        }
        other => return Err(failure("UnknownOp", &format!("unknown op {other:?}"))),
    })
}

/// Fills `bytes` bytes of fresh heap with a pattern, then pauses for `sleep_ms` without
/// touching them again: a fresh instance that `peek`s at them must see none of it.
fn mark(bytes: u64, sleep_ms: u64) -> Value {
    let pattern = vec![0x5au8; usize::try_from(bytes).unwrap_or(0)];
    let addr = pattern.as_ptr() as usize;
    std::thread::sleep(Duration::from_millis(sleep_ms));
    black_box(&pattern);
    json!({ "addr": addr, "bytes": bytes })
}

/// Counts the bytes of `mark`'s pattern in linear memory at `addr..addr + bytes`, growing the
/// memory to reach them (heap an earlier instance marked: a fresh instance must find none).
fn peek(addr: u64, bytes: u64) -> Value {
    #[cfg(target_arch = "wasm32")]
    {
        let (Ok(addr), Ok(bytes)) = (usize::try_from(addr), usize::try_from(bytes)) else {
            return json!({ "error": "out of range" });
        };
        let end = addr.saturating_add(bytes);
        let have = core::arch::wasm32::memory_size(0) * 65536;
        if end > have
            && core::arch::wasm32::memory_grow(0, (end - have).div_ceil(65536)) == usize::MAX
        {
            return json!({ "error": "cannot grow the memory" });
        }
        #[allow(unsafe_code)]
        // SAFETY: the range is inside linear memory (grown above); wasm has no unmapped
        // pages within it, and the bytes are read, never referenced.
        let marked = (addr..end)
            .filter(|&a| unsafe { std::ptr::read_volatile(a as *const u8) } == 0x5a)
            .count();
        json!({ "marked": marked })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (addr, bytes);
        json!({ "error": "wasm only" })
    }
}

/// The context in the shape every test function answers `context` with.
fn describe(context: &Context) -> Value {
    json!({
        "request_id": context.request_id,
        "deadline_ms": context.deadline,
        "function_arn": context.invoked_function_arn,
        "trace_id": context.xray_trace_id,
        "client_custom": context.client_context.as_ref().map(|c| &c.custom),
    })
}

/// Tenants this instance served: in its memory, and in `/tmp/tenants`.
static SERVED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Records `tenant` in memory and in `/tmp`, and answers what both remember (tenant
/// isolation tests: an environment must never remember two tenants).
fn remember(tenant: &str) -> Value {
    let memory = {
        let mut served = SERVED.lock().unwrap_or_else(|e| e.into_inner());
        served.push(tenant.to_owned());
        served.clone()
    };
    let tmp = remember_in_tmp(tenant);
    json!({ "tenant": tenant, "memory": memory, "tmp": tmp })
}

fn remember_in_tmp(tenant: &str) -> Value {
    use std::io::Write;
    let path = "/tmp/tenants";
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{tenant}"));
    match appended.and_then(|()| std::fs::read_to_string(path)) {
        Ok(text) => json!(text.lines().collect::<Vec<_>>()),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// Writes `bytes` bytes to `/tmp/fill` in 64 KiB pieces, until done or refused.
fn fill(bytes: u64) -> Value {
    use std::io::Write;
    let mut file = match std::fs::File::create("/tmp/fill") {
        Ok(f) => f,
        Err(e) => return json!({ "written": 0, "error": e.to_string() }),
    };
    let chunk = vec![7u8; 64 * 1024];
    let mut written = 0u64;
    while written < bytes {
        let n = chunk
            .len()
            .min(usize::try_from(bytes - written).unwrap_or(chunk.len()));
        if let Err(e) = file.write_all(&chunk[..n]) {
            return json!({ "written": written, "error": e.to_string() });
        }
        written += n as u64;
    }
    json!({ "written": written, "error": null })
}

fn failure(error_type: &str, message: &str) -> Diagnostic {
    Diagnostic {
        error_type: error_type.into(),
        error_message: message.into(),
    }
}

fn outcome(result: std::io::Result<()>) -> Value {
    match result {
        Ok(()) => json!({ "ok": true, "error": null }),
        Err(err) => json!({ "ok": false, "error": err.to_string() }),
    }
}

fn spin() -> ! {
    let mut n = 0_u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates and touches 1 MiB after 1 MiB, keeping them all, until the allocator fails and the
/// guest aborts.
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
    panic!("probe traps");
}
