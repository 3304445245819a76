//! Runs a Lambda component: a `bootstrap.wasm` component that exports the
//! `lambda:function/handler` interface of guest-sdk/wit. The host takes each invocation from
//! the Dispatcher and calls `handle(event, context)`; the result becomes the invocation's
//! outcome, so wrappers, sink and metrics work as for every other function. The component
//! template (`InstancePre`) is built once; every instance gets its own store, in a slot of
//! the engine's instance pool (copy-on-write memory, resident pages kept), with the same
//! sandbox as a core module (read-only task folder, the slot's capped `/tmp`, Lambda
//! environment only, no sockets, memory cap, epoch deadline). `WASM_ISOLATION=loop` keeps one instance per slot for many
//! invocations, `invocation` makes a fresh one for each. A component that also exports
//! `wasi:cli/run` (a Rust `main`) gets it called once per instance before its first
//! invocation: that is its initialisation. This module must not decide HTTP shapes or
//! statuses: it only turns a call's end into an `Outcome` or an `Ended`.

mod convert;
mod state;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::bindings::CommandIndices;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;

use self::convert::{ended_by, outcome, wit_context};
pub use self::state::{DenyAll, Outbound};
use self::state::{Hooks, State};
use super::abi::Shared;
use super::engine::Pool;
use super::output::LogStream;
use super::tmp::SlotTmp;
use super::tmp_component;
use super::{DeadlineExceeded, cache};
use crate::config::{Config, Isolation, WasmSettings};
use crate::dispatch::{Dispatcher, Invocation, InvocationError, Outcome, RunnerId};
use crate::invoker::{Ended, Evidence, backoff_after, pause};
use crate::metrics::Metrics;
use crate::tenancy::scratch::Scratch;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit",
        world: "lambda:function/lambda-function",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [serde::Deserialize],
        with: {
            "wasi": wasmtime_wasi::p2::bindings,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        },
    });
}

use bindings::{LambdaFunction, LambdaFunctionIndices};

/// The interface a Lambda component exports, as its binary names it.
pub const HANDLER_EXPORT: &str = "lambda:function/handler";

/// Whether `bytes` is a component (not a core module): the binary's layer field.
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00])
}

/// Whether `component` exports the Lambda handler interface (at any 0.1 version).
pub fn exports_handler(engine: &Engine, component: &Component) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name.split('@').next() == Some(HANDLER_EXPORT))
}

/// A compiled Lambda component, ready to instantiate.
pub struct LambdaComponent {
    pre: wasmtime::component::InstancePre<State>,
    indices: LambdaFunctionIndices,
    /// Present when the component exports `wasi:cli/run`: its initialisation.
    init: Option<CommandIndices>,
    isolation: Isolation,
    /// The engine's instance pool; its slot's limits bound every store.
    pool: Pool,
    shared: Arc<Shared>,
    env: Vec<(String, String)>,
    task_root: std::path::PathBuf,
    task_root_guest: String,
    /// Size cap of each instance's `/tmp` (`WASM_TMP_LIMIT`).
    tmp_limit: usize,
    /// Whether the component imports `wasi:filesystem/preopens`: only then does it get a
    /// `/tmp` (see [`tmp_component::reaches_folders`]).
    reaches_folders: bool,
    outbound: Arc<dyn Outbound>,
    metrics: Arc<Metrics>,
    pub source: cache::Source,
}

/// A live instance: its store, and its exports once instantiated and initialised.
struct Live {
    store: Store<State>,
    function: Option<LambdaFunction>,
}

/// Why an invocation got no answer from the component.
enum Failure {
    /// The instance could not be made or initialised.
    Init(Ended),
    /// The call to `handle` ended without a result.
    Call(Ended),
}

