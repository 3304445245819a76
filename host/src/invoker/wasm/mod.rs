//! Runs `bootstrap.wasm` in wasmtime. The engine, linker, epoch ticker and the pre-linked
//! instance template are built once; every instance gets its own store and sandbox: a
//! read-only view of the function's folder, only the Lambda environment, no sockets, a
//! memory cap and the invocation's deadline. An instance that traps, passes a limit or its
//! deadline is dropped and a fresh one takes its place; nothing it does reaches the host
//! or another instance.

mod abi;
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

use self::abi::{Feed, Guest, Shared};
use self::output::LogStream;
use super::{next_backoff, pause};
use crate::config::{Config, Isolation, WasmSettings};
use crate::dispatch::{Dispatcher, Invocation, InvocationError, Outcome, RunnerId};
use crate::lambda_error::FunctionError;
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

/// The invocation ended without an answer: why.
enum End {
    Returned,
    Exit(i32),
    Deadline,
    Trap(String),
    Reset,
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
        let (module, source) = cache::load(&engine, &bytes, settings.cache_dir.as_deref())?;
        match &source {
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
            let mut store = match self.store(runner, Feed::Queue, None) {
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
            let end = tokio::select! {
                end = self.call(&mut store) => end,
                _ = reset(&dispatcher, runner) => End::Reset,
                _ = stop.cancelled() => return,
            };
            let err = self.error_of(&end, &store);
            let failed = dispatcher.fail_runner(runner, err.clone());
            let served = store.data().served;
            drop(store);
            tracing::warn!(
                instance = runner,
                failed,
                "instance ended: {err}; starting a fresh one"
            );
            backoff = if served > 0 || started.elapsed() > Duration::from_secs(10) {
                Duration::ZERO
            } else {
                next_backoff(backoff)
            };
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
            let stdout = MemoryOutputPipe::new(self.shared.body_limit + 1);
            let built = match self.kind {
                GuestKind::Sdk => self.store(runner, Feed::One(Some(inv)), None),
                GuestKind::Stdio => {
                    self.store(runner, Feed::One(None), Some((inv, stdout.clone())))
                }
            };
            let mut store = match built {
                Ok(s) => s,
                Err(e) => {
                    let msg = format!("cannot create a sandbox: {e:#}");
                    tracing::error!(instance = runner, "{msg}");
                    dispatcher.fail_runner(runner, InvocationError::Trap(msg));
                    continue;
                }
            };
            let end = tokio::select! {
                end = self.call(&mut store) => end,
                _ = reset(&dispatcher, runner) => End::Reset,
                _ = stop.cancelled() => End::Reset,
            };
            store.data().stderr.flush_line();
            if self.kind == GuestKind::Stdio {
                let outcome = self.stdio_outcome(end, &store, stdout);
                let _ = dispatcher.complete(&id, outcome);
            } else if dispatcher.is_in_flight(&id) {
                let err = match end {
                    End::Returned if store.data().init_error.is_none() => {
                        InvocationError::RunnerExited(
                            "the function returned without answering".into(),
                        )
                    }
                    end => self.error_of(&end, &store),
                };
                dispatcher.fail_runner(runner, err);
            }
        }
    }

