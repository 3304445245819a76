//! A plain WASI command (no SDK) for the host's tests: event on stdin, response on stdout.
//! An event `{"op": ...}` asks for one of the parity ops and answers exactly as the other test
//! functions do (host/tests/parity.rs); what an SDK guest gets as its context, a command reads
//! from its environment, and a function error is a non-zero exit with the message on stderr.
//! Text commands test what only a command has: `trap` panics, `spin` never ends, `env` lists
//! the environment, `read:PATH` answers with a file's contents; anything else is echoed byte
//! for byte.

use std::io::{self, Read, Write};

use serde_json::{Value, json};

fn main() -> io::Result<()> {
    let mut input = Vec::new();
    io::stdin().read_to_end(&mut input)?;
    if let Ok(event) = serde_json::from_slice::<Value>(&input)
        && let Some(op) = event.get("op").and_then(Value::as_str)
    {
        let answer = parity_op(op, &event);
        return io::stdout().write_all(answer.to_string().as_bytes());
    }
    text_command(&input)
}

/// The ops shared with the other probes. A function error exits here.
fn parity_op(op: &str, event: &Value) -> Value {
    let text = |field: &str| event.get(field).and_then(Value::as_str).unwrap_or("");
    let number = |field: &str| event.get(field).and_then(Value::as_u64).unwrap_or(0);
    match op {
        "echo" => json!({ "payload": event.get("data").cloned().unwrap_or(Value::Null) }),
        "error" => fail(text("message")),
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_millis(number("ms")));
            json!({ "slept_ms": number("ms") })
        }
        "crash" => std::process::exit(3),
        "big" => Value::String("x".repeat(usize::try_from(number("bytes")).unwrap_or(0))),
        "context" => context(),
        "remember" => remember(),
        other => fail(&format!("unknown op {other:?}")),
    }
}

/// The context from the environment (guest-sdk/ABI.md), in the shape the other probes answer.
fn context() -> Value {
    let var = |name: &str| std::env::var(name).ok();
    let custom = var("AWS_LAMBDA_CLIENT_CONTEXT")
        .and_then(|raw| serde_json::from_str::<Value>(&raw).ok())
        .and_then(|c| c.get("custom").cloned());
    json!({
        "request_id": var("AWS_LAMBDA_REQUEST_ID").unwrap_or_default(),
        "deadline_ms": var("AWS_LAMBDA_DEADLINE_MS").and_then(|d| d.parse::<u64>().ok()),
        "function_arn": var("AWS_LAMBDA_INVOKED_FUNCTION_ARN").unwrap_or_default(),
        "trace_id": var("AWS_LAMBDA_TRACE_ID"),
        "client_custom": custom,
    })
}

/// Records the tenant (`AWS_LAMBDA_TENANT_ID`) in `/tmp/tenants` and answers what it holds:
/// a command keeps nothing in memory, its environment's `/tmp` does.
fn remember() -> Value {
    use std::io::Write as _;
    let tenant = std::env::var("AWS_LAMBDA_TENANT_ID").unwrap_or_default();
    let path = "/tmp/tenants";
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{tenant}"));
    let tmp = match appended.and_then(|()| std::fs::read_to_string(path)) {
        Ok(text) => json!(text.lines().collect::<Vec<_>>()),
        Err(e) => json!({ "error": e.to_string() }),
    };
    json!({ "tenant": tenant, "memory": [tenant], "tmp": tmp })
}

/// A command's function error: the message on stderr, a non-zero exit.
fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(1)
}

/// `stream:PATH`: writes `first`, waits (up to 20 s) for the file PATH, then writes
/// `after-signal` (or `no-signal`): a reply that must reach the caller before the command ends.
fn stream(path: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(b"first\n")?;
    out.flush()?;
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(20) {
        if std::fs::metadata(path).is_ok() {
            return out.write_all(b"after-signal\n");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    out.write_all(b"no-signal\n")
}

fn text_command(input: &[u8]) -> io::Result<()> {
    let text = String::from_utf8_lossy(input);
    let command = text.trim();
    let request_id = std::env::var("AWS_LAMBDA_REQUEST_ID").unwrap_or_default();

    if let Some(path) = command.strip_prefix("read:") {
        match std::fs::read(path) {
            Ok(bytes) => return io::stdout().write_all(&bytes),
            Err(err) => {
                eprintln!("cannot read {path}: {err}");
                std::process::exit(1);
            }
        }
    }
    if let Some(path) = command.strip_prefix("stream:") {
        return stream(path);
    }
    if let Some(mb) = command.strip_prefix("bytes:") {
        // `bytes:N`: N MB (10^6 bytes) of output, in 64 KiB writes.
        let total = mb.parse::<u64>().unwrap_or(0) * 1_000_000;
        let chunk = vec![b'x'; 64 * 1024];
        let mut out = io::stdout().lock();
        let mut written = 0;
        while written < total {
            let n = chunk.len().min((total - written) as usize);
            out.write_all(&chunk[..n])?;
            written += n as u64;
        }
        return out.flush();
    }
    match command {
        "trap" => panic!("stdio-probe traps as asked"),
        "late-fail" => {
            // Fails after its reply started streaming (past the host's short hold).
            let mut out = io::stdout().lock();
            out.write_all(b"started\n")?;
            out.flush()?;
            std::thread::sleep(std::time::Duration::from_millis(500));
            eprintln!("late failure on purpose");
            std::process::exit(2);
        }
        "spin" => {
            let mut n = 0_u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "env" => {
            let mut vars: Vec<_> = std::env::vars().collect();
            vars.sort();
            let mut out = io::stdout().lock();
            for (key, value) in vars {
                writeln!(out, "{key}={value}")?;
            }
            Ok(())
        }
        _ => {
            eprintln!(
                "stdio-probe: request {request_id}: echoing {} bytes",
                input.len()
            );
            io::stdout().write_all(input)
        }
    }
}
