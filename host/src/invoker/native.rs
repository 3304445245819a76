//! Starts, watches and restarts native `bootstrap` processes, one per runner. A bootstrap
//! that exits fails the invocation it held at once; one that holds an invocation past its
//! deadline is killed and started again, as Lambda resets an execution environment; one
//! that reached its recycle bound is drained (it takes nothing new, finishes what it holds)
//! and started again, failing nothing. Each runs in its own session, killed as a whole.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::environment::Environment;
use super::lines::{Lines, MAX_LINE, logged};
use super::{Ended, Evidence, backoff_after, next_backoff, orphans, pause};
use crate::config::Config;
use crate::dispatch::{Dispatcher, RunnerId};
use crate::lambda_error::Diagnostic;
use crate::metrics::Metrics;

/// How often a draining bootstrap is checked for the end of the invocation it holds.
const DRAIN_CHECK: Duration = Duration::from_millis(5);
/// How long a bootstrap that reported an init error may take to exit on its own before it
/// is killed (Lambda ends the environment; a runtime that lingers would never be retried).
const INIT_ERROR_EXIT: Duration = Duration::from_secs(1);

/// When a bootstrap is replaced although it is healthy (issue: bootstraps that grow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recycle {
    pub max_invocations: Option<u64>,
    pub max_age: Option<Duration>,
}

impl Recycle {
    pub fn of(config: &Config) -> Recycle {
        Recycle {
            // Zero would recycle without ever serving: read as "off".
            max_invocations: config.bootstrap_max_invocations.filter(|n| *n > 0),
            max_age: config.bootstrap_max_age.filter(|d| !d.is_zero()),
        }
    }
}

/// Runs bootstrap number `runner` against the Runtime API at `api`, until `stop`.
/// How often orphans that exited on their own are reaped.
const REAP_EVERY: Duration = Duration::from_secs(10);

async fn reap_exited_orphans(stop: CancellationToken) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Ok(n) = tokio::task::spawn_blocking(orphans::reap_exited).await
            && n > 0
        {
            tracing::debug!("reaped {n} exited orphans");
        }
    }
}

