//! Lambda extensions for native functions: the executables of `LAMBDA_EXTENSIONS_DIR`,
//! served the Extensions API (2020-01-01) and the Telemetry API (2022-07-01) on the Runtime
//! API's listeners. [`Extensions`] is the one set of extensions of the host: every
//! invocation, whichever bootstrap serves it, reaches each subscribed extension once as an
//! INVOKE, as in one Lambda execution environment with concurrency; that is what lets an
//! extension listen on a fixed port with `INVOKER_COUNT` > 1.
//!
//! [`registry`] is the state machine (its vocabulary in [`types`]), [`api`] the HTTP
//! handlers, [`subscription`] the Telemetry API's requests, [`telemetry`] the records and
//! their delivery, [`process`] the supervision of the executables. This
//! module joins them to the host's lifecycle; it must not decide anything about
//! invocations beyond holding a runner until the extensions finished the last one.

pub mod api;
pub mod process;
pub mod registry;
pub mod subscription;
pub mod telemetry;
pub mod types;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use self::registry::{Registry, ShutdownReason};
use self::telemetry::{Kind, Telemetry};
use crate::config::{Config, ConfigError};
use crate::dispatch::{Invocation, Outcome, RunnerId};
use crate::metrics::Metrics;

/// Where Lambda puts the extensions of the function's layers.
pub const DEFAULT_DIR: &str = "/opt/extensions";

/// The executable files of `dir` (sorted by name); `off` or a missing default folder: none.
pub fn discover(dir: &str) -> Result<Vec<PathBuf>, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = dir.trim();
    if dir.eq_ignore_ascii_case("off") || dir.is_empty() {
        return Ok(Vec::new());
    }
    let invalid = |reason: String| ConfigError::Invalid {
        var: "LAMBDA_EXTENSIONS_DIR",
        value: dir.to_owned(),
        reason,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir == DEFAULT_DIR => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(invalid(format!("cannot read the folder: {e}"))),
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .collect();
    found.sort();
    if found.len() > registry::MAX_EXTENSIONS {
        return Err(invalid(format!(
            "{} extensions found; Lambda runs at most {}",
            found.len(),
            registry::MAX_EXTENSIONS
        )));
    }
    Ok(found)
}

/// The file name an extension registers under.
pub fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What `/register` answers.
#[derive(Debug, Clone)]
pub struct FunctionMeta {
    pub name: String,
    pub version: String,
    pub handler: String,
    pub account_id: String,
    pub arn: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, as `platform.report` gives it.
    pub memory_mb: u32,
}

/// The host's extensions: registry, telemetry and processes.
pub struct Extensions {
    registry: Mutex<Registry>,
    /// Bumped at every change of the registry: long polls and gates look again.
    changed: watch::Sender<u64>,
    pub meta: FunctionMeta,
    pub telemetry: Arc<Telemetry>,
    paths: Vec<PathBuf>,
    /// Asks the supervisor of the named extension to restart it (its INVOKE passed its
    /// deadline).
    resets: Vec<(String, Notify)>,
    stop: CancellationToken,
    shutdown_timeout: Duration,
    init_timeout: Duration,
    metrics: Arc<Metrics>,
    /// Extension processes alive now.
    running: AtomicUsize,
    /// When each invocation in flight started and its deadline (`durationMs`).
    started: Mutex<HashMap<Arc<str>, (Instant, Instant)>>,
}

/// The peak resident memory of process `pid` over its life (`VmHWM`), in whole MiB rounded
/// up, as Lambda reports `maxMemoryUsedMB`; `None` when the process is gone.
fn peak_memory_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib.div_ceil(1024))
}

/// Invocations whose start is remembered for `platform.runtimeDone`.
const MAX_TRACKED: usize = 4096;

/// How an invocation ended, as `platform.runtimeDone` says it.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub status: &'static str,
    pub bytes: usize,
}

impl Summary {
    pub fn of(outcome: &Outcome) -> Summary {
        match outcome {
            Outcome::Response { body, .. } => Summary {
                status: "success",
                bytes: body.len(),
            },
            Outcome::Http(r) => Summary {
                status: "success",
                bytes: r.body.len(),
            },
            // Its size is known only once it has ended.
            Outcome::Stream(_) => Summary {
                status: "success",
                bytes: 0,
            },
            Outcome::FunctionError(_) => Summary {
                status: "error",
                bytes: 0,
            },
            Outcome::Failed(_) => Summary {
                status: "failure",
                bytes: 0,
            },
        }
    }
}

