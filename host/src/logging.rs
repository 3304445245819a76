//! The host's log: tracing to stderr through a bounded writer that never blocks (see
//! `logging/writer.rs`). A stderr that nobody drains (a full pipe) must never stall request
//! handling: lines that do not fit in the buffer are dropped and counted
//! (`aws_custom_runtime_log_lines_dropped_total`), and a line says how many once stderr
//! drains again.

mod writer;

use std::sync::OnceLock;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

pub use writer::Guard;

/// Bytes of lines that wait for stderr before new ones are dropped: about 4,000 lines of
/// 250 bytes, a stall of ~100 ms at 40k lines/s. Allocated as lines arrive.
const BUFFERED_BYTES: usize = 1 << 20;
/// How often the drop count is looked at.
const REPORT_EVERY: Duration = Duration::from_secs(1);

static WRITER: OnceLock<writer::LogWriter> = OnceLock::new();

/// The span of every WASI call wasmtime-wasi makes (`#[instrument]`, at INFO): one per
/// `fd_write`, `fd_read`, `clock_time_get`... of every guest, with its arguments formatted,
/// and the prefix of every log line a guest writes (`fd_write{fd=Fd(2) ciovs=...}:`). Quiet
/// unless the filter names wasmtime-wasi itself.
const WASI_CALL_SPANS: &str = "wasmtime_wasi=warn";

/// The filter `spec` (LOG_LEVEL or RUST_LOG syntax) stands for, or `None` when it does not
/// parse. wasmtime-wasi's per-call spans are left out unless `spec` names `wasmtime_wasi`.
pub fn filter(spec: &str) -> Option<EnvFilter> {
    let filter = EnvFilter::try_new(spec).ok()?;
    if spec.contains("wasmtime_wasi") {
        return Some(filter);
    }
    Some(filter.add_directive(WASI_CALL_SPANS.parse().ok()?))
}

/// Installs the global subscriber. Keep the guard until exit: dropping it flushes what is
/// buffered (waiting at most about a second for a stuck stderr).
pub fn init(filter: EnvFilter) -> std::io::Result<Guard> {
    let (writer, guard) = writer::start(std::io::stderr(), BUFFERED_BYTES, "log-writer")?;
    let _ = WRITER.set(writer.clone());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let _ = std::thread::Builder::new()
        .name("log-drops".into())
        .spawn(report_drops);
    Ok(guard)
}

/// Log lines dropped so far because stderr was not being read.
pub fn dropped_lines() -> u64 {
    WRITER.get().map_or(0, writer::LogWriter::dropped)
}

/// Says once per episode how many lines were lost: when the count has stopped growing,
/// stderr is being read again.
fn report_drops() {
    let (mut reported, mut last) = (0, 0);
    loop {
        std::thread::sleep(REPORT_EVERY);
        let now = dropped_lines();
        if now == last && now > reported {
            tracing::warn!(
                dropped = now - reported,
                total = now,
                "log lines were dropped while stderr was not being read"
            );
            reported = now;
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::filter;

    /// What a subscriber with `spec` writes for a guest's log line inside a WASI call's span.
    fn guest_line(spec: &str) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter(spec).unwrap())
            .with_writer(move || Writer(sink.clone()))
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(target: "wasmtime_wasi::p1", "fd_write", fd = 2);
            let _entered = span.enter();
            tracing::info!(target: "function", "hello from the guest");
        });
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    struct Writer(Arc<Mutex<Vec<u8>>>);

    impl Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn wasi_call_spans_are_quiet_unless_the_filter_names_wasmtime_wasi() {
        for spec in ["info", "debug", "aws_custom_runtime=debug,info"] {
            let line = guest_line(spec);
            assert!(line.contains("hello from the guest"), "{spec}: {line}");
            assert!(!line.contains("fd_write"), "{spec}: {line}");
        }
        let line = guest_line("info,wasmtime_wasi=info");
        assert!(
            line.contains("fd_write{fd=2}: function: hello from the guest"),
            "{line}"
        );
        assert!(filter("no=such=level").is_none());
    }
}
