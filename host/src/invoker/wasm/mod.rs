//! Runs `bootstrap.wasm` in wasmtime. The engine, linker, epoch ticker and the pre-linked
//! instance template are built once; every instance gets its own store and sandbox: a
//! read-only view of the function's folder, only the Lambda environment, no sockets, a
//! memory cap and the invocation's deadline. An instance that traps, passes a limit or its
//! deadline is dropped and a fresh one takes its place; nothing it does reaches the host
//! or another instance.

mod abi;
mod artifact;
pub mod cache;
mod output;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use wasmtime::{
    Engine, InstanceAllocationStrategy, InstancePre, Linker, PoolingAllocationConfig, Store,
    StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use self::abi::{Fresh, Guest, Mode, Shared};
use self::output::LogStream;
use super::{Ended, Evidence, backoff_after, next_backoff, pause};
use crate::config::{Config, Isolation, WasmSettings};
use crate::context::Context as LambdaContext;
use crate::dispatch::{Dispatcher, RunnerId};
use crate::metrics::Metrics;
use tokio_util::sync::CancellationToken;

/// How often the epoch advances: a guest past its deadline is stopped within this.
const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Which protocol the guest speaks, read from its imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestKind {
    /// Imports `lambda_v1`: loops on `next()`.
    Sdk,
    /// A plain WASI command: event on stdin, reply on stdout, one instance per invocation.
    Stdio,
}

/// A compiled function ready to instantiate.
pub struct WasmFunction {
    pre: InstancePre<Guest>,
    pub kind: GuestKind,
    isolation: Isolation,
    memory_limit: usize,
    shared: Arc<Shared>,
    env: Vec<(String, String)>,
    task_root: std::path::PathBuf,
    task_root_guest: String,
    metrics: Arc<Metrics>,
    pub source: cache::Source,
}

/// Compiles `settings.module` for the engine the host would serve it with and writes the
/// artifact and its integrity record beside it (`bootstrap.cwasm`, readable by all, as an
/// image's files are); returns the artifact's path. Used by `aws-custom-runtime compile`.
/// `slots` is INVOKER_COUNT: it sizes the engine's pool, as when serving.
pub fn precompile(slots: usize, settings: &WasmSettings) -> anyhow::Result<std::path::PathBuf> {
    let slots = slots.max(1) as u32;
    let engine = engine(slots, settings.memory_limit, settings.perf_map)?;
    let bytes = std::fs::read(&settings.module)
        .with_context(|| format!("cannot read {}", settings.module.display()))?;
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

impl WasmFunction {
    /// Compiles (or loads from the cache) and links the module; starts the epoch ticker.
    pub fn load(
        config: &Config,
        settings: &WasmSettings,
        dispatcher: Arc<Dispatcher>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<WasmFunction> {
        let slots = config.invoker_count.max(1) as u32;
        let engine = engine(slots, settings.memory_limit, settings.perf_map)?;
        let bytes = std::fs::read(&settings.module)
            .with_context(|| format!("cannot read {}", settings.module.display()))?;
        let precompiled = cache::precompiled_path(&settings.module);
        let places = cache::Places {
            precompiled: Some(&precompiled),
            cache_dir: settings.cache_dir.as_deref(),
        };
        let (module, source) = cache::load(&engine, &bytes, places)?;
        match &source {
            cache::Source::Precompiled(p) => tracing::info!(
                "loaded precompiled artifact {}; compilation skipped",
                p.display()
            ),
            cache::Source::Cache(p) => tracing::info!(
                "loaded precompiled module from cache {}; compilation skipped",
                p.display()
            ),
            cache::Source::Compiled { cached_at: Some(p) } => {
                tracing::info!("precompiled module cached at {}", p.display())
            }
            cache::Source::Compiled { cached_at: None } => {}
        }
        let kind = if module.imports().any(|i| i.module() == abi::MODULE) {
            GuestKind::Sdk
        } else {
            GuestKind::Stdio
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |g: &mut Guest| &mut g.wasi)?;
        abi::add_to_linker(&mut linker)?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(anyhow::Error::from)
            .context("bootstrap.wasm imports something this host does not provide")?;
        start_ticker(&engine);
        tracing::info!(
            kind = ?kind,
            isolation = ?settings.isolation,
            memory_limit = settings.memory_limit,
            "WASI function ready to instantiate"
        );
        Ok(WasmFunction {
            pre,
            kind,
            isolation: settings.isolation,
            memory_limit: settings.memory_limit,
            shared: Arc::new(Shared {
                dispatcher,
                function_arn: config.function.arn(),
                body_limit: config.body_limit,
                function_ttl: config.function_ttl,
            }),
            env: config
                .lambda_env
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "LD_LIBRARY_PATH" | "PATH"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            task_root: config.task_root.clone(),
            task_root_guest: config.task_root.display().to_string(),
            metrics,
            source,
        })
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
        while !stop.is_cancelled() {
            let started = Instant::now();
            let mut store = match self.store(runner, Mode::Loop(None)) {
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
                _ = stop.cancelled() => return,
            };
            let err = self.with_evidence(&store, |ev| ended.failure(ev));
            let failed = dispatcher.fail_runner(runner, err.clone());
            let served = store.data().served > 0;
            drop(store);
            tracing::warn!(
                instance = runner,
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
        loop {
            let inv = tokio::select! {
                inv = dispatcher.next(runner) => inv,
                _ = stop.cancelled() => return,
            };
            let id = inv.id.clone();
            let mode = match self.kind {
                GuestKind::Sdk => Mode::Fresh(Fresh::Waiting(inv)),
                GuestKind::Stdio => Mode::Stdio {
                    invocation: inv,
                    // One byte more than allowed tells an oversized answer from a full one.
                    stdout: MemoryOutputPipe::new(self.shared.body_limit + 1),
                },
            };
            let mut store = match self.store(runner, mode) {
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
            let ended = tokio::select! {
                ended = self.call(&mut store) => ended,
                _ = reset(&dispatcher, runner) => Ended::Reset,
                _ = stop.cancelled() => Ended::Stopped,
            };
            store.data().stderr.flush_line();
            let limit = self.shared.body_limit;
            self.with_evidence(&store, |ev| match &store.data().mode {
                Mode::Stdio { stdout, .. } => {
                    let outcome = ended.command_outcome(stdout.contents(), limit, ev);
                    let _ = dispatcher.complete(&id, outcome);
                }
                _ if dispatcher.is_in_flight(&id) => {
                    dispatcher.fail_runner(runner, ended.failure(ev));
                }
                _ => {}
            });
        }
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

    /// Runs `f` with what the instance in `store` left behind to explain its end.
    fn with_evidence<T>(&self, store: &Store<Guest>, f: impl FnOnce(&Evidence<'_>) -> T) -> T {
        let guest = store.data();
        let stderr = guest.stderr.tail();
        f(&Evidence {
            stderr: &stderr,
            init_error: guest.init_error.as_ref(),
            function_ttl: self.shared.function_ttl,
        })
    }

    /// A store with a fresh sandbox. A plain command gets its invocation on stdin and its
    /// context in the environment.
    fn store(&self, runner: RunnerId, mode: Mode) -> anyhow::Result<Store<Guest>> {
        self.metrics
            .wasm_instance_starts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = Arc::new(Mutex::new(None));
        let stderr = LogStream::new("stderr", runner, tag.clone());
        let mut b = WasiCtxBuilder::new();
        b.envs(&self.env)
            .arg("bootstrap.wasm")
            .stdout(LogStream::new("stdout", runner, tag.clone()))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        b.preopened_dir(&self.task_root, &self.task_root_guest, FsPerms::ReadOnly)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot open {}", self.task_root.display()))?;
        if let Mode::Stdio { invocation, stdout } = &mode {
            b.stdin(MemoryInputPipe::new(invocation.event.body.clone()))
                .stdout(stdout.clone());
            for (k, v) in LambdaContext::of(invocation, &self.shared.function_arn).env() {
                b.env(k, v);
            }
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
        };
        let mut store = Store::new(self.pre.module().engine(), guest);
        store.limiter(|g| &mut g.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| match ctx.data().deadline() {
            Some(d) if Instant::now() >= d => Err(wasmtime::Error::new(DeadlineExceeded)),
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        Ok(store)
    }
}

/// Resolves when the dispatcher resets `runner` (an invocation it held passed its deadline).
async fn reset(dispatcher: &Dispatcher, runner: RunnerId) {
    dispatcher.reset_signal(runner).notified().await
}

/// One engine for the function: epoch interruption, and the pooling allocator with
/// copy-on-write memory images and resident pages kept between instances, so that a
/// fresh instance costs microseconds.
fn engine(slots: u32, memory_limit: usize, perf_map: bool) -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    let page = 64 * 1024;
    let max_memory = memory_limit.div_ceil(page) * page;
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .total_stacks(slots)
        .max_memory_size(max_memory)
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(64 * 1024)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut cfg = wasmtime::Config::new();
    cfg.epoch_interruption(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if perf_map {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    match Engine::new(&cfg) {
        Ok(e) => Ok(e),
        Err(e) => {
            tracing::warn!("pooling allocator unavailable ({e:#}); allocating on demand");
            cfg.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&cfg).map_err(|e| anyhow::anyhow!("cannot create the wasm engine: {e:#}"))
        }
    }
}

/// Advances the engine's epoch every tick for as long as the engine lives.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(
            "cannot start the epoch ticker: deadlines will only hold at host calls: {e}"
        );
    }
}
