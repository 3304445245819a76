//! The streaming imports of the guest ABI (`lambda_v1`, additive; see guest-sdk/ABI.md): a
//! guest starts a streamed response for its current invocation (with an optional
//! HTTP-integration prelude), writes chunks that reach the caller as it writes them (a
//! write waits while the caller is behind), and ends the stream, or fails it with an error
//! that the caller gets as trailers. Owns only these imports; the stream type is
//! [`crate::dispatch::stream`].

use bytes::Bytes;
use wasmtime::{Caller, Linker};

use super::abi::{Guest, MODULE, read, read_error};
use crate::dispatch::stream::{self, SendError, StreamError, Streamed};
use crate::dispatch::{InvocationError, Outcome};
use crate::runtime_api::prelude;

/// Codes the streaming imports return.
const OK: i32 = 0;
/// No current invocation (`stream_start`) or no stream (the others), or the caller is gone.
const NONE: i32 = -1;
/// `stream_start`: the prelude is malformed (the invocation failed with a 502);
/// `stream_write`: the stream passed `STREAMING_RESPONSE_LIMIT` and was cut.
const REFUSED: i32 = -2;

pub fn add_to_linker(linker: &mut Linker<Guest>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "stream_start",
        |mut caller: Caller<'_, Guest>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let Some(deadline) = caller.data().current().map(|i| i.deadline) else {
                return Ok(NONE);
            };
            let head = match len {
                0 => None,
                _ => match prelude::parse(&read(&mut caller, ptr, len)?) {
                    Ok(head) => Some(head),
                    Err(why) => {
                        let err = InvocationError::MalformedPrelude(why);
                        caller.data_mut().finish(Outcome::Failed(err));
                        return Ok(REFUSED);
                    }
                },
            };
            let guest = caller.data_mut();
            let (writer, body) = stream::channel(stream::CAPACITY, guest.shared.streaming_limit);
            let streamed = Streamed {
                head,
                content_type: None,
                body,
            };
            if !guest.finish(Outcome::Stream(streamed)) {
                return Ok(NONE);
            }
            guest.stream = Some((writer, deadline));
            Ok(OK)
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "stream_write",
        |mut caller: Caller<'_, Guest>, (ptr, len): (i32, i32)| {
            Box::new(async move {
                if caller.data().stream.is_none() {
                    return Ok(NONE);
                }
                let chunk = Bytes::from(read(&mut caller, ptr, len)?);
                let guest = caller.data_mut();
                let Some((writer, _)) = guest.stream.as_mut() else {
                    return Ok(NONE);
                };
                Ok(match writer.send(chunk).await {
                    Ok(()) => OK,
                    Err(SendError::Closed) => {
                        guest.stream = None;
                        NONE
                    }
                    Err(SendError::PastLimit(limit)) => {
                        tracing::warn!(
                            instance = guest.runner,
                            limit,
                            "response stream cut at its limit"
                        );
                        guest.stream = None;
                        REFUSED
                    }
                })
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "stream_error",
        |mut caller: Caller<'_, Guest>,
         tp: i32,
         tl: i32,
         mp: i32,
         ml: i32|
         -> wasmtime::Result<i32> {
            if caller.data().stream.is_none() {
                return Ok(NONE);
            }
            let err = read_error(&mut caller, tp, tl, mp, ml)?;
            let Some((writer, _)) = caller.data_mut().stream.take() else {
                return Ok(NONE);
            };
            tracing::warn!(
                error_type = err.error_type,
                "function error in its response stream: {}",
                err.error_message
            );
            let body = serde_json::to_vec(&err).unwrap_or_default();
            writer.fail(StreamError {
                error_type: err.error_type,
                body: body.into(),
            });
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "stream_end",
        |mut caller: Caller<'_, Guest>| -> wasmtime::Result<i32> {
            match caller.data_mut().stream.take() {
                Some((writer, _)) => {
                    writer.finish();
                    Ok(OK)
                }
                None => Ok(NONE),
            }
        },
    )?;
    Ok(())
}
