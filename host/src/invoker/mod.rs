//! Invokers own the runners that take invocations from the Dispatcher: `native` starts and
//! supervises bootstrap processes, `wasm` runs `bootstrap.wasm` instances in wasmtime. What
//! both share lives here: how a runner ended and what that means for the invocation it held
//! ([`Ended`]), the restart backoff, and the splitting of function output into log lines.

mod environment;
pub mod lines;
pub mod native;
pub(crate) mod orphans;
pub mod wasm;

use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;

use crate::dispatch::{InvocationError, Outcome, ResponseSize, check_response_size};
use crate::lambda_error::Diagnostic;
use crate::tenancy::stats::ResetCause;

/// Longest pause before a runner that keeps failing is started again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A runner that ran this long before it ended is restarted at once.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// How a runner (a bootstrap process, a WASI instance) ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// A WASI guest's `main` returned, or it called `exit(0)`.
    Returned,
    /// It exited with this status (a native bootstrap: any status, 0 included).
    Exit(i32),
    /// A native bootstrap was killed by this signal.
    Signal(i32),
    /// A WASI guest trapped, passed a limit, or broke the ABI.
    Trap(String),
    /// Interrupted at the deadline of the invocation it held.
    Deadline,
    /// Reset by the Dispatcher: an invocation it held passed its deadline.
    Reset,
    /// Drained and replaced (`BOOTSTRAP_MAX_INVOCATIONS`, `BOOTSTRAP_MAX_AGE`).
    Recycled,
    /// Reset, idle, to serve another tenant (`TENANT_ISOLATION_MODE=PER_TENANT`).
    Switched,
    /// Stopped with the host.
    Stopped,
    /// The host could not run or watch it (no sandbox, no process status).
    HostFailure(String),
}

/// What a runner left behind that explains its end.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The last bytes of its stderr, if kept.
    pub stderr: &'a str,
    /// The error it reported before its first invocation.
    pub init_error: Option<&'a Diagnostic>,
    /// The invocations' time limit, for a timeout's message.
    pub function_ttl: Duration,
}

impl Ended {
    /// How the end reads in the log.
    pub fn describe(&self) -> String {
        match self {
            Ended::Returned => "the function returned".into(),
            Ended::Exit(code) => format!("exit status {code}"),
            Ended::Signal(sig) => match Signal::try_from(*sig) {
                Ok(sig) => format!("signal: {sig}"),
                Err(_) => format!("signal: {sig}"),
            },
            Ended::Trap(msg) | Ended::HostFailure(msg) => msg.clone(),
            Ended::Deadline => "interrupted at the invocation's deadline".into(),
            Ended::Reset => "killed after an invocation passed its deadline".into(),
            Ended::Recycled => "recycled".into(),
            Ended::Switched => "reset to serve another tenant".into(),
            Ended::Stopped => "stopped with the host".into(),
        }
    }

    /// Whether [`Ended::failure`] and [`Ended::command_outcome`] quote the function's stderr
    /// for this end.
    pub fn explained_by_stderr(&self) -> bool {
        matches!(self, Ended::Exit(_) | Ended::Signal(_) | Ended::Trap(_))
    }

    /// The error that ends an invocation the runner held without answering: the one
    /// mapping from how a runner ended to how its invocation ends.
    pub fn failure(&self, ev: &Evidence<'_>) -> InvocationError {
        let with_stderr = |msg: String| {
            if ev.stderr.is_empty() {
                msg
            } else {
                format!("{msg}; stderr: {}", ev.stderr)
            }
        };
        match (self, ev.init_error) {
            (Ended::Deadline, _) => InvocationError::Timeout(ev.function_ttl),
            // The one that passed its deadline has ended already: what is left are the
            // invocations that shared the runner with it (AWS_LAMBDA_MAX_CONCURRENCY).
            (Ended::Reset, _) => InvocationError::RunnerExited(format!(
                "the runtime was reset because another invocation it was running passed its \
                 deadline ({:.2} seconds)",
                ev.function_ttl.as_secs_f64()
            )),
            (Ended::HostFailure(msg), _) => InvocationError::HostFailure(msg.clone()),
            (Ended::Stopped | Ended::Recycled | Ended::Switched, _) => {
                InvocationError::RunnerExited(self.describe())
            }
            (_, Some(e)) => {
                InvocationError::InitFailed(format!("{}: {}", e.error_type, e.error_message))
            }
            (Ended::Returned, None) => {
                InvocationError::RunnerExited("the function returned without answering".into())
            }
            (Ended::Exit(_) | Ended::Signal(_), None) => {
                InvocationError::RunnerExited(with_stderr(self.describe()))
            }
            (Ended::Trap(msg), None) => InvocationError::Trap(with_stderr(msg.clone())),
        }
    }

    /// Why this end resets an execution environment, for the metric; `None` for an end
    /// that is no reset (a recycle, the host's stop).
    pub fn reset_cause(&self) -> Option<ResetCause> {
        match self {
            Ended::Switched => Some(ResetCause::TenantSwitch),
            Ended::Deadline | Ended::Reset => Some(ResetCause::Deadline),
            Ended::Returned | Ended::Exit(_) | Ended::Signal(_) | Ended::Trap(_) => {
                Some(ResetCause::Crash)
            }
            Ended::Recycled | Ended::Stopped | Ended::HostFailure(_) => None,
        }
    }

    /// The outcome of a plain command's invocation, whose end is its answer: a clean exit
    /// answers with `stdout`; a failed exit or a trap is a function error of the type
    /// [`Ended::failure`] gives it, explained by stderr; anything else is that failure.
    /// `stdout` holds at most `limit + 1` bytes: more than `limit` means it was cut.
    pub fn command_outcome(&self, stdout: Bytes, limit: usize, ev: &Evidence<'_>) -> Outcome {
        let size = if stdout.len() > limit {
            ResponseSize::PastLimit
        } else {
            ResponseSize::Exactly(stdout.len())
        };
        if let Err(e) = check_response_size(size, limit) {
            return Outcome::Failed(e);
        }
        match self {
            Ended::Returned => Outcome::Response {
                body: stdout,
                content_type: None,
            },
            Ended::Exit(_) | Ended::Signal(_) | Ended::Trap(_) => {
                let error_type = self.failure(&Evidence { stderr: "", ..*ev }).error_type();
                Outcome::FunctionError(Diagnostic {
                    error_type: error_type.into(),
                    error_message: if ev.stderr.is_empty() {
                        self.describe()
                    } else {
                        ev.stderr.to_owned()
                    },
                    stack_trace: None,
                })
            }
            _ => Outcome::Failed(self.failure(ev)),
        }
    }
}

/// The pause after a runner failed again soon after its start: doubling, 100 ms to 10 s.
pub(crate) fn next_backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(100), MAX_BACKOFF)
}

/// The pause before a runner that ended is started again: none when it served an
/// invocation or ran for a while (it was healthy), else the next step of the backoff.
fn backoff_after(previous: Duration, ran: Duration, served: bool) -> Duration {
    if served || ran >= HEALTHY_RUN {
        Duration::ZERO
    } else {
        next_backoff(previous)
    }
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

#[cfg(test)]
mod tests;
