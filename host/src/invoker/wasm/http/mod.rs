//! Serves a `bootstrap.wasm` component that exports `wasi:http/incoming-handler` 0.2: each
//! invocation's public request becomes the component's incoming request, its outgoing
//! response the reply. The component is compiled (or loaded from its `bootstrap.cwasm` or `WASM_CACHE_DIR`) and
//! pre-linked once; every request gets a fresh instance in its own store and sandbox: the
//! memory cap, the deadline (epoch and timer), a read-only task folder, the slot's capped
//! `/tmp` (emptied after every request), only the Lambda
//! environment, no sockets, and outgoing HTTP only to `WASM_ALLOWED_OUTBOUND_HOSTS`
//! (`outgoing.rs`). Invocations come from the Dispatcher like any other function's, one per
//! instance slot (`INVOKER_COUNT`); nothing here talks to the public endpoint.

mod outgoing;
mod serve;

pub use serve::buffered;

/// The allow-list (`WASM_ALLOWED_OUTBOUND_HOSTS`) for a Lambda component's outgoing requests.
pub use outgoing::AllowListed;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use self::outgoing::Outbound;
use super::engine::{self, Pool};
use super::output::LogStream;
use super::tmp::TmpQuota;
use super::tmp_component::{self, TmpView};
use crate::config::{Config, WasmSettings};
use crate::dispatch::{Dispatcher, RunnerId};
use crate::metrics::Metrics;
use crate::outbound::AllowList;
use crate::tenancy::scratch::Scratch;
use crate::wrapper::WrapperKind;

/// The export that makes a component a `wasi:http` function.
const INCOMING_HANDLER: &str = "wasi:http/incoming-handler@0.2";

/// Whether the file at `path` is a component (rather than a core module), from its header.
pub fn is_component(path: &Path) -> bool {
    let mut header = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .is_ok_and(|()| header == *b"\0asm\x0d\x00\x01\x00")
}

/// A `wasi:http` component ready to serve.
pub struct HttpFunction {
    pre: ProxyPre<State>,
    ticker: super::ticker::Ticker,
    pool: Pool,
    env: Vec<(String, String)>,
    task_root: std::path::PathBuf,
    task_root_guest: String,
    /// Size cap of each instance's `/tmp` (`WASM_TMP_LIMIT`).
    tmp_limit: usize,
    /// Whether the component imports `wasi:filesystem/preopens`: only then does it get a
    /// `/tmp`.
    reaches_folders: bool,
    allowed: Arc<AllowList>,
    dispatcher: Arc<Dispatcher>,
    metrics: Arc<Metrics>,
    body_limit: usize,
    /// The most a reply may stream (`STREAMING_RESPONSE_LIMIT`): past it the stream is cut.
    streaming_limit: usize,
    pub source: super::cache::Source,
}

