//! Response streaming, as `lambda_runtime`'s `run_with_streaming_response`: the handler
//! returns a [`StreamResponse`] (an HTTP head and a stream of chunks) and each chunk
//! reaches the caller as the stream yields it, over the ABI's streaming imports. An error
//! the stream yields after it started reaches the caller as trailers; an error the handler
//! returns before is the usual function error.
//!
//! ```no_run
//! use lambda_wasi::streaming::{StreamResponse, run_with_streaming_response};
//! use lambda_wasi::{Error, LambdaEvent, service_fn};
//!
//! type Chunks = std::vec::IntoIter<Result<String, Error>>;
//!
//! async fn handler(_: LambdaEvent<serde_json::Value>) -> Result<StreamResponse<Iter>, Error> {
//!     let chunks: Chunks = vec![Ok("hello ".into()), Ok("world".into())].into_iter();
//!     Ok(StreamResponse::from(Iter(chunks)))
//! }
//! # struct Iter(Chunks);
//! # impl futures_core::Stream for Iter {
//! #     type Item = Result<String, Error>;
//! #     fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>)
//! #         -> std::task::Poll<Option<Self::Item>> { std::task::Poll::Ready(self.0.next()) }
//! # }
//! fn main() -> Result<(), Error> {
//!     lambda_wasi::block_on(run_with_streaming_response(service_fn(handler)))
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt::{Debug, Display};
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;

pub use futures_core::Stream;
use serde::{Serialize, de::DeserializeOwned};

use crate::abi::StreamHost;
use crate::runtime::{Buffers, complete, receive};
use crate::{Config, Diagnostic, Error, LambdaEvent, Service, deserializer};

/// The HTTP head of a streamed response (Lambda's HTTP-integration prelude): what a Lambda
/// Function URL answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataPrelude {
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    /// Each becomes one `Set-Cookie` header.
    pub cookies: Vec<String>,
}

impl Default for MetadataPrelude {
    fn default() -> MetadataPrelude {
        MetadataPrelude {
            status_code: 200,
            headers: BTreeMap::new(),
            cookies: Vec::new(),
        }
    }
}

/// A streamed response: its head and the stream of its body's chunks.
pub struct StreamResponse<S> {
    pub metadata_prelude: MetadataPrelude,
    pub stream: S,
}

impl<S> From<S> for StreamResponse<S> {
    fn from(stream: S) -> StreamResponse<S> {
        StreamResponse {
            metadata_prelude: MetadataPrelude::default(),
            stream,
        }
    }
}

/// Serves invocations with a handler whose responses stream (see the module docs).
pub async fn run_with_streaming_response<A, F, S, D, E>(handler: F) -> Result<(), Error>
where
    F: Service<LambdaEvent<A>, Response = StreamResponse<S>>,
    F::Error: Into<Diagnostic> + Debug,
    A: DeserializeOwned,
    S: Stream<Item = Result<D, E>> + Unpin,
    D: AsRef<[u8]>,
    E: Display,
{
    #[cfg(all(target_arch = "wasm32", not(target_env = "p2")))]
    {
        let config = Arc::new(Config::from_env());
        run_on(&mut crate::abi::WasmHost, handler, config).await
    }
    // The Lambda component world (wasm32-wasip2) has no streaming responses yet.
    #[cfg(target_env = "p2")]
    {
        drop(handler);
        Err("streaming responses need the lambda_v1 ABI (wasm32-wasip1); the Lambda component world does not stream yet".into())
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        drop(handler);
        Err(crate::NOT_IN_HOST.into())
    }
}

pub(crate) async fn run_on<H, F, A, S, D, E>(
    host: &mut H,
    mut handler: F,
    env_config: Arc<Config>,
) -> Result<(), Error>
where
    H: StreamHost,
    F: Service<LambdaEvent<A>, Response = StreamResponse<S>>,
    F::Error: Into<Diagnostic> + Debug,
    A: DeserializeOwned,
    S: Stream<Item = Result<D, E>> + Unpin,
    D: AsRef<[u8]>,
    E: Display,
{
    let mut buffers = Buffers::default();
    loop {
        let Ok(announced) = usize::try_from(host.next()) else {
            return Ok(());
        };
        let Some(received) = receive(host, announced, &mut buffers, &env_config) else {
            continue;
        };
        if let Err(err) = poll_fn(|cx| handler.poll_ready(cx)).await {
            let diagnostic: Diagnostic = err.into();
            complete(host, &Err(diagnostic.clone()));
            return Err(format!(
                "handler failed to become ready: {}",
                diagnostic.error_message
            )
            .into());
        }
        let response = match received {
            Ok(context) => match deserializer::deserialize::<A>(buffers.event.data(), context) {
                Ok(event) => handler.call(event).await.map_err(Into::into),
                Err(e) => Err(Diagnostic::from(e)),
            },
            Err(diagnostic) => Err(diagnostic),
        };
        match response {
            Ok(response) => send(host, response).await,
            Err(diagnostic) => complete(host, &Err(diagnostic)),
        }
    }
}

/// Streams one response: the head, then each chunk as the stream yields it.
async fn send<H, S, D, E>(host: &mut H, response: StreamResponse<S>)
where
    H: StreamHost,
    S: Stream<Item = Result<D, E>> + Unpin,
    D: AsRef<[u8]>,
    E: Display,
{
    let prelude = serde_json::to_vec(&response.metadata_prelude).unwrap_or_default();
    let code = host.stream_start(&prelude);
    if code != 0 {
        eprintln!("lambda_wasi: the host refused the stream (code {code})");
        return;
    }
    let mut stream = response.stream;
    loop {
        match poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
            Some(Ok(chunk)) => {
                let code = host.stream_write(chunk.as_ref());
                if code != 0 {
                    // The caller is gone or the limit passed: the host ended the stream.
                    eprintln!("lambda_wasi: the host ended the stream (code {code})");
                    return;
                }
            }
            Some(Err(e)) => {
                host.stream_error("Runtime.StreamError", &e.to_string());
                return;
            }
            None => {
                host.stream_end();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