    /// Instantiates from the template and runs `_start`.
    async fn call(&self, store: &mut Store<Guest>) -> End {
        let result = async {
            let instance = self.pre.instantiate_async(&mut *store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
            start.call_async(&mut *store, ()).await
        }
        .await;
        match result {
            Ok(()) => End::Returned,
            Err(e) => {
                if let Some(exit) = e.downcast_ref::<I32Exit>() {
                    if exit.0 == 0 {
                        End::Returned
                    } else {
                        End::Exit(exit.0)
                    }
                } else if e.downcast_ref::<DeadlineExceeded>().is_some() {
                    End::Deadline
                } else if let Some(trap) = e.downcast_ref::<Trap>() {
                    End::Trap(format!("wasm trap: {trap}"))
                } else {
                    End::Trap(format!("{e:#}"))
                }
            }
        }
    }

    /// The error that fails an invocation an instance held when it ended.
    fn error_of(&self, end: &End, store: &Store<Guest>) -> InvocationError {
        let guest = store.data();
        let stderr = guest.stderr.tail();
        let with_stderr = |msg: String| {
            if stderr.is_empty() {
                msg
            } else {
                format!("{msg}; stderr: {stderr}")
            }
        };
        match end {
            End::Deadline | End::Reset => InvocationError::Timeout(self.shared.function_ttl),
            _ if guest.init_error.is_some() => {
                let e = guest
                    .init_error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.error_type, e.error_message));
                InvocationError::InitFailed(e.unwrap_or_default())
            }
            End::Returned => InvocationError::RunnerExited("the function's main returned".into()),
            End::Exit(code) => {
                InvocationError::RunnerExited(with_stderr(format!("exit status {code}")))
            }
            End::Trap(msg) => InvocationError::Trap(with_stderr(msg.clone())),
        }
    }

    /// A plain WASI command's outcome: stdout on success; a non-zero exit or a trap is a
    /// function error whose message is stderr.
    fn stdio_outcome(&self, end: End, store: &Store<Guest>, stdout: MemoryOutputPipe) -> Outcome {
        let body = stdout.contents();
        let limit = self.shared.body_limit;
        if body.len() > limit {
            return Outcome::Failed(InvocationError::ResponseTooLarge(body.len(), limit));
        }
        let stderr = store.data().stderr.tail();
        let error = |error_type: &str, fallback: String| {
            Outcome::FunctionError(FunctionError {
                error_type: error_type.into(),
                error_message: if stderr.is_empty() {
                    fallback
                } else {
                    stderr.clone()
                },
                stack_trace: None,
            })
        };
        match end {
            End::Returned => Outcome::Response {
                body,
                content_type: None,
            },
            End::Exit(code) => error("Runtime.ExitError", format!("exit status {code}")),
            End::Trap(msg) => error("Runtime.WasmTrap", msg),
            End::Deadline | End::Reset => {
                Outcome::Failed(InvocationError::Timeout(self.shared.function_ttl))
            }
        }
    }

    /// A store with a fresh sandbox. A plain command gets its invocation on stdin and its
    /// context in the environment.
    fn store(
        &self,
        runner: RunnerId,
        feed: Feed,
        stdio: Option<(Invocation, MemoryOutputPipe)>,
    ) -> anyhow::Result<Store<Guest>> {
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
        let mut deadline = None;
        if let Some((inv, stdout)) = &stdio {
            b.stdin(MemoryInputPipe::new(inv.event.body.clone()))
                .stdout(stdout.clone());
            for (k, v) in stdio_env(inv, &self.shared.function_arn) {
                b.env(k, v);
            }
            deadline = Some(inv.deadline);
            if let Ok(mut t) = tag.lock() {
                *t = Some(inv.id.clone());
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
            feed,
            current: stdio.map(|(inv, _)| inv),
            deadline,
            init_error: None,
            served: 0,
            tag,
            stderr,
        };
        let mut store = Store::new(self.pre.module().engine(), guest);
        store.limiter(|g| &mut g.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| match ctx.data().deadline {
            Some(d) if Instant::now() >= d => Err(wasmtime::Error::new(DeadlineExceeded)),
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        Ok(store)
    }
}

/// The context of a plain WASI command, in the environment (documented in ABI.md).
fn stdio_env(inv: &Invocation, arn: &str) -> Vec<(&'static str, String)> {
    let e = &inv.event;
    let mut env = vec![
        ("AWS_LAMBDA_REQUEST_ID", inv.id.to_string()),
        ("AWS_LAMBDA_DEADLINE_MS", inv.deadline_ms.to_string()),
        ("AWS_LAMBDA_INVOKED_FUNCTION_ARN", arn.to_owned()),
        (
            "AWS_LAMBDA_EVENT_CONTENT_TYPE",
            e.content_type
                .clone()
                .unwrap_or_else(|| "application/json".into()),
        ),
    ];
    if let Some(t) = &e.trace_id {
        env.push(("AWS_LAMBDA_TRACE_ID", t.clone()));
        env.push(("_X_AMZN_TRACE_ID", t.clone()));
    }
    if let Some(c) = &e.client_context {
        env.push(("AWS_LAMBDA_CLIENT_CONTEXT", c.clone()));
    }
    if let Some(c) = &e.cognito_identity {
        env.push(("AWS_LAMBDA_COGNITO_IDENTITY", c.clone()));
    }
    env
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
