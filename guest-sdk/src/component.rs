//! The `wasm32-wasip2` build: the function is a component of the `lambda:function` world
//! (`wit/`), and the host calls its exported `handle` once per invocation. `main` runs once
//! per instance, as the function's initialisation: [`register`] (what `run` does here) keeps
//! the handler, and each `handle` call runs it on the event and context it is given. This is
//! the only module that touches the generated bindings, whose glue code is `unsafe`.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::fmt::Debug;
use std::future::poll_fn;
use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};

use crate::{Config, Context, Diagnostic, LambdaEvent, Service, block_on, deserializer};

wit_bindgen::generate!({
    path: "wit",
    world: "lambda:function/lambda-function",
    generate_all,
});

use exports::lambda::function::handler::{Context as WitContext, FunctionError, Guest, Response};

/// One invocation through the handler `run` was given: the response JSON or the error.
type Handler = Box<dyn FnMut(&[u8], Context) -> Result<Vec<u8>, Diagnostic>>;

/// The registered handler and the function's configuration. A component instance is
/// single-threaded and the host never overlaps calls into it.
struct Registered {
    handler: Handler,
    config: Arc<Config>,
}

thread_local! {
    static REGISTERED: RefCell<Option<Registered>> = const { RefCell::new(None) };
}

/// Keeps `handler` for the `handle` calls to come.
pub(crate) fn register<A, F, R>(mut handler: F, config: Arc<Config>)
where
    F: Service<LambdaEvent<A>, Response = R> + 'static,
    F::Error: Into<Diagnostic> + Debug,
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    let handler: Handler = Box::new(move |event, context| {
        block_on(async {
            poll_fn(|cx| handler.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let event = deserializer::deserialize::<A>(event, context).inspect_err(|err| {
                eprintln!("lambda_wasi: the handler was not called: {err}");
            })?;
            let response = handler.call(event).await.map_err(Into::into)?;
            Ok(serde_json::to_vec(&response)?)
        })
    });
    REGISTERED.with(|r| *r.borrow_mut() = Some(Registered { handler, config }));
}

/// The context the handler sees, decoded as the `lambda_v1` context JSON is, so both builds
/// check and default it alike.
fn context(wit: WitContext, config: Arc<Config>) -> Result<Context, Diagnostic> {
    let json = serde_json::json!({
        "request_id": wit.request_id,
        "deadline_ms": wit.deadline_ms,
        "invoked_function_arn": wit.invoked_function_arn,
        "trace_id": wit.trace_id,
        "client_context": wit.client_context,
        "cognito_identity": wit.cognito_identity,
        "tenant_id": wit.tenant_id,
        "content_type": wit.content_type,
    });
    let bytes = serde_json::to_vec(&json)?;
    Context::decode(&bytes, config).map_err(Diagnostic::from)
}

struct Function;

impl Guest for Function {
    fn handle(event: Vec<u8>, wit: WitContext) -> Result<Response, FunctionError> {
        let outcome = REGISTERED.with(|r| match r.borrow_mut().as_mut() {
            Some(Registered { handler, config }) => {
                context(wit, Arc::clone(config)).and_then(|c| handler(&event, c))
            }
            None => Err(Diagnostic {
                error_type: "Runtime.NoHandler".into(),
                error_message: "main returned without calling lambda_wasi::run".into(),
            }),
        });
        match outcome {
            Ok(body) => Ok(Response {
                body,
                content_type: None,
            }),
            Err(d) => Err(FunctionError {
                error_type: d.error_type,
                error_message: d.error_message,
            }),
        }
    }
}

export!(Function);
