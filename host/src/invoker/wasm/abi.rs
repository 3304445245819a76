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
use crate::context::Context;
use crate::dispatch::{
    Dispatcher, Invocation, InvocationError, Outcome, ResponseSize, RunnerId, check_response_size,
};
use crate::lambda_error::{Diagnostic, MAX_LOGGED, clip};

pub const MODULE: &str = "lambda_v1";

/// What every instance of the function shares.
pub struct Shared {
    pub dispatcher: Arc<Dispatcher>,
    pub function_arn: String,
    pub body_limit: usize,
    pub function_ttl: Duration,
    /// Largest streamed response (`STREAMING_RESPONSE_LIMIT`).
    pub streaming_limit: u64,
    /// The engine's epoch ticker, kept ticking while guest code runs.
    pub ticker: super::ticker::Ticker,
}

/// How an instance gets its invocations, and the one it holds: one place, in a shape that
/// cannot hold an invocation twice.
pub enum Mode {
    /// A long-lived instance looping on the shared queue, with the invocation in hand.
    Loop(Option<Invocation>),
    /// A fresh instance for one invocation, taken from the queue for it.
    Fresh(Fresh),
    /// A plain WASI command: the invocation is on its stdin, its context in its
    /// environment, its answer what it writes to `stdout` (streamed, see
    /// [`super::stdio_stream`]).
    Stdio {
        invocation: Invocation,
        stdout: super::stdio_stream::StdoutPipe,
    },
}

/// Where a fresh instance's one invocation is.
pub enum Fresh {
    /// Not asked for yet.
    Waiting(Invocation),
    /// Handed to the guest by `next`.
    InHand(Invocation),
    /// Answered, or given up; `next` now ends the instance.
    Done,
}

/// The state of one store: the WASI context, limits, and how invocations come and go.
pub struct Guest {
    pub wasi: WasiP1Ctx,
    pub limits: StoreLimits,
    pub shared: Arc<Shared>,
    pub runner: RunnerId,
    pub mode: Mode,
    pub init_error: Option<Diagnostic>,
    pub served: u64,
    pub tag: RequestTag,
    pub stderr: LogStream,
    /// The metered `/tmp` (set once the store exists).
    pub tmp: Option<super::tmp::TmpQuota>,
    /// The response the guest is streaming (see [`super::stream_abi`]), with its deadline.
    pub stream: Option<(crate::dispatch::stream::StreamWriter, Instant)>,
    /// Held while the guest's code may run: not while a looping guest waits for its next
    /// invocation.
    pub running: Option<super::ticker::Running>,
    /// The instance's exported memory, once a host call looked it up (see [`memory`]).
    pub memory: Option<wasmtime::Memory>,
    /// What `environ_get` gives the guest (see [`super::environ`]).
    pub environ: Arc<super::environ::Environ>,
}

