//! Knative sink conventions through the real binary: an https:// K_SINK verified against a
//! CA made here and passed in K_CA_CERTS; a certificate nobody vouches for refused with the
//! reason (502 SinkUnavailable, nothing delivered); K_CE_OVERRIDES on the events sent and
//! replied; K_SINK_TIMEOUT bounding each attempt.

mod common;

use std::sync::{Arc, Mutex};

use common::{Host, built, function_dir};
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

/// Headers and body of every event the sink received.
type Seen = Arc<Mutex<Vec<(HeaderMap, bytes::Bytes)>>>;

/// A test CA (its PEM) and a certificate it signed for 127.0.0.1 and localhost.
fn test_ca() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "sink test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    (
        ca_cert.pem(),
        leaf.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// An https sink on 127.0.0.1 presenting `cert`, answering 202 "ack".
async fn tls_sink(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> (String, Seen) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return; // the client refused our certificate
                };
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let record = record.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let bytes = body.collect().await?.to_bytes();
                            record.lock().unwrap().push((parts.headers, bytes));
                            let mut r = http::Response::new(Full::new(bytes::Bytes::from("ack")));
                            *r.status_mut() = http::StatusCode::ACCEPTED;
                            Ok::<_, hyper::Error>(r)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (url, seen)
}

/// A binary-mode CloudEvent to the host.
async fn send_event(host: &Host) -> reqwest::Response {
    host.client
        .post(host.url("/"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "evt-1")
        .header("ce-type", "com.example.ping")
        .header("ce-source", "/test")
        .header("content-type", "application/json")
        .body(r#"{"n":1}"#)
        .send()
        .await
        .unwrap()
}

const OVERRIDES: &str = r#"{"extensions":{"team":"payments","tier":2}}"#;

#[tokio::test]
async fn an_https_sink_with_a_ca_from_k_ca_certs_receives_events_with_the_overrides() {
    let (ca_pem, cert, key) = test_ca();
    let (url, seen) = tls_sink(cert, key).await;
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(
        dir.path(),
        &[
            ("K_SINK", &url),
            ("K_CA_CERTS", &ca_pem),
            ("K_CE_OVERRIDES", OVERRIDES),
            ("RESPONSE_FORMAT", "CLOUDEVENTS"),
            ("INVOKER_COUNT", "1"),
        ],
    );
    let r = send_event(&host).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ack");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let headers = &seen[0].0;
    assert_eq!(headers["ce-team"], "payments");
    assert_eq!(headers["ce-tier"], "2");
    assert_eq!(headers["ce-specversion"], "1.0");
}

#[tokio::test]
async fn a_sink_certificate_nobody_vouches_for_is_refused_with_the_reason() {
    let (_ca_pem, cert, key) = test_ca();
    let (url, seen) = tls_sink(cert, key).await;
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(dir.path(), &[("K_SINK", &url), ("INVOKER_COUNT", "1")]);
    let (status, body) = host.invoke(json!({"x": 1})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["errorType"], "SinkUnavailable");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("certificate"), "{message}");
    assert!(seen.lock().unwrap().is_empty(), "nothing was delivered");
}

#[tokio::test]
async fn overrides_are_on_replies_without_a_sink_and_plain_replies_are_left_alone() {
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(
        dir.path(),
        &[
            ("K_CE_OVERRIDES", OVERRIDES),
            ("RESPONSE_FORMAT", "CLOUDEVENTS"),
            ("INVOKER_COUNT", "1"),
        ],
    );
    let r = send_event(&host).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["ce-team"], "payments");
    drop(host);

    let plain = Host::start(
        dir.path(),
        &[("K_CE_OVERRIDES", OVERRIDES), ("INVOKER_COUNT", "1")],
    );
    let r = plain.post("/", r#"{"x":1}"#).await;
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("ce-team"));
}

#[tokio::test]
async fn k_sink_timeout_bounds_each_attempt() {
    // A sink that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            keep.lock().unwrap().push(tcp);
        }
    });
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(
        dir.path(),
        &[
            ("K_SINK", &url),
            ("K_SINK_TIMEOUT", "0.3"),
            ("FUNCTION_TTL", "30s"),
            ("INVOKER_COUNT", "1"),
        ],
    );
    let (status, body) = host.invoke(json!({"x": 1})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["errorType"], "SinkUnavailable");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("did not answer within 300ms"), "{message}");
    assert!(!held.lock().unwrap().is_empty(), "the sink was reached");
}
