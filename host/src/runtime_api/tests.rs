//! The Runtime API driven with in-memory requests: routing, /next, answers, refusals.

use super::*;

#[test]
fn routes() {
    let get = Method::GET;
    let post = Method::POST;
    assert_eq!(
        route(&get, "/2018-06-01/runtime/invocation/next"),
        Ok(Route::Next)
    );
    assert_eq!(
        route(&post, "/2018-06-01/runtime/invocation/abc/response"),
        Ok(Route::Response("abc"))
    );
    assert_eq!(
        route(&post, "/2018-06-01/runtime/invocation/abc/error"),
        Ok(Route::Error("abc"))
    );
    assert_eq!(
        route(&post, "/2018-06-01/runtime/init/error"),
        Ok(Route::InitError)
    );
    assert_eq!(route(&get, "/2018-06-01/ping"), Ok(Route::Ping));
    assert!(matches!(
        route(&post, "/2018-06-01/runtime/invocation/next"),
        Err(RouteError::MethodNotAllowed { allowed: "GET", .. })
    ));
    assert!(matches!(
        route(&get, "/2018-06-01/runtime/invocation/abc/response"),
        Err(RouteError::MethodNotAllowed {
            allowed: "POST",
            ..
        })
    ));
    for bad in [
        "/",
        "/2018-06-01/runtime/invocation//response",
        "/2018-06-01/runtime/invocation/abc/result",
        "/2018-06-01/runtime/invocation/a/b/response",
        "/2018-06-01/runtime/invocation/abc",
        "/2019-01-01/runtime/invocation/next",
    ] {
        assert_eq!(
            route(&post, bad),
            Err(RouteError::NotFound { path: bad }),
            "{bad}"
        );
    }
}

#[test]
fn unrouted_requests_get_a_json_answer_naming_what_was_asked() {
    let post = Method::POST;
    let next = "/2018-06-01/runtime/invocation/next";
    let wrong_method = route(&post, next).unwrap_err();
    assert_eq!(
        wrong_method.to_string(),
        "POST /2018-06-01/runtime/invocation/next expects GET"
    );
    let r = wrong_method.into_reply();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()[header::ALLOW], "GET");
    let unknown = route(&post, "/nope").unwrap_err();
    assert_eq!(unknown.to_string(), "no Runtime API endpoint at /nope");
    assert_eq!(unknown.into_reply().status(), StatusCode::NOT_FOUND);
}

mod in_memory {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    use super::super::RuntimeApi;
    use crate::dispatch::{Dispatcher, Event, Outcome, Ticket};
    use http::{Request, StatusCode};

    fn api(runners: usize) -> RuntimeApi {
        RuntimeApi {
            dispatcher: Dispatcher::new(runners, 8),
            function_arn: http::HeaderValue::from_static("arn:aws:lambda:us-east-1:0:function:f"),
            body_limit: 1024,
            streaming_limit: 1 << 20,
            read_timeout: Duration::from_secs(5),
            extensions: None,
        }
    }

    fn invoke(api: &RuntimeApi, body: &'static str) -> Ticket {
        let event = Event {
            body: Bytes::from_static(body.as_bytes()),
            ..Event::default()
        };
        api.dispatcher.enqueue(
            api.dispatcher.admit().unwrap(),
            event,
            Duration::from_secs(30),
        )
    }

    fn get(path: &str) -> Request<Full<Bytes>> {
        Request::get(path).body(Full::new(Bytes::new())).unwrap()
    }

    fn post(path: &str, body: &'static str) -> Request<Full<Bytes>> {
        Request::post(path)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    async fn json(reply: crate::reply::Reply) -> serde_json::Value {
        let bytes = reply.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    const NEXT: &str = "/2018-06-01/runtime/invocation/next";

    fn respond(id: &str) -> String {
        format!("/2018-06-01/runtime/invocation/{id}/response")
    }

    #[tokio::test]
    async fn next_hands_out_the_event_and_a_response_completes_it() {
        let api = api(1);
        let ticket = invoke(&api, "ping");
        let next = api.handle(get(NEXT), 0).await;
        assert_eq!(next.status(), StatusCode::OK);
        let id = next.headers()["lambda-runtime-aws-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(next.headers().contains_key("lambda-runtime-deadline-ms"));
        let body = next.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ping");
        let r = api.handle(post(&respond(&id), "pong"), 0).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        match ticket.outcome().await.0 {
            Outcome::Response { body, .. } => assert_eq!(&body[..], b"pong"),
            o => panic!("{o:?}"),
        }
    }

    #[tokio::test]
    async fn an_answer_from_a_runtime_that_does_not_hold_the_invocation_is_refused() {
        let api = api(2);
        let ticket = invoke(&api, "mine");
        let next = api.handle(get(NEXT), 0).await;
        let id = next.headers()["lambda-runtime-aws-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let forged = api.handle(post(&respond(&id), "forged"), 1).await;
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json(forged).await["errorType"], "InvalidRequestID");
        let error = format!("/2018-06-01/runtime/invocation/{id}/error");
        let forged = api.handle(post(&error, "{}"), 1).await;
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
        assert!(api.dispatcher.is_in_flight(&id), "still the holder's");
        let r = api.handle(post(&respond(&id), "real"), 0).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        match ticket.outcome().await.0 {
            Outcome::Response { body, .. } => assert_eq!(&body[..], b"real"),
            o => panic!("{o:?}"),
        }
    }

    #[tokio::test]
    async fn an_oversized_response_fails_the_invocation_with_413_to_the_runtime() {
        let api = api(1);
        let ticket = invoke(&api, "x");
        let next = api.handle(get(NEXT), 0).await;
        let id = next.headers()["lambda-runtime-aws-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let big: &'static str = Box::leak("y".repeat(2048).into_boxed_str());
        let r = api.handle(post(&respond(&id), big), 0).await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        match ticket.outcome().await.0 {
            Outcome::Failed(e) => assert_eq!(e.error_type(), "Function.ResponseSizeTooLarge"),
            o => panic!("{o:?}"),
        }
    }

    #[tokio::test]
    async fn an_undelivered_next_reply_goes_back_to_the_queue() {
        let api = api(2);
        let ticket = invoke(&api, "again");
        let inv = api.dispatcher.next(0).await;
        assert!(api.dispatcher.return_undelivered(0, inv.clone()));
        assert!(!api.dispatcher.is_in_flight(&inv.id));
        let retry = api.dispatcher.next(1).await;
        assert_eq!(retry.id, inv.id, "the same invocation, to the next poll");
        assert!(
            !api.dispatcher.return_undelivered(0, retry.clone()),
            "only the holder's"
        );
        api.dispatcher
            .complete_from(
                1,
                &retry.id,
                Outcome::Response {
                    body: Bytes::from_static(b"ok"),
                    content_type: None,
                },
            )
            .unwrap();
        assert!(matches!(ticket.outcome().await.0, Outcome::Response { .. }));
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_get_json_errors() {
        let api = api(1);
        let r = api.handle(get("/nope"), 0).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(json(r).await["errorType"], "NotFound");
        let r = api.handle(post(NEXT, ""), 0).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()["allow"], "GET");
    }
}
