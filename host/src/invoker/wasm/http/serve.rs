//! One instance slot of a `wasi:http` component: takes invocations from the Dispatcher and
//! runs each in a fresh instance. The reply is an [`Outcome::Stream`] whose head is the
//! component's status and headers, answered as soon as the guest sets it; its body is
//! forwarded chunk by chunk while the guest still runs, bounded by `REQUEST_SIZE_LIMIT` and
//! cut at the deadline. Every invocation gets exactly one outcome.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio_util::sync::CancellationToken;
use wasmtime::Trap;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use super::{DeadlineExceeded, HttpFunction};
use crate::dispatch::stream::{self, Cut, Head, SendError, Streamed};
use crate::dispatch::{HttpReply, Invocation, InvocationError, Outcome, RunnerId};
use crate::tenancy::scratch::Scratch;

impl HttpFunction {
    /// Serves invocations on instance slot `runner` until `stop`.
    pub async fn run(self: Arc<Self>, runner: RunnerId, stop: CancellationToken) {
        let dispatcher = self.dispatcher.clone();
        // Every request gets a fresh instance and an empty /tmp: between requests the slot
        // keeps nothing a tenant switch would have to drop.
        let tmp = crate::invoker::wasm::tmp::SlotTmp::new(
            runner,
            super::tmp_component::entries(self.reaches_folders),
        );
        dispatcher.env_started(runner);
        loop {
            let next = crate::invoker::wasm::next_invocation(
                &dispatcher,
                runner,
                &self.metrics,
                &stop,
                || std::future::ready(()),
            );
            let Some(inv) = next.await else {
                return;
            };
            tokio::select! {
                () = self.serve(runner, inv, &tmp.scratch) => {}
                // The dispatcher already answered the deadline; dropping the store stops
                // the instance.
                _ = dispatcher.reset_signal(runner).notified() => {}
                _ = stop.cancelled() => {
                    dispatcher.fail_runner(runner, InvocationError::ShuttingDown);
                    return;
                }
            }
            // The store is gone (the reply has streamed): the next request finds /tmp empty.
            tmp.clear().await;
        }
    }

    fn answer(&self, runner: RunnerId, inv: &Invocation, outcome: Outcome) {
        if let Outcome::Failed(e) = &outcome {
            tracing::warn!(instance = runner, request_id = %inv.id, "invocation failed: {e}");
        }
        let _ = self.dispatcher.complete_from(runner, &inv.id, outcome);
    }

    /// One request in a fresh instance.
    async fn serve(&self, runner: RunnerId, inv: Invocation, scratch: &Option<Arc<Scratch>>) {
        let ttl = inv.deadline.saturating_duration_since(Instant::now());
        let fail = |e: InvocationError| self.answer(runner, &inv, Outcome::Failed(e));
        let mut store = match self.store(runner, inv.id.clone(), inv.deadline, scratch) {
            Ok(s) => s,
            Err(e) => {
                return fail(InvocationError::HostFailure(format!(
                    "cannot create a sandbox: {e:#}"
                )));
            }
        };
        let request = incoming(&inv).map(|b| {
            b.map_err(
                |never: std::convert::Infallible| -> wasmtime_wasi_http::Error { match never {} },
            )
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let resources = (|| -> wasmtime::Result<_> {
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(tx)?;
            Ok((req, out))
        })();
        let (req, out) = match resources {
            Ok(r) => r,
            Err(e) => return fail(InvocationError::HostFailure(format!("{e:#}"))),
        };
        // The store moves into the guest's future and drops with it, closing the response
        // channel and body whatever the guest did with them.
        let pre = &self.pre;
        let guest = async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        };
        let mut guest = pin!(guest);
        let mut ended: Option<wasmtime::Result<()>> = None;
        let head = async {
            tokio::select! {
                r = &mut rx => r,
                r = &mut guest => {
                    ended = Some(r);
                    // The store is gone with the guest: a response it set is in the
                    // channel, else the channel is closed.
                    (&mut rx).await
                }
            }
        };
        let response = match tokio::time::timeout_at(inv.deadline.into(), head).await {
            Ok(Ok(Ok(r))) => r,
            Ok(Ok(Err(code))) => {
                let msg = format!("the component answered an error: {code:?}");
                return fail(InvocationError::Trap(msg));
            }
            Ok(Err(_)) => return fail(ended_without_reply(ended, ttl)),
            Err(_) => return fail(InvocationError::Timeout(ttl)),
        };
        let (parts, mut body) = response.into_parts();
        let (mut writer, reader) = stream::channel(stream::CAPACITY, self.streaming_limit as u64);
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let streamed = Streamed {
            head: Some(Head {
                status: parts.status,
                headers: parts.headers,
                cookies: Vec::new(),
            }),
            content_type,
            body: reader,
        };
        self.answer(runner, &inv, Outcome::Stream(streamed));
        // The guest writes the body while it runs: drive both.
        let pump = async {
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    return Err(Cut::Broken("the component's response body failed".into()));
                };
                let Ok(data) = frame.into_data() else {
                    continue; // trailers: not forwarded
                };
                match writer.send(data).await {
                    Ok(()) => {}
                    Err(SendError::Closed) => return Ok(false),
                    Err(SendError::PastLimit(_)) => return Ok(false),
                }
            }
            Ok(true)
        };
        let finish = async {
            match ended.take() {
                Some(r) => r,
                None => guest.as_mut().await,
            }
        };
        let both = async { tokio::join!(pump, finish) };
        match tokio::time::timeout_at(inv.deadline.into(), both).await {
            Err(_) => writer.cut(Cut::Deadline),
            Ok((_, Err(e))) => writer.cut(Cut::Broken(failure(&e, ttl).to_string())),
            Ok((Err(cut), Ok(()))) => writer.cut(cut),
            Ok((Ok(true), Ok(()))) => writer.finish(),
            // The caller left, or the limit cut the stream: the writer has ended.
            Ok((Ok(false), Ok(()))) => drop(writer),
        }
    }
}

