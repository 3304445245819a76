//! The Runtime API as a bootstrap sees it. The test itself plays the bootstrap
//! (INVOKER_COUNT=0) and talks raw HTTP to both sides of the real binary.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Host;
use serde_json::{Value, json};

/// A host with no bootstrap of its own; the test polls its Runtime API.
struct Api {
    host: Host,
    api: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start(env: &[(&str, &str)]) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let mut all = vec![("INVOKER_COUNT", "0")];
        all.extend_from_slice(env);
        let host = Host::spawn(dir.path(), &all);
        let api = format!("http://{}/2018-06-01", host.runtime_api(0));
        let http = reqwest::Client::new();
        // The public port opens once someone polls: poll once, answer with a probe.
        let api_ = Api {
            host,
            api,
            http,
            _dir: dir,
        };
        let first = tokio::spawn(api_.http.get(api_.next_url()).send());
        api_.host.ready(Duration::from_secs(10)).await;
        let warmup = tokio::spawn(
            api_.host
                .client
                .post(api_.host.url("/"))
                .body("warm")
                .send(),
        );
        let r = first.await.unwrap().unwrap();
        let id = header(&r, "lambda-runtime-aws-request-id");
        api_.post_response(&id, "warm").await;
        assert_eq!(warmup.await.unwrap().unwrap().status(), 200);
        api_
    }

    fn next_url(&self) -> String {
        format!("{}/runtime/invocation/next", self.api)
    }

    async fn next(&self) -> reqwest::Response {
        let r = self.http.get(self.next_url()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r
    }

    async fn post_response(&self, id: &str, body: &'static str) -> reqwest::Response {
        self.http
            .post(format!("{}/runtime/invocation/{id}/response", self.api))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Sends `body` to the public endpoint in the background.
    fn call(&self, body: &'static str) -> tokio::task::JoinHandle<reqwest::Response> {
        let req = self.host.client.post(self.host.url("/fn")).body(body);
        tokio::spawn(async move { req.send().await.unwrap() })
    }
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

async fn json_of(r: reqwest::Response) -> Value {
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn next_long_polls_and_carries_the_context_headers() {
    let api = Api::start(&[
        ("FUNCTION_TTL", "7s"),
        ("AWS_LAMBDA_FUNCTION_NAME", "probe"),
        ("AWS_REGION", "eu-west-3"),
    ])
    .await;
    let poll = tokio::spawn(api.http.get(api.next_url()).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "/next must wait for an invocation");

    let cc = "eyJjdXN0b20iOnsiayI6InYifX0="; // {"custom":{"k":"v"}}
    let caller = {
        let req = api
            .host
            .client
            .post(api.host.url("/any/path?q=1"))
            .header("content-type", "text/csv")
            .header("x-amz-client-context", cc)
            .header(
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            )
            .body("a,b");
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    let r = poll.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let id = header(&r, "lambda-runtime-aws-request-id");
    let deadline: u64 = header(&r, "lambda-runtime-deadline-ms").parse().unwrap();
    let left = deadline as i64 - now_ms() as i64;
    assert!((6_000..=7_100).contains(&left), "deadline {left} ms away");
    assert_eq!(
        header(&r, "lambda-runtime-invoked-function-arn"),
        "arn:aws:lambda:eu-west-3:000000000000:function:probe"
    );
    assert_eq!(
        header(&r, "lambda-runtime-trace-id"),
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    );
    assert_eq!(
        header(&r, "lambda-runtime-client-context"),
        r#"{"custom":{"k":"v"}}"#
    );
    assert_eq!(header(&r, "content-type"), "text/csv");
    assert_eq!(r.text().await.unwrap(), "a,b");

    let accepted = api.post_response(&id, "done").await;
    assert_eq!(accepted.status(), 202);
    let reply = caller.await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.text().await.unwrap(), "done");
}

#[tokio::test]
async fn next_defaults_to_json_content_type_and_makes_no_trace_id() {
    let api = Api::start(&[]).await;
    let caller = api.call("{}");
    let r = api.next().await;
    assert_eq!(header(&r, "content-type"), "application/json");
    // Tracing is PassThrough by default: no trace id when the caller sent none.
    assert!(
        r.headers()
            .get("lambda-runtime-trace-id")
            .is_none_or(|v| v.is_empty())
    );
    assert!(r.headers().get("lambda-runtime-client-context").is_none());
    let id = header(&r, "lambda-runtime-aws-request-id");
    api.post_response(&id, "{}").await;
    assert_eq!(caller.await.unwrap().status(), 200);
}

#[tokio::test]
async fn concurrent_polls_from_one_process_each_get_their_own_invocation() {
    let api = Api::start(&[]).await;
    let polls: Vec<_> = (0..8)
        .map(|_| tokio::spawn(api.http.get(api.next_url()).send()))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bodies = ["0", "1", "2", "3", "4", "5", "6", "7"];
    let callers: Vec<_> = bodies.iter().map(|b| api.call(b)).collect();
    let mut seen = Vec::new();
    for p in polls {
        let r = p.await.unwrap().unwrap();
        let id = header(&r, "lambda-runtime-aws-request-id");
        let body = r.text().await.unwrap();
        let answer: &'static str = Box::leak(format!("answer-{body}").into_boxed_str());
        assert_eq!(api.post_response(&id, answer).await.status(), 202);
        seen.push(body);
    }
    seen.sort();
    assert_eq!(seen, bodies);
    for (b, c) in bodies.iter().zip(callers) {
        assert_eq!(
            c.await.unwrap().text().await.unwrap(),
            format!("answer-{b}")
        );
    }
}

#[tokio::test]
async fn a_second_answer_and_unknown_ids_are_refused_like_aws() {
    let api = Api::start(&[]).await;
    let caller = api.call("x");
    let id = header(&api.next().await, "lambda-runtime-aws-request-id");
    assert_eq!(api.post_response(&id, "first").await.status(), 202);
    assert_eq!(caller.await.unwrap().text().await.unwrap(), "first");

    for bad in [id.as_str(), "no-such-id"] {
        let r = api.post_response(bad, "second").await;
        assert_eq!(r.status(), 400);
        assert_eq!(
            json_of(r).await,
            json!({"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})
        );
        let r = api
            .http
            .post(format!("{}/runtime/invocation/{bad}/error", api.api))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }
}

#[tokio::test]
async fn malformed_paths_and_wrong_methods_get_json_errors() {
    let api = Api::start(&[]).await;
    let cases = [
        ("POST", "/runtime/invocation/next", 405),
        ("GET", "/runtime/invocation/abc/response", 405),
        ("PUT", "/runtime/init/error", 405),
        ("POST", "/runtime/invocation//response", 404),
        ("POST", "/runtime/invocation/abc/answer", 404),
        ("GET", "/runtime/invocation", 404),
        ("GET", "/nothing", 404),
    ];
    for (method, path, status) in cases {
        let r = api
            .http
            .request(method.parse().unwrap(), format!("{}{path}", api.api))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let body = json_of(r).await;
        assert!(body["errorType"].is_string() && body["errorMessage"].is_string());
    }
    let ping = api
        .http
        .get(format!("{}/ping", api.api))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
}

#[tokio::test]
async fn error_posts_in_every_dialect_reach_the_caller_as_lambda_errors() {
    let api = Api::start(&[]).await;
    type Case = (&'static [(&'static str, &'static str)], &'static str, Value);
    let cases: [Case; 5] = [
        (
            &[("Lambda-Runtime-Function-Error-Type", "Runtime.Unknown")],
            r#"{"errorMessage":"boom","errorType":"ValueError","stackTrace":["l1"]}"#,
            json!({"errorMessage":"boom","errorType":"ValueError","stackTrace":["l1"]}),
        ),
        (
            &[],
            r#"{"errorType":"Error","errorMessage":"node","trace":["at x"]}"#,
            json!({"errorMessage":"node","errorType":"Error","stackTrace":["at x"]}),
        ),
        (
            &[("Lambda-Runtime-Function-Error-Type", "Runtime.ExitError")],
            "",
            json!({"errorMessage":"","errorType":"Runtime.ExitError"}),
        ),
        (
            &[(
                "Lambda-Runtime-Function-XRay-Error-Cause",
                r#"{"working_directory":"/var/task","exceptions":[],"paths":[]}"#,
            )],
            r#"{"errorMessage":"with xray","errorType":"E"}"#,
            json!({"errorMessage":"with xray","errorType":"E"}),
        ),
        (
            &[],
            "plain text failure",
            json!({"errorMessage":"plain text failure","errorType":"Unhandled"}),
        ),
    ];
    for (headers, body, expected) in cases {
        let caller = api.call("x");
        let id = header(&api.next().await, "lambda-runtime-aws-request-id");
        let mut req = api
            .http
            .post(format!("{}/runtime/invocation/{id}/error", api.api))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        assert_eq!(req.send().await.unwrap().status(), 202);
        let reply = caller.await.unwrap();
        assert_eq!(reply.status(), 500);
        assert_eq!(header(&reply, "content-type"), "application/json");
        assert_eq!(json_of(reply).await, expected);
    }
}

#[tokio::test]
async fn init_error_is_accepted_and_logged() {
    let api = Api::start(&[]).await;
    let r = api
        .http
        .post(format!("{}/runtime/init/error", api.api))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.NoHandler")
        .body(r#"{"errorMessage":"handler missing","errorType":"Runtime.NoHandler"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    api.host.wait_log("handler missing", Duration::from_secs(5));
}

#[tokio::test]
async fn an_oversized_response_is_refused_and_fails_the_invocation() {
    let api = Api::start(&[("REQUEST_SIZE_LIMIT", "1")]).await;
    let caller = api.call("x");
    let id = header(&api.next().await, "lambda-runtime-aws-request-id");
    let r = api
        .http
        .post(format!("{}/runtime/invocation/{id}/response", api.api))
        .body(vec![b'a'; 1_000_001])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(json_of(r).await["errorType"], "RequestEntityTooLarge");
    let reply = caller.await.unwrap();
    assert_eq!(reply.status(), 502);
    assert_eq!(
        json_of(reply).await["errorType"],
        "Function.ResponseSizeTooLarge"
    );
    assert_eq!(api.post_response(&id, "late").await.status(), 400);
}

#[tokio::test]
async fn an_expired_invocation_is_withdrawn_and_never_delivered() {
    let api = Api::start(&[("FUNCTION_TTL", "300ms")]).await;
    let expired = api.call("expired");
    let reply = expired.await.unwrap();
    assert_eq!(reply.status(), 504);
    let body = json_of(reply).await;
    assert_eq!(body["errorType"], "Sandbox.Timedout");
    assert!(body["errorMessage"].as_str().unwrap().contains("timed out"));

    let fresh = api.call("fresh");
    let r = api.next().await;
    let id = header(&r, "lambda-runtime-aws-request-id");
    assert_eq!(
        r.text().await.unwrap(),
        "fresh",
        "the expired one is skipped"
    );
    api.post_response(&id, "ok").await;
    assert_eq!(fresh.await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let api = Api::start(&[("QUEUE_SIZE", "2")]).await;
    let a = api.call("a");
    let b = api.call("b");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = api.host.post("/", "c").await;
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "retry-after"), "1");
    assert_eq!(json_of(r).await["errorType"], "TooManyRequestsException");
    for _ in 0..2 {
        let id = header(&api.next().await, "lambda-runtime-aws-request-id");
        api.post_response(&id, "ok").await;
    }
    assert_eq!(a.await.unwrap().status(), 200);
    assert_eq!(b.await.unwrap().status(), 200);
}

#[tokio::test]
async fn request_bodies_over_the_limit_get_413() {
    let api = Api::start(&[("REQUEST_SIZE_LIMIT", "1")]).await;
    let exact = tokio::spawn({
        let req = api
            .host
            .client
            .post(api.host.url("/"))
            .body(vec![b'x'; 1_000_000]);
        async move { req.send().await.unwrap() }
    });
    let r = api.next().await;
    let id = header(&r, "lambda-runtime-aws-request-id");
    assert_eq!(r.bytes().await.unwrap().len(), 1_000_000);
    api.post_response(&id, "ok").await;
    assert_eq!(exact.await.unwrap().status(), 200);

    let over = api.host.post("/", vec![b'x'; 1_000_001]).await;
    assert_eq!(over.status(), 413);
    assert_eq!(json_of(over).await["errorType"], "RequestEntityTooLarge");
    // A chunked body that grows past the limit is caught too.
    let stream = futures_stream(vec![vec![b'y'; 600_000], vec![b'y'; 600_000]]);
    let over = api
        .host
        .client
        .post(api.host.url("/"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 413);
}

fn futures_stream(
    chunks: Vec<Vec<u8>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    tokio_stream::iter(chunks.into_iter().map(Ok))
}

#[tokio::test]
async fn a_bad_client_context_is_a_400() {
    let api = Api::start(&[]).await;
    let r = api
        .host
        .client
        .post(api.host.url("/"))
        .header("x-amz-client-context", "definitely not base64")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        json_of(r).await["errorType"],
        "InvalidRequestContentException"
    );
}
