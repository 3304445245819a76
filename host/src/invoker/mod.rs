//! Invokers own the runners that take invocations from the Dispatcher: `native` starts and
//! supervises bootstrap processes, `wasm` runs `bootstrap.wasm` instances in wasmtime.

pub mod native;
pub mod wasm;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Longest pause before a runner that keeps failing is started again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The pause after a runner failed again soon after its start: doubling, 100 ms to 10 s.
fn next_backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(100), MAX_BACKOFF)
}

/// Sleeps `d` unless stopped first; true when the sleep ran out.
async fn pause(d: Duration, stop: &CancellationToken) -> bool {
    if d.is_zero() {
        return !stop.is_cancelled();
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}