impl Extensions {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Arc<Extensions> {
        let names: Vec<String> = config.extensions.iter().map(|p| name_of(p)).collect();
        let f = &config.function;
        Arc::new(Extensions {
            registry: Mutex::new(Registry::new(names.clone())),
            changed: watch::channel(0).0,
            meta: FunctionMeta {
                name: f.name.clone(),
                version: f.version.clone(),
                handler: f.handler.clone().unwrap_or_default(),
                account_id: f.account.clone(),
                arn: f.arn(),
                memory_mb: f.memory_mb,
            },
            telemetry: Arc::new(Telemetry::new(metrics.clone())),
            paths: config.extensions.clone(),
            resets: names.into_iter().map(|n| (n, Notify::new())).collect(),
            stop: CancellationToken::new(),
            shutdown_timeout: config.shutdown_timeout,
            init_timeout: config.function_ttl,
            metrics,
            running: AtomicUsize::new(0),
            started: Mutex::new(HashMap::new()),
        })
    }

    /// Starts the extensions' processes against the Runtime API at `api` (already bound).
    pub fn start(self: &Arc<Self>, api: SocketAddr, config: &Arc<Config>) {
        telemetry::install(self.telemetry.clone());
        self.telemetry.publish_with(Kind::Platform, || {
            telemetry::record(
                "platform.initStart",
                json!({ "initializationType": "on-demand", "phase": "init",
                        "functionName": self.meta.name, "functionVersion": self.meta.version }),
            )
        });
        if !self.paths.is_empty() {
            process::adopt();
        }
        for path in &self.paths {
            tokio::spawn(process::supervise(
                self.clone(),
                path.clone(),
                api,
                config.clone(),
            ));
        }
    }

    /// Runs `runtime` (a bootstrap's supervisor) once every extension has registered, or
    /// the init timeout passed, as Lambda starts the runtime after the extensions' init.
    pub async fn after_registration<F: std::future::Future<Output = ()>>(
        self: Arc<Self>,
        runtime: F,
    ) {
        let _ = tokio::time::timeout(self.init_timeout, self.wait(|r| r.all_registered())).await;
        runtime.await
    }

    /// Resolves when every extension has asked for its first event; registration closes.
    pub async fn ready(&self) {
        self.wait(|r| r.init_ready()).await;
        self.lock().close_registration();
        self.telemetry.publish_with(Kind::Platform, || {
            telemetry::record(
                "platform.initRuntimeDone",
                json!({ "initializationType": "on-demand", "phase": "init", "status": "success" }),
            )
        });
        self.telemetry.end_backlog();
        self.bump();
    }

    /// Before `runner` takes an invocation: waits until every extension finished the INVOKE
    /// of its last one; one still holding it at that invocation's deadline is reset.
    pub async fn before_next(&self, runner: RunnerId) {
        let Some((deadline, _)) = self.lock().pending(runner) else {
            return;
        };
        let settled = self.wait(|r| r.pending(runner).is_none());
        if tokio::time::timeout_at(deadline.into(), settled)
            .await
            .is_ok()
        {
            return;
        }
        let late = self
            .lock()
            .pending(runner)
            .map(|(_, n)| n)
            .unwrap_or_default();
        for name in late {
            tracing::warn!(
                extension = name,
                "extension reset: it did not finish an INVOKE by the invocation's deadline"
            );
            self.reset(&name);
        }
    }

