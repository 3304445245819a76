//! The public endpoint of the Knative Service: every request is one invocation. Admission,
//! body limit, wrapper, Dispatcher; it never talks to a runner itself.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use hyper::body::Incoming;

use crate::dispatch::Dispatcher;
use crate::reply::{self, Reply};
use crate::wrapper;

pub struct Public {
    pub dispatcher: Arc<Dispatcher>,
    pub body_limit: usize,
    pub function_ttl: Duration,
}

impl Public {
    pub async fn handle(&self, req: Request<Incoming>) -> Reply {
        let (parts, body) = req.into_parts();
        if is_kubelet_probe(&parts.headers) {
            // Knative's queue-proxy forwards kubelet probes; they are not invocations.
            return reply::with_body(StatusCode::OK, reply::JSON, r#"{"status":"ready"}"#.into());
        }
        let admission = match self.dispatcher.admit() {
            Ok(a) => a,
            Err(e) => return reply::overloaded(&e),
        };
        let body = match reply::read_body(body, self.body_limit).await {
            Ok(b) => b,
            Err(e) => return e.reply(),
        };
        let event = match wrapper::decode(&parts.headers, body) {
            Ok(e) => e,
            Err(e) => return e.reply(),
        };
        let ticket = self.dispatcher.enqueue(admission, event, self.function_ttl);
        let id = ticket.id().clone();
        // The wait runs in its own task so that a caller who hangs up still has its
        // invocation timed out and its runner reset.
        match tokio::spawn(ticket.outcome()).await {
            Ok(outcome) => wrapper::encode(&id, outcome),
            Err(e) => reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("RequestId: {id} Error: {e}"),
            ),
        }
    }
}

fn is_kubelet_probe(headers: &http::HeaderMap) -> bool {
    headers.contains_key("k-kubelet-probe")
        || headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ua| ua.starts_with("kube-probe/"))
}
