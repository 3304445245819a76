//! aws-custom-runtime: runs AWS Lambda custom-runtime functions behind an HTTP endpoint.
//!
//! One [`dispatch::Dispatcher`] sits between thin front-ends: the public endpoint
//! ([`public`]) admits requests as invocations, the Runtime API ([`runtime_api`]) hands
//! them to native bootstraps that [`invoker::native`] supervises. [`run`] wires them.

pub mod config;
pub mod dispatch;
pub mod invoker;
pub mod lambda_error;
pub mod metrics;
pub mod public;
pub mod reply;
pub mod runtime_api;
pub mod serve;
pub mod sink;
pub mod wrapper;

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http::HeaderValue;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, FunctionKind};
use crate::dispatch::Dispatcher;
use crate::invoker::wasm::WasmFunction;
use crate::metrics::Metrics;
use crate::public::Public;
use crate::runtime_api::RuntimeApi;

/// Runs the host until `shutdown` resolves, then drains: the public endpoint stops
/// accepting, invocations in flight finish (up to `FUNCTION_TTL`), bootstraps are stopped.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let runners = config.invoker_count.max(1);
    let dispatcher = Dispatcher::new(runners, config.queue_size);
    let api = Arc::new(RuntimeApi {
        dispatcher: dispatcher.clone(),
        function_arn: HeaderValue::from_str(&config.function.arn())
            .context("the function ARN is not a valid header value")?,
        body_limit: config.body_limit,
    });

    let metrics = Arc::new(Metrics::new(&config.metric_labels));
    let api_stop = CancellationToken::new();
    if let Some(port) = config.metrics_port {
        serve_metrics(port, metrics.clone(), dispatcher.clone(), api_stop.clone()).await;
    }
    let runner_stop = CancellationToken::new();
    let mut runners_set = JoinSet::new();
    match &config.kind {
        FunctionKind::Native { bootstrap } => {
            // The Runtime API listens before any bootstrap starts.
            let addrs = listen_runtime_api(&config, &api, runners, &api_stop).await?;
            for (runner, addr) in addrs.iter().enumerate().take(config.invoker_count) {
                runners_set.spawn(invoker::native::supervise(
                    runner,
                    *addr,
                    bootstrap.clone(),
                    config.clone(),
                    dispatcher.clone(),
                    metrics.clone(),
                    runner_stop.clone(),
                ));
            }
        }
        FunctionKind::Wasm(settings) => {
            let (c, s, d, m) = (
                config.clone(),
                settings.clone(),
                dispatcher.clone(),
                metrics.clone(),
            );
            let function = tokio::task::spawn_blocking(move || WasmFunction::load(&c, &s, d, m))
                .await
                .context("loading the wasm module panicked")??;
            let function = Arc::new(function);
            for runner in 0..runners {
                runners_set.spawn(function.clone().run(runner, runner_stop.clone()));
            }
        }
    }
    let mut supervisors = runners_set;

    // The public port opens only once a bootstrap polls, so a readiness probe tells the truth.
    tokio::pin!(shutdown);
    let mut ready = dispatcher.ready();
    tokio::select! {
        _ = ready.wait_for(|r| *r) => {}
        _ = &mut shutdown => {
            tracing::info!("stopped before any bootstrap was ready");
            runner_stop.cancel();
            while supervisors.join_next().await.is_some() {}
            return Ok(());
        }
    }
    let listener = bind_public(config.public_addr).await?;
    tracing::info!(
        "function ready; public endpoint listening on {}",
        listener.local_addr()?
    );
    let sink = config.sink.clone();
    let public = Arc::new(Public {
        dispatcher: dispatcher.clone(),
        body_limit: config.body_limit,
        function_ttl: config.function_ttl,
        wrapper: config.wrapper.clone(),
        sink,
        metrics: metrics.clone(),
    });
    let public_stop = CancellationToken::new();
    let drain = config.function_ttl + Duration::from_secs(1);
    let server = tokio::spawn(serve::serve(
        listener,
        public_stop.clone(),
        Some(drain),
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
    runner_stop.cancel();
    while supervisors.join_next().await.is_some() {}
    api_stop.cancel();
    tracing::info!("stopped");
    Ok(())
}

/// Serves `/metrics` on `port` (all addresses). A port already taken is logged, not fatal:
/// the function matters more than its metrics.
async fn serve_metrics(
    port: u16,
    metrics: Arc<Metrics>,
    dispatcher: Arc<Dispatcher>,
    stop: CancellationToken,
) {
    let listener = match bind_public(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("no metrics endpoint: {e:#}");
            return;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("metrics at http://{addr}/metrics");
    }
    tokio::spawn(serve::serve(listener, stop, None, move |req| {
        let (metrics, dispatcher) = (metrics.clone(), dispatcher.clone());
        async move {
            if req.uri().path() != "/metrics" {
                return reply::error(
                    http::StatusCode::NOT_FOUND,
                    "NotFound",
                    "metrics are at /metrics",
                );
            }
            let text = metrics.render(dispatcher.queued(), dispatcher.in_flight());
            reply::with_body(
                http::StatusCode::OK,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                text.into(),
            )
        }
    }));
}

/// One Runtime API listener per bootstrap, so that the host knows which process holds
/// which invocation.
async fn listen_runtime_api(
    config: &Config,
    api: &Arc<RuntimeApi>,
    runners: usize,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<SocketAddr>> {
    let mut addrs = Vec::with_capacity(runners);
    for runner in 0..runners {
        let port = match config.internal_api_port {
            Some(base) => u16::try_from(usize::from(base) + runner)
                .context("INTERNAL_API_PORT + INVOKER_COUNT passes port 65535")?,
            None => 0,
        };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port} (INTERNAL_API_PORT)"))?;
        let addr = listener.local_addr()?;
        tracing::info!(bootstrap = runner, "Runtime API listening on {addr}");
        addrs.push(addr);
        tokio::spawn(api.clone().serve(listener, runner, stop.clone()));
    }
    Ok(addrs)
}

/// Binds the public port on every address, IPv6 and IPv4 where the host has both.
async fn bind_public(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    if addr.ip() == Ipv4Addr::UNSPECIFIED
        && let Ok(l) = TcpListener::bind((Ipv6Addr::UNSPECIFIED, addr.port())).await
    {
        return Ok(l);
    }
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (PORT)"))
}
