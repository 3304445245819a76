//! A test extension on the real `lambda-extension` client. What it does depends on the name
//! of its file (the name it registers under), so that one binary plays every part:
//! - `events*`: appends every event it gets, as one JSON line, to `$EXTENSION_LOG/<name>`;
//! - `telemetry*`: subscribes to the Telemetry API (port `$TELEMETRY_PORT`) and appends every
//!   record it receives to `$EXTENSION_LOG/<name>`;
//! - `crash*`: registers, takes its first event and exits with 1;
//! - `hang*`: records each event like `events`, then never asks for the next one after an
//!   INVOKE;
//! - `noop*`: does nothing with its events (the benchmark's extension).
//!
//! Every part but `noop` prints one line per event, so that its output reaches the host's
//! log.

use std::io::Write;

use lambda_extension::{Error, LambdaEvent, LambdaTelemetry, NextEvent, SharedService, service_fn};
use serde_json::json;

fn name() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "extension".into())
}

fn record(name: &str, line: &serde_json::Value) {
    let Ok(folder) = std::env::var("EXTENSION_LOG") else {
        return;
    };
    let path = std::path::Path::new(&folder).join(name);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn describe(event: &NextEvent) -> serde_json::Value {
    match event {
        NextEvent::Invoke(e) => json!({
            "eventType": "INVOKE",
            "requestId": e.request_id,
            "deadlineMs": e.deadline_ms,
            "invokedFunctionArn": e.invoked_function_arn,
            "tracing": e.tracing.value,
        }),
        NextEvent::Shutdown(e) => json!({
            "eventType": "SHUTDOWN",
            "shutdownReason": e.shutdown_reason,
            "deadlineMs": e.deadline_ms,
        }),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let name = name();
    let part = name.clone();
    let events = service_fn(move |event: LambdaEvent| {
        let name = part.clone();
        async move {
            if name.starts_with("noop") {
                return Ok(());
            }
            let line = describe(&event.next);
            println!("{name} got {}", line["eventType"]);
            record(&name, &line);
            if name.starts_with("crash") {
                std::process::exit(1);
            }
            if name.starts_with("hang") && event.next.is_invoke() {
                std::future::pending::<()>().await;
            }
            Ok::<(), Error>(())
        }
    });
    if name.starts_with("telemetry") {
        let part = name.clone();
        let telemetry = service_fn(move |batch: Vec<LambdaTelemetry>| {
            let name = part.clone();
            async move {
                for item in batch {
                    record(&name, &serde_json::to_value(&item)?);
                }
                Ok::<(), Error>(())
            }
        });
        let port = std::env::var("TELEMETRY_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(9003);
        return lambda_extension::Extension::new()
            .with_events_processor(events)
            .with_telemetry_processor(SharedService::new(telemetry))
            .with_telemetry_types(&["platform", "function", "extension"])
            .with_telemetry_port_number(port)
            .run()
            .await;
    }
    lambda_extension::Extension::new()
        .with_events_processor(events)
        .run()
        .await
}
