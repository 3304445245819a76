//! An SDK guest streaming its responses (`lambda_wasi::streaming`), for the host's tests.
//! Its event: `{"chunks": n, "size": bytes, "signal": path, "prelude": {...}, "fail_after": k}`,
//! as the native stream test function: `n` chunks (`chunk 0\n`, ... or `size` bytes each);
//! with `signal`, the last chunk waits (up to 20 s) for the file `signal` and says
//! `after-signal` or `no-signal`; `prelude` sets the HTTP head; `fail_after` fails the stream
//! after that many chunks.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lambda_wasi::streaming::{
    MetadataPrelude, Stream, StreamResponse, run_with_streaming_response,
};
use lambda_wasi::{Error, LambdaEvent, service_fn};
use serde_json::Value;

struct Chunks {
    next: u64,
    chunks: u64,
    size: usize,
    fail_after: Option<u64>,
    signal: Option<String>,
}

impl Stream for Chunks {
    type Item = Result<Vec<u8>, String>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let i = self.next;
        if i >= self.chunks {
            return Poll::Ready(None);
        }
        self.next += 1;
        if self.fail_after == Some(i) {
            self.next = self.chunks;
            return Poll::Ready(Some(Err("the stream broke on purpose".into())));
        }
        let last = i + 1 == self.chunks && i > 0;
        let chunk = match &self.signal {
            Some(path) if last => wait_for(path).as_bytes().to_vec(),
            _ if self.size > 0 => vec![b'a' + (i % 26) as u8; self.size],
            _ => format!("chunk {i}\n").into_bytes(),
        };
        Poll::Ready(Some(Ok(chunk)))
    }
}

fn wait_for(path: &str) -> &'static str {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if std::fs::metadata(path).is_ok() {
            return "after-signal\n";
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    "no-signal\n"
}

fn prelude(p: &Value) -> MetadataPrelude {
    let mut m = MetadataPrelude::default();
    if let Some(s) = p.get("statusCode").and_then(Value::as_u64) {
        m.status_code = s as u16;
    }
    for (k, v) in p
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        m.headers
            .insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
    }
    for c in p
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.cookies.push(c.as_str().unwrap_or_default().to_owned());
    }
    m
}

async fn handler(event: LambdaEvent<Value>) -> Result<StreamResponse<Chunks>, Error> {
    let ev = event.payload;
    let number = |k: &str| ev.get(k).and_then(Value::as_u64);
    let chunks = Chunks {
        next: 0,
        chunks: number("chunks").unwrap_or(3),
        size: number("size").unwrap_or(0) as usize,
        fail_after: number("fail_after"),
        signal: ev.get("signal").and_then(Value::as_str).map(str::to_owned),
    };
    Ok(StreamResponse {
        metadata_prelude: ev.get("prelude").map(prelude).unwrap_or_default(),
        stream: chunks,
    })
}

fn main() -> Result<(), Error> {
    lambda_wasi::block_on(run_with_streaming_response(service_fn(handler)))
}
