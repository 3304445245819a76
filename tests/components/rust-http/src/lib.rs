//! A `wasi:http/proxy` component (Rust, `wasm32-wasip2`, the crates.io `wasi` crate) whose
//! routes each show one thing the host must do: echo the request, set a status and headers,
//! stream a reply, run past its deadline, exhaust its memory, show its environment, probe
//! the file system, call out. Built only for WASI; on other targets it is empty.
#![cfg(target_os = "wasi")]

use std::io::{Read, Write};

use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Probe;

wasi::http::proxy::export!(Probe);

impl wasi::exports::http::incoming_handler::Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (route, query) = path.split_once('?').unwrap_or((&path, ""));
        match route {
            "/loop" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "/bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            "/env" => {
                let env: String = std::env::vars()
                    .map(|(k, v)| format!("{k}={v}\n"))
                    .collect();
                reply(out, 200, &[], &[env.as_bytes()]);
            }
            "/fs" => reply(out, 200, &[], &[fs_probe().as_bytes()]),
            "/fill" => {
                let answer = fill(query.parse().unwrap_or(0));
                reply(out, 200, &[], &[answer.as_bytes()]);
            }
            "/status" => {
                let status = query.parse().unwrap_or(418);
                reply(
                    out,
                    status,
                    &[("x-guest", b"set"), ("content-type", b"text/x-probe")],
                    &[b"status set"],
                );
            }
            "/stream" => {
                let chunks: Vec<String> = (0..5).map(|i| format!("chunk {i}\n")).collect();
                let chunks: Vec<&[u8]> = chunks.iter().map(|c| c.as_bytes()).collect();
                reply(out, 200, &[], &chunks);
            }
            "/fetch" => {
                let answer = fetch(query);
                reply(out, 200, &[], &[answer.as_bytes()]);
            }
            _ => {
                let echo = echo(&request, &path);
                reply(out, 200, &[("x-echo", b"yes")], &[&echo]);
            }
        }
    }
}

/// The method, path with query, headers (sorted) and body, as text then bytes.
fn echo(request: &IncomingRequest, path: &str) -> Vec<u8> {
    let method = match request.method() {
        Method::Get => "GET".to_string(),
        Method::Post => "POST".to_string(),
        Method::Put => "PUT".to_string(),
        Method::Delete => "DELETE".to_string(),
        Method::Patch => "PATCH".to_string(),
        Method::Head => "HEAD".to_string(),
        Method::Options => "OPTIONS".to_string(),
        Method::Connect => "CONNECT".to_string(),
        Method::Trace => "TRACE".to_string(),
        Method::Other(m) => m,
    };
    let mut headers: Vec<String> = request
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(&v)))
        .collect();
    headers.sort();
    let mut text = format!("{method} {path}\n{}\n\n", headers.join("\n")).into_bytes();
    if let Ok(body) = request.consume()
        && let Ok(mut stream) = body.stream()
    {
        let _ = stream.read_to_end(&mut text);
    }
    text
}

/// Sends status, headers and each chunk flushed on its own.
fn reply(out: ResponseOutparam, status: u16, headers: &[(&str, &[u8])], chunks: &[&[u8]]) {
    let fields = Fields::new();
    for (k, v) in headers {
        let _ = fields.append(k, v);
    }
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = body.write() {
        for chunk in chunks {
            let _ = stream.write_all(chunk);
            let _ = stream.flush();
        }
    }
    let _ = OutgoingBody::finish(body, None);
}

/// What the sandbox lets the guest read and write.
fn fs_probe() -> String {
    let root = std::env::var("LAMBDA_TASK_ROOT").unwrap_or_default();
    let outcome = |r: std::io::Result<String>| match r {
        Ok(s) => format!("ok {}", s.trim()),
        Err(e) => format!("refused ({:?})", e.kind()),
    };
    [
        format!(
            "etc-passwd: {}",
            outcome(std::fs::read_to_string("/etc/passwd"))
        ),
        format!(
            "escape: {}",
            outcome(std::fs::read_to_string(format!("{root}/../../etc/passwd")))
        ),
        format!(
            "task-read: {}",
            outcome(std::fs::read_to_string(format!("{root}/data.txt")))
        ),
        format!(
            "task-write: {}",
            outcome(std::fs::write(format!("{root}/new.txt"), "x").map(|()| String::new()))
        ),
        // Its own /tmp: writable, and empty at the start of every request.
        format!(
            "tmp-seen: {}",
            outcome(std::fs::read_to_string("/tmp/seen"))
        ),
        format!(
            "tmp-write: {}",
            outcome(std::fs::write("/tmp/seen", "seen").map(|()| String::new()))
        ),
        format!("tmpdir: {}", std::env::var("TMPDIR").unwrap_or_default()),
    ]
    .join("\n")
}

/// Writes `bytes` bytes to `/tmp/fill` in 64 KiB pieces: `written N` and how it ended.
fn fill(bytes: u64) -> String {
    let mut file = match std::fs::File::create("/tmp/fill") {
        Ok(f) => f,
        Err(e) => return format!("written 0 error {e}"),
    };
    let chunk = vec![7u8; 64 * 1024];
    let mut written = 0u64;
    while written < bytes {
        let n = chunk.len().min((bytes - written) as usize);
        if let Err(e) = file.write_all(&chunk[..n]) {
            return format!("written {written} error {e}");
        }
        written += n as u64;
    }
    format!("written {written} ok")
}

/// `GET http://<query>/outbound` and what came of it.
fn fetch(authority: &str) -> String {
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some("/outbound"));
    let future = match wasi::http::outgoing_handler::handle(request, None) {
        Ok(f) => f,
        Err(code) => return describe(&code),
    };
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => {
            let mut body = Vec::new();
            if let Ok(b) = response.consume()
                && let Ok(mut s) = b.stream()
            {
                let _ = s.read_to_end(&mut body);
            }
            format!(
                "status {}: {}",
                response.status(),
                String::from_utf8_lossy(&body)
            )
        }
        Some(Ok(Err(code))) => describe(&code),
        other => format!("no response: {other:?}"),
    }
}

fn describe(code: &ErrorCode) -> String {
    match code {
        ErrorCode::HttpRequestDenied => "error HTTP-request-denied".to_string(),
        other => format!("error {other:?}"),
    }
}
