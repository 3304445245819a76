//! Starts, watches and restarts native `bootstrap` processes, one per runner. A bootstrap
//! that exits fails the invocation it held at once; one that holds an invocation past its
//! deadline is killed and started again, as Lambda resets an execution environment.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::{next_backoff, pause};
use crate::config::Config;
use crate::dispatch::{Dispatcher, InvocationError, RunnerId};
use crate::metrics::Metrics;
use std::sync::atomic::Ordering;

/// How long a bootstrap gets between SIGTERM and SIGKILL when the host stops.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// A bootstrap that ran this long before exiting is restarted at once.
const HEALTHY_RUN: Duration = Duration::from_secs(10);
/// Longest line of function output logged as one line.
const MAX_LINE: usize = 16 * 1024;

enum Ended {
    Exited(ExitStatus),
    Reset,
    Stopped,
}

/// Runs bootstrap number `runner` against the Runtime API at `api`, until `stop`.
pub async fn supervise(
    runner: RunnerId,
    api: SocketAddr,
    bootstrap: PathBuf,
    config: Arc<Config>,
    dispatcher: Arc<Dispatcher>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::ZERO;
    let mut first = true;
    while !stop.is_cancelled() {
        if !std::mem::take(&mut first) {
            metrics.bootstrap_restarts.fetch_add(1, Ordering::Relaxed);
        }
        let started = Instant::now();
        let mut child = match spawn(runner, api, &bootstrap, &config) {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(
                    bootstrap = runner,
                    "cannot start {}: {e}",
                    bootstrap.display()
                );
                backoff = next_backoff(backoff);
                if pause(backoff, &stop).await {
                    continue;
                }
                break;
            }
        };
        let pid = child.id().map(|p| Pid::from_raw(p as i32));
        tracing::info!(bootstrap = runner, pid = child.id(), "bootstrap started");
        let reset = dispatcher.reset_signal(runner).notified();
        tokio::pin!(reset);
        reset.as_mut().enable();
        let ended = tokio::select! {
            status = child.wait() => match status {
                Ok(s) => Ended::Exited(s),
                Err(e) => {
                    tracing::error!(bootstrap = runner, "cannot wait for bootstrap: {e}");
                    signal_group(pid, Signal::SIGKILL);
                    let _ = child.wait().await;
                    Ended::Reset
                }
            },
            _ = &mut reset => {
                signal_group(pid, Signal::SIGKILL);
                let _ = child.wait().await;
                Ended::Reset
            }
            _ = stop.cancelled() => {
                terminate(&mut child, pid).await;
                Ended::Stopped
            }
        };
        // Whatever the bootstrap started dies with it.
        signal_group(pid, Signal::SIGKILL);
        let why = match &ended {
            Ended::Exited(s) => describe(s),
            Ended::Reset => "killed after an invocation passed its deadline".into(),
            Ended::Stopped => "stopped with the host".into(),
        };
        let failed = dispatcher.fail_runner(runner, InvocationError::RunnerExited(why.clone()));
        match ended {
            Ended::Stopped => break,
            Ended::Reset => {
                tracing::warn!(bootstrap = runner, "bootstrap reset: {why}");
                backoff = Duration::ZERO;
            }
            Ended::Exited(_) => {
                tracing::warn!(bootstrap = runner, failed, "bootstrap exited: {why}");
                backoff = backoff_after(backoff, started.elapsed());
            }
        }
        if !pause(backoff, &stop).await {
            break;
        }
    }
}

fn backoff_after(previous: Duration, ran: Duration) -> Duration {
    if ran >= HEALTHY_RUN {
        Duration::ZERO
    } else {
        next_backoff(previous)
    }
}

fn describe(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(sig) => format!("signal: {sig}"),
            Err(_) => format!("signal: {sig}"),
        },
        _ => s.to_string(),
    }
}

fn signal_group(pid: Option<Pid>, sig: Signal) {
    if let Some(pid) = pid {
        // ESRCH: the group is already gone.
        let _ = killpg(pid, sig);
    }
}

async fn terminate(child: &mut Child, pid: Option<Pid>) {
    signal_group(pid, Signal::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        signal_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

fn spawn(
    runner: RunnerId,
    api: SocketAddr,
    bootstrap: &Path,
    config: &Config,
) -> std::io::Result<Child> {
    let mut cmd = Command::new(bootstrap);
    cmd.current_dir(&config.task_root)
        .envs(&config.lambda_env)
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("BOOTSTRAP_INDEX", runner.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a reset also ends what the bootstrap started.
        .process_group(0)
        .kill_on_drop(true);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn()?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_output(runner, "stdout", out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_output(runner, "stderr", err));
    }
    Ok(child)
}

/// Bootstraps must not outlive a host that was killed without a chance to stop them.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only makes one
    // async-signal-safe system call (prctl).
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

/// Logs a bootstrap's output line by line, tagged with the bootstrap; over-long lines are
/// cut into pieces, invalid UTF-8 is replaced, nothing blocks the function.
async fn forward_output(runner: RunnerId, stream: &'static str, out: impl AsyncRead + Unpin) {
    let mut reader = BufReader::with_capacity(MAX_LINE, out);
    let mut line = Vec::with_capacity(256);
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => buf,
        };
        let (take, complete) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = MAX_LINE - line.len();
        let take = take.min(room);
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if complete || line.len() >= MAX_LINE {
            emit(runner, stream, &line);
            line.clear();
        }
    }
    if !line.is_empty() {
        emit(runner, stream, &line);
    }
}

fn emit(runner: RunnerId, stream: &'static str, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\n', '\r']);
    tracing::info!(target: "function", bootstrap = runner, stream, "{text}");
}
