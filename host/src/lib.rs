//! aws-custom-runtime: runs AWS Lambda custom-runtime functions behind an HTTP endpoint,
//! with one of two invokers chosen by the function's folder: an executable `bootstrap` runs
//! as native processes served the Lambda Runtime API, a `bootstrap.wasm` runs as sandboxed
//! WebAssembly (WASI) instances in wasmtime.
//!
//! One [`dispatch::Dispatcher`] sits between thin front-ends: the public endpoint
//! ([`public`]) admits requests as invocations; the Runtime API ([`runtime_api`]) hands them
//! to the native bootstraps that [`invoker::native`] supervises, on one port with a loopback
//! address per bootstrap;
//! [`invoker::wasm`] hands them to WASI guests through host functions, in long-lived
//! instances, a fresh instance per invocation, or a plain command per invocation (event on
//! stdin, reply on stdout). [`Listeners::bind`] binds every socket and reports the
//! addresses; [`run`] serves them until shutdown. ARCHITECTURE.md follows one invocation
//! through these files.

pub mod alloc;
pub mod config;
pub mod context;
pub mod deadline;
pub mod dispatch;
pub mod extensions;
pub mod invoker;
pub mod lambda_error;
pub mod logging;
pub mod metrics;
pub mod outbound;
pub mod public;
pub mod reply;
pub mod runtime_api;
pub mod serve;
pub mod sink;
pub mod tenancy;
pub mod wrapper;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http::HeaderValue;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, FunctionKind};
use crate::dispatch::Dispatcher;
use crate::metrics::Metrics;
use crate::public::Public;
use crate::runtime_api::RuntimeApi;

/// Every socket the host serves, bound before it runs so that their addresses are known
/// up front (`ADDRESS_FILE`, tests). The public socket is bound but not listening until the
/// function is ready: until then a connection is refused, so a readiness probe tells the
/// truth and the port is still reserved.
pub struct Listeners {
    public: socket2::Socket,
    public_addr: SocketAddr,
    runtime_api: Vec<TcpListener>,
    metrics: Option<TcpListener>,
}

/// Where the host listens, as `ADDRESS_FILE` records it as soon as the sockets are bound
/// (the public one accepts connections once the function is ready).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Addresses {
    pub public: SocketAddr,
    /// One per bootstrap (native functions only): bootstrap N's is `127.0.0.(N+1)`, all on
    /// one port.
    pub runtime_api: Vec<SocketAddr>,
    pub metrics: Option<SocketAddr>,
}

impl Listeners {
    /// Binds the public port, the Runtime API (native functions) and the metrics port.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let (public, public_addr) = bind_public(config.public_addr)?;
        let runtime_api = match &config.kind {
            FunctionKind::Native { .. } => bind_runtime_api(config).await?,
            FunctionKind::Wasm(_) => Vec::new(),
        };
        let metrics = match config.metrics_port {
            Some(port) => match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await {
                Ok(l) => Some(l),
                // The function matters more than its metrics.
                Err(e) => {
                    tracing::warn!("no metrics endpoint: cannot listen on port {port}: {e}");
                    None
                }
            },
            None => None,
        };
        Ok(Listeners {
            public,
            public_addr,
            runtime_api,
            metrics,
        })
    }

    pub fn addresses(&self) -> Addresses {
        Addresses {
            public: self.public_addr,
            runtime_api: self
                .runtime_api
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .collect(),
            metrics: self.metrics.as_ref().and_then(|l| l.local_addr().ok()),
        }
    }
}

