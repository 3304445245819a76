//! Bootstrap recycling, driving the native supervisor in-process with the recycle fields set
//! (the `BOOTSTRAP_MAX_INVOCATIONS` / `BOOTSTRAP_MAX_AGE` variables are wired by `config.rs`).

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use aws_custom_runtime::config::{Args, Config};
use aws_custom_runtime::dispatch::{Dispatcher, Event, Outcome};
use aws_custom_runtime::metrics::Metrics;
use aws_custom_runtime::runtime_api::RuntimeApi;
use clap::Parser;
use common::{built, function_dir};
use http::HeaderValue;
use tokio_util::sync::CancellationToken;

struct Running {
    dispatcher: Arc<Dispatcher>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(tune: impl FnOnce(&mut Config)) -> Running {
    let dir = function_dir(&built("probe-function"), &[]);
    let args = Args::parse_from([
        OsString::from("aws-custom-runtime"),
        "--invoker-count=1".into(),
        "--metrics-port=off".into(),
        "--task-root".into(),
        dir.path().as_os_str().to_owned(),
    ]);
    let mut config = Config::build(args, &BTreeMap::new(), dir.path()).unwrap();
    tune(&mut config);
    let config = Arc::new(config);
    let dispatcher = Dispatcher::new(1, 16);
    let metrics = Arc::new(Metrics::new(&config.metric_labels));
    let stop = CancellationToken::new();
    let api = Arc::new(RuntimeApi {
        dispatcher: dispatcher.clone(),
        function_arn: HeaderValue::from_str(&config.function.arn()).unwrap(),
        body_limit: config.body_limit,
        read_timeout: config.function_ttl,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(api.serve(listener, 0, stop.clone()));
    let aws_custom_runtime::config::FunctionKind::Native { bootstrap } = config.kind.clone() else {
        panic!("not a native function");
    };
    tokio::spawn(aws_custom_runtime::invoker::native::supervise(
        0,
        addr,
        bootstrap,
        config,
        dispatcher.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    Running {
        dispatcher,
        metrics,
        stop,
        _dir: dir,
    }
}

/// Invokes the probe for its context; the pid of the bootstrap that answered.
async fn pid_of_invocation(r: &Running) -> u64 {
    let event = Event {
        body: r#"{"context":true}"#.into(),
        ..Event::default()
    };
    let ticket = r.dispatcher.enqueue(
        r.dispatcher.admit().unwrap(),
        event,
        Duration::from_secs(10),
    );
    match ticket.outcome().await.0 {
        Outcome::Response { body, .. } => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            v["pid"].as_u64().unwrap()
        }
        o => panic!("{o:?}"),
    }
}

#[tokio::test]
async fn a_bootstrap_is_recycled_after_its_maximum_invocations_and_nothing_fails() {
    let r = start(|c| c.bootstrap_max_invocations = Some(3)).await;
    let run = async {
        let mut pids = Vec::new();
        for _ in 0..9 {
            pids.push(pid_of_invocation(&r).await);
        }
        pids
    };
    let pids = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("nine invocations in time");
    for chunk in pids.chunks(3) {
        assert!(chunk.iter().all(|p| *p == chunk[0]), "{pids:?}");
    }
    assert!(
        pids[0] != pids[3] && pids[3] != pids[6],
        "a fresh bootstrap after every three: {pids:?}"
    );
    assert!(
        r.metrics
            .bootstrap_restarts
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}

#[tokio::test]
async fn a_bootstrap_is_recycled_once_it_reaches_its_maximum_age() {
    let r = start(|c| c.bootstrap_max_age = Some(Duration::from_millis(400))).await;
    let run = async {
        let first = pid_of_invocation(&r).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        (first, pid_of_invocation(&r).await)
    };
    let (first, later) = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("two invocations in time");
    assert_ne!(first, later, "an old bootstrap was replaced");
}
