//! Micro-benchmark of WASI invocations through the public API, one instance slot, caller and
//! runner on one thread: `WASM_ISOLATION=invocation` measures the fresh-instance cycle
//! (instantiate from the template, run the echo guest, tear the sandbox down) plus the
//! Dispatcher round trip; `loop` the same invocation on a long-lived instance; `stdio` a
//! plain WASI command; `abi-echo` (tests/guests) the fresh-instance cycle with the smallest
//! guest, the host's own share. Needs the guests: `cargo build --release --target
//! wasm32-wasip1 -p wasm-echo -p wasm-stdio -p test-guests`; a missing one is skipped.

use std::ffi::OsString;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_custom_runtime::config::{Args, Config, FunctionKind};
use aws_custom_runtime::dispatch::{Dispatcher, Event, Outcome};
use aws_custom_runtime::invoker::wasm::WasmFunction;
use aws_custom_runtime::metrics::Metrics;
use bytes::Bytes;
use clap::Parser;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const BODY: &[u8] = br#"{"name":"bench"}"#;
const TTL: Duration = Duration::from_secs(10);

fn guest(name: &str) -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join(format!("wasm32-wasip1/release/{name}.wasm"));
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} is missing (cargo build --release --target wasm32-wasip1 -p {name})",
            path.display()
        );
        None
    }
}

/// A loaded function running on one slot of `rt`, and the dispatcher that feeds it.
struct Running {
    dispatcher: Arc<Dispatcher>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

fn start(rt: &Runtime, module: &str, isolation: &str) -> Option<Running> {
    let wasm = guest(module)?;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("function");
    std::fs::create_dir(&root).expect("function folder");
    std::fs::copy(wasm, root.join("bootstrap.wasm")).expect("copy the guest");
    let cache = dir.path().join("cache");
    let args = Args::parse_from([
        OsString::from("aws-custom-runtime"),
        "--invoker-count=1".into(),
        format!("--wasm-isolation={isolation}").into(),
        "--metrics-port=off".into(),
        "--task-root".into(),
        root.into_os_string(),
        "--wasm-cache-dir".into(),
        cache.into_os_string(),
    ]);
    let config = Config::build(args, dir.path()).expect("valid config");
    let FunctionKind::Wasm(settings) = &config.kind else {
        panic!("{module} was not taken for a WASI function");
    };
    let dispatcher = Dispatcher::new(1, config.queue_size);
    let metrics = Arc::new(Metrics::new(&config.metric_labels));
    let function = WasmFunction::load(&config, settings, dispatcher.clone(), metrics)
        .expect("the guest loads");
    let stop = CancellationToken::new();
    rt.spawn(Arc::new(function).run(0, stop.clone()));
    let running = Running {
        dispatcher,
        stop,
        _dir: dir,
    };
    match rt.block_on(invoke(&running.dispatcher)) {
        Outcome::Response { .. } => Some(running),
        other => panic!("{module} ({isolation}) did not answer: {other:?}"),
    }
}

async fn invoke(d: &Arc<Dispatcher>) -> Outcome {
    let event = Event {
        body: Bytes::from_static(BODY),
        content_type: Some("application/json".into()),
        ..Event::default()
    };
    let ticket = d.enqueue(d.admit().expect("queue has room"), event, TTL);
    ticket.outcome().await.0
}

fn bench(c: &mut Criterion, name: &str, module: &str, isolation: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let Some(running) = start(&rt, module, isolation) else {
        return;
    };
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(invoke(&running.dispatcher).await);
                }
                start.elapsed()
            })
        })
    });
    running.stop.cancel();
}

fn fresh_instance(c: &mut Criterion) {
    bench(c, "wasm/fresh_instance_echo", "wasm-echo", "invocation");
}

/// The same cycle with the smallest possible guest (`abi-echo`: raw ABI, no SDK, no JSON):
/// what the host itself costs.
fn fresh_instance_minimal_guest(c: &mut Criterion) {
    bench(c, "wasm/fresh_instance_abi_echo", "abi-echo", "invocation");
}

fn long_lived_instance(c: &mut Criterion) {
    bench(c, "wasm/loop_instance_echo", "wasm-echo", "loop");
}

fn stdio_command(c: &mut Criterion) {
    bench(c, "wasm/stdio_command_echo", "wasm-stdio", "invocation");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = fresh_instance, fresh_instance_minimal_guest, long_lived_instance, stdio_command
}
criterion_main!(benches);
