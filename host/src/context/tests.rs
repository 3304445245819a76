//! One context, three encodings: the same values and the same defaults on each.

use std::time::Instant;

use http::HeaderValue;
use serde_json::{Value, json};

use super::*;
use crate::dispatch::Event;

const ARN: &str = "arn:aws:lambda:us-east-1:0:function:f";
const TRACE: &str = "Root=1-5e1b4151-5ac6c58f5b5dbd6a4f4f4a5c;Sampled=0";

fn invocation(event: Event) -> Invocation {
    Invocation {
        id: "id-1".into(),
        event,
        deadline: Instant::now(),
        deadline_ms: 1_700_000_000_123,
    }
}

fn full() -> Invocation {
    invocation(Event {
        client_context: Some(r#"{"custom":{"a":"b"}}"#.into()),
        cognito_identity: Some(r#"{"cognitoIdentityId":"i"}"#.into()),
        trace_id: Some(TRACE.into()),
        content_type: Some("text/plain".into()),
        tenant_id: Some(crate::tenancy::TenantId::parse("tenant a@b").unwrap()),
        ..Default::default()
    })
}

fn env_of(inv: &Invocation) -> std::collections::BTreeMap<&'static str, String> {
    Context::of(inv, ARN).env().into_iter().collect()
}

fn json_of(inv: &Invocation) -> Value {
    serde_json::from_slice(&Context::of(inv, ARN).json()).unwrap()
}

#[test]
fn every_transport_carries_the_whole_context() {
    let inv = full();
    let h = next_headers(&inv, &HeaderValue::from_static(ARN));
    assert_eq!(h["lambda-runtime-aws-request-id"], "id-1");
    assert_eq!(h["lambda-runtime-deadline-ms"], "1700000000123");
    assert_eq!(h["lambda-runtime-invoked-function-arn"], ARN);
    assert_eq!(h["lambda-runtime-trace-id"], TRACE);
    assert_eq!(
        h["lambda-runtime-client-context"],
        r#"{"custom":{"a":"b"}}"#
    );
    assert_eq!(
        h["lambda-runtime-cognito-identity"],
        r#"{"cognitoIdentityId":"i"}"#
    );
    assert_eq!(h["content-type"], "text/plain");
    assert_eq!(h["lambda-runtime-aws-tenant-id"], "tenant a@b");

    assert_eq!(
        json_of(&inv),
        json!({
            "request_id": "id-1",
            "deadline_ms": 1_700_000_000_123u64,
            "invoked_function_arn": ARN,
            "trace_id": TRACE,
            "client_context": r#"{"custom":{"a":"b"}}"#,
            "cognito_identity": r#"{"cognitoIdentityId":"i"}"#,
            "content_type": "text/plain",
            "tenant_id": "tenant a@b",
        })
    );

    let env = env_of(&inv);
    assert_eq!(env["AWS_LAMBDA_REQUEST_ID"], "id-1");
    assert_eq!(env["AWS_LAMBDA_DEADLINE_MS"], "1700000000123");
    assert_eq!(env["AWS_LAMBDA_INVOKED_FUNCTION_ARN"], ARN);
    assert_eq!(env["AWS_LAMBDA_TRACE_ID"], TRACE);
    assert_eq!(env["_X_AMZN_TRACE_ID"], TRACE);
    assert_eq!(env["AWS_LAMBDA_CLIENT_CONTEXT"], r#"{"custom":{"a":"b"}}"#);
    assert_eq!(
        env["AWS_LAMBDA_COGNITO_IDENTITY"],
        r#"{"cognitoIdentityId":"i"}"#
    );
    assert_eq!(env["AWS_LAMBDA_EVENT_CONTENT_TYPE"], "text/plain");
    assert_eq!(env["AWS_LAMBDA_TENANT_ID"], "tenant a@b");
}

#[test]
fn what_the_caller_did_not_send_is_absent_and_the_content_type_defaults_to_json() {
    let inv = invocation(Event::default());
    let h = next_headers(&inv, &HeaderValue::from_static(ARN));
    for absent in [
        "lambda-runtime-trace-id",
        "lambda-runtime-client-context",
        "lambda-runtime-cognito-identity",
        "lambda-runtime-aws-tenant-id",
    ] {
        assert!(!h.contains_key(absent), "{absent}");
    }
    assert_eq!(h["content-type"], DEFAULT_CONTENT_TYPE);

    let j = json_of(&inv);
    for absent in [
        "trace_id",
        "client_context",
        "cognito_identity",
        "tenant_id",
    ] {
        assert!(j[absent].is_null(), "{absent}: {j}");
    }
    assert_eq!(j["content_type"], DEFAULT_CONTENT_TYPE);

    let env = env_of(&inv);
    for absent in [
        "AWS_LAMBDA_TRACE_ID",
        "_X_AMZN_TRACE_ID",
        "AWS_LAMBDA_CLIENT_CONTEXT",
        "AWS_LAMBDA_COGNITO_IDENTITY",
    ] {
        assert!(!env.contains_key(absent), "{absent}");
    }
    assert_eq!(env["AWS_LAMBDA_EVENT_CONTENT_TYPE"], DEFAULT_CONTENT_TYPE);
}

#[test]
fn a_value_no_header_can_carry_is_absent_on_every_transport() {
    let inv = invocation(Event {
        trace_id: Some("Root=1\nInjected: yes".into()),
        content_type: Some("text/plain\r\n".into()),
        ..Default::default()
    });
    let ctx = Context::of(&inv, ARN);
    assert_eq!(ctx.trace_id, None);
    assert_eq!(ctx.content_type, DEFAULT_CONTENT_TYPE);
    assert!(
        !next_headers(&inv, &HeaderValue::from_static(ARN)).contains_key("lambda-runtime-trace-id")
    );
    assert!(json_of(&inv)["trace_id"].is_null());
    assert!(!env_of(&inv).contains_key("AWS_LAMBDA_TRACE_ID"));
}

#[test]
fn the_context_json_is_what_serde_writes_for_the_context() {
    let odd = invocation(Event {
        client_context: Some("{\"k\":\"quote \\\" backslash \\\\ tab\\t é\"}".into()),
        trace_id: Some("Root=1-5e1b4151-5ac6c58f5b5dbd6a4f4f4a5c".into()),
        content_type: Some("text/plain; charset=\"utf-8\"".into()),
        ..Default::default()
    });
    for inv in [full(), invocation(Event::default()), odd] {
        for arn in [ARN, "arn:with \"quotes\" and \\ and \u{1}"] {
            let ctx = Context::of(&inv, arn);
            assert_eq!(
                String::from_utf8(ctx.json()).unwrap(),
                serde_json::to_string(&ctx).unwrap()
            );
        }
    }
}
