//! The public endpoint of the Knative Service: every request is one invocation. Admission,
//! body limit, wrapper, Dispatcher, sink, metrics; it never talks to a runner itself.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use hyper::body::Incoming;

use crate::dispatch::{Dispatcher, InvocationError, Outcome};
use crate::metrics::{self, Metrics};
use crate::reply::{self, Reply};
use crate::serve::Peer;
use crate::sink::Sink;
use crate::wrapper::Wrapper;

pub struct Public {
    pub dispatcher: Arc<Dispatcher>,
    pub body_limit: usize,
    pub function_ttl: Duration,
    pub wrapper: Wrapper,
    pub sink: Option<Sink>,
    pub metrics: Arc<Metrics>,
}

/// The labels of a request that is not a CloudEvent, as the Go runtime names them.
const PLAIN_TYPE: &str = "plain-http";
const PLAIN_SOURCE: &str = "unknown";

impl Public {
    pub async fn handle(&self, req: Request<Incoming>) -> Reply {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        if is_kubelet_probe(&parts.headers) {
            // Knative's queue-proxy forwards kubelet probes; they are not invocations.
            return reply::with_body(StatusCode::OK, reply::JSON, r#"{"status":"ready"}"#.into());
        }
        let host_error = |reply: Reply| {
            self.metrics.record(
                PLAIN_TYPE,
                PLAIN_SOURCE,
                metrics::Verdict::HostError,
                started.elapsed(),
            );
            reply
        };
        let admission = match self.dispatcher.admit() {
            Ok(a) => a,
            Err(e) => return host_error(reply::overloaded(&e)),
        };
        let body = match reply::read_body(body, self.body_limit).await {
            Ok(b) => b,
            Err(e) => return host_error(e.reply()),
        };
        let peer = parts.extensions.get::<Peer>().map(|p| p.0.ip());
        let decoded = match self.wrapper.decode(&parts, body, peer) {
            Ok(d) => d,
            Err(e) => return host_error(e.reply()),
        };
        let ticket = self
            .dispatcher
            .enqueue(admission, decoded.event, self.function_ttl);
        let id = ticket.id().clone();
        // A caller who hangs up drops the ticket; it then still times the invocation out
        // and resets its runner (see `Ticket`).
        let (outcome, admission) = ticket.outcome().await;
        let mut result = match &outcome {
            Outcome::Response { .. } => metrics::Verdict::Success,
            Outcome::FunctionError(_) => metrics::Verdict::UserError,
            Outcome::Failed(e) => {
                if matches!(e, InvocationError::Timeout(_)) {
                    self.metrics.deadlines.fetch_add(1, Ordering::Relaxed);
                }
                metrics::Verdict::HostError
            }
        };
        let mut reply = self.wrapper.encode(&id, outcome);
        if let Some(sink) = &self.sink
            && reply.status().is_success()
            && reply.status() != StatusCode::NO_CONTENT
        {
            reply = sink.forward(reply).await;
            if !reply.status().is_success() {
                result = metrics::Verdict::HostError;
            }
        }
        drop(admission);
        self.metrics.record(
            decoded.event_type.as_deref().unwrap_or(PLAIN_TYPE),
            decoded.event_source.as_deref().unwrap_or(PLAIN_SOURCE),
            result,
            started.elapsed(),
        );
        reply
    }
}

fn is_kubelet_probe(headers: &http::HeaderMap) -> bool {
    headers.contains_key("k-kubelet-probe")
        || headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ua| ua.starts_with("kube-probe/"))
}
