//! The public endpoint of the Knative Service: every request is one invocation. Admission,
//! body read (limit, deadline, a share of admissions for bodies still arriving), wrapper,
//! Dispatcher, sink, metrics; it never talks to a runner itself.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body::Body;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::dispatch::{Dispatcher, InvocationError, Outcome, RequestHead};
use crate::metrics::{Metrics, Verdict};
use crate::reply::{self, IntoReply, ReadError, Reply};
use crate::serve::{Peer, Served, ServedReply};
use crate::sink::Sink;
use crate::wrapper::Wrapper;

pub struct Public {
    pub dispatcher: Arc<Dispatcher>,
    pub body_limit: usize,
    pub function_ttl: Duration,
    /// How long a caller may take to send its body (`REQUEST_READ_TIMEOUT`).
    pub read_timeout: Duration,
    /// Admissions that may wait on a body still arriving: half of `QUEUE_SIZE`, so that
    /// slow uploads cannot starve callers whose request is complete.
    pub uploads: Semaphore,
    pub wrapper: Wrapper,
    pub sink: Option<Sink>,
    /// Set on every CloudEvent replied or sent to the sink (`K_CE_OVERRIDES`).
    pub ce_overrides: Option<crate::sink::CeOverrides>,
    pub metrics: Arc<Metrics>,
    /// Where the tenant id comes from and whether one is expected.
    pub tenancy: crate::tenancy::Policy,
    /// Whether events carry the request's method, URI and headers (`wasi:http` components).
    pub request_head: bool,
}

/// The labels of a request that is not a CloudEvent, as the Go runtime names them.
const PLAIN_TYPE: &str = "plain-http";
const PLAIN_SOURCE: &str = "unknown";

impl Public {
    pub fn new(config: &Config, dispatcher: Arc<Dispatcher>, metrics: Arc<Metrics>) -> Public {
        Public {
            dispatcher,
            body_limit: config.body_limit,
            function_ttl: config.function_ttl,
            read_timeout: config.request_read_timeout,
            uploads: Semaphore::new(upload_slots(config.queue_size)),
            wrapper: config.wrapper.clone(),
            sink: config.sink.clone(),
            ce_overrides: config.ce_overrides.clone(),
            metrics,
            tenancy: config.tenancy.clone(),
            request_head: false,
        }
    }

    /// Answers one request. The reply holds the caller's admission until it has been
    /// written, so that replies nobody reads count against `QUEUE_SIZE`.
    pub async fn handle<B>(&self, req: Request<B>) -> ServedReply
    where
        B: Body + Unpin,
        B::Error: std::fmt::Display,
    {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        if is_kubelet_probe(&parts.headers) {
            // Knative's queue-proxy forwards kubelet probes; they are not invocations.
            let ready =
                reply::with_body(StatusCode::OK, reply::JSON, r#"{"status":"ready"}"#.into());
            return ready.map(Served::from);
        }
        let host_error = |reply: Reply| {
            self.metrics.record(
                PLAIN_TYPE,
                PLAIN_SOURCE,
                Verdict::HostError,
                started.elapsed(),
            );
            reply.map(Served::from)
        };
        let tenant = match self.tenancy.tenant_of(&parts.headers) {
            Ok(t) => t,
            Err(e) => return host_error(e.into_reply()),
        };
        let admission = match self.dispatcher.admit() {
            Ok(a) => a,
            Err(e) => return host_error(e.into_reply()),
        };
        let body = match self.read(body).await {
            Ok(b) => b,
            Err(e) => return host_error(e.into_reply()),
        };
        let peer = parts.extensions.get::<Peer>().map(|p| p.0.ip());
        let mut decoded = match self.wrapper.decode(&parts, body, peer) {
            Ok(d) => d,
            Err(e) => return host_error(e.into_reply()),
        };
        decoded.event.tenant_id = tenant;
        if self.request_head {
            decoded.event.http = Some(Arc::new(RequestHead {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
            }));
        }
        let ticket = self
            .dispatcher
            .enqueue(admission, decoded.event, self.function_ttl);
        let id = ticket.id().clone();
        let deadline = ticket.deadline();
        // A caller who hangs up drops the ticket; it then still times the invocation out
        // and resets its runner (see `Ticket`).
        let (outcome, admission) = ticket.outcome().await;
        let labels = (&decoded.event_type, &decoded.event_source);
        let streamed = streaming::Streaming {
            request: &parts.headers,
            deadline,
            labels,
            started,
        };
        let (outcome, admission) = match self.stream(&id, outcome, streamed, admission).await {
            Ok(served) => return served,
            Err(whole) => whole,
        };
        let mut verdict = match &outcome {
            Outcome::Response { .. } | Outcome::Stream(_) => Verdict::Success,
            Outcome::Http(r) if r.status.is_server_error() => Verdict::UserError,
            Outcome::Http(_) => Verdict::Success,
            Outcome::FunctionError(_) => Verdict::UserError,
            Outcome::Failed(e) => {
                if matches!(e, InvocationError::Timeout(_)) {
                    self.metrics.deadlines.fetch_add(1, Ordering::Relaxed);
                }
                Verdict::HostError
            }
        };
        let mut reply = self.wrapper.encode(&id, outcome);
        if let Some(overrides) = &self.ce_overrides {
            overrides.apply(&mut reply);
        }
        if let Some(sink) = &self.sink
            && reply.status().is_success()
            && reply.status() != StatusCode::NO_CONTENT
        {
            reply = sink.forward(reply).await;
            if !reply.status().is_success() {
                verdict = Verdict::HostError;
            }
        }
        self.metrics.record(
            decoded.event_type.as_deref().unwrap_or(PLAIN_TYPE),
            decoded.event_source.as_deref().unwrap_or(PLAIN_SOURCE),
            verdict,
            started.elapsed(),
        );
        let hold = admission.map(|a| Box::new(a) as Box<dyn Send + Sync>);
        reply.map(|body| Served::new(body, hold))
    }

    /// Reads the body. One that has fully arrived is read at once; one still arriving needs
    /// an upload slot and must be complete within the read timeout.
    async fn read<B>(&self, body: B) -> Result<Bytes, ReadError>
    where
        B: Body + Unpin,
        B::Error: std::fmt::Display,
    {
        let mut read = pin!(reply::read_body(body, self.body_limit));
        if let Poll::Ready(done) = read.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            return done;
        }
        let Ok(_slot) = self.uploads.try_acquire() else {
            return Err(ReadError::Busy);
        };
        match tokio::time::timeout(self.read_timeout, read).await {
            Ok(done) => done,
            Err(_) => Err(ReadError::TimedOut(self.read_timeout)),
        }
    }
}

/// Admissions that bodies still arriving may hold.
pub fn upload_slots(queue_size: usize) -> usize {
    (queue_size / 2).max(1)
}

/// Knative's probe header, as a `HeaderName` (a `&str` is parsed again at every lookup).
static KUBELET_PROBE: http::HeaderName = http::HeaderName::from_static("k-kubelet-probe");

fn is_kubelet_probe(headers: &http::HeaderMap) -> bool {
    headers.contains_key(&KUBELET_PROBE)
        || headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ua| ua.starts_with("kube-probe/"))
}

mod streaming;
#[cfg(test)]
mod tests;
