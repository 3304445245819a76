//! A plain WASI command as a function, with no SDK: the host gives each invocation a fresh
//! instance with the event on stdin and takes stdout as the response; exiting non-zero fails
//! the invocation with the stderr text. This one echoes its event.

use std::io::{self, Read, Write};

fn main() -> io::Result<()> {
    let mut event = Vec::new();
    io::stdin().read_to_end(&mut event)?;
    let request_id = std::env::var("AWS_LAMBDA_REQUEST_ID").unwrap_or_default();
    eprintln!(
        "wasm-stdio: request {request_id}: echoing {} bytes",
        event.len()
    );
    io::stdout().write_all(&event)
}
