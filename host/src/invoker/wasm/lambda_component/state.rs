//! The state of one Lambda component instance's store: its WASI 0.2 context (the same
//! sandbox as a core module's: read-only task folder, Lambda environment, no sockets), its
//! `wasi:http` context, its memory cap and the deadline of the invocation it serves. It also
//! owns the one door to the network, [`Outbound`]: every outgoing request a component makes
//! goes through it, and the default ([`DenyAll`]) refuses them all without connecting.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

use crate::invoker::wasm::output::{LogStream, RequestTag};
use crate::invoker::wasm::tmp::TmpQuota;
use crate::invoker::wasm::tmp_component::TmpView;

/// What sending a request yields: the response, and a future that ends when its I/O does.
pub type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

/// How a component's outgoing `wasi:http` requests leave the sandbox. The host passes one
/// policy to every instance of the function; an allow-list of origins plugs in here.
pub trait Outbound: Send + Sync + 'static {
    /// Sends `request` (already checked and built by wasmtime-wasi-http), or refuses it: a
    /// refusal reaches the guest as the `error-code` the future resolves to.
    fn send(&self, request: http::Request<WasiBody>, options: Option<RequestOptions>) -> Sent;
}

/// The default: no outbound network. Each refusal is logged and reaches the guest as
/// `HTTP-request-denied`; no connection is made.
pub struct DenyAll;

impl Outbound for DenyAll {
    fn send(&self, request: http::Request<WasiBody>, _: Option<RequestOptions>) -> Sent {
        tracing::warn!(
            uri = %request.uri(),
            "outgoing request denied: this function may not call any origin"
        );
        Box::new(std::future::ready(Err(HttpError::HttpRequestDenied)))
    }
}

/// The hooks wasmtime-wasi-http calls, pointing at the function's [`Outbound`].
pub struct Hooks(pub Arc<dyn Outbound>);

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Sent {
        self.0.send(request, options)
    }
}

/// The data of one component store.
pub struct State {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub http: WasiHttpCtx,
    pub hooks: Hooks,
    pub limits: StoreLimits,
    /// The deadline of the invocation (or initialisation) under way; the epoch callback
    /// interrupts the guest past it.
    pub deadline: Option<Instant>,
    pub tag: RequestTag,
    pub stderr: LogStream,
    /// Invocations this instance answered, for the restart backoff.
    pub served: u64,
    /// The cap of its `/tmp`, when it has one.
    pub tmp: Option<TmpQuota>,
}

impl TmpView for State {
    fn tmp(&self) -> Option<&TmpQuota> {
        self.tmp.as_ref()
    }
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
            hooks: &mut self.hooks,
        }
    }
}
