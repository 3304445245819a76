//! Supervision of one extension process: started with the bootstrap's environment in a
//! session of its own (killed as a whole, and with the host), its output logged tagged with
//! its name and published as `extension` telemetry, restarted with backoff when it exits
//! or fails, and at once when it is reset. It must not touch the registry's events: it only
//! tells the registry that its extension is gone.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use super::registry::{Registry, State};
use super::telemetry::{self, Kind};
use super::{Extensions, name_of};
use crate::config::Config;
use crate::invoker::lines::{Lines, MAX_LINE, logged};
use crate::invoker::{next_backoff, orphans};

/// How long a reset extension gets to take its SHUTDOWN and exit before it is killed.
pub const RESET_GRACE: Duration = Duration::from_millis(500);

/// Makes the host the reaper of what the extensions detach (as for bootstraps).
pub fn adopt() {
    orphans::adopt();
}

/// How one run of the extension ended.
enum Ended {
    /// It exited (or failed) by itself: restart with backoff.
    Failed(String),
    /// The host reset it: restart now.
    Reset,
    /// The host stops.
    Stopped,
}

/// Runs the extension at `path` until the host stops.
pub async fn supervise(ext: Arc<Extensions>, path: PathBuf, api: SocketAddr, config: Arc<Config>) {
    let name = name_of(&path);
    let mut backoff = Duration::ZERO;
    let mut first = true;
    while !ext.stop.is_cancelled() {
        if !std::mem::take(&mut first) {
            ext.metrics
                .extension_restarts
                .fetch_add(1, Ordering::Relaxed);
        }
        let mut child = match spawn(&name, &path, api, &config) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(extension = name, "cannot start {}: {e}", path.display());
                backoff = next_backoff(backoff);
                if !pause(&ext, backoff).await {
                    break;
                }
                continue;
            }
        };
        let pid = child.id();
        ext.running.fetch_add(1, Ordering::Relaxed);
        tracing::info!(extension = name, pid, "extension started");
        let started = Instant::now();
        let ended = watch(&ext, &name, &mut child).await;
        // Whatever it started in its session goes with it.
        signal_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
        orphans::forget(pid);
        let held = {
            let mut r = ext.lock();
            let id = r.id_of(&name);
            r.remove(&name);
            id
        };
        if let Some(id) = held {
            ext.telemetry.unsubscribe(id);
        }
        ext.running.fetch_sub(1, Ordering::Relaxed);
        ext.bump();
        match ended {
            Ended::Stopped => break,
            Ended::Reset => {
                tracing::warn!(
                    extension = name,
                    "extension restarted after a reset (reason timeout)"
                );
                backoff = Duration::ZERO;
            }
            Ended::Failed(why) => {
                tracing::warn!(
                    extension = name,
                    reason = "failure",
                    "extension {why}; restarting"
                );
                backoff = if started.elapsed() > Duration::from_secs(10) {
                    Duration::ZERO
                } else {
                    next_backoff(backoff)
                };
            }
        }
        if !pause(&ext, backoff).await {
            break;
        }
    }
}

/// Waits for the extension's end: its exit, an init error, an init past the timeout, a
/// reset, or the host's stop (then it gets until the shutdown deadline to exit).
async fn watch(ext: &Extensions, name: &str, child: &mut Child) -> Ended {
    let reset = ext
        .resets
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, n)| n.notified());
    let reset = async {
        match reset {
            Some(r) => r.await,
            None => std::future::pending().await,
        }
    };
    let failed = async {
        let state = |r: &Registry| r.state_of(name);
        let past_init = ext.wait(|r| !matches!(state(r), None | Some(State::Registered)));
        if tokio::time::timeout(ext.init_timeout, past_init)
            .await
            .is_err()
        {
            return format!("did not finish its init within {:?}", ext.init_timeout);
        }
        ext.wait(|r| matches!(state(r), Some(State::InitError | State::ExitError)))
            .await;
        match state(&ext.lock()) {
            Some(State::InitError) => "reported an init error".to_owned(),
            _ => "reported an exit error".to_owned(),
        }
    };
    tokio::select! {
        status = child.wait() => Ended::Failed(match status {
            Ok(s) => format!("exited ({s})"),
            Err(e) => format!("cannot be waited for: {e}"),
        }),
        why = failed => Ended::Failed(why),
        _ = reset => {
            let _ = tokio::time::timeout(RESET_GRACE, child.wait()).await;
            Ended::Reset
        }
        _ = ext.stop.cancelled() => {
            // The SHUTDOWN is queued; SIGTERM too, for one that did not subscribe to it.
            if !ext.lock().subscribed_to_shutdown(name) {
                signal_group(child.id(), Signal::SIGTERM);
            }
            let _ = tokio::time::timeout(ext.shutdown_timeout, child.wait()).await;
            Ended::Stopped
        }
    }
}

/// Sleeps `d` unless the host stops first; false when it stops.
async fn pause(ext: &Extensions, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = ext.stop.cancelled() => false,
    }
}

fn signal_group(pid: Option<u32>, sig: Signal) {
    if let Some(pid) = pid {
        // ESRCH: the group is already gone.
        let _ = killpg(Pid::from_raw(pid as i32), sig);
    }
}

fn spawn(name: &str, path: &PathBuf, api: SocketAddr, config: &Config) -> std::io::Result<Child> {
    let mut cmd = Command::new(path);
    cmd.current_dir(&config.task_root)
        .envs(&config.lambda_env)
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    crate::invoker::native::isolate(&mut cmd);
    let mut child = orphans::spawn_live(|| {
        let child = cmd.spawn()?;
        let pid = child.id();
        Ok((child, pid))
    })?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_output(name.to_owned(), "stdout", out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_output(name.to_owned(), "stderr", err));
    }
    Ok(child)
}

/// Logs an extension's output line by line, tagged with its name, and publishes each line
/// as an `extension` record.
async fn forward_output(name: String, stream: &'static str, mut out: impl AsyncRead + Unpin) {
    let mut buf = vec![0; MAX_LINE];
    let mut lines = Lines::default();
    let mut emit = |text: &str| {
        tracing::info!(target: "extension", extension = name, stream, "{}", logged(text));
        telemetry::output_line(Kind::Extension, text);
    };
    loop {
        match out.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lines.feed(&buf[..n], &mut emit),
        }
    }
    lines.flush(&mut emit);
}
