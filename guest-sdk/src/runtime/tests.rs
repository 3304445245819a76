//! The loop against a fake host that speaks the ABI's return codes.

use super::*;
use crate::{Error, service_fn};
use serde::Deserialize;
use serde_json::{Value, json};
use std::{collections::VecDeque, future::ready};

struct Invocation {
    payload: Vec<u8>,
    context: Vec<u8>,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Responded(Value),
    Failed { error_type: String, message: String },
}

#[derive(Default)]
struct FakeHost {
    queue: VecDeque<Invocation>,
    current: Option<Invocation>,
    outcomes: Vec<Outcome>,
    context_calls: usize,
    /// Simulates the host ending invocations on its own (a deadline) before the guest answers.
    drop_before_result: bool,
}

impl FakeHost {
    fn with_payloads(payloads: &[&str]) -> Self {
        let mut host = FakeHost::default();
        for (n, payload) in payloads.iter().enumerate() {
            host.push(payload.as_bytes(), &context_json(&format!("req-{n}"), None));
        }
        host
    }

    fn push(&mut self, payload: &[u8], context: &[u8]) {
        self.queue.push_back(Invocation {
            payload: payload.to_vec(),
            context: context.to_vec(),
        });
    }

    fn copy(data: Option<&[u8]>, buf: &mut [u8]) -> i32 {
        let Some(data) = data else { return -1 };
        if let Some(dest) = buf.get_mut(..data.len()) {
            dest.copy_from_slice(data);
        }
        i32::try_from(data.len()).expect("test data is small")
    }

    fn finish(&mut self, outcome: Outcome) -> i32 {
        match self.current.take() {
            Some(_) => {
                self.outcomes.push(outcome);
                0
            }
            None => -1,
        }
    }
}

impl Host for FakeHost {
    fn next(&mut self) -> i32 {
        self.current = self.queue.pop_front();
        match &self.current {
            Some(invocation) => i32::try_from(invocation.payload.len()).expect("small"),
            None => -1,
        }
    }

    fn event(&mut self, buf: &mut [u8]) -> i32 {
        Self::copy(self.current.as_ref().map(|i| i.payload.as_slice()), buf)
    }

    fn context(&mut self, buf: &mut [u8]) -> i32 {
        self.context_calls += 1;
        Self::copy(self.current.as_ref().map(|i| i.context.as_slice()), buf)
    }

    fn respond(&mut self, body: &[u8]) -> i32 {
        if self.drop_before_result {
            self.current = None;
        }
        let body = serde_json::from_slice(body).expect("responses are JSON");
        self.finish(Outcome::Responded(body))
    }

    fn fail(&mut self, error_type: &str, message: &str) -> i32 {
        if self.drop_before_result {
            self.current = None;
        }
        self.finish(Outcome::Failed {
            error_type: error_type.into(),
            message: message.into(),
        })
    }
}

fn context_json(request_id: &str, client_context: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "request_id": request_id,
        "deadline_ms": 1_700_000_000_000_u64,
        "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
        "trace_id": null,
        "client_context": client_context,
        "cognito_identity": null,
        "content_type": "application/json"
    }))
    .expect("test JSON serializes")
}

fn run<S, A, R>(host: &mut FakeHost, handler: S) -> Result<(), Error>
where
    S: Service<LambdaEvent<A>, Response = R>,
    S::Error: Into<Diagnostic> + Debug,
    A: DeserializeOwned,
    R: Serialize,
{
    crate::block_on(run_on(host, handler, Arc::new(Config::default())))
}

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({ "payload": event.payload, "request_id": event.context.request_id }))
}

