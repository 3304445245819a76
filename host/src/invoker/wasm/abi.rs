//! The host side of the guest ABI (`lambda_v1`, see guest-sdk/ABI.md): a guest asks for
//! its next invocation and hands back the outcome by calling these imports, which sit on
//! the same Dispatcher as the HTTP Runtime API. Waiting for the next invocation is an
//! asynchronous host function: a waiting guest holds no OS thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::{Caller, Extern, Linker, StoreLimits};
use wasmtime_wasi::p1::WasiP1Ctx;

use super::output::{LogStream, RequestTag};
use crate::dispatch::{Dispatcher, Invocation, InvocationError, Outcome, RunnerId};
use crate::lambda_error::FunctionError;

pub const MODULE: &str = "lambda_v1";

/// What every instance of the function shares.
pub struct Shared {
    pub dispatcher: Arc<Dispatcher>,
    pub function_arn: String,
    pub body_limit: usize,
    pub function_ttl: Duration,
}

/// Where an instance's invocations come from.
pub enum Feed {
    /// The shared queue: a long-lived instance loops on it.
    Queue,
    /// Exactly one invocation, already taken from the queue (a fresh instance per call).
    One(Option<Invocation>),
}

/// The state of one store: the WASI context, limits, and the invocation in hand.
pub struct Guest {
    pub wasi: WasiP1Ctx,
    pub limits: StoreLimits,
    pub shared: Arc<Shared>,
    pub runner: RunnerId,
    pub feed: Feed,
    pub current: Option<Invocation>,
    /// The current invocation's deadline; the epoch callback interrupts past it.
    pub deadline: Option<Instant>,
    pub init_error: Option<FunctionError>,
    pub served: u64,
    pub tag: RequestTag,
    pub stderr: LogStream,
}

impl Guest {
    fn begin(&mut self, inv: Invocation) -> i32 {
        let len = inv.event.body.len() as i32;
        self.deadline = Some(inv.deadline);
        if let Ok(mut tag) = self.tag.lock() {
            *tag = Some(inv.id.clone());
        }
        self.stderr.clear_tail();
        self.current = Some(inv);
        len
    }

    /// Ends the current invocation with `outcome`; false when there was none.
    fn finish(&mut self, outcome: Outcome) -> bool {
        let Some(inv) = self.current.take() else {
            return false;
        };
        self.deadline = None;
        self.served += 1;
        // An invocation already timed out has nobody left to answer.
        let _ = self.shared.dispatcher.complete(&inv.id, outcome);
        true
    }
}

/// Defines the `lambda_v1` imports on `linker`.
pub fn add_to_linker(linker: &mut Linker<Guest>) -> wasmtime::Result<()> {
    linker.func_wrap_async(MODULE, "next", |mut caller: Caller<'_, Guest>, (): ()| {
        Box::new(async move {
            let guest = caller.data_mut();
            if guest.current.is_some() {
                let err = InvocationError::RunnerExited(
                    "the function asked for its next invocation without answering this one".into(),
                );
                guest.finish(Outcome::Failed(err));
            }
            let inv = match &mut guest.feed {
                Feed::One(slot) => match slot.take() {
                    Some(inv) => inv,
                    None => return Ok(-1),
                },
                Feed::Queue => {
                    let dispatcher = guest.shared.dispatcher.clone();
                    dispatcher.next(guest.runner).await
                }
            };
            Ok(guest.begin(inv))
        })
    })?;
    linker.func_wrap(
        MODULE,
        "event",
        |mut caller: Caller<'_, Guest>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let Some(body) = caller.data().current.as_ref().map(|i| i.event.body.clone()) else {
                return Ok(-1);
            };
            copy_out(&mut caller, ptr, len, &body)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "context",
        |mut caller: Caller<'_, Guest>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let guest = caller.data();
            let Some(inv) = guest.current.as_ref() else {
                return Ok(-1);
            };
            let json = context_json(inv, &guest.shared.function_arn);
            copy_out(&mut caller, ptr, len, &json)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "respond",
        |mut caller: Caller<'_, Guest>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let limit = caller.data().shared.body_limit;
            let outcome = if len as u32 as usize > limit {
                Outcome::Failed(InvocationError::ResponseTooLarge(
                    len as u32 as usize,
                    limit,
                ))
            } else {
                Outcome::Response {
                    body: Bytes::from(read(&mut caller, ptr, len)?),
                    content_type: None,
                }
            };
            Ok(if caller.data_mut().finish(outcome) {
                0
            } else {
                -1
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fail",
        |mut caller: Caller<'_, Guest>,
         tp: i32,
         tl: i32,
         mp: i32,
         ml: i32|
         -> wasmtime::Result<i32> {
            let err = read_error(&mut caller, tp, tl, mp, ml)?;
            let done = caller.data_mut().finish(Outcome::FunctionError(err));
            Ok(if done { 0 } else { -1 })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "init_error",
        |mut caller: Caller<'_, Guest>,
         tp: i32,
         tl: i32,
         mp: i32,
         ml: i32|
         -> wasmtime::Result<i32> {
            let err = read_error(&mut caller, tp, tl, mp, ml)?;
            tracing::error!(
                instance = caller.data().runner,
                error_type = %err.error_type,
                "function init error: {}",
                err.error_message
            );
            caller.data_mut().init_error = Some(err);
            Ok(0)
        },
    )?;
    Ok(())
}

/// The context a guest reads, as documented in ABI.md.
#[derive(serde::Serialize)]
struct ContextJson<'a> {
    request_id: &'a str,
    deadline_ms: u64,
    invoked_function_arn: &'a str,
    trace_id: Option<&'a str>,
    client_context: Option<&'a str>,
    cognito_identity: Option<&'a str>,
    content_type: Option<&'a str>,
}

