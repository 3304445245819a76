//! Runs `bootstrap.wasm` in wasmtime. The engine, linker, epoch ticker and the pre-linked
//! instance template are built once; every instance gets its own store and sandbox: a
//! read-only view of the function's folder, only the Lambda environment, no sockets, a
//! memory cap and the invocation's deadline. An instance that traps, passes a limit or its
//! deadline is dropped and a fresh one takes its place; nothing it does reaches the host
//! or another instance.

mod abi;
mod artifact;
pub mod cache;
pub mod engine;
mod environ;
pub mod http;
pub mod lambda_component;
mod output;
mod stdio_stream;
mod stream_abi;
pub mod ticker;
pub(crate) mod tmp;
mod tmp_component;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use wasmtime::{InstancePre, Linker, Store, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use self::abi::{Fresh, Guest, Mode, Shared};
use self::environ::Environ;
use self::lambda_component::LambdaComponent;
use self::output::LogStream;
use super::{Ended, Evidence, backoff_after, next_backoff, pause};
use crate::config::{Config, Isolation, WasmSettings};
use crate::context::Context as LambdaContext;
use crate::dispatch::{Dispatcher, RunnerId};
use crate::metrics::Metrics;
use crate::tenancy::scratch::Scratch;
use tokio_util::sync::CancellationToken;

/// Which protocol the guest speaks, read from its imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestKind {
    /// Imports `lambda_v1`: loops on `next()`.
    Sdk,
    /// A plain WASI command: event on stdin, reply on stdout, one instance per invocation.
    Stdio,
}

/// A loaded `bootstrap.wasm`, of whichever kind.
pub enum WasmRunner {
    /// A core module: a `lambda_v1` SDK guest or a plain WASI command.
    Module(Arc<WasmFunction>),
    /// A component exporting the Lambda handler world (guest-sdk/wit).
    LambdaComponent(Arc<LambdaComponent>),
}

impl WasmRunner {
    /// Runs instance slot `runner` until `stop`.
    pub async fn run(self: Arc<Self>, runner: RunnerId, stop: CancellationToken) {
        match &*self {
            WasmRunner::Module(f) => f.clone().run(runner, stop).await,
            WasmRunner::LambdaComponent(c) => c.clone().run(runner, stop).await,
        }
    }
}

