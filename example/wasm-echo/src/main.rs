//! An echo function for the WASI host, written like a `lambda_runtime` function: the handler
//! is the same code, only the `use lambda_wasi` line differs. It greets the event's `name` and
//! echoes the event back.
//!
//! `main` drives the loop with the SDK's `block_on` instead of `#[tokio::main]`: host calls
//! block, so a WASI guest needs no async runtime, and starting one costs every fresh instance
//! (`WASM_ISOLATION=invocation`) a few microseconds. `#[tokio::main(flavor = "current_thread")]`
//! works as well.

use lambda_wasi::{Error, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The event: an optional name; any other fields are kept and echoed.
#[derive(Debug, Deserialize, Serialize)]
struct Request {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Debug, Serialize)]
struct Response {
    message: String,
    request_id: String,
    echo: Request,
}

async fn handler(event: LambdaEvent<Request>) -> Result<Response, Error> {
    let (request, context) = event.into_parts();
    let name = request.name.as_deref().unwrap_or("world");
    Ok(Response {
        message: format!("Hello, {name}!"),
        request_id: context.request_id,
        echo: request,
    })
}

fn main() -> Result<(), Error> {
    lambda_wasi::block_on(lambda_wasi::run(service_fn(handler)))
}