impl LambdaComponent {
    /// Compiles (or loads from the cache) and links `bytes`, a component exporting the
    /// handler; outgoing requests go to `outbound`.
    pub fn load(
        config: &Config,
        settings: &WasmSettings,
        bytes: &[u8],
        outbound: Arc<dyn Outbound>,
        dispatcher: Arc<Dispatcher>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<LambdaComponent> {
        let slots = config.invoker_count.max(1) as u32;
        let pool = Pool::components(slots, settings.memory_limit);
        let engine = super::engine::build(pool, settings.perf_map)?;
        let precompiled = cache::precompiled_path(&settings.module);
        let places = cache::Places {
            precompiled: Some(&precompiled),
            cache_dir: settings.cache_dir.as_deref(),
        };
        let (component, source) = cache::load_component(&engine, bytes, places)?;
        source.log("component");
        if !exports_handler(&engine, &component) {
            anyhow::bail!(
                "bootstrap.wasm is a component but does not export {HANDLER_EXPORT} \
                 (guest-sdk/wit): this host runs such components as Lambda functions"
            );
        }
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        tmp_component::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let reaches_folders = tmp_component::reaches_folders(&engine, &component);
        let pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("bootstrap.wasm imports something this host does not provide")?;
        let indices = LambdaFunctionIndices::new(&pre)
            .map_err(anyhow::Error::from)
            .context("bootstrap.wasm does not export the Lambda handler as guest-sdk/wit says")?;
        let init = CommandIndices::new(&pre).ok();
        let ticker = super::ticker::Ticker::start(&engine);
        let function = LambdaComponent {
            pre,
            indices,
            init,
            isolation: settings.isolation,
            pool,
            shared: Arc::new(Shared {
                dispatcher,
                function_arn: config.function.arn(),
                body_limit: config.body_limit,
                streaming_limit: config.streaming_limit as u64,
                function_ttl: config.function_ttl,
                ticker,
            }),
            env: super::guest_env(config),
            task_root: config.task_root.clone(),
            task_root_guest: config.task_root.display().to_string(),
            tmp_limit: settings.tmp_limit,
            reaches_folders,
            outbound,
            metrics,
            source,
        };
        // One instance at start-up (its `wasi:cli/run` is not called): a component the pool
        // cannot hold stops the start instead of failing every invocation.
        let mut store = function.store(0, &None)?;
        store.data_mut().deadline = Some(Instant::now() + super::engine::START_CHECK);
        let running = function.shared.ticker.run();
        super::engine::check_fits(function.pre.instantiate_async(&mut store))?;
        drop((running, store));
        tracing::info!(
            isolation = ?settings.isolation,
            memory_limit = settings.memory_limit,
            init = function.init.is_some(),
            "Lambda component ready to instantiate"
        );
        Ok(function)
    }

    /// Runs instance slot `runner` until `stop`: takes invocations one at a time and hands
    /// each to its instance (kept between invocations in `loop` isolation).
    pub async fn run(self: Arc<Self>, runner: RunnerId, stop: CancellationToken) {
        let dispatcher = self.shared.dispatcher.clone();
        let mut live: Option<Live> = None;
        let mut backoff = Duration::ZERO;
        // Emptied whenever the instance is dropped: a new instance is a new environment.
        let tmp = SlotTmp::new(runner, tmp_component::entries(self.reaches_folders));
        dispatcher.env_started(runner);
        loop {
            // Another tenant gets a new instance and an empty /tmp.
            let switched = || {
                live = None;
                tmp.clear()
            };
            let Some(inv) =
                super::next_invocation(&dispatcher, runner, &self.metrics, &stop, switched).await
            else {
                return;
            };
            let started = Instant::now();
            // The component's code runs only inside `invoke`.
            let running = self.shared.ticker.run();
            let result = tokio::select! {
                biased; // the call first, as in the core module's fresh path
                r = self.invoke(&mut live, runner, &inv, &tmp.scratch) => r,
                _ = reset(&dispatcher, runner) => Err(Failure::Call(Ended::Reset)),
                _ = stop.cancelled() => Err(Failure::Call(Ended::Stopped)),
            };
            drop(running);
            if let Some(l) = &live {
                l.store.data().stderr.flush_line();
            }
            match result {
                Ok(outcome) => {
                    // An invocation already timed out has nobody left to answer.
                    let _ = dispatcher.complete(&inv.id, outcome);
                    if let Some(l) = live.as_mut() {
                        l.store.data_mut().deadline = None;
                        l.store.data_mut().served += 1;
                    }
                    if self.isolation == Isolation::Invocation {
                        // Once answered, so that emptying /tmp adds nothing to its latency.
                        live = None;
                        tmp.clear().await;
                    }
                    backoff = Duration::ZERO;
                }
                Err(failure) => {
                    let served = live.as_ref().is_some_and(|l| l.store.data().served > 0);
                    let stderr = live
                        .as_ref()
                        .map(|l| l.store.data().stderr.tail())
                        .unwrap_or_default();
                    live = None;
                    tmp.clear().await;
                    let err = self.failure(&failure, &stderr);
                    tracing::warn!(
                        instance = runner,
                        "component instance ended: {err}; a fresh one takes the next invocation"
                    );
                    dispatcher.fail_runner(runner, err);
                    if matches!(failure, Failure::Call(Ended::Stopped)) {
                        return;
                    }
                    // The next instance is a new environment, bound to no tenant yet.
                    dispatcher.env_started(runner);
                    backoff = backoff_after(backoff, started.elapsed(), served);
                    if !pause(backoff, &stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// Serves `inv` on the live instance, making (and initialising) one first if needed.
    async fn invoke(
        &self,
        live: &mut Option<Live>,
        runner: RunnerId,
        inv: &Invocation,
        scratch: &Option<Arc<Scratch>>,
    ) -> Result<Outcome, Failure> {
        if live.is_none() {
            let store = self.store(runner, scratch).map_err(|e| {
                Failure::Init(Ended::HostFailure(format!(
                    "cannot create a sandbox: {e:#}"
                )))
            })?;
            *live = Some(Live {
                store,
                function: None,
            });
        }
        let Some(Live { store, function }) = live.as_mut() else {
            return Err(Failure::Init(Ended::HostFailure("no instance".into())));
        };
        store.data_mut().deadline = Some(inv.deadline);
        if let Ok(mut tag) = store.data().tag.lock() {
            *tag = Some(inv.id.clone());
        }
        store.data().stderr.clear_tail();
        let handler = match function {
            Some(f) => f,
            None => function.insert(self.instantiate(store).await.map_err(Failure::Init)?),
        };
        let context = wit_context(inv, &self.shared.function_arn);
        let result = handler
            .lambda_function_handler()
            .call_handle(&mut *store, &inv.event.body, &context)
            .await
            .map_err(|e| Failure::Call(ended_by(&e)))?;
        Ok(outcome(result, self.shared.body_limit))
    }

    /// Instantiates the template in `store` and runs the component's `wasi:cli/run`, if it
    /// has one.
    async fn instantiate(&self, store: &mut Store<State>) -> Result<LambdaFunction, Ended> {
        let instance = self
            .pre
            .instantiate_async(&mut *store)
            .await
            .map_err(|e| ended_by(&e))?;
        let function = self
            .indices
            .load(&mut *store, &instance)
            .map_err(|e| ended_by(&e))?;
        if let Some(init) = &self.init {
            let command = init
                .load(&mut *store, &instance)
                .map_err(|e| ended_by(&e))?;
            match command.wasi_cli_run().call_run(&mut *store).await {
                Ok(Ok(())) => {}
                Ok(Err(())) => return Err(Ended::Exit(1)),
                Err(e) => return Err(ended_by(&e)),
            }
        }
        Ok(function)
    }

    /// The error an invocation ends with when the component gave no answer.
    fn failure(&self, failure: &Failure, stderr: &str) -> InvocationError {
        let ev = Evidence {
            stderr,
            init_error: None,
            function_ttl: self.shared.function_ttl,
        };
        match failure {
            Failure::Init(ended @ (Ended::Returned | Ended::Exit(_) | Ended::Trap(_))) => {
                let msg = ended.describe();
                InvocationError::InitFailed(if stderr.is_empty() {
                    msg
                } else {
                    format!("{msg}; stderr: {stderr}")
                })
            }
            Failure::Init(ended) | Failure::Call(ended) => ended.failure(&ev),
        }
    }

    /// A store with a fresh sandbox; its `/tmp` is `scratch`, when the component can reach
    /// folders and the slot has one.
    fn store(
        &self,
        runner: RunnerId,
        scratch: &Option<Arc<Scratch>>,
    ) -> anyhow::Result<Store<State>> {
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
        let scratch = scratch.as_ref().filter(|_| self.reaches_folders);
        let tmp = tmp_component::preopen(&mut b, scratch, self.tmp_limit)?;
        let state = State {
            wasi: b.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: Hooks(self.outbound.clone()),
            limits: self.pool.store_limits(),
            deadline: None,
            tag,
            stderr,
            served: 0,
            tmp,
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| match ctx.data().deadline {
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
