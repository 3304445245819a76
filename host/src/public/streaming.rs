//! Streamed replies on the public endpoint: a streamed outcome goes to the caller chunked,
//! its head first, within the invocation's deadline; an error the function reports after
//! data had started is sent as trailers to a caller that asked for them (`TE: trailers`).
//! The stream's verdict is only known at its end, so its metrics are recorded then. With
//! `K_SINK`, or a wrapper that needs the whole body, the stream is buffered up to the
//! buffered limit instead.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, header};

use super::{PLAIN_SOURCE, PLAIN_TYPE, Public};
use crate::dispatch::stream::{BodyStream, Cut, Ending};
use crate::dispatch::{Admission, InvocationError, Outcome};
use crate::metrics::{Metrics, Verdict};
use crate::serve::{Served, ServedReply};
use crate::wrapper::stream::Encoded;

/// What a streamed reply needs to know of its request.
pub struct Streaming<'a> {
    pub request: &'a HeaderMap,
    pub deadline: Instant,
    pub labels: (&'a Option<String>, &'a Option<String>),
    pub started: Instant,
}

/// The trailers a streamed reply may end with.
const TRAILERS: HeaderValue = HeaderValue::from_static(
    "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
);

impl Public {
    /// Serves a streamed outcome; any other outcome (or a stream buffered here) comes back
    /// with the admission, for the buffered path.
    pub(super) async fn stream(
        &self,
        id: &str,
        outcome: Outcome,
        streaming: Streaming<'_>,
        admission: Option<Admission>,
    ) -> Result<ServedReply, (Outcome, Option<Admission>)> {
        let Outcome::Stream(streamed) = outcome else {
            return Err((outcome, admission));
        };
        let buffer = |streamed: crate::dispatch::Streamed| async move {
            let limit = self.body_limit;
            // A component's reply keeps its own status and headers when read whole.
            let whole = async {
                match self.request_head {
                    true => {
                        let outcome = Outcome::Stream(streamed);
                        crate::invoker::wasm::http::buffered(outcome, limit, self.function_ttl)
                            .await
                    }
                    false => streamed.buffer(limit).await,
                }
            };
            tokio::time::timeout_at(streaming.deadline.into(), whole)
                .await
                .unwrap_or(Outcome::Failed(InvocationError::Timeout(self.function_ttl)))
        };
        // A sink takes whole events (as the README says).
        if self.sink.is_some() {
            return Err((buffer(streamed).await, admission));
        }
        let reply = match self.wrapper.encode_stream(id, streamed) {
            Encoded::Stream(reply) => reply,
            Encoded::Buffer(streamed) => return Err((buffer(streamed).await, admission)),
            Encoded::Whole(mut reply) => {
                if let Some(overrides) = &self.ce_overrides {
                    overrides.apply(&mut reply);
                }
                let verdict = if reply.status().is_server_error() {
                    Verdict::HostError
                } else {
                    Verdict::Success
                };
                record(&self.metrics, streaming.labels, verdict, streaming.started);
                let hold = admission.map(|a| Box::new(a) as Box<dyn Send + Sync>);
                return Ok(reply.map(|body| Served::new(body, hold)));
            }
        };
        let (mut parts, mut body) = reply.into_parts();
        // A streamed CloudEvent (data mode) carries the overrides in its head.
        if let Some(overrides) = &self.ce_overrides {
            overrides.apply_binary(&mut parts.headers);
        }
        if wants_trailers(streaming.request) {
            parts.headers.insert(header::TRAILER, TRAILERS);
        }
        body.set_deadline(streaming.deadline);
        self.watch(id, &mut body, streaming.labels, streaming.started);
        let hold = admission.map(|a| Box::new(a) as Box<dyn Send + Sync>);
        Ok(http::Response::from_parts(
            parts,
            Served::stream(body, hold),
        ))
    }

    /// Records the stream's metrics at its end, and logs how it ended.
    fn watch(
        &self,
        id: &str,
        body: &mut BodyStream,
        labels: (&Option<String>, &Option<String>),
        started: Instant,
    ) {
        let metrics = self.metrics.clone();
        let id = id.to_owned();
        let labels = (labels.0.clone(), labels.1.clone());
        body.on_end(move |ending| {
            let verdict = match ending {
                Ending::Complete => Verdict::Success,
                Ending::Error(_) => Verdict::UserError,
                Ending::Cut(why) => {
                    tracing::warn!(request_id = id, "response stream cut: {why}");
                    metrics.streams_cut.fetch_add(1, Ordering::Relaxed);
                    if *why == Cut::Deadline {
                        metrics.deadlines.fetch_add(1, Ordering::Relaxed);
                    }
                    Verdict::HostError
                }
                Ending::Abandoned => {
                    tracing::info!(
                        request_id = id,
                        "the caller hung up during the response stream"
                    );
                    Verdict::HostError
                }
            };
            record(&metrics, (&labels.0, &labels.1), verdict, started);
        });
    }
}

fn record(
    metrics: &Arc<Metrics>,
    labels: (&Option<String>, &Option<String>),
    verdict: Verdict,
    started: Instant,
) {
    metrics.record(
        labels.0.as_deref().unwrap_or(PLAIN_TYPE),
        labels.1.as_deref().unwrap_or(PLAIN_SOURCE),
        verdict,
        started.elapsed(),
    );
}

/// Whether the caller accepts trailers (`TE: trailers`).
fn wants_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

#[cfg(test)]
mod tests;
