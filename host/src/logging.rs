//! The host's log: tracing to stderr through a bounded, non-blocking writer. A stderr that
//! nobody drains (a full pipe) must never stall request handling: lines that do not fit in
//! the buffer are dropped and counted (`aws_custom_runtime_log_lines_dropped_total`), and a
//! line says how many once stderr drains again.

use std::sync::OnceLock;
use std::time::Duration;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines that wait for stderr before new ones are dropped.
const BUFFERED_LINES: usize = 16_384;
/// How often the drop count is looked at.
const REPORT_EVERY: Duration = Duration::from_secs(1);

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Installs the global subscriber. Keep the guard until exit: dropping it flushes what is
/// buffered (waiting at most about a second for a stuck stderr).
pub fn init(filter: EnvFilter) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let _ = DROPPED.set(writer.error_counter());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let _ = std::thread::Builder::new()
        .name("log-drops".into())
        .spawn(report_drops);
    guard
}

/// Log lines dropped so far because stderr was not being read.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
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
