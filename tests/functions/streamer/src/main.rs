//! A test function on the real `lambda_runtime` client's response streaming. Its event:
//! `{"chunks": n, "size": bytes, "signal": path, "prelude": {...}, "fail_after": k}`:
//! streams `n` chunks of `size` bytes (`chunk 0\n`, ... when `size` is 0); with `signal`, it
//! writes the first chunk, then waits (up to 20 s) for the file `signal` to exist before the
//! last one, whose text says whether the signal came (`after-signal` or `no-signal`); with
//! `prelude` (`statusCode`, `headers`, `cookies`) it sets the HTTP head; with `fail_after`,
//! the stream fails after that many chunks.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use lambda_runtime::{Error, LambdaEvent, MetadataPrelude, StreamResponse, service_fn};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

type Chunks = ReceiverStream<Result<Bytes, Error>>;

async fn handler(event: LambdaEvent<Value>) -> Result<StreamResponse<Chunks>, Error> {
    let ev = event.payload;
    let number = |k: &str| ev.get(k).and_then(Value::as_u64);
    let chunks = number("chunks").unwrap_or(3);
    let size = number("size").unwrap_or(0) as usize;
    let fail_after = number("fail_after");
    let signal = ev.get("signal").and_then(Value::as_str).map(str::to_owned);
    let metadata_prelude = ev.get("prelude").map(prelude).unwrap_or_default();
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for i in 0..chunks {
            if fail_after == Some(i) {
                let _ = tx.send(Err("the stream broke on purpose".into())).await;
                return;
            }
            let last = i + 1 == chunks;
            let chunk = match (&signal, last && i > 0) {
                (Some(path), true) => Bytes::from(wait_for(path).await),
                _ if size > 0 => Bytes::from(vec![b'a' + (i % 26) as u8; size]),
                _ => Bytes::from(format!("chunk {i}\n")),
            };
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
    });
    Ok(StreamResponse {
        metadata_prelude,
        stream: ReceiverStream::new(rx),
    })
}

async fn wait_for(path: &str) -> &'static str {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if std::path::Path::new(path).exists() {
            return "after-signal\n";
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    "no-signal\n"
}

fn prelude(p: &Value) -> MetadataPrelude {
    let mut headers = HeaderMap::new();
    for (k, v) in p
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let (Ok(k), Some(Ok(v))) = (
            HeaderName::from_bytes(k.as_bytes()),
            v.as_str().map(HeaderValue::from_str),
        ) {
            headers.insert(k, v);
        }
    }
    MetadataPrelude {
        status_code: p
            .get("statusCode")
            .and_then(Value::as_u64)
            .and_then(|s| StatusCode::from_u16(s as u16).ok())
            .unwrap_or(StatusCode::OK),
        headers,
        cookies: p
            .get("cookies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