/// Runs the host on `listeners` until `shutdown` resolves, then drains: the public endpoint
/// stops accepting, invocations in flight finish (up to `FUNCTION_TTL`), runners are stopped.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let addresses = listeners.addresses();
    let Listeners {
        public: public_socket,
        runtime_api: api_listeners,
        metrics: metrics_listener,
        ..
    } = listeners;
    if let Some(path) = &config.address_file {
        write_addresses(path, &addresses)?;
    }
    let runners = config.invoker_count.max(1);
    // Unset, a bootstrap's client decides (a classic one polls once at a time; several
    // polls from one process each get their own invocation, as before).
    let per_runner = match config.kind {
        FunctionKind::Native { .. } => config
            .max_concurrency
            .unwrap_or(tokio::sync::Semaphore::MAX_PERMITS),
        FunctionKind::Wasm(_) => 1,
    };
    let metrics = Arc::new(Metrics::new(&config.metric_labels));
    let dispatcher = match config.tenancy.mode {
        tenancy::TenancyMode::None => {
            Dispatcher::with_concurrency(runners, config.queue_size, per_runner)
        }
        // An environment bound to a tenant takes one invocation at a time.
        tenancy::TenancyMode::PerTenant => Dispatcher::with_tenancy(
            runners,
            config.queue_size,
            &config.tenancy,
            metrics.envs.clone(),
        ),
    };
    let api_stop = CancellationToken::new();
    if let Some(listener) = metrics_listener {
        serve_metrics(
            listener,
            metrics.clone(),
            dispatcher.clone(),
            api_stop.clone(),
        );
    }
    let runner_stop = CancellationToken::new();
    let mut supervisors = JoinSet::new();
    // `wasi:http` components take the request itself.
    let mut request_head = false;
    let extensions = extensions::Extensions::new(&config, metrics.clone());
    match &config.kind {
        FunctionKind::Native { bootstrap } => {
            let api = Arc::new(RuntimeApi {
                dispatcher: dispatcher.clone(),
                function_arn: HeaderValue::from_str(&config.function.arn())
                    .context("the function ARN is not a valid header value")?,
                body_limit: config.body_limit,
                streaming_limit: config.streaming_limit as u64,
                read_timeout: config.function_ttl,
                extensions: Some(extensions.clone()),
            });
            // Extensions start before the bootstraps, against the first listener (bound,
            // so their first calls wait in its backlog until it serves).
            if let Some(first) = api_listeners.first() {
                extensions.start(first.local_addr()?, &config);
            }
            // The Runtime API listens before any bootstrap starts.
            for (runner, listener) in api_listeners.into_iter().enumerate() {
                let addr = listener.local_addr()?;
                tracing::info!(bootstrap = runner, "Runtime API listening on {addr}");
                tokio::spawn(api.clone().serve(listener, runner, api_stop.clone()));
                if runner >= config.invoker_count {
                    continue;
                }
                let bootstrap = invoker::native::supervise(
                    runner,
                    addr,
                    bootstrap.clone(),
                    config.clone(),
                    dispatcher.clone(),
                    metrics.clone(),
                    runner_stop.clone(),
                );
                supervisors.spawn(extensions.clone().after_registration(bootstrap));
            }
        }
        FunctionKind::Wasm(settings)
            if invoker::wasm::http::is_component(&settings.module)
                && std::fs::read(&settings.module)
                    .is_ok_and(|b| invoker::wasm::exports_http_handler(&b)) =>
        {
            let (c, s, d, m) = (
                config.clone(),
                settings.clone(),
                dispatcher.clone(),
                metrics.clone(),
            );
            let load = move || invoker::wasm::http::HttpFunction::load(&c, &s, d, m);
            let function = tokio::task::spawn_blocking(load)
                .await
                .context("loading the wasm component panicked")??;
            let function = Arc::new(function);
            for runner in 0..runners {
                supervisors.spawn(function.clone().run(runner, runner_stop.clone()));
            }
            request_head = true;
        }
        FunctionKind::Wasm(settings) => {
            let (c, s, d, m) = (
                config.clone(),
                settings.clone(),
                dispatcher.clone(),
                metrics.clone(),
            );
            let function = tokio::task::spawn_blocking(move || invoker::wasm::load(&c, &s, d, m))
                .await
                .context("loading the wasm module panicked")??;
            let function = Arc::new(function);
            for runner in 0..runners {
                supervisors.spawn(function.clone().run(runner, runner_stop.clone()));
            }
        }
    }

    // The public port opens only once a runner polls, and every extension, so a readiness
    // probe tells the truth.
    tokio::pin!(shutdown);
    let mut ready = dispatcher.ready();
    let all_ready = async {
        let _ = ready.wait_for(|r| *r).await;
        extensions.ready().await;
    };
    tokio::select! {
        _ = all_ready => {}
        _ = &mut shutdown => {
            tracing::info!("stopped before any runner was ready");
            runner_stop.cancel();
            let stopping = extensions.shutdown();
            tokio::join!(stopping, async { while supervisors.join_next().await.is_some() {} });
            api_stop.cancel();
            return Ok(());
        }
    }
    let listener = listen(public_socket)?;
    tracing::info!(
        "function ready; public endpoint listening on {}",
        addresses.public
    );
    let mut public = Public::new(&config, dispatcher.clone(), metrics.clone());
    public.request_head = request_head;
    let public = Arc::new(public);
    let public_stop = CancellationToken::new();
    let options = serve::Options {
        drain: Some(config.function_ttl + Duration::from_secs(1)),
        write_timeout: Some(config.response_write_timeout),
    };
    let server = tokio::spawn(serve::serve(
        listener,
        public_stop.clone(),
        options,
        move |req| {
            let public = public.clone();
            async move { public.handle(req).await }
        },
    ));

    shutdown.await;
    tracing::info!(
        in_flight = dispatcher.in_flight(),
        queued = dispatcher.queued(),
        "shutting down: no new requests; finishing the ones in flight"
    );
    public_stop.cancel();
    let _ = server.await;
    // The runtime gets SIGTERM and the extensions SHUTDOWN at once; both within
    // SHUTDOWN_TIMEOUT.
    runner_stop.cancel();
    let stopping = extensions.shutdown();
    tokio::join!(stopping, async {
        while supervisors.join_next().await.is_some() {}
    });
    api_stop.cancel();
    tracing::info!("stopped");
    Ok(())
}