/// The invocation's request as the component's incoming request.
fn incoming(inv: &Invocation) -> hyper::Request<Full<Bytes>> {
    let mut req = hyper::Request::new(Full::new(inv.event.body.clone()));
    match &inv.event.http {
        Some(head) => {
            *req.method_mut() = head.method.clone();
            *req.uri_mut() = head.uri.clone();
            *req.headers_mut() = head.headers.clone();
        }
        None => *req.method_mut() = http::Method::POST,
    }
    // wasi:http needs an authority; HTTP/1.0 callers may send no Host.
    if req.uri().authority().is_none() && !req.headers().contains_key(http::header::HOST) {
        req.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
    }
    req
}

/// The outcome of a guest that ended before setting a response.
fn ended_without_reply(ended: Option<wasmtime::Result<()>>, ttl: Duration) -> InvocationError {
    match ended {
        Some(Err(e)) => failure(&e, ttl),
        _ => InvocationError::Trap("the component returned without setting a response".into()),
    }
}

/// What a guest error means for the invocation.
fn failure(e: &wasmtime::Error, ttl: Duration) -> InvocationError {
    if e.downcast_ref::<DeadlineExceeded>().is_some() {
        InvocationError::Timeout(ttl)
    } else if let Some(trap) = e.downcast_ref::<Trap>() {
        InvocationError::Trap(trap.to_string())
    } else {
        InvocationError::Trap(format!("{e:#}"))
    }
}

/// A component's streamed reply read whole, with its status and headers, for a public
/// endpoint that answers buffered replies; other outcomes pass unchanged. A reply cut
/// short fails the invocation.
pub async fn buffered(outcome: Outcome, limit: usize, ttl: Duration) -> Outcome {
    let Outcome::Stream(Streamed {
        head: Some(head),
        body,
        ..
    }) = outcome
    else {
        return outcome;
    };
    match body.read_all(limit).await {
        Ok(body) => Outcome::Http(HttpReply {
            status: head.status,
            headers: head.headers,
            body,
        }),
        Err(None) => Outcome::Failed(InvocationError::ResponseTooLarge {
            size: crate::dispatch::ResponseSize::PastLimit,
            limit,
        }),
        Err(Some(stream::Ending::Cut(Cut::PastLimit { .. }))) => {
            Outcome::Failed(InvocationError::ResponseTooLarge {
                size: crate::dispatch::ResponseSize::PastLimit,
                limit,
            })
        }
        Err(Some(stream::Ending::Cut(Cut::Deadline))) => {
            Outcome::Failed(InvocationError::Timeout(ttl))
        }
        Err(Some(ending)) => Outcome::Failed(InvocationError::Trap(format!(
            "the component's reply did not end: {ending:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(limit: u64) -> (stream::StreamWriter, Outcome) {
        let (writer, body) = stream::channel(stream::CAPACITY, limit);
        let mut headers = http::HeaderMap::new();
        headers.insert("x-guest", http::HeaderValue::from_static("set"));
        let head = Head {
            status: http::StatusCode::CREATED,
            headers,
            cookies: Vec::new(),
        };
        let outcome = Outcome::Stream(Streamed {
            head: Some(head),
            content_type: None,
            body,
        });
        (writer, outcome)
    }

    #[tokio::test]
    async fn a_finished_stream_is_read_whole_with_its_head() {
        let (mut writer, outcome) = streamed(100);
        let read = tokio::spawn(buffered(outcome, 100, Duration::from_secs(1)));
        writer.send(Bytes::from_static(b"ab")).await.unwrap();
        writer.send(Bytes::from_static(b"cd")).await.unwrap();
        writer.finish();
        let Outcome::Http(r) = read.await.unwrap() else {
            panic!("not an HTTP reply");
        };
        assert_eq!(r.status, http::StatusCode::CREATED);
        assert_eq!(r.headers["x-guest"], "set");
        assert_eq!(&r.body[..], b"abcd");
    }

    #[tokio::test]
    async fn a_cut_stream_fails_the_invocation() {
        let (mut writer, outcome) = streamed(3);
        let read = tokio::spawn(buffered(outcome, 3, Duration::from_secs(1)));
        assert!(writer.send(Bytes::from_static(b"abcd")).await.is_err());
        let outcome = read.await.unwrap();
        assert!(
            matches!(
                outcome,
                Outcome::Failed(InvocationError::ResponseTooLarge { .. })
            ),
            "{outcome:?}"
        );
        let (writer, outcome) = streamed(100);
        let read = tokio::spawn(buffered(outcome, 100, Duration::from_secs(2)));
        writer.cut(Cut::Deadline);
        let outcome = read.await.unwrap();
        assert!(
            matches!(outcome, Outcome::Failed(InvocationError::Timeout(_))),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn other_outcomes_pass_unchanged() {
        let outcome = Outcome::Failed(InvocationError::ShuttingDown);
        let outcome = buffered(outcome, 10, Duration::from_secs(1)).await;
        assert!(matches!(
            outcome,
            Outcome::Failed(InvocationError::ShuttingDown)
        ));
    }
}