/// The context of `inv` as JSON, serialized straight from borrowed fields.
pub fn context_json(inv: &Invocation, function_arn: &str) -> Vec<u8> {
    let e = &inv.event;
    serde_json::to_vec(&ContextJson {
        request_id: &inv.id,
        deadline_ms: inv.deadline_ms,
        invoked_function_arn: function_arn,
        trace_id: e.trace_id.as_deref(),
        client_context: e.client_context.as_deref(),
        cognito_identity: e.cognito_identity.as_deref(),
        content_type: e.content_type.as_deref(),
    })
    .unwrap_or_default()
}

fn memory(caller: &mut Caller<'_, Guest>) -> wasmtime::Result<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => wasmtime::bail!("the module exports no memory named \"memory\""),
    }
}

fn read(caller: &mut Caller<'_, Guest>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller)?;
    let start = ptr as u32 as usize;
    let end = start.saturating_add(len as u32 as usize);
    match mem.data(&*caller).get(start..end) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => wasmtime::bail!("lambda_v1: pointer {start}..{end} is outside the guest's memory"),
    }
}

fn read_string(caller: &mut Caller<'_, Guest>, ptr: i32, len: i32) -> wasmtime::Result<String> {
    Ok(String::from_utf8_lossy(&read(caller, ptr, len)?).into_owned())
}

fn read_error(
    caller: &mut Caller<'_, Guest>,
    tp: i32,
    tl: i32,
    mp: i32,
    ml: i32,
) -> wasmtime::Result<FunctionError> {
    let error_type = read_string(caller, tp, tl)?;
    let error_message = read_string(caller, mp, ml)?;
    Ok(FunctionError {
        error_type: if error_type.is_empty() {
            "Unhandled".into()
        } else {
            error_type
        },
        error_message,
        stack_trace: None,
    })
}

/// The copy protocol of `event` and `context`: copies when the buffer is large enough and
/// always returns the full length.
fn copy_out(
    caller: &mut Caller<'_, Guest>,
    ptr: i32,
    len: i32,
    data: &[u8],
) -> wasmtime::Result<i32> {
    let n = i32::try_from(data.len()).map_err(|_| wasmtime::format_err!("payload too large"))?;
    if data.len() <= len as u32 as usize {
        let mem = memory(caller)?;
        mem.write(&mut *caller, ptr as u32 as usize, data)
            .map_err(|_| {
                wasmtime::format_err!("lambda_v1: buffer at {ptr} is outside the guest's memory")
            })?;
    }
    Ok(n)
}
