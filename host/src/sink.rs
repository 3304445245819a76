//! Forwards a wrapped result to `K_SINK` instead of returning it, as the Go runtime does:
//! the reply's headers (binary-mode CloudEvent attributes included) and body are POSTed to
//! the sink. Unreachable or 5xx: a few retries with backoff, then an error to the caller.
//! One request in flight per invocation, never a buffer of its own. `https://` sinks use
//! rustls (`tls`); a certificate that does not verify fails at once, with the reason.
//! `overrides` holds `K_CE_OVERRIDES`.

mod overrides;
mod tls;

pub use overrides::CeOverrides;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::reply::{IntoReply, Reply};

const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// How long one delivery attempt may take unless `K_SINK_TIMEOUT` says otherwise.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most of a sink's reply body passed back to the caller; a longer one is a 502
/// `SinkReplyTooLarge` (the memory of a reply stays bounded however the sink answers).
pub const MAX_SINK_REPLY: usize = 1 << 20;

/// Why a result did not reach the sink (its answer is in [`crate::reply::errors`]).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink answered 4xx: it refused the event.
    #[error("the sink refused the result with {status}: {body}")]
    Rejected { status: StatusCode, body: String },
    /// Unreachable, 5xx or no answer, every attempt.
    #[error("result not delivered after {ATTEMPTS} attempts: {last_error}")]
    Unavailable { last_error: String },
    /// The TLS handshake failed (an untrusted or invalid certificate): not retried.
    #[error("result not delivered: {reason}")]
    Untrusted { reason: String },
    /// The sink took the result but its reply body cannot be passed back: over
    /// [`MAX_SINK_REPLY`] (`too_large`), or broken off. Not retried: the sink has the event.
    #[error("the sink took the result ({status}) but {}", reply_problem(*too_large, reason))]
    Reply {
        status: StatusCode,
        too_large: bool,
        reason: String,
    },
}

fn reply_problem(too_large: bool, reason: &str) -> String {
    if too_large {
        format!("its reply body is over {MAX_SINK_REPLY} bytes, which are not passed back")
    } else {
        format!("its reply body broke off: {reason}")
    }
}

/// A validated sink address and the connection pool to it; cloning shares the pool.
#[derive(Clone, Debug)]
pub struct Sink {
    uri: Uri,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Bound of each delivery attempt (`K_SINK_TIMEOUT`).
    timeout: Duration,
}

/// How to reach a sink, besides its address.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// PEM certificates trusted besides the usual roots (`K_CA_CERTS`).
    pub ca_certs: Option<String>,
    /// Bound of each delivery attempt (`K_SINK_TIMEOUT`).
    pub timeout: Duration,
}

impl Default for SinkOptions {
    fn default() -> SinkOptions {
        SinkOptions {
            ca_certs: None,
            timeout: ATTEMPT_TIMEOUT,
        }
    }
}

impl Sink {
    /// A sink at `url`: `http://` (cluster-local) or `https://` (checked against the usual
    /// roots and `options.ca_certs`).
    pub fn new(url: &str, options: &SinkOptions) -> Result<Sink, String> {
        let uri: Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
        match uri.scheme_str() {
            Some("http" | "https") if uri.host().is_some() => {}
            _ => return Err("expected an http:// or https:// URL".into()),
        }
        let tls = tls::client_config(options.ca_certs.as_deref())
            .map_err(|e| format!("K_CA_CERTS: {e}"))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Sink {
            uri,
            client,
            timeout: options.timeout,
        })
    }

    /// Sends `result` to the sink. The caller gets the result's status (as from the Go
    /// runtime) with the sink's reply body where there is one, or a 502 saying why the
    /// sink did not take it.
    pub async fn forward(&self, result: Reply) -> Reply {
        self.send(result)
            .await
            .unwrap_or_else(IntoReply::into_reply)
    }

    async fn send(&self, result: Reply) -> Result<Reply, SinkError> {
        let (parts, body) = result.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let mut backoff = FIRST_BACKOFF;
        let mut last_error = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut req = Request::new(Full::new(body.clone()));
            *req.method_mut() = Method::POST;
            *req.uri_mut() = self.uri.clone();
            for (name, value) in parts.headers.iter() {
                if name != header::CONTENT_LENGTH && name != header::CONNECTION {
                    req.headers_mut().append(name, value.clone());
                }
            }
            match tokio::time::timeout(self.timeout, self.client.request(req)).await {
                Ok(Ok(resp)) if !resp.status().is_server_error() => {
                    let status = resp.status();
                    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
                    let reply_body = Limited::new(resp.into_body(), MAX_SINK_REPLY)
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .map_err(|e| SinkError::Reply {
                            status,
                            too_large: e.is::<LengthLimitError>(),
                            reason: e.to_string(),
                        })?;
                    if status.is_client_error() {
                        return Err(SinkError::Rejected {
                            status,
                            body: String::from_utf8_lossy(&reply_body).into_owned(),
                        });
                    }
                    return Ok(relay(parts.status, content_type, reply_body));
                }
                Ok(Ok(resp)) => last_error = format!("the sink answered {}", resp.status()),
                Ok(Err(e)) if tls::is_tls_failure(&e) => {
                    let reason = format!("TLS with the sink failed: {}", tls::chain(&e));
                    tracing::warn!(sink = %self.uri, "{reason}");
                    return Err(SinkError::Untrusted { reason });
                }
                Ok(Err(e)) => last_error = format!("cannot reach the sink: {}", tls::chain(&e)),
                Err(_) => last_error = format!("the sink did not answer within {:?}", self.timeout),
            }
            tracing::warn!(attempt, sink = %self.uri, "{last_error}");
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 3;
            }
        }
        Err(SinkError::Unavailable { last_error })
    }
}

fn relay(status: StatusCode, content_type: Option<HeaderValue>, body: Bytes) -> Reply {
    let mut reply = http::Response::new(Full::new(body.clone()));
    *reply.status_mut() = status;
    if !body.is_empty() {
        let ct = content_type.unwrap_or(HeaderValue::from_static("application/octet-stream"));
        reply.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_sinks() {
        let o = SinkOptions::default();
        assert!(
            Sink::new(
                "http://broker-ingress.knative-eventing.svc.cluster.local/ns/default",
                &o
            )
            .is_ok()
        );
        assert!(Sink::new("https://example.com", &o).is_ok());
        assert!(Sink::new("not a url", &o).is_err());
        assert!(Sink::new("ftp://x", &o).is_err());
        let bad_ca = SinkOptions {
            ca_certs: Some("garbage".into()),
            ..SinkOptions::default()
        };
        assert!(Sink::new("https://example.com", &bad_ca).is_err());
    }
}