pub async fn supervise(
    runner: RunnerId,
    api: SocketAddr,
    bootstrap: PathBuf,
    config: Arc<Config>,
    dispatcher: Arc<Dispatcher>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    orphans::adopt();
    if runner == 0 {
        tokio::spawn(reap_exited_orphans(stop.clone()));
    }
    let recycle = Recycle::of(&config);
    let evidence = Evidence {
        stderr: "",
        init_error: None,
        function_ttl: config.function_ttl,
    };
    let mut backoff = Duration::ZERO;
    let mut first = true;
    let env = Environment::create(runner, &bootstrap, &config, dispatcher.per_tenant());
    while !stop.is_cancelled() {
        if !std::mem::take(&mut first) {
            metrics.bootstrap_restarts.fetch_add(1, Ordering::Relaxed);
        }
        dispatcher.allow(runner, recycle.max_invocations);
        dispatcher.runner_started(runner);
        let taken_before = dispatcher.gate(runner).borrow().taken;
        let started = Instant::now();
        // A new bootstrap is a new environment: nothing of the last one's scratch survives.
        env.clear().await;
        dispatcher.env_started(runner);
        let mut child = match spawn(runner, api, &bootstrap, &config, &env) {
            Ok(child) => child,
            Err(e) => {
                let message = format!("cannot start {}: {e}", bootstrap.display());
                tracing::error!(bootstrap = runner, "{message}");
                init_failed(&dispatcher, runner, "Runtime.InvalidEntrypoint", message);
                backoff = next_backoff(backoff);
                if pause(backoff, &stop).await {
                    continue;
                }
                break;
            }
        };
        let pid = child.id();
        dispatcher.runner_spawned(runner, pid);
        let tenant = dispatcher.tenant_of(runner);
        let tenant = tenant.as_ref().map(|t| t.as_str());
        tracing::info!(bootstrap = runner, pid, tenant, "bootstrap started");
        let grace = config.shutdown_timeout;
        let ended = watch(
            runner,
            &mut child,
            &dispatcher,
            recycle,
            started,
            &stop,
            grace,
        )
        .await;
        // Whatever the bootstrap started in its session dies with it.
        signal_group(pid, Signal::SIGKILL);
        orphans::forget(pid);
        let failed = dispatcher.fail_runner(runner, ended.failure(&evidence));
        if let Ended::Exit(_) | Ended::Signal(_) = ended {
            let message = format!("Runtime exited with error: {}", ended.describe());
            init_failed(&dispatcher, runner, "Runtime.ExitError", message);
        }
        // And what left the session; before the next bootstrap starts.
        let swept = tokio::task::spawn_blocking(orphans::sweep)
            .await
            .unwrap_or(0);
        let served = dispatcher.gate(runner).borrow().taken > taken_before;
        let why = ended.describe();
        if let Some(cause) = ended.reset_cause() {
            metrics.envs.reset(cause);
        }
        match ended {
            Ended::Stopped => break,
            Ended::Switched => {
                tracing::info!(bootstrap = runner, tenant, swept, "bootstrap {why}");
                backoff = Duration::ZERO;
            }
            Ended::Reset => {
                tracing::warn!(bootstrap = runner, tenant, swept, "bootstrap reset: {why}");
                backoff = Duration::ZERO;
            }
            Ended::Recycled => {
                tracing::info!(bootstrap = runner, swept, "bootstrap recycled");
                backoff = Duration::ZERO;
            }
            _ => {
                tracing::warn!(
                    bootstrap = runner,
                    tenant,
                    failed,
                    swept,
                    "bootstrap exited: {why}"
                );
                backoff = backoff_after(backoff, started.elapsed(), served);
            }
        }
        if !pause(backoff, &stop).await {
            break;
        }
    }
}

/// Ends this life of `runner`; if it never asked for an invocation, that was a failed init
/// (with what it reported, else `error_type` and `message`), logged with its type and
/// message; the supervisor's backoff then spaces the retries.
fn init_failed(dispatcher: &Dispatcher, runner: RunnerId, error_type: &str, message: String) {
    let exited = || Diagnostic {
        error_type: error_type.into(),
        error_message: message,
        stack_trace: None,
    };
    if let Some(e) = dispatcher.runner_ended(runner, exited) {
        tracing::error!(
            bootstrap = runner,
            error_type = e.error_type,
            error_message = e.error_message,
            "bootstrap failed init; it takes no invocation and is started again after a pause"
        );
    }
}

/// Waits for the bootstrap to end, or ends it: at a reset, a recycle or the host's stop.
/// The process has been reaped when this returns.
async fn watch(
    runner: RunnerId,
    child: &mut Child,
    dispatcher: &Dispatcher,
    recycle: Recycle,
    started: Instant,
    stop: &CancellationToken,
    grace: Duration,
) -> Ended {
    let pid = child.id();
    let reset = dispatcher.reset_signal(runner).notified();
    tokio::pin!(reset);
    reset.as_mut().enable();
    let drained = drained(runner, dispatcher, recycle, started);
    tokio::pin!(drained);
    let lingering = async {
        dispatcher.init_reported(runner).await;
        tokio::time::sleep(INIT_ERROR_EXIT).await;
    };
    let ended = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => return ended_of(&s),
            Err(e) => Ended::HostFailure(format!("cannot wait for the bootstrap: {e}")),
        },
        _ = lingering => {
            tracing::warn!(
                bootstrap = runner,
                "bootstrap reported an init error and did not exit within {INIT_ERROR_EXIT:?}: killed"
            );
            signal_group(pid, Signal::SIGKILL);
            return match child.wait().await {
                Ok(s) => ended_of(&s),
                Err(e) => Ended::HostFailure(format!("cannot wait for the bootstrap: {e}")),
            };
        }
        _ = &mut reset => Ended::Reset,
        _ = &mut drained => Ended::Recycled,
        _ = dispatcher.switch_signal(runner) => Ended::Switched,
        _ = stop.cancelled() => {
            terminate(child, pid, grace).await;
            return Ended::Stopped;
        }
    };
    signal_group(pid, Signal::SIGKILL);
    let _ = child.wait().await;
    ended
}

