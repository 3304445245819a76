//! A plain WASI command (no SDK) for the host's tests: event on stdin, response on stdout.
//! `exit:N` exits with code N, `trap` panics, `spin` never ends, `env` lists the environment,
//! `read:PATH` answers with a file's contents; anything else is echoed.

use std::io::{self, Read, Write};

fn main() -> io::Result<()> {
    let mut input = Vec::new();
    io::stdin().read_to_end(&mut input)?;
    let text = String::from_utf8_lossy(&input);
    let command = text.trim();
    let request_id = std::env::var("AWS_LAMBDA_REQUEST_ID").unwrap_or_default();

    if let Some(code) = command.strip_prefix("exit:") {
        let code: i32 = code.trim().parse().unwrap_or(1);
        eprintln!("exiting {code}");
        std::process::exit(code);
    }
    if let Some(path) = command.strip_prefix("read:") {
        match std::fs::read(path) {
            Ok(bytes) => return io::stdout().write_all(&bytes),
            Err(err) => {
                eprintln!("cannot read {path}: {err}");
                std::process::exit(1);
            }
        }
    }
    match command {
        "trap" => panic!("stdio-probe traps as asked"),
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
            io::stdout().write_all(&input)
        }
    }
}
