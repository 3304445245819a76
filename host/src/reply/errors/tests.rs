use std::time::Duration;

use http::Method;
use http_body_util::BodyExt;

use super::*;

/// Status, `errorType`, `errorMessage` and the headers (but `Content-Type`) of an answer.
type Answer<S> = (u16, S, S, Vec<(String, String)>);

async fn answer(reply: Reply) -> Answer<String> {
    let status = reply.status().as_u16();
    let mut headers: Vec<_> = reply
        .headers()
        .iter()
        .filter(|(name, _)| *name != header::CONTENT_TYPE)
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    headers.sort();
    assert_eq!(reply.headers()[header::CONTENT_TYPE], "application/json");
    let body = reply.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let field = |k: &str| json[k].as_str().unwrap_or_default().to_owned();
    (status, field("errorType"), field("errorMessage"), headers)
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn every_error_has_its_status_type_and_message() {
    let get = Method::GET;
    let timeout = InvocationError::Timeout(Duration::from_secs(3));
    let init_error =
        InvocationError::InitError(std::sync::Arc::new(crate::lambda_error::Diagnostic {
            error_type: "Runtime.ImportModuleError".into(),
            error_message: "no module named x".into(),
            stack_trace: None,
        }));
    let cases: Vec<(Reply, Answer<&str>)> = vec![
        (
            Failed {
                request_id: "r1",
                error: &timeout,
            }
            .into_reply(),
            (
                504,
                "Sandbox.Timedout",
                "RequestId: r1 Error: Task timed out after 3.00 seconds",
                h(&[]),
            ),
        ),
        (
            Failed {
                request_id: "r2",
                error: &InvocationError::ShuttingDown,
            }
            .into_reply(),
            (
                503,
                "ServiceUnavailable",
                "RequestId: r2 Error: the host is shutting down",
                h(&[]),
            ),
        ),
        (
            Overloaded(8).into_reply(),
            (
                503,
                "TooManyRequestsException",
                "too many invocations pending (8); retry later",
                h(&[("retry-after", "1")]),
            ),
        ),
        (
            ReadError::TooLarge(TooLarge { limit: 10 }).into_reply(),
            (
                413,
                "RequestEntityTooLarge",
                "Exceeded maximum allowed payload size (10 bytes).",
                h(&[("connection", "close")]),
            ),
        ),
        (
            ReadError::TimedOut(Duration::from_millis(2500)).into_reply(),
            (
                408,
                "RequestTimeout",
                "the request body did not arrive within 2.5 s (REQUEST_READ_TIMEOUT)",
                h(&[("connection", "close")]),
            ),
        ),
        (
            ReadError::Busy.into_reply(),
            (
                503,
                "TooManyRequestsException",
                "too many request bodies are still arriving; retry later",
                h(&[("retry-after", "1")]),
            ),
        ),
        (
            ReadError::Broken("cut".into()).into_reply(),
            (400, "InvalidRequestContent", "cut", h(&[])),
        ),
        (
            BadRequest("bad header".into()).into_reply(),
            (400, "InvalidRequestContentException", "bad header", h(&[])),
        ),
        (
            BadReply::ProxyResponse("no statusCode".into()).into_reply(),
            (502, "InvalidProxyResponse", "no statusCode", h(&[])),
        ),
        (
            BadReply::CloudEvent("no source".into()).into_reply(),
            (502, "InvalidCloudEvent", "no source", h(&[])),
        ),
        (
            SinkError::Rejected {
                status: StatusCode::BAD_REQUEST,
                body: "nope".into(),
            }
            .into_reply(),
            (
                502,
                "SinkRejected",
                "the sink refused the result with 400 Bad Request: nope",
                h(&[]),
            ),
        ),
        (
            SinkError::Reply {
                status: StatusCode::ACCEPTED,
                too_large: true,
                reason: "length limit exceeded".into(),
            }
            .into_reply(),
            (
                502,
                "SinkReplyTooLarge",
                "the sink took the result (202 Accepted) but its reply body is over 1048576 \
                 bytes, which are not passed back",
                h(&[]),
            ),
        ),
        (
            SinkError::Reply {
                status: StatusCode::OK,
                too_large: false,
                reason: "connection closed".into(),
            }
            .into_reply(),
            (
                502,
                "SinkReplyBroken",
                "the sink took the result (200 OK) but its reply body broke off: connection closed",
                h(&[]),
            ),
        ),
        (
            SinkError::Unavailable {
                last_error: "the sink answered 503 Service Unavailable".into(),
            }
            .into_reply(),
            (
                502,
                "SinkUnavailable",
                "result not delivered after 3 attempts: the sink answered 503 Service Unavailable",
                h(&[]),
            ),
        ),
        (
            RouteError::NotFound { path: "/x" }.into_reply(),
            (404, "NotFound", "no Runtime API endpoint at /x", h(&[])),
        ),
        (
            RouteError::MethodNotAllowed {
                method: &get,
                path: "/2018-06-01/runtime/init/error",
                allowed: "POST",
            }
            .into_reply(),
            (
                405,
                "MethodNotAllowed",
                "GET /2018-06-01/runtime/init/error expects POST",
                h(&[("allow", "POST")]),
            ),
        ),
        (
            InvalidRequestId.into_reply(),
            (400, "InvalidRequestID", "Invalid request ID", h(&[])),
        ),
        (
            StaleDelivery {
                id: "r4".into(),
                nonce: "n1".into(),
            }
            .into_reply(),
            (
                410,
                "InvokeTimeout",
                "invocation r4 is no longer held in delivery n1 (it timed out, or was delivered \
                 again); this answer was not taken",
                h(&[]),
            ),
        ),
        (
            Failed {
                request_id: "r5",
                error: &init_error,
            }
            .into_reply(),
            (
                502,
                "Runtime.ImportModuleError",
                "no module named x",
                h(&[]),
            ),
        ),
    ];
    for (reply, (status, error_type, message, headers)) in cases {
        let got = answer(reply).await;
        assert_eq!(
            got,
            (status, error_type.into(), message.into(), headers),
            "{error_type}"
        );
    }
}