/// Resolves once the bootstrap reached its recycle bound and holds nothing any more: its
/// allowance of invocations is used up (or its age reached, which closes it), and the one
/// it held ended (answered, or failed at its deadline). Never, when recycling is off.
async fn drained(runner: RunnerId, dispatcher: &Dispatcher, recycle: Recycle, started: Instant) {
    if recycle == Recycle::default() {
        return std::future::pending().await;
    }
    let mut gate = dispatcher.gate(runner);
    let used_up = async {
        let _ = gate.wait_for(|g| g.allowance == Some(0)).await.map(|_| ());
    };
    let aged = async {
        match recycle.max_age {
            Some(age) => tokio::time::sleep_until((started + age).into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = used_up => {}
        _ = aged => dispatcher.drain(runner),
    }
    // The Dispatcher gives a drained runner nothing new, so this only waits for the
    // invocation in hand, which ends by its deadline at the latest.
    while dispatcher.held_by(runner) > 0 {
        tokio::time::sleep(DRAIN_CHECK).await;
    }
}

fn ended_of(s: &ExitStatus) -> Ended {
    match (s.code(), s.signal()) {
        (Some(code), _) => Ended::Exit(code),
        (None, Some(sig)) => Ended::Signal(sig),
        _ => Ended::HostFailure(format!("unknown exit status: {s}")),
    }
}

fn signal_group(pid: Option<u32>, sig: Signal) {
    if let Some(pid) = pid {
        // ESRCH: the group is already gone.
        let _ = killpg(Pid::from_raw(pid as i32), sig);
    }
}

async fn terminate(child: &mut Child, pid: Option<u32>, grace: Duration) {
    signal_group(pid, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

fn spawn(
    runner: RunnerId,
    api: SocketAddr,
    bootstrap: &Path,
    config: &Config,
    env: &Environment,
) -> std::io::Result<Child> {
    let mut cmd = Command::new(bootstrap);
    env.prepare(&mut cmd);
    cmd.current_dir(&config.task_root)
        .envs(&config.lambda_env)
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("BOOTSTRAP_INDEX", runner.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    isolate(&mut cmd);
    env.confine(&mut cmd);
    let mut child = orphans::spawn_live(|| {
        let child = cmd.spawn()?;
        let pid = child.id();
        Ok((child, pid))
    })?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_output(runner, "stdout", out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_output(runner, "stderr", err));
    }
    Ok(child)
}

/// Each bootstrap leads its own session (so a reset kills everything in it), and dies
/// when the host is killed without a chance to stop it.
#[allow(unsafe_code)]
pub(crate) fn isolate(cmd: &mut Command) {
    let host = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (setsid, prctl, getppid); its errors are errno
    // values, so it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The host died before the death signal was armed.
            if nix::unistd::getppid() != host {
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

/// Logs a bootstrap's output line by line, tagged with the bootstrap; nothing blocks the
/// function.
async fn forward_output(runner: RunnerId, stream: &'static str, mut out: impl AsyncRead + Unpin) {
    let mut buf = vec![0; MAX_LINE];
    let mut lines = Lines::default();
    let mut emit = |text: &str| {
        tracing::info!(target: "function", bootstrap = runner, stream = %stream, "{}", logged(text));
        crate::extensions::telemetry::output_line(
            crate::extensions::telemetry::Kind::Function,
            text,
        );
    };
    loop {
        match out.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lines.feed(&buf[..n], &mut emit),
        }
    }
    lines.flush(&mut emit);
}
