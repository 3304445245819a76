//! RESPONSE_FORMAT=API_GATEWAY and CLOUDEVENTS through the real binary, with native and
//! WASI functions, and CloudEvents forwarded to a real local sink.

mod common;

use std::sync::{Arc, Mutex};

use aws_custom_runtime::reply;
use common::{Host, built, function_dir, repo_root, target_root};
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn wasm_function(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let wasm = target_root().join(format!("wasm32-wasip1/release/{name}.wasm"));
    assert!(wasm.exists(), "{} missing: run `make test`", wasm.display());
    std::fs::copy(wasm, dir.path().join("bootstrap.wasm")).unwrap();
    dir
}

fn bash_function(handler: &str) -> tempfile::TempDir {
    function_dir(
        &repo_root().join("example/bash/bootstrap"),
        &[("function.sh", handler)],
    )
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_api_gateway_wasi_function_serves_statuses_headers_cookies_queries_and_binary() {
    let dir = wasm_function("wasm-apigateway");
    let host = Host::start(dir.path(), &[("RESPONSE_FORMAT", "API_GATEWAY")]);
    let r = host
        .client
        .get(host.url("/hello?name=Ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/plain");
    assert_eq!(r.text().await.unwrap(), "Hello, Ada!");

    let r = host
        .client
        .get(host.url("/status/201"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "x-status"), "201");
    assert_eq!(header(&r, "set-cookie"), "seen=yes; Path=/");

    let r = host.client.get(host.url("/binary")).send().await.unwrap();
    assert_eq!(header(&r, "content-type"), "image/png");
    assert_eq!(
        &r.bytes().await.unwrap()[..],
        &[0x89, b'P', b'N', b'G', 0, 1, 2, 255]
    );

    let r = host
        .client
        .post(host.url("/orders/7?tag=a&tag=b&name=x%20y"))
        .header("content-type", "application/json")
        .body(r#"{"qty":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(d["method"], "POST");
    assert_eq!(d["path"], "/orders/7");
    assert_eq!(d["name"], "x y");
    assert_eq!(d["body"], r#"{"qty":2}"#);
    assert_eq!(d["is_base64_encoded"], false);
    assert_eq!(d["tags"], json!(["a", "b"]), "multi-value query strings");

    let r = host
        .client
        .post(host.url("/upload"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 159, 146, 150])
        .send()
        .await
        .unwrap();
    let d: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(d["is_base64_encoded"], true, "{d}");
    assert_eq!(d["body"], "AJ+Slg==");
}

#[tokio::test]
async fn a_native_api_gateway_function_sets_status_headers_and_cookies() {
    let dir = bash_function(
        r#"handler() {
  cat > /dev/null
  printf '%s' '{"statusCode":418,"headers":{"x-a":"b","content-type":"text/plain"},"multiValueHeaders":{"set-cookie":["a=1","b=2"]},"body":"teapot"}'
}
"#,
    );
    let host = Host::start(
        dir.path(),
        &[("RESPONSE_FORMAT", "API_GATEWAY"), ("INVOKER_COUNT", "1")],
    );
    let r = host.client.get(host.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 418);
    assert_eq!(header(&r, "x-a"), "b");
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(r.text().await.unwrap(), "teapot");
}

#[tokio::test]
async fn payload_2_0_events_reach_the_function_and_bare_values_are_200_json() {
    // The probe echoes its event: a 2.0 event is not a proxy response, so the shorthand
    // applies and the caller sees the event itself.
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(
        dir.path(),
        &[
            ("RESPONSE_FORMAT", "API_GATEWAY"),
            ("API_GATEWAY_PAYLOAD_VERSION", "2.0"),
        ],
    );
    let r = host
        .client
        .get(host.url("/items/3?x=1&x=2"))
        .header("cookie", "c1=v1; c2=v2")
        .header("X-Custom", "yes")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/json");
    let e: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["rawPath"], "/items/3");
    assert_eq!(e["rawQueryString"], "x=1&x=2");
    assert_eq!(e["cookies"], json!(["c1=v1", "c2=v2"]));
    assert_eq!(e["headers"]["x-custom"], "yes");
    assert_eq!(e["requestContext"]["http"]["method"], "GET");
    assert!(e["requestContext"]["http"]["sourceIp"].is_string());

    // In 1.0 the same echo is not a valid proxy response: 502 saying what was wrong.
    let host = Host::start(dir.path(), &[("RESPONSE_FORMAT", "API_GATEWAY")]);
    let r = host.client.get(host.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(body.contains("statusCode"), "{body}");
}

#[tokio::test]
async fn cloudevents_in_both_modes_become_payload_and_context_and_replies_are_events() {
    let dir = wasm_function("wasm-cloudevents");
    let host = Host::start(
        dir.path(),
        &[
            ("RESPONSE_FORMAT", "CLOUDEVENTS"),
            ("CE_TYPE", "com.example.reply"),
            ("CE_OVERRIDES_SOURCE", "/replier"),
            ("CE_SUBJECT", "answers"),
        ],
    );
    let binary = host
        .client
        .post(host.url("/"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "evt-1")
        .header("ce-type", "com.example.ping")
        .header("ce-source", "/cli")
        .header("content-type", "application/json")
        .body(r#"{"n":1}"#)
        .send()
        .await
        .unwrap();
    let structured = host
        .client
        .post(host.url("/"))
        .header("content-type", "application/cloudevents+json")
        .body(
            json!({"specversion":"1.0","id":"evt-2","type":"com.example.ping","source":"/cli",
                   "datacontenttype":"application/json","data":{"n":2}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    for (r, id, n) in [(binary, "evt-1", 1), (structured, "evt-2", 2)] {
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "ce-specversion"), "1.0");
        assert_eq!(header(&r, "ce-type"), "com.example.reply");
        assert_eq!(header(&r, "ce-source"), "/replier");
        assert_eq!(header(&r, "ce-subject"), "answers");
        assert!(!header(&r, "ce-id").is_empty());
        assert!(header(&r, "content-type").starts_with("application/json"));
        let data: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(data["received"], json!({"n": n}));
        assert_eq!(data["type"], "com.example.ping");
        assert_eq!(data["id"], id);
    }

    let bad = host
        .client
        .post(host.url("/"))
        .header("ce-specversion", "0.1")
        .header("ce-id", "x")
        .header("ce-type", "t")
        .header("ce-source", "/s")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let plain = host.post("/", r#"{"plain":true}"#).await;
    assert_eq!(
        plain.status(),
        200,
        "a request that is not a CloudEvent passes through"
    );
    let data: Value = serde_json::from_str(&plain.text().await.unwrap()).unwrap();
    assert_eq!(data["received"], json!({"plain": true}));
}

#[tokio::test]
async fn a_native_function_gets_cloudevent_attributes_in_its_client_context() {
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(dir.path(), &[("RESPONSE_FORMAT", "CLOUDEVENTS")]);
    let r = host
        .client
        .post(host.url("/"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "abc")
        .header("ce-type", "com.example.ctx")
        .header("ce-source", "/tests")
        .header("ce-myext", "extension-value")
        .header("content-type", "application/json")
        .body(r#"{"context":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "ce-type"),
        "ce.klr.triggermesh.io",
        "the Go runtime's default"
    );
    let data: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let custom = &data["client_context"]["custom"];
    assert_eq!(custom["type"], "com.example.ctx", "{data}");
    assert_eq!(custom["id"], "abc");
    assert_eq!(custom["myext"], "extension-value");
}

#[tokio::test]
async fn event_mode_replies_are_completed_and_empty_replies_send_no_event() {
    let dir = bash_function(
        r#"handler() {
  local event
  event=$(cat)
  case "$event" in
    *empty*) ;;
    *) printf '%s' '{"specversion":"1.0","type":"com.example.full","source":"/fn","data":{"ok":true}}' ;;
  esac
}
"#,
    );
    let host = Host::start(
        dir.path(),
        &[
            ("RESPONSE_FORMAT", "CLOUDEVENTS"),
            ("CE_FUNCTION_RESPONSE_MODE", "event"),
            ("INVOKER_COUNT", "1"),
        ],
    );
    let r = host.post("/", r#"{"x":1}"#).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "ce-type"), "com.example.full");
    assert!(
        !header(&r, "ce-id").is_empty(),
        "the host fills in the missing id"
    );
    let r = host.post("/", "empty").await;
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn cloudevents_reach_the_sink_in_binary_mode() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<(http::HeaderMap, bytes::Bytes)>>> = Arc::default();
    let record = seen.clone();
    let _stop = CancellationToken::new();
    tokio::spawn(aws_custom_runtime::serve::serve(
        listener,
        _stop.clone(),
        aws_custom_runtime::serve::Options::default(),
        move |req: http::Request<hyper::body::Incoming>| {
            let record = record.clone();
            async move {
                let headers = req.headers().clone();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                record.lock().unwrap().push((headers, body));
                reply::with_body(
                    StatusCode::ACCEPTED,
                    HeaderValue::from_static("text/plain"),
                    "".into(),
                )
                .map(aws_custom_runtime::serve::Served::from)
            }
        },
    ));
    let dir = function_dir(&built("probe-function"), &[]);
    let host = Host::start(
        dir.path(),
        &[
            ("RESPONSE_FORMAT", "CLOUDEVENTS"),
            ("K_SINK", &url),
            ("CE_TYPE", "com.example.out"),
        ],
    );
    let r = host.post("/", r#"{"to":"sink"}"#).await;
    assert_eq!(r.status(), 200);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (headers, body) = &seen[0];
    assert_eq!(headers["ce-type"], "com.example.out");
    assert_eq!(headers["ce-specversion"], "1.0");
    assert!(headers.contains_key("ce-id") && headers.contains_key("ce-source"));
    assert_eq!(&body[..], br#"{"to":"sink"}"#);
}