impl Guest {
    /// The deadline of the invocation this instance holds or is made for; the epoch
    /// callback interrupts the guest past it.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.mode {
            Mode::Loop(Some(inv))
            | Mode::Fresh(Fresh::Waiting(inv) | Fresh::InHand(inv))
            | Mode::Stdio {
                invocation: inv, ..
            } => Some(inv.deadline),
            Mode::Loop(None) | Mode::Fresh(Fresh::Done) => self.stream.as_ref().map(|s| s.1),
        }
    }

    /// The invocation the guest received through `next` and has not answered.
    pub(super) fn current(&self) -> Option<&Invocation> {
        match &self.mode {
            Mode::Loop(Some(inv)) | Mode::Fresh(Fresh::InHand(inv)) => Some(inv),
            _ => None,
        }
    }

    /// Takes the invocation in hand out of the mode.
    fn take_current(&mut self) -> Option<Invocation> {
        match &mut self.mode {
            Mode::Loop(current) => current.take(),
            Mode::Fresh(fresh @ Fresh::InHand(_)) => match std::mem::replace(fresh, Fresh::Done) {
                Fresh::InHand(inv) => Some(inv),
                _ => None,
            },
            _ => None,
        }
    }

    /// The next invocation for the guest, or `None` when there is none for this mode.
    async fn take_next(&mut self) -> Option<Invocation> {
        match &mut self.mode {
            Mode::Loop(_) => {
                self.running = None;
                let inv = self.shared.dispatcher.next(self.runner).await;
                self.running = Some(self.shared.ticker.run());
                Some(inv)
            }
            Mode::Fresh(fresh) => match std::mem::replace(fresh, Fresh::Done) {
                Fresh::Waiting(inv) => Some(inv),
                _ => None,
            },
            Mode::Stdio { .. } => None,
        }
    }

    fn begin(&mut self, inv: Invocation) -> i32 {
        let len = inv.event.body.len() as i32;
        if let Ok(mut tag) = self.tag.lock() {
            *tag = Some(inv.id.clone());
        }
        self.stderr.clear_tail();
        match &mut self.mode {
            Mode::Loop(current) => *current = Some(inv),
            Mode::Fresh(fresh) => *fresh = Fresh::InHand(inv),
            // `take_next` gives a plain command nothing.
            Mode::Stdio { .. } => {}
        }
        len
    }

    /// Ends the current invocation with `outcome`; false when there was none.
    pub(super) fn finish(&mut self, outcome: Outcome) -> bool {
        let Some(inv) = self.take_current() else {
            return false;
        };
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
            // A stream the guest did not end is cut here.
            guest.stream = None;
            if guest.current().is_some() {
                let err = InvocationError::RunnerExited(
                    "the function asked for its next invocation without answering this one".into(),
                );
                guest.finish(Outcome::Failed(err));
            }
            Ok(match guest.take_next().await {
                Some(inv) => guest.begin(inv),
                None => -1,
            })
        })
    })?;
    linker.func_wrap(
        MODULE,
        "event",
        |mut caller: Caller<'_, Guest>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let Some(body) = caller.data().current().map(|i| i.event.body.clone()) else {
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
            let Some(inv) = guest.current() else {
                return Ok(-1);
            };
            let json = Context::of(inv, &guest.shared.function_arn).json();
            copy_out(&mut caller, ptr, len, &json)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "respond",
        |mut caller: Caller<'_, Guest>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let limit = caller.data().shared.body_limit;
            let size = ResponseSize::Exactly(len as u32 as usize);
            let outcome = match check_response_size(size, limit) {
                Ok(()) => Outcome::Response {
                    body: Bytes::from(read(&mut caller, ptr, len)?),
                    content_type: None,
                },
                Err(e) => Outcome::Failed(e),
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
                error_type = clip(&err.error_type, MAX_LOGGED),
                "function init error: {}",
                clip(&err.error_message, MAX_LOGGED)
            );
            caller.data_mut().init_error = Some(err);
            Ok(0)
        },
    )?;
    super::stream_abi::add_to_linker(linker)
}

/// The guest's exported `memory`, looked up by name once per store (a store holds one
/// instance; the lookup hashes the name at every call, and each invocation makes several).
pub(super) fn memory(caller: &mut Caller<'_, Guest>) -> wasmtime::Result<wasmtime::Memory> {
    if let Some(m) = caller.data().memory {
        return Ok(m);
    }
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => {
            caller.data_mut().memory = Some(m);
            Ok(m)
        }
        _ => wasmtime::bail!("the module exports no memory named \"memory\""),
    }
}

pub(super) fn read(
    caller: &mut Caller<'_, Guest>,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller)?;
    let start = ptr as u32 as usize;
    let end = start.saturating_add(len as u32 as usize);
    match mem.data(&*caller).get(start..end) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => wasmtime::bail!("lambda_v1: pointer {start}..{end} is outside the guest's memory"),
    }
}

/// Longest error type kept from a guest.
const MAX_ERROR_TYPE: usize = 1024;

/// `len` cut to at most `max` (the text read is cut there; lossy UTF-8 marks a split
/// character).
fn capped(len: i32, max: usize) -> i32 {
    (len as u32 as usize).min(max).min(i32::MAX as usize) as i32
}

fn read_string(caller: &mut Caller<'_, Guest>, ptr: i32, len: i32) -> wasmtime::Result<String> {
    Ok(String::from_utf8_lossy(&read(caller, ptr, len)?).into_owned())
}

pub(super) fn read_error(
    caller: &mut Caller<'_, Guest>,
    tp: i32,
    tl: i32,
    mp: i32,
    ml: i32,
) -> wasmtime::Result<Diagnostic> {
    // Bounded like a native runtime's error upload: the message by the body limit.
    let limit = caller.data().shared.body_limit;
    let error_type = read_string(caller, tp, capped(tl, MAX_ERROR_TYPE))?;
    let error_message = read_string(caller, mp, capped(ml, limit))?;
    Ok(Diagnostic {
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
