//! Guest SDK for AWS Lambda functions compiled to `wasm32-wasip1` and run by
//! aws-custom-runtime's wasm host.
//!
//! The API mirrors the [`lambda_runtime`](https://docs.rs/lambda_runtime) crate, so porting a
//! function is changing its import line:
//!
//! ```no_run
//! use lambda_wasi::{Error, LambdaEvent, service_fn};
//! use serde_json::Value;
//!
//! async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
//!     Ok(event.payload)
//! }
//!
//! // With tokio (`features = ["macros", "rt"]`) as on AWS:
//! // #[tokio::main(flavor = "current_thread")]
//! // async fn main() -> Result<(), Error> { lambda_wasi::run(service_fn(handler)).await }
//! // or without any async runtime:
//! fn main() -> Result<(), Error> {
//!     lambda_wasi::block_on(lambda_wasi::run(service_fn(handler)))
//! }
//! ```
//!
//! Built for `wasm32-wasip1`, the SDK talks to the host through the `lambda_v1` imports
//! described in `ABI.md`. Built for `wasm32-wasip2`, the function is a component of the
//! `lambda:function` world (`wit/`): `main` runs once per instance and [`run`] registers the
//! handler, which the host then calls once per invocation. On other targets it still
//! compiles, but [`run`] returns an error at once.

// Elsewhere than wasm32-wasip1 only the tests drive the invocation loop; the wasip1 build
// (clippy with `--target wasm32-wasip1`) still reports real dead code.
#![cfg_attr(any(not(target_arch = "wasm32"), target_env = "p2"), allow(dead_code))]

mod abi;
#[cfg(all(target_arch = "wasm32", target_env = "p2"))]
mod component;
mod context;
mod deserializer;
mod diagnostic;
mod event;
mod executor;
mod runtime;
mod service;
pub mod streaming;

pub use context::{ClientApplication, ClientContext, CognitoIdentity, Config, Context};
pub use diagnostic::Diagnostic;
pub use event::LambdaEvent;
pub use executor::block_on;
pub use service::{Service, ServiceFn, service_fn};

use serde::{Serialize, de::DeserializeOwned};
use std::fmt::Debug;

/// The error type handlers and [`run`] may return, as in `lambda_runtime`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Serves invocations with `handler` until the host shuts the instance down, then returns
/// `Ok(())`: let `main` return then. In `invocation` isolation the host shuts the instance down
/// after its one invocation, so the same module serves both isolation modes.
///
/// Each payload is deserialized from JSON into `A` (a payload that does not fit becomes a
/// function error, the handler is not called) and each response serialized to JSON. A handler
/// error becomes a function error whose `errorType`/`errorMessage` come from its
/// [`Diagnostic`].
///
/// Host calls block, so the future is ready whenever the handler's future is: await it under
/// any executor, such as tokio's `current_thread` runtime or [`block_on`].
///
/// Built for `wasm32-wasip2`, `run` keeps the handler and returns at once; the host then calls
/// it once per invocation, each call driven by [`block_on`] (not by the executor `main` used).
///
/// # Errors
///
/// Outside aws-custom-runtime's wasm host (any target but wasm32), at once. Also when the
/// handler, as a [`Service`], fails to become ready.
pub async fn run<A, F, R>(handler: F) -> Result<(), Error>
where
    F: Service<LambdaEvent<A>, Response = R> + 'static,
    F::Error: Into<Diagnostic> + Debug,
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    #[cfg(all(target_arch = "wasm32", target_env = "p2"))]
    {
        component::register(handler, std::sync::Arc::new(Config::from_env()));
        Ok(())
    }
    #[cfg(all(target_arch = "wasm32", not(target_env = "p2")))]
    {
        let config = std::sync::Arc::new(Config::from_env());
        runtime::run_on(&mut abi::WasmHost, handler, config).await
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        drop(handler);
        Err(NOT_IN_HOST.into())
    }
}

#[cfg(not(target_arch = "wasm32"))]
const NOT_IN_HOST: &str = "lambda_wasi only runs inside aws-custom-runtime's wasm host: build \
                           the function with `--target wasm32-wasip1` and deploy the .wasm as \
                           bootstrap.wasm";

/// [`run`] for a synchronous handler, with no async runtime:
///
/// ```no_run
/// use lambda_wasi::{Error, LambdaEvent};
/// use serde_json::Value;
///
/// fn main() -> Result<(), Error> {
///     lambda_wasi::run_sync(|event: LambdaEvent<Value>| Ok::<_, Error>(event.payload))
/// }
/// ```
///
/// # Errors
///
/// As [`run`].
pub fn run_sync<A, F, R, E>(mut handler: F) -> Result<(), Error>
where
    F: FnMut(LambdaEvent<A>) -> Result<R, E> + 'static,
    E: Into<Diagnostic> + Debug,
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    block_on(run(service_fn(move |event| {
        std::future::ready(handler(event))
    })))
}

/// Reports that the function could not initialise (say, its configuration is invalid). Call it
/// before [`run`], then return from `main` without calling `run`: the host fails the pending
/// invocation with this error, as AWS does after a runtime posts to `/init/error`.
///
/// Built for `wasm32-wasip2`, it writes the error to stderr and exits with status 1 (it does
/// not return): the host fails the invocation as an initialisation error with that text.
pub fn report_init_error(error: impl Into<Diagnostic>) {
    let diagnostic = error.into();
    #[cfg(all(target_arch = "wasm32", target_env = "p2"))]
    {
        eprintln!(
            "init error: {}: {}",
            diagnostic.error_type, diagnostic.error_message
        );
        std::process::exit(1);
    }
    #[cfg(all(target_arch = "wasm32", not(target_env = "p2")))]
    abi::init_error(&diagnostic.error_type, &diagnostic.error_message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!(
        "init error: {}: {}",
        diagnostic.error_type, diagnostic.error_message
    );
}