/// Whether `bytes` are a component exporting `wasi:http/incoming-handler` (served as a
/// `wasi:http` function) rather than a Lambda component or a core module. Read from the
/// component's top-level export names, without compiling it.
pub fn exports_http_handler(bytes: &[u8]) -> bool {
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::Version { encoding, .. }) => {
                if depth == 0 && encoding != wasmparser::Encoding::Component {
                    return false;
                }
                depth += 1;
            }
            Ok(wasmparser::Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(wasmparser::Payload::ComponentExportSection(exports)) if depth == 1 => {
                let http = exports.into_iter().any(|e| {
                    e.is_ok_and(|e| e.name.name.starts_with("wasi:http/incoming-handler@0.2"))
                });
                if http {
                    return true;
                }
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// Loads `bootstrap.wasm` as a module or as a Lambda component, by what the binary is.
pub fn load(
    config: &Config,
    settings: &WasmSettings,
    dispatcher: Arc<Dispatcher>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<WasmRunner> {
    let bytes = std::fs::read(&settings.module)
        .with_context(|| format!("cannot read {}", settings.module.display()))?;
    if lambda_component::is_component(&bytes) {
        // Outgoing requests: only to the origins of WASM_ALLOWED_OUTBOUND_HOSTS (none unset).
        let outbound = Arc::new(http::AllowListed {
            allowed: Arc::new(settings.allowed_outbound.clone()),
            ttl: config.function_ttl,
            response_limit: config.body_limit,
            metrics: metrics.clone(),
        });
        let c = LambdaComponent::load(config, settings, &bytes, outbound, dispatcher, metrics)?;
        return Ok(WasmRunner::LambdaComponent(Arc::new(c)));
    }
    let f = WasmFunction::load(config, settings, dispatcher, metrics)?;
    Ok(WasmRunner::Module(Arc::new(f)))
}

/// The environment of every guest: the Lambda environment, without the host's search paths.
fn guest_env(config: &Config) -> Vec<(String, String)> {
    config
        .lambda_env
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "LD_LIBRARY_PATH" | "PATH"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A compiled function ready to instantiate.
pub struct WasmFunction {
    pre: InstancePre<Guest>,
    tmp_limit: usize,
    /// Whether the module imports a WASI call that can leave anything in `/tmp`.
    creates_tmp_entries: bool,
    /// Whether the module can reach a preopened folder at all (see [`reaches_preopens`]).
    preopens: bool,
    pub kind: GuestKind,
    isolation: Isolation,
    memory_limit: usize,
    shared: Arc<Shared>,
    env: Environ,
    task_root: std::path::PathBuf,
    task_root_guest: String,
    metrics: Arc<Metrics>,
    pub source: cache::Source,
}

/// Compiles `settings.module` for the engine the host would serve it with and writes the
/// artifact and its integrity record beside it (`bootstrap.cwasm`, readable by all, as an
/// image's files are); returns the artifact's path. Used by `aws-custom-runtime compile`.
/// `slots` is INVOKER_COUNT: it sizes the engine's pool, as when serving. A component gets
/// the engine it is served with (the components' pool, for wasi:http and Lambda components).
pub fn precompile(slots: usize, settings: &WasmSettings) -> anyhow::Result<std::path::PathBuf> {
    let slots = slots.max(1) as u32;
    let bytes = std::fs::read(&settings.module)
        .with_context(|| format!("cannot read {}", settings.module.display()))?;
    let pool = if lambda_component::is_component(&bytes) {
        engine::Pool::components(slots, settings.memory_limit)
    } else {
        engine::Pool::modules(slots, settings.memory_limit)
    };
    let engine = engine::build(pool, settings.perf_map)?;
    let compiled = cache::precompile(&engine, &bytes)?;
    let path = cache::precompiled_path(&settings.module);
    artifact::write(&engine, &bytes, &compiled, &path, 0o644)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Marks the error the epoch callback raises at the deadline.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Whether `module` imports a WASI call through which a guest can find or use a preopened
/// folder: any `path_*` call, `fd_readdir`, or the two that name the preopens. A module that
/// imports none of them cannot reach the function folder or `/tmp`, so its instances get no
/// preopens: two opens and two closes less per instance, and nothing the guest could do
/// changes (`fd_filestat_get` on descriptor 3 is EBADF instead of a folder's metadata).
fn reaches_preopens(module: &wasmtime::Module) -> bool {
    module.imports().any(|i| {
        i.module() == "wasi_snapshot_preview1"
            && (i.name().starts_with("path_")
                || matches!(
                    i.name(),
                    "fd_readdir" | "fd_prestat_get" | "fd_prestat_dir_name"
                ))
    })
}

impl WasmFunction {
    /// Compiles (or loads from the cache) and links the module; starts the epoch ticker.
    pub fn load(
        config: &Config,
        settings: &WasmSettings,
        dispatcher: Arc<Dispatcher>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<WasmFunction> {
        let slots = config.invoker_count.max(1) as u32;
        let engine = engine::build(
            engine::Pool::modules(slots, settings.memory_limit),
            settings.perf_map,
        )?;
        let bytes = std::fs::read(&settings.module)
            .with_context(|| format!("cannot read {}", settings.module.display()))?;
        let precompiled = cache::precompiled_path(&settings.module);
        let places = cache::Places {
            precompiled: Some(&precompiled),
            cache_dir: settings.cache_dir.as_deref(),
        };
        let (module, source) = cache::load(&engine, &bytes, places)?;
        source.log("module");
        let kind = if module.imports().any(|i| i.module() == abi::MODULE) {
            GuestKind::Sdk
        } else {
            GuestKind::Stdio
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |g: &mut Guest| &mut g.wasi)?;
        abi::add_to_linker(&mut linker)?;
        tmp::add_to_linker(&mut linker)?;
        environ::add_to_linker(&mut linker)?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(anyhow::Error::from)
            .context("bootstrap.wasm imports something this host does not provide")?;
        let ticker = ticker::Ticker::start(&engine);
        tracing::info!(
            kind = ?kind,
            isolation = ?settings.isolation,
            memory_limit = settings.memory_limit,
            "WASI function ready to instantiate"
        );
        Ok(WasmFunction {
            creates_tmp_entries: tmp::can_create_entries(pre.module()),
            preopens: reaches_preopens(pre.module()),
            pre,
            tmp_limit: settings.tmp_limit,
            kind,
            isolation: settings.isolation,
            memory_limit: settings.memory_limit,
            shared: Arc::new(Shared {
                dispatcher,
                function_arn: config.function.arn(),
                body_limit: config.body_limit,
                function_ttl: config.function_ttl,
                streaming_limit: config.streaming_limit as u64,
                ticker,
            }),
            env: Environ::new(guest_env(config)),
            task_root: config.task_root.clone(),
            task_root_guest: config.task_root.display().to_string(),
            metrics,
            source,
        })
    }

    /// Whether an instance can leave anything in its `/tmp`.
    fn tmp_entries(&self) -> tmp::Entries {
        if self.creates_tmp_entries {
            tmp::Entries::Always
        } else {
            tmp::Entries::Never
        }
    }

    /// Runs instance slot `runner` until `stop`.
    pub async fn run(self: Arc<Self>, runner: RunnerId, stop: CancellationToken) {
        match (self.kind, self.isolation) {
            (GuestKind::Sdk, Isolation::Loop) => self.run_loop(runner, stop).await,
            _ => self.run_fresh(runner, stop).await,
        }
    }

    /// A long-lived instance looping on the queue; replaced when it ends.
    async fn run_loop(&self, runner: RunnerId, stop: CancellationToken) {
        let dispatcher = self.shared.dispatcher.clone();
        let mut backoff = Duration::ZERO;
        let tmp = tmp::SlotTmp::new(runner, self.tmp_entries());
        let environ = self.slot_environ(&tmp.scratch);
        while !stop.is_cancelled() {
            let started = Instant::now();
            // A new instance is a new environment: an empty /tmp.
            tmp.clear().await;
            dispatcher.env_started(runner);
            let mut store = match self.store(runner, Mode::Loop(None), &tmp.scratch, &environ) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(instance = runner, "cannot create a sandbox: {e:#}");
                    backoff = next_backoff(backoff);
                    if !pause(backoff, &stop).await {
                        return;
                    }
                    continue;
                }
            };
            let ended = tokio::select! {
                ended = self.call(&mut store) => ended,
                _ = reset(&dispatcher, runner) => Ended::Reset,
                _ = dispatcher.switch_signal(runner) => Ended::Switched,
                _ = stop.cancelled() => return,
            };
            let err = self.with_evidence(&store, &ended, |ev| ended.failure(ev));
            let failed = dispatcher.fail_runner(runner, err.clone());
            let served = store.data().served > 0;
            drop(store);
            if let Some(cause) = ended.reset_cause() {
                self.metrics.envs.reset(cause);
            }
            let tenant = dispatcher.tenant_of(runner);
            let tenant = tenant.as_ref().map(|t| t.as_str());
            if ended == Ended::Switched {
                tracing::info!(instance = runner, tenant, "instance {}", ended.describe());
                continue;
            }
            tracing::warn!(
                instance = runner,
                tenant,
                failed,
                "instance ended: {err}; starting a fresh one"
            );
            backoff = backoff_after(backoff, started.elapsed(), served);
            if !pause(backoff, &stop).await {
                return;
            }
        }
    }

    /// A fresh instance for every invocation.
    async fn run_fresh(&self, runner: RunnerId, stop: CancellationToken) {
        let dispatcher = self.shared.dispatcher.clone();
        let tmp = tmp::SlotTmp::new(runner, self.tmp_entries());
        let environ = self.slot_environ(&tmp.scratch);
        dispatcher.env_started(runner);
        loop {
            // Between invocations the environment is only its /tmp.
            let switched = || tmp.clear();
            let Some(inv) =
                next_invocation(&dispatcher, runner, &self.metrics, &stop, switched).await
            else {
                return;
            };
            let id = inv.id.clone();
            let mode = match self.kind {
                GuestKind::Sdk => Mode::Fresh(Fresh::Waiting(inv)),
                GuestKind::Stdio => Mode::Stdio {
                    invocation: inv,
                    stdout: stdio_stream::StdoutPipe::new(self.shared.body_limit),
                },
            };
            let mut store = match self.store(runner, mode, &tmp.scratch, &environ) {
                Ok(s) => s,
                Err(e) => {
                    let ended = Ended::HostFailure(format!("cannot create a sandbox: {e:#}"));
                    tracing::error!(instance = runner, "{}", ended.describe());
                    let ev = Evidence {
                        stderr: "",
                        init_error: None,
                        function_ttl: self.shared.function_ttl,
                    };
                    dispatcher.fail_runner(runner, ended.failure(&ev));
                    continue;
                }
            };
            let pipe = match &store.data().mode {
                Mode::Stdio { stdout, .. } => Some(stdout.clone()),
                _ => None,
            };
            let run = async {
                // The call first: one that ends in its first poll (most do) never registers
                // the other branches' waiters.
                tokio::select! {
                    biased;
                    ended = self.call(&mut store) => ended,
                    _ = reset(&dispatcher, runner) => Ended::Reset,
                    _ = stop.cancelled() => Ended::Stopped,
                }
            };
            let (ended, streamed) = match &pipe {
                Some(pipe) => stdio_stream::pump(run, pipe, || self.start_stream(&id)).await,
                None => (run.await, None),
            };
            store.data().stderr.flush_line();
            let limit = self.shared.body_limit;
            self.with_evidence(&store, &ended, |ev| match &store.data().mode {
                Mode::Stdio { stdout, .. } => match streamed {
                    Some(writer) => {
                        let failure = ended.command_outcome(bytes::Bytes::new(), limit, ev);
                        stdio_stream::end(writer, stdio_stream::failure(failure));
                    }
                    None => {
                        let outcome = ended.command_outcome(stdout.contents(), limit, ev);
                        let _ = dispatcher.complete(&id, outcome);
                    }
                },
                _ if dispatcher.is_in_flight(&id) => {
                    dispatcher.fail_runner(runner, ended.failure(ev));
                }
                _ => {}
            });
            // Once the invocation is answered, so that emptying /tmp adds nothing to its
            // latency: the next one finds it empty.
            drop(store);
            if self.isolation == Isolation::Invocation {
                tmp.clear().await;
            }
        }
    }

    /// Turns a command's invocation into a streamed reply; its writer, or `None` when the
    /// invocation has ended meanwhile.
    fn start_stream(&self, id: &str) -> Option<crate::dispatch::stream::StreamWriter> {
        use crate::dispatch::stream;
        let (writer, body) = stream::channel(stream::CAPACITY, self.shared.streaming_limit);
        let streamed = crate::dispatch::Streamed {
            head: None,
            content_type: None,
            body,
        };
        let outcome = crate::dispatch::Outcome::Stream(streamed);
        self.shared
            .dispatcher
            .complete(id, outcome)
            .ok()
            .map(|()| writer)
    }

    /// Instantiates from the template and runs `_start`.
    async fn call(&self, store: &mut Store<Guest>) -> Ended {
        let result = async {
            let instance = self.pre.instantiate_async(&mut *store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
            start.call_async(&mut *store, ()).await
        }
        .await;
        let Err(e) = result else {
            return Ended::Returned;
        };
        if let Some(exit) = e.downcast_ref::<I32Exit>() {
            if exit.0 == 0 {
                Ended::Returned
            } else {
                Ended::Exit(exit.0)
            }
        } else if e.downcast_ref::<DeadlineExceeded>().is_some() {
            Ended::Deadline
        } else if let Some(trap) = e.downcast_ref::<Trap>() {
            Ended::Trap(format!("wasm trap: {trap}"))
        } else {
            Ended::Trap(format!("{e:#}"))
        }
    }

    /// Runs `f` with what the instance in `store` left behind to explain `ended`. Its stderr
    /// is read only for an end that stderr explains (most invocations end cleanly).
    fn with_evidence<T>(
        &self,
        store: &Store<Guest>,
        ended: &Ended,
        f: impl FnOnce(&Evidence<'_>) -> T,
    ) -> T {
        let guest = store.data();
        let stderr = if ended.explained_by_stderr() {
            guest.stderr.tail()
        } else {
            String::new()
        };
        f(&Evidence {
            stderr: &stderr,
            init_error: guest.init_error.as_ref(),
            function_ttl: self.shared.function_ttl,
        })
    }

    /// The environment of a slot's instances: the Lambda environment, and `TMPDIR` when the
    /// slot has a `/tmp` (`scratch`).
    fn slot_environ(&self, scratch: &Option<Arc<Scratch>>) -> Arc<Environ> {
        Arc::new(match scratch {
            Some(_) => self.env.with([("TMPDIR", "/tmp")]),
            None => self.env.clone(),
        })
    }

    /// A store with a fresh sandbox and `environ`. A plain command gets its invocation on
    /// stdin and its context in the environment too.
    fn store(
        &self,
        runner: RunnerId,
        mode: Mode,
        scratch: &Option<Arc<Scratch>>,
        environ: &Arc<Environ>,
    ) -> anyhow::Result<Store<Guest>> {
        self.metrics
            .wasm_instance_starts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = Arc::new(Mutex::new(None));
        let stderr = LogStream::new("stderr", runner, tag.clone());
        let mut b = WasiCtxBuilder::new();
        b.arg("bootstrap.wasm")
            .stdout(LogStream::new("stdout", runner, tag.clone()))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if self.preopens {
            b.preopened_dir(&self.task_root, &self.task_root_guest, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot open {}", self.task_root.display()))?;
            if let Some(s) = scratch {
                b.preopened_dir(s.path(), "/tmp", FsPerms::ReadWrite)
                    .map_err(anyhow::Error::from)
                    .context("cannot open the scratch folder as /tmp")?;
            }
        }
        let mut environ = environ.clone();
        if let Mode::Stdio { invocation, stdout } = &mode {
            b.stdin(MemoryInputPipe::new(invocation.event.body.clone()))
                .stdout(stdout.clone());
            let context = LambdaContext::of(invocation, &self.shared.function_arn).env();
            environ = Arc::new(environ.with(context));
            if let Ok(mut t) = tag.lock() {
                *t = Some(invocation.id.clone());
            }
        }
        let guest = Guest {
            wasi: b.build_p1(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.memory_limit)
                .instances(1)
                .build(),
            shared: self.shared.clone(),
            runner,
            mode,
            init_error: None,
            served: 0,
            tag,
            stderr,
            tmp: None,
            stream: None,
            running: Some(self.shared.ticker.run()),
            memory: None,
            environ,
        };
        let mut store = Store::new(self.pre.module().engine(), guest);
        // Without a scratch folder the writes are still metered (against nothing on disk):
        // the wrapped imports need their originals.
        let meter = match scratch {
            Some(s) => s.clone(),
            // Nowhere to write (a read-only root file system): no /tmp, the guest still runs.
            None => Arc::new(
                Scratch::create(&format!("wasm-{runner}-fallback"))
                    .unwrap_or_else(|_| Scratch::none()),
            ),
        };
        tmp::install(&mut store, meter, self.tmp_limit);
        store.limiter(|g| &mut g.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| match ctx.data().deadline() {
            Some(d) if Instant::now() >= d => Err(wasmtime::Error::new(DeadlineExceeded)),
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        Ok(store)
    }
}

/// The next invocation for instance slot `runner` (one that keeps nothing between
/// invocations but what `reset` drops); `None` once `stop` is cancelled. A tenant switch asked
/// while it waits resets the slot's environment first: `reset` drops what the last tenant
/// left (its instance, its /tmp), then the Dispatcher learns that the slot is clean.
pub(super) async fn next_invocation<F: Future<Output = ()>>(
    dispatcher: &Dispatcher,
    runner: RunnerId,
    metrics: &Metrics,
    stop: &CancellationToken,
    mut reset: impl FnMut() -> F,
) -> Option<crate::dispatch::Invocation> {
    loop {
        tokio::select! {
            inv = dispatcher.next(runner) => return Some(inv),
            _ = dispatcher.switch_signal(runner) => {
                reset().await;
                metrics.envs.reset(crate::tenancy::stats::ResetCause::TenantSwitch);
                tracing::info!(instance = runner, "{}", Ended::Switched.describe());
                dispatcher.env_started(runner);
            }
            _ = stop.cancelled() => return None,
        }
    }
}

/// Resolves when the dispatcher resets `runner` (an invocation it held passed its deadline).
async fn reset(dispatcher: &Dispatcher, runner: RunnerId) {
    dispatcher.reset_signal(runner).notified().await
}

#[cfg(test)]
mod tests {
    use super::reaches_preopens;

    fn module(imports: &str) -> wasmtime::Module {
        let wasm = wat::parse_str(format!("(module {imports})")).unwrap();
        wasmtime::Module::new(&wasmtime::Engine::default(), wasm).unwrap()
    }

    #[test]
    fn only_a_module_importing_a_folder_call_gets_preopens() {
        let echo = r#"
            (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "environ_get" (func (param i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "fd_filestat_get" (func (param i32 i32) (result i32)))
            (import "lambda_v1" "path_open" (func))"#;
        assert!(!reaches_preopens(&module(echo)));
        for call in [
            "path_open",
            "path_filestat_get",
            "path_readlink",
            "path_unlink_file",
            "fd_readdir",
            "fd_prestat_get",
            "fd_prestat_dir_name",
        ] {
            let m = module(&format!(
                r#"{echo} (import "wasi_snapshot_preview1" "{call}" (func))"#
            ));
            assert!(reaches_preopens(&m), "{call}");
        }
    }
}