/// What one request's store holds.
struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
    outbound: Outbound,
    deadline: Instant,
    /// The cap of its `/tmp`, when it has one.
    tmp: Option<TmpQuota>,
    /// The guest may run as long as its store lives (a reply's body streams after the
    /// handler returned): the epoch ticks meanwhile.
    _running: super::ticker::Running,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl TmpView for State {
    fn tmp(&self) -> Option<&TmpQuota> {
        self.tmp.as_ref()
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// The error the epoch callback raises at the deadline.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
struct DeadlineExceeded;

impl HttpFunction {
    /// Compiles (or loads from the cache) and links the component, and checks that one
    /// instance fits the pool; starts the epoch ticker.
    pub fn load(
        config: &Config,
        settings: &WasmSettings,
        dispatcher: Arc<Dispatcher>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<HttpFunction> {
        if !matches!(config.wrapper.kind, WrapperKind::Passthrough) {
            anyhow::bail!(
                "bootstrap.wasm is a wasi:http component, which sets its own status, headers \
                 and body: RESPONSE_FORMAT must be PASSTHROUGH for it (unset it)"
            );
        }
        let slots = config.invoker_count.max(1) as u32;
        let pool = Pool::components(slots, settings.memory_limit);
        let engine = engine::build(pool, settings.perf_map)?;
        let bytes = std::fs::read(&settings.module)
            .with_context(|| format!("cannot read {}", settings.module.display()))?;
        // The one cache of every wasm kind: the image's bootstrap.cwasm (from `compile`),
        // then WASM_CACHE_DIR, each verified against its integrity record.
        let precompiled = super::cache::precompiled_path(&settings.module);
        let places = super::cache::Places {
            precompiled: Some(&precompiled),
            cache_dir: settings.cache_dir.as_deref(),
        };
        let (component, source) = super::cache::load_component(&engine, &bytes, places)?;
        source.log("component");
        check_exports(&engine, &component)?;
        let mut linker = Linker::<State>::new(&engine);
        // The whole of WASI 0.2 (as `wasmtime serve -Scli`): componentize-py and jco
        // components import wasi:cli/environment and wasi:filesystem; sockets stay refused
        // by the context.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        super::tmp_component::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let reaches_folders = super::tmp_component::reaches_folders(&engine, &component);
        let pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("bootstrap.wasm imports something this host does not provide")?;
        let pre = ProxyPre::new(pre)
            .map_err(anyhow::Error::from)
            .context("bootstrap.wasm does not export wasi:http/incoming-handler 0.2")?;
        let ticker = super::ticker::Ticker::start(&engine);
        // The outgoing client builds its TLS config with the process's default provider:
        // with two providers linked in (another part of the host may bring aws-lc-rs),
        // rustls would panic at the first https request instead of choosing.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let function = HttpFunction {
            pre,
            ticker,
            pool,
            env: config
                .lambda_env
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "LD_LIBRARY_PATH" | "PATH"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            task_root: config.task_root.clone(),
            task_root_guest: config.task_root.display().to_string(),
            tmp_limit: settings.tmp_limit,
            reaches_folders,
            allowed: Arc::new(settings.allowed_outbound.clone()),
            dispatcher,
            metrics,
            body_limit: config.body_limit,
            streaming_limit: config.streaming_limit,
            source,
        };
        function.check_fits()?;
        tracing::info!(
            memory_limit = settings.memory_limit,
            allowed_outbound = %function.allowed,
            "wasi:http component ready to instantiate"
        );
        Ok(function)
    }

    /// Instantiates once at start-up (see [`engine::check_fits`]).
    fn check_fits(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + engine::START_CHECK;
        let mut store = self.store(0, "start-up".into(), deadline, &None)?;
        engine::check_fits(self.pre.instantiate_async(&mut store))
    }

    /// A store with a fresh sandbox for request `id`; its `/tmp` is `scratch`, when the
    /// component can reach folders and the slot has one.
    fn store(
        &self,
        runner: RunnerId,
        id: Arc<str>,
        deadline: Instant,
        scratch: &Option<Arc<Scratch>>,
    ) -> anyhow::Result<Store<State>> {
        self.metrics
            .wasm_instance_starts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = Arc::new(Mutex::new(Some(id.clone())));
        let mut b = WasiCtxBuilder::new();
        b.envs(&self.env)
            .arg("bootstrap.wasm")
            .stdout(LogStream::new("stdout", runner, tag.clone()))
            .stderr(LogStream::new("stderr", runner, tag))
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
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: self.pool.store_limits(),
            outbound: Outbound {
                allowed: self.allowed.clone(),
                deadline,
                response_limit: self.body_limit,
                metrics: self.metrics.clone(),
                request_id: id,
            },
            deadline,
            tmp,
            _running: self.ticker.run(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        Ok(store)
    }
}

/// Refuses a component that is not a `wasi:http` handler, naming what it exports.
fn check_exports(engine: &Engine, component: &Component) -> anyhow::Result<()> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    if exports.iter().any(|e| e.starts_with(INCOMING_HANDLER)) {
        return Ok(());
    }
    anyhow::bail!(
        "bootstrap.wasm is a component but does not export wasi:http/incoming-handler 0.2.x \
         (it exports: {})",
        if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        }
    )
}
