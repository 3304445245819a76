//! Serves a `bootstrap.wasm` component that exports `wasi:http/incoming-handler` 0.2: each
//! invocation's public request becomes the component's incoming request, its outgoing
//! response the reply. The component is compiled (or loaded from `WASM_CACHE_DIR`) and
//! pre-linked once; every request gets a fresh instance in its own store and sandbox: the
//! memory cap, the deadline (epoch and timer), a read-only task folder, only the Lambda
//! environment, no sockets, and outgoing HTTP only to `WASM_ALLOWED_OUTBOUND_HOSTS`
//! ([`outgoing`]). Invocations come from the Dispatcher like any other function's, one per
//! instance slot (`INVOKER_COUNT`); nothing here talks to the public endpoint.

mod cache;
mod outgoing;

use std::path::Path;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use self::outgoing::Outbound;
use super::engine::{self, Pool};
use super::output::LogStream;
use crate::config::{Config, WasmSettings};
use crate::dispatch::{
    Dispatcher, HttpReply, Invocation, InvocationError, Outcome, ResponseSize, RunnerId,
    check_response_size,
};
use crate::metrics::Metrics;
use crate::outbound::AllowList;
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
    pool: Pool,
    env: Vec<(String, String)>,
    task_root: std::path::PathBuf,
    task_root_guest: String,
    allowed: Arc<AllowList>,
    dispatcher: Arc<Dispatcher>,
    metrics: Arc<Metrics>,
    body_limit: usize,
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
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
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
        let (component, source) = cache::load(&engine, &bytes, settings.cache_dir.as_deref())?;
        match &source {
            super::cache::Source::Cache(p) => tracing::info!(
                "loaded precompiled component from cache {}; compilation skipped",
                p.display()
            ),
            super::cache::Source::Compiled { cached_at: Some(p) } => {
                tracing::info!("precompiled component cached at {}", p.display())
            }
            super::cache::Source::Compiled { cached_at: None } => {}
        }
        check_exports(&engine, &component)?;
        let mut linker = Linker::<State>::new(&engine);
        // The whole of WASI 0.2 (as `wasmtime serve -Scli`): componentize-py and jco
        // components import wasi:cli/environment and wasi:filesystem; sockets stay refused
        // by the context.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("bootstrap.wasm imports something this host does not provide")?;
        let pre = ProxyPre::new(pre)
            .map_err(anyhow::Error::from)
            .context("bootstrap.wasm does not export wasi:http/incoming-handler 0.2")?;
        super::start_ticker(&engine);
        let function = HttpFunction {
            pre,
            pool,
            env: config
                .lambda_env
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "LD_LIBRARY_PATH" | "PATH"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            task_root: config.task_root.clone(),
            task_root_guest: config.task_root.display().to_string(),
            allowed: Arc::new(settings.allowed_outbound.clone()),
            dispatcher,
            metrics,
            body_limit: config.body_limit,
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

    /// Instantiates once at start-up so that a component the pool cannot hold (too many
    /// memories, too large an initial memory) stops the start rather than every request.
    fn check_fits(&self) -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .context("cannot check the component")?;
        let mut store = self.store(0, "start-up".into(), Instant::now() + START_CHECK)?;
        rt.block_on(self.pre.instantiate_async(&mut store))
            .map_err(anyhow::Error::from)
            .context("bootstrap.wasm cannot be instantiated within the limits")?;
        Ok(())
    }

    /// Serves invocations on instance slot `runner` until `stop`.
    pub async fn run(self: Arc<Self>, runner: RunnerId, stop: CancellationToken) {
        let dispatcher = self.dispatcher.clone();
        loop {
            let inv = tokio::select! {
                inv = dispatcher.next(runner) => inv,
                _ = stop.cancelled() => return,
            };
            let id = inv.id.clone();
            let outcome = tokio::select! {
                outcome = self.serve(runner, inv) => outcome,
                // The dispatcher already answered the deadline; dropping the store stops
                // the instance.
                _ = dispatcher.reset_signal(runner).notified() => continue,
                _ = stop.cancelled() => Outcome::Failed(InvocationError::ShuttingDown),
            };
            if let Outcome::Failed(e) = &outcome {
                tracing::warn!(instance = runner, request_id = %id, "invocation failed: {e}");
            }
            let _ = dispatcher.complete_from(runner, &id, outcome);
        }
    }

    /// One request in a fresh instance: its outcome, whatever the guest does.
    async fn serve(&self, runner: RunnerId, inv: Invocation) -> Outcome {
        let ttl = inv.deadline.saturating_duration_since(Instant::now());
        let mut store = match self.store(runner, inv.id.clone(), inv.deadline) {
            Ok(s) => s,
            Err(e) => {
                let msg = format!("cannot create a sandbox: {e:#}");
                return Outcome::Failed(InvocationError::HostFailure(msg));
            }
        };
        let request = match incoming(&inv) {
            Ok(r) => r.map(|b| {
                b.map_err(
                    |never: std::convert::Infallible| -> wasmtime_wasi_http::Error {
                        match never {}
                    },
                )
            }),
            Err(e) => return Outcome::Failed(InvocationError::HostFailure(format!("{e:#}"))),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let resources = (|| -> wasmtime::Result<_> {
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(tx)?;
            Ok((req, out))
        })();
        let (req, out) = match resources {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(InvocationError::HostFailure(format!("{e:#}"))),
        };
        // The store moves into the guest's future and drops with it, closing the response
        // channel and body whatever the guest did with them.
        let pre = &self.pre;
        let guest = async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        };
        let mut guest = pin!(guest);
        let mut ended: Option<wasmtime::Result<()>> = None;
        let mut rx = rx;
        let work = async {
            tokio::select! {
                r = &mut rx => r,
                r = &mut guest => {
                    ended = Some(r);
                    // The store is gone with the guest: a response it set is in the
                    // channel, else the channel is closed.
                    (&mut rx).await
                }
            }
        };
        let head = match tokio::time::timeout_at(inv.deadline.into(), work).await {
            Ok(head) => head,
            Err(_) => return Outcome::Failed(InvocationError::Timeout(ttl)),
        };
        let response = match head {
            Ok(Ok(r)) => r,
            Ok(Err(code)) => {
                let msg = format!("the component answered an error: {code:?}");
                return Outcome::Failed(InvocationError::Trap(msg));
            }
            Err(_) => return ended_without_reply(ended, ttl),
        };
        let (parts, body) = response.into_parts();
        let limit = self.body_limit;
        // The guest writes the body while it runs: drive both, the body bounded.
        let read = async {
            let mut body = body;
            let mut buf = bytes::BytesMut::new();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Ok(data) = f.into_data() {
                            if buf.len() + data.len() > limit {
                                return Err(Some(ResponseSize::PastLimit));
                            }
                            buf.extend_from_slice(&data);
                        }
                    }
                    Err(e) => {
                        tracing::debug!("component response body: {e:?}");
                        return Err(None);
                    }
                }
            }
            Ok(buf.freeze())
        };
        let finish = async {
            match ended.take() {
                Some(r) => r,
                None => guest.as_mut().await,
            }
        };
        let both = async { tokio::join!(read, finish) };
        let (body, guest_result) = match tokio::time::timeout_at(inv.deadline.into(), both).await {
            Ok(r) => r,
            Err(_) => return Outcome::Failed(InvocationError::Timeout(ttl)),
        };
        if let Err(e) = guest_result {
            return Outcome::Failed(failure(&e, ttl));
        }
        match body {
            Ok(body) => Outcome::Http(HttpReply {
                status: parts.status,
                headers: parts.headers,
                body,
            }),
            Err(Some(size)) => match check_response_size(size, limit) {
                Err(e) => Outcome::Failed(e),
                Ok(()) => Outcome::Failed(InvocationError::ResponseTooLarge { size, limit }),
            },
            Err(None) => Outcome::Failed(InvocationError::Trap(
                "the component's response body ended with an error".into(),
            )),
        }
    }

    /// A store with a fresh sandbox for request `id`.
    fn store(
        &self,
        runner: RunnerId,
        id: Arc<str>,
        deadline: Instant,
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

/// How long the start-up instantiation may take.
const START_CHECK: std::time::Duration = std::time::Duration::from_secs(60);

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

/// The invocation's request as the component's incoming request.
fn incoming(inv: &Invocation) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
    let mut b = hyper::Request::builder();
    if let Some(head) = &inv.event.http {
        b = b.method(head.method.clone()).uri(head.uri.clone());
        if let Some(headers) = b.headers_mut() {
            *headers = head.headers.clone();
        }
    } else {
        b = b.method(http::Method::POST).uri("/");
    }
    let mut req = b
        .body(Full::new(inv.event.body.clone()))
        .context("the request cannot be passed to the component")?;
    // wasi:http needs an authority; HTTP/1.0 callers may send no Host.
    if req.uri().authority().is_none() && !req.headers().contains_key(http::header::HOST) {
        req.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
    }
    Ok(req)
}

/// The outcome of a guest that ended before setting a response.
fn ended_without_reply(ended: Option<wasmtime::Result<()>>, ttl: std::time::Duration) -> Outcome {
    match ended {
        Some(Err(e)) => Outcome::Failed(failure(&e, ttl)),
        _ => Outcome::Failed(InvocationError::Trap(
            "the component returned without setting a response".into(),
        )),
    }
}

/// What a guest error means for the invocation.
fn failure(e: &wasmtime::Error, ttl: std::time::Duration) -> InvocationError {
    if e.downcast_ref::<DeadlineExceeded>().is_some() {
        InvocationError::Timeout(ttl)
    } else if let Some(trap) = e.downcast_ref::<Trap>() {
        InvocationError::Trap(trap.to_string())
    } else {
        InvocationError::Trap(format!("{e:#}"))
    }
}