/// Serves `/metrics`.
fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    dispatcher: Arc<Dispatcher>,
    stop: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("metrics at http://{addr}/metrics");
    }
    let options = serve::Options::default();
    tokio::spawn(serve::serve(listener, stop, options, move |req| {
        let (metrics, dispatcher) = (metrics.clone(), dispatcher.clone());
        async move {
            let reply = if req.uri().path() != "/metrics" {
                reply::error(
                    http::StatusCode::NOT_FOUND,
                    "NotFound",
                    "metrics are at /metrics",
                )
            } else {
                let text = metrics.render(dispatcher.queued(), dispatcher.in_flight());
                reply::with_body(
                    http::StatusCode::OK,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    text.into(),
                )
            };
            reply.map(serve::Served::from)
        }
    }));
}

/// The Runtime API: one port, one loopback address per bootstrap, so that the host knows
/// which process holds which invocation; one with `INVOKER_COUNT=0`, for a runtime started
/// outside the host.
async fn bind_runtime_api(config: &Config) -> anyhow::Result<Vec<TcpListener>> {
    runtime_api::bind::bind(config.invoker_count.max(1), config.internal_api_port).await
}

/// Binds the public port on every address (IPv6 and IPv4 where the host has both) without
/// listening yet.
fn bind_public(addr: SocketAddr) -> anyhow::Result<(socket2::Socket, SocketAddr)> {
    use socket2::{Domain, Socket, Type};
    let bind = |addr: SocketAddr, dual: bool| -> std::io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        if dual {
            socket.set_only_v6(false)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        Ok(socket)
    };
    let socket = if addr.ip() == Ipv4Addr::UNSPECIFIED {
        let any6 = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, addr.port()));
        bind(any6, true).or_else(|_| bind(addr, false))
    } else {
        bind(addr, false)
    }
    .with_context(|| format!("cannot listen on {addr} (PORT)"))?;
    let bound = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .context("the public socket has no address")?;
    Ok((socket, bound))
}

/// Starts listening with the system's largest backlog, so that a burst of connects is not
/// left waiting for SYN retries.
fn listen(socket: socket2::Socket) -> anyhow::Result<TcpListener> {
    socket
        .listen(backlog())
        .context("cannot listen on the public port")?;
    TcpListener::from_std(socket.into()).context("cannot serve the public port")
}

/// `net.core.somaxconn` (the kernel caps any larger backlog to it), 4096 when unreadable.
fn backlog() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// Writes `addresses` as JSON to `path`, atomically (a reader never sees half a file).
fn write_addresses(path: &std::path::Path, addresses: &Addresses) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_vec(addresses)?;
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write ADDRESS_FILE {}", path.display()))
}