#[test]
fn serves_invocations_until_next_announces_shutdown() {
    let mut host = FakeHost::with_payloads(&[r#"{"a":1}"#, "[2]"]);
    run(&mut host, service_fn(echo)).expect("a shutdown is a clean exit");
    assert_eq!(
        host.outcomes,
        [
            Outcome::Responded(json!({"payload": {"a": 1}, "request_id": "req-0"})),
            Outcome::Responded(json!({"payload": [2], "request_id": "req-1"})),
        ]
    );
}

#[test]
fn handler_state_persists_between_invocations_of_one_instance() {
    let mut host = FakeHost::with_payloads(&["null", "null", "null"]);
    let mut count = 0_u32;
    let handler = service_fn(move |_: LambdaEvent<Value>| {
        count += 1;
        ready(Ok::<_, Error>(count))
    });
    run(&mut host, handler).expect("clean exit");
    assert_eq!(
        host.outcomes,
        [1, 2, 3].map(|n| Outcome::Responded(json!(n)))
    );
}

#[derive(Debug, Deserialize, Serialize)]
struct Order {
    id: u32,
}

#[test]
fn an_event_that_does_not_deserialize_fails_that_invocation_only() {
    let mut host = FakeHost::with_payloads(&[r#"{"id":"seven"}"#, "not json", r#"{"id":7}"#]);
    let handler = service_fn(|event: LambdaEvent<Order>| ready(Ok::<_, Error>(event.payload)));
    run(&mut host, handler).expect("clean exit");
    assert!(matches!(
        &host.outcomes[0],
        Outcome::Failed { error_type, message }
            if error_type == "&lambda_wasi::deserializer::DeserializeError"
                && message.contains("[id]")
    ));
    assert!(matches!(&host.outcomes[1], Outcome::Failed { .. }));
    assert_eq!(host.outcomes[2], Outcome::Responded(json!({"id": 7})));
}

#[test]
fn a_boxed_handler_error_is_named_like_lambda_runtime_names_it() {
    let mut host = FakeHost::with_payloads(&["{}"]);
    let handler =
        service_fn(|_: LambdaEvent<Value>| ready(Err::<Value, Error>("out of cheese".into())));
    run(&mut host, handler).expect("clean exit");
    assert_eq!(
        host.outcomes,
        [Outcome::Failed {
            error_type:
                "&alloc::boxed::Box<dyn core::error::Error + core::marker::Send + core::marker::Sync>"
                    .into(),
            message: "out of cheese".into(),
        }]
    );
}

#[test]
fn a_diagnostic_keeps_its_error_type_and_message() {
    let mut host = FakeHost::with_payloads(&["{}"]);
    let handler = service_fn(|_: LambdaEvent<Value>| async {
        Err::<Value, _>(Diagnostic {
            error_type: "ProbeFailure".into(),
            error_message: "as asked".into(),
        })
    });
    run(&mut host, handler).expect("clean exit");
    assert_eq!(
        host.outcomes,
        [Outcome::Failed {
            error_type: "ProbeFailure".into(),
            message: "as asked".into(),
        }]
    );
}

#[test]
fn a_context_larger_than_the_first_offer_is_fetched_again() {
    let mut host = FakeHost::default();
    let custom: serde_json::Map<String, Value> = (0..200)
        .map(|n| (format!("key-{n}"), json!(format!("value-{n}"))))
        .collect();
    let client_context = json!({ "custom": custom }).to_string();
    let context = context_json("big", Some(&client_context));
    assert!(context.len() > CONTEXT_SIZE_HINT);
    host.push(b"1", &context);

    let handler = service_fn(|event: LambdaEvent<Value>| async move {
        let custom = event
            .context
            .client_context
            .map(|c| c.custom.len())
            .unwrap_or_default();
        Ok::<_, Error>(custom)
    });
    run(&mut host, handler).expect("clean exit");
    assert_eq!(host.outcomes, [Outcome::Responded(json!(200))]);
    assert_eq!(host.context_calls, 2);
}

#[test]
fn an_undecodable_context_fails_the_invocation_without_calling_the_handler() {
    let mut host = FakeHost::default();
    host.push(b"{}", br#"{"request_id": "r"}"#);
    let handler = service_fn(
        |_: LambdaEvent<Value>| -> std::future::Ready<Result<Value, Error>> {
            panic!("the handler must not be called")
        },
    );
    run(&mut host, handler).expect("clean exit");
    assert!(matches!(
        &host.outcomes[..],
        [Outcome::Failed { error_type, message }]
            if error_type == "&lambda_wasi::context::ContextError"
                && message.starts_with("invalid invocation context: ")
    ));
}

#[test]
fn a_result_the_host_refuses_does_not_stop_the_loop() {
    let mut host = FakeHost::with_payloads(&["1", "2"]);
    host.drop_before_result = true;
    let handler = service_fn(|event: LambdaEvent<Value>| ready(Ok::<_, Error>(event.payload)));
    run(&mut host, handler).expect("clean exit");
    assert!(host.outcomes.is_empty());
    assert!(host.queue.is_empty(), "both invocations were taken");
}

#[test]
fn a_service_that_cannot_become_ready_fails_the_invocation_and_stops() {
    struct Broken;
    impl Service<LambdaEvent<Value>> for Broken {
        type Response = Value;
        type Error = Diagnostic;
        type Future = std::future::Ready<Result<Value, Diagnostic>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Diagnostic>> {
            std::task::Poll::Ready(Err(Diagnostic {
                error_type: "Broken".into(),
                error_message: "pool closed".into(),
            }))
        }
        fn call(&mut self, _: LambdaEvent<Value>) -> Self::Future {
            unreachable!("never ready")
        }
    }
    let mut host = FakeHost::with_payloads(&["1", "2"]);
    let err = run(&mut host, Broken).expect_err("the loop stops");
    assert!(err.to_string().contains("Broken: pool closed"), "{err}");
    assert_eq!(
        host.outcomes,
        [Outcome::Failed {
            error_type: "Broken".into(),
            message: "pool closed".into(),
        }]
    );
    assert_eq!(host.queue.len(), 1, "the second invocation stays queued");
}

#[test]
fn copy_in_offers_the_hint_then_grows_to_the_announced_size() {
    let data = b"0123456789";
    let mut offers = Vec::new();
    let mut inbox = Inbox::default();
    let copied = inbox.copy_in(4, |dest| {
        offers.push(dest.len());
        FakeHost::copy(Some(data), dest)
    });
    assert_eq!(copied, Some(()));
    assert_eq!(inbox.data(), data);
    assert_eq!(offers, [4, 10]);

    // A smaller payload reuses the buffer as it is: one offer of all of it, no leftovers.
    let mut offers = Vec::new();
    let copied = inbox.copy_in(3, |dest| {
        offers.push(dest.len());
        dest[..2].fill(b'!');
        FakeHost::copy(Some(b"abc"), dest)
    });
    assert_eq!(copied, Some(()));
    assert_eq!(inbox.data(), b"abc");
    assert_eq!(offers, [10]);
}

#[test]
fn copy_in_reports_a_missing_invocation() {
    let mut inbox = Inbox::default();
    assert_eq!(inbox.copy_in(8, |dest| FakeHost::copy(None, dest)), None);
    assert_eq!(inbox.data(), b"");
}
