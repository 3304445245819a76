use std::sync::Arc;
use std::time::Instant;

use super::bindings::exports::lambda::function::handler::{FunctionError, Response};
use super::convert::{outcome, wit_context};
use super::*;
use crate::dispatch::Event;

fn invocation(event: Event) -> Invocation {
    Invocation {
        id: Arc::from("8476a536-e9f4-11e8-9739-2dfe598c3fcd"),
        event,
        deadline: Instant::now(),
        deadline_ms: 1_542_409_706_888,
    }
}

#[test]
fn components_are_told_from_core_modules_by_their_layer() {
    assert!(is_component(b"\0asm\x0d\x00\x01\x00rest"));
    assert!(!is_component(b"\0asm\x01\x00\x00\x00rest"));
    assert!(!is_component(b"\0asm"));
}

#[test]
fn the_context_record_carries_every_field_with_the_shared_defaults() {
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:f";
    let inv = invocation(Event {
        trace_id: Some("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700".into()),
        client_context: Some(r#"{"custom":{"k":"v"}}"#.into()),
        cognito_identity: Some(r#"{"identity_id":"i","identity_pool_id":"p"}"#.into()),
        ..Event::default()
    });
    let c = wit_context(&inv, arn);
    assert_eq!(c.request_id, "8476a536-e9f4-11e8-9739-2dfe598c3fcd");
    assert_eq!(c.deadline_ms, 1_542_409_706_888);
    assert_eq!(c.invoked_function_arn, arn);
    assert_eq!(
        c.trace_id.as_deref(),
        Some("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700")
    );
    assert_eq!(c.client_context.as_deref(), Some(r#"{"custom":{"k":"v"}}"#));
    assert_eq!(
        c.cognito_identity.as_deref(),
        Some(r#"{"identity_id":"i","identity_pool_id":"p"}"#)
    );
    assert_eq!(c.tenant_id, None);
    assert_eq!(c.content_type, "application/json");

    // A value no header could carry is absent, as on every other transport.
    let inv = invocation(Event {
        trace_id: Some("bad\nvalue".into()),
        content_type: Some("text/csv".into()),
        ..Event::default()
    });
    let c = wit_context(&inv, arn);
    assert_eq!(c.trace_id, None);
    assert_eq!(c.content_type, "text/csv");
}

#[test]
fn results_become_outcomes_within_the_limits() {
    let ok = |body: &[u8], ct: Option<&str>| {
        Ok(Response {
            body: body.to_vec(),
            content_type: ct.map(str::to_owned),
        })
    };
    match outcome(ok(b"{}", Some("text/plain")), 10) {
        Outcome::Response { body, content_type } => {
            assert_eq!(&body[..], b"{}");
            assert_eq!(content_type.as_deref(), Some("text/plain"));
        }
        other => panic!("{other:?}"),
    }
    match outcome(ok(b"{}", Some(" ")), 10) {
        Outcome::Response { content_type, .. } => assert_eq!(content_type, None),
        other => panic!("{other:?}"),
    }
    match outcome(ok(b"0123456789x", None), 10) {
        Outcome::Failed(InvocationError::ResponseTooLarge { .. }) => {}
        other => panic!("{other:?}"),
    }
    let err = |t: &str, m: &str| {
        Err(FunctionError {
            error_type: t.into(),
            error_message: m.into(),
        })
    };
    match outcome(err("", "m"), 10) {
        Outcome::FunctionError(d) => {
            assert_eq!(
                (d.error_type.as_str(), d.error_message.as_str()),
                ("Unhandled", "m")
            )
        }
        other => panic!("{other:?}"),
    }
    match outcome(err("T", "ééééééé"), 5) {
        Outcome::FunctionError(d) => assert_eq!(d.error_message, "éé"),
        other => panic!("{other:?}"),
    }
}
