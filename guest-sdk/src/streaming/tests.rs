//! The streaming loop against a fake host that records the ABI calls.

use super::*;
use crate::abi::Host;
use crate::service_fn;
use serde_json::{Value, json};
use std::task::{Context as TaskContext, Poll};

#[derive(Debug, PartialEq)]
enum Call {
    Start(Value),
    Write(Vec<u8>),
    Error(String, String),
    End,
    Failed(String),
}

struct FakeHost {
    payloads: Vec<Vec<u8>>,
    current: Option<Vec<u8>>,
    calls: Vec<Call>,
    /// `stream_write` answers this after the first chunk (-1: the caller is gone).
    later_writes: i32,
}

impl FakeHost {
    fn new(payloads: &[&str]) -> FakeHost {
        FakeHost {
            payloads: payloads
                .iter()
                .rev()
                .map(|p| p.as_bytes().to_vec())
                .collect(),
            current: None,
            calls: Vec::new(),
            later_writes: 0,
        }
    }
}

fn copy(data: &[u8], buf: &mut [u8]) -> i32 {
    if let Some(dest) = buf.get_mut(..data.len()) {
        dest.copy_from_slice(data);
    }
    data.len() as i32
}

impl Host for FakeHost {
    fn next(&mut self) -> i32 {
        self.current = self.payloads.pop();
        self.current.as_ref().map_or(-1, |p| p.len() as i32)
    }
    fn event(&mut self, buf: &mut [u8]) -> i32 {
        let payload = self.current.clone().unwrap_or_default();
        copy(&payload, buf)
    }
    fn context(&mut self, buf: &mut [u8]) -> i32 {
        let json = serde_json::to_vec(&json!({
            "request_id": "req", "deadline_ms": 1_700_000_000_000_u64,
            "invoked_function_arn": "arn:aws:lambda:us-east-1:0:function:f",
            "trace_id": null, "client_context": null, "cognito_identity": null,
            "content_type": "application/json"
        }))
        .unwrap();
        copy(&json, buf)
    }
    fn respond(&mut self, _: &[u8]) -> i32 {
        -1
    }
    fn fail(&mut self, _: &str, message: &str) -> i32 {
        self.calls.push(Call::Failed(message.into()));
        0
    }
}

impl StreamHost for FakeHost {
    fn stream_start(&mut self, prelude: &[u8]) -> i32 {
        self.calls
            .push(Call::Start(serde_json::from_slice(prelude).unwrap()));
        0
    }
    fn stream_write(&mut self, chunk: &[u8]) -> i32 {
        let first = !self.calls.iter().any(|c| matches!(c, Call::Write(_)));
        self.calls.push(Call::Write(chunk.to_vec()));
        if first { 0 } else { self.later_writes }
    }
    fn stream_error(&mut self, error_type: &str, message: &str) -> i32 {
        self.calls
            .push(Call::Error(error_type.into(), message.into()));
        0
    }
    fn stream_end(&mut self) -> i32 {
        self.calls.push(Call::End);
        0
    }
}

/// A stream of the given items.
struct Items(std::vec::IntoIter<Result<&'static str, &'static str>>);

impl Stream for Items {
    type Item = Result<&'static str, &'static str>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.next())
    }
}

fn run(host: &mut FakeHost, items: Vec<Result<&'static str, &'static str>>) {
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let items = items.clone();
        async move {
            if event.payload.get("fail").is_some() {
                return Err(Diagnostic {
                    error_type: "Nope".into(),
                    error_message: "before any byte".into(),
                });
            }
            let mut response = StreamResponse::from(Items(items.into_iter()));
            response.metadata_prelude.status_code = 201;
            response.metadata_prelude.cookies.push("a=1".into());
            Ok(response)
        }
    });
    crate::block_on(run_on(host, handler, Arc::new(Config::default()))).unwrap();
}

#[test]
fn chunks_go_out_between_the_prelude_and_the_end() {
    let mut host = FakeHost::new(&["{}"]);
    run(&mut host, vec![Ok("a"), Ok("b")]);
    assert_eq!(
        host.calls,
        [
            Call::Start(json!({"statusCode": 201, "headers": {}, "cookies": ["a=1"]})),
            Call::Write(b"a".to_vec()),
            Call::Write(b"b".to_vec()),
            Call::End,
        ]
    );
}

#[test]
fn an_error_in_the_stream_ends_it_with_that_error() {
    let mut host = FakeHost::new(&["{}"]);
    run(&mut host, vec![Ok("a"), Err("broke"), Ok("never")]);
    assert_eq!(host.calls[1], Call::Write(b"a".to_vec()));
    assert_eq!(
        host.calls[2],
        Call::Error("Runtime.StreamError".into(), "broke".into())
    );
    assert_eq!(host.calls.len(), 3);
}

#[test]
fn a_handler_error_before_the_stream_is_a_plain_failure() {
    let mut host = FakeHost::new(&[r#"{"fail": true}"#]);
    run(&mut host, vec![Ok("a")]);
    assert_eq!(host.calls, [Call::Failed("before any byte".into())]);
}

#[test]
fn a_gone_caller_stops_the_stream() {
    let mut host = FakeHost::new(&["{}"]);
    host.later_writes = -1;
    run(&mut host, vec![Ok("a"), Ok("b"), Ok("c")]);
    // "c" is never written and the stream is not ended: the host ended it.
    assert_eq!(host.calls.len(), 3);
    assert_eq!(host.calls[2], Call::Write(b"b".to_vec()));
}