    /// `inv` goes to `runner`: INVOKE to the subscribed extensions, `platform.start`.
    pub fn invoke(&self, runner: RunnerId, inv: &Invocation) {
        let n = self.lock().invoke(
            runner,
            &inv.id,
            inv.deadline,
            inv.deadline_ms,
            inv.event.trace_id.clone(),
        );
        if n > 0 {
            self.bump();
        }
        if self.telemetry.wanted() {
            let mut s = self.started.lock().unwrap_or_else(|e| e.into_inner());
            // Invocations that never got an answer leave at their deadline.
            let now = Instant::now();
            if s.len() >= MAX_TRACKED {
                s.retain(|_, (_, deadline)| *deadline > now);
            }
            if s.len() < MAX_TRACKED {
                s.insert(inv.id.clone(), (now, inv.deadline));
            }
        }
        self.telemetry.publish_with(Kind::Platform, || {
            telemetry::record(
                "platform.start",
                json!({ "requestId": &*inv.id, "version": self.meta.version }),
            )
        });
    }

    /// The runtime answered `request_id`: `platform.runtimeDone` and `platform.report`,
    /// whose `maxMemoryUsedMB` is the peak resident memory of the runtime's process `pid`
    /// (read only when a subscriber wants platform records).
    pub fn runtime_done(
        &self,
        request_id: &str,
        summary: Summary,
        pid: impl FnOnce() -> Option<u32>,
    ) {
        if !self.telemetry.wanted() {
            return;
        }
        let started = {
            let mut s = self.started.lock().unwrap_or_else(|e| e.into_inner());
            s.remove(request_id).map(|(at, _)| at)
        };
        let ms = started.map_or(0.0, |at| at.elapsed().as_secs_f64() * 1000.0);
        let Summary { status, bytes } = summary;
        let max_used = pid().and_then(peak_memory_mb).unwrap_or(0);
        let memory_size = self.meta.memory_mb;
        self.telemetry.publish_with(Kind::Platform, || {
            telemetry::record(
                "platform.runtimeDone",
                json!({ "requestId": request_id, "status": status,
                        "metrics": { "durationMs": ms, "producedBytes": bytes } }),
            )
        });
        self.telemetry.publish_with(Kind::Platform, || {
            telemetry::record(
                "platform.report",
                json!({ "requestId": request_id, "status": status,
                        "metrics": { "durationMs": ms, "billedDurationMs": ms.ceil() as u64,
                                     "memorySizeMB": memory_size,
                                     "maxMemoryUsedMB": max_used } }),
            )
        });
    }

    /// SIGTERM: SHUTDOWN `spindown` to every subscriber; their processes get until
    /// `SHUTDOWN_TIMEOUT` to exit, then are killed. Resolves once they are all gone.
    pub async fn shutdown(&self) {
        let deadline = Instant::now() + self.shutdown_timeout;
        self.lock().shutdown(
            None,
            ShutdownReason::Spindown,
            epoch_ms(self.shutdown_timeout),
        );
        self.bump();
        self.stop.cancel();
        // Delivered while the extensions still run, as they flush on SHUTDOWN.
        let flush = self.telemetry.flush(self.shutdown_timeout);
        let gone = self.wait(|_| self.running.load(Ordering::Relaxed) == 0);
        let _ = tokio::time::timeout_at(deadline.into(), async { tokio::join!(flush, gone) }).await;
    }

    /// Restarts the extension `name`: SHUTDOWN `timeout` if it subscribed, then its
    /// supervisor kills it.
    fn reset(&self, name: &str) {
        self.lock().shutdown(
            Some(&[name.to_owned()]),
            ShutdownReason::Timeout,
            epoch_ms(process::RESET_GRACE),
        );
        self.bump();
        if let Some((_, n)) = self.resets.iter().find(|(n, _)| n == name) {
            n.notify_one();
        } else {
            // Not one the host started (an internal extension): it just holds nothing now.
            self.lock().remove(name);
            self.bump();
        }
    }

    /// How an extension failed init (its init error, or its exit during init), if one did:
    /// the first invocations should get it while init is retried.
    pub fn init_failure(&self) -> Option<String> {
        self.lock().init_failure().map(str::to_owned)
    }

    /// Waits until `ready` holds for the registry.
    async fn wait(&self, ready: impl Fn(&Registry) -> bool) {
        let mut changed = self.changed.subscribe();
        loop {
            if ready(&self.lock()) {
                return;
            }
            if changed.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Now plus `d`, in epoch milliseconds (a `deadlineMs`).
fn epoch_ms(d: Duration) -> u64 {
    (SystemTime::now() + d)
        .duration_since(UNIX_EPOCH)
        .map(|t| t.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
