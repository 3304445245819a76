//! Micro-benchmark of the Dispatcher round trip every invocation pays, native or WASI:
//! admit → enqueue → next → complete → outcome. `cargo bench -p aws-custom-runtime --bench
//! dispatch`; the driver of `make bench` measures the whole host.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_custom_runtime::dispatch::{Dispatcher, Event, Outcome};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};

const BODY: &[u8] = br#"{"name":"bench"}"#;
const TTL: Duration = Duration::from_secs(10);

fn event() -> Event {
    Event {
        body: Bytes::from_static(BODY),
        content_type: Some("application/json".into()),
        ..Event::default()
    }
}

/// One round trip with the runner answering the outcome it was given.
async fn round_trip(d: &Arc<Dispatcher>) -> Outcome {
    let ticket = d.enqueue(d.admit().expect("queue has room"), event(), TTL);
    let inv = d.next(0).await;
    let body = inv.event.body.clone();
    d.complete(
        &inv.id,
        Outcome::Response {
            body,
            content_type: None,
        },
    )
    .expect("in flight");
    ticket.outcome().await.0
}

/// Caller and runner on one thread: the Dispatcher's own cost, no wake-up across threads.
fn same_task(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let d = Dispatcher::new(1, 1024);
    c.bench_function("dispatch/round_trip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(round_trip(&d).await);
                }
                start.elapsed()
            })
        })
    });
}

/// A runner task on another worker thread, as the host runs it: includes the wake-ups of
/// `next` and of the caller's outcome.
fn across_threads(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let d = Dispatcher::new(1, 1024);
    let runner = d.clone();
    rt.spawn(async move {
        loop {
            let inv = runner.next(0).await;
            let body = inv.event.body.clone();
            let _ = runner.complete(
                &inv.id,
                Outcome::Response {
                    body,
                    content_type: None,
                },
            );
        }
    });
    c.bench_function("dispatch/round_trip_across_threads", |b| {
        b.iter_custom(|iters| {
            let d = d.clone();
            rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let ticket = d.enqueue(d.admit().expect("queue has room"), event(), TTL);
                    black_box(ticket.outcome().await.0);
                }
                start.elapsed()
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = same_task, across_threads
}
criterion_main!(benches);
