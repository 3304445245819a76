//! Prometheus metrics, counted where an invocation ends, once. The event-processing
//! families keep the Go runtime's exact names, labels and buckets
//! (`{K_COMPONENT}_event_processing_success_count`, ..., label `namespace_name`), so
//! existing dashboards keep working; that is why the text is rendered here rather than
//! by a client library that would rename counters to `..._total`. Operator gauges and
//! counters (queue depth, in flight, restarts, instance starts, deadlines) come beside them.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The Go runtime's latency buckets, in milliseconds.
const BUCKETS_MS: [u64; 13] = [
    0, 10, 20, 30, 40, 50, 100, 200, 500, 1000, 2000, 5000, 10000,
];
/// Distinct (event type, source) pairs kept; later ones are counted under "other", so
/// that callers choosing CloudEvent types cannot grow memory without bound.
const MAX_SERIES: usize = 64;
/// The labels of the series that counts everything past `MAX_SERIES`.
const OVERFLOW: &str = "other";

/// How an invocation ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// The function reported an error.
    UserError,
    /// The host could not get an answer (deadline, crash, bad input, sink failure).
    HostError,
}

/// Where the metric labels come from (`NAME`, `NAMESPACE`, `RESOURCE_GROUP`, `K_COMPONENT`).
#[derive(Debug, Clone)]
pub struct Labels {
    pub name: String,
    pub namespace: String,
    pub resource_group: String,
    pub component: String,
}

#[derive(Default)]
struct Series {
    event_type: String,
    event_source: String,
    success: u64,
    user_errors: u64,
    host_errors: u64,
    buckets: [u64; BUCKETS_MS.len()],
    sum_ms: u64,
    count: u64,
}

pub struct Metrics {
    prefix: String,
    base: String,
    series: Mutex<Vec<Series>>,
    pub bootstrap_restarts: AtomicU64,
    pub wasm_instance_starts: AtomicU64,
    pub deadlines: AtomicU64,
    /// Execution environments: resets by cause, tenant switches, warm hits.
    pub envs: std::sync::Arc<crate::tenancy::stats::Stats>,
    /// Response streams cut before their end (past their limit or deadline, broken).
    pub streams_cut: AtomicU64,
    pub outbound_denied: AtomicU64,
    /// Lambda extensions started again after they exited, failed or were reset.
    pub extension_restarts: AtomicU64,
    /// Telemetry API records a subscriber never got.
    pub telemetry_dropped: AtomicU64,
}

impl Metrics {
    pub fn new(labels: &Labels) -> Metrics {
        let prefix: String = labels
            .component
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Metrics {
            prefix,
            base: format!(
                "name=\"{}\",namespace_name=\"{}\",resource_group=\"{}\"",
                escape(&labels.name),
                escape(&labels.namespace),
                escape(&labels.resource_group)
            ),
            series: Mutex::new(Vec::new()),
            bootstrap_restarts: AtomicU64::new(0),
            wasm_instance_starts: AtomicU64::new(0),
            deadlines: AtomicU64::new(0),
            envs: Default::default(),
            streams_cut: AtomicU64::new(0),
            outbound_denied: AtomicU64::new(0),
            extension_restarts: AtomicU64::new(0),
            telemetry_dropped: AtomicU64::new(0),
        }
    }

    /// Counts one ended invocation.
    pub fn record(
        &self,
        event_type: &str,
        event_source: &str,
        verdict: Verdict,
        latency: Duration,
    ) {
        let ms = latency.as_millis() as u64;
        let mut all = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let found = all
            .iter()
            .position(|s| s.event_type == event_type && s.event_source == event_source);
        // The overflow series is a slot of its own, beyond the MAX_SERIES real ones, so
        // that no real series is ever overwritten and no count lost.
        let i = match found {
            Some(i) => i,
            None if all.len() < MAX_SERIES => {
                all.push(Series {
                    event_type: event_type.to_owned(),
                    event_source: event_source.to_owned(),
                    ..Series::default()
                });
                all.len() - 1
            }
            // A caller may have used the overflow labels itself: one series, never two.
            None => match all
                .iter()
                .position(|s| s.event_type == OVERFLOW && s.event_source == OVERFLOW)
            {
                Some(i) => i,
                None => {
                    all.push(Series {
                        event_type: OVERFLOW.into(),
                        event_source: OVERFLOW.into(),
                        ..Series::default()
                    });
                    all.len() - 1
                }
            },
        };
        let s = &mut all[i];
        match verdict {
            Verdict::Success => s.success += 1,
            Verdict::UserError => s.user_errors += 1,
            Verdict::HostError => s.host_errors += 1,
        }
        for (b, le) in s.buckets.iter_mut().zip(BUCKETS_MS) {
            if ms <= le {
                *b += 1;
            }
        }
        s.sum_ms += ms;
        s.count += 1;
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, queued: usize, in_flight: usize) -> String {
        let p = &self.prefix;
        let base = &self.base;
        let mut out = String::with_capacity(4096);
        let all = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let labels = |s: &Series| {
            format!(
                "{base},event_type=\"{}\",event_source=\"{}\"",
                escape(&s.event_type),
                escape(&s.event_source)
            )
        };
        let _ = writeln!(
            out,
            "# HELP {p}_event_processing_success_count Number of events successfully processed by the Function"
        );
        let _ = writeln!(out, "# TYPE {p}_event_processing_success_count counter");
        for s in all.iter().filter(|s| s.success > 0) {
            let _ = writeln!(
                out,
                "{p}_event_processing_success_count{{{}}} {}",
                labels(s),
                s.success
            );
        }
        let _ = writeln!(
            out,
            "# HELP {p}_event_processing_error_count Number of events unsuccessfully processed by the Function"
        );
        let _ = writeln!(out, "# TYPE {p}_event_processing_error_count counter");
        for s in all.iter() {
            for (user_managed, n) in [("true", s.user_errors), ("false", s.host_errors)] {
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "{p}_event_processing_error_count{{{},user_managed=\"{user_managed}\"}} {n}",
                        labels(s)
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP {p}_event_processing_latencies Time spent in the Function handler processing events"
        );
        let _ = writeln!(out, "# TYPE {p}_event_processing_latencies histogram");
        for s in all.iter() {
            let l = labels(s);
            for (n, le) in s.buckets.iter().zip(BUCKETS_MS) {
                let _ = writeln!(
                    out,
                    "{p}_event_processing_latencies_bucket{{{l},le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "{p}_event_processing_latencies_bucket{{{l},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "{p}_event_processing_latencies_sum{{{l}}} {}",
                s.sum_ms
            );
            let _ = writeln!(
                out,
                "{p}_event_processing_latencies_count{{{l}}} {}",
                s.count
            );
        }
        drop(all);
        let gauges = [
            (
                "aws_custom_runtime_queue_depth",
                "gauge",
                "Invocations waiting for a runner",
                queued as u64,
            ),
            (
                "aws_custom_runtime_in_flight",
                "gauge",
                "Invocations a runner holds",
                in_flight as u64,
            ),
            (
                "aws_custom_runtime_bootstrap_restarts_total",
                "counter",
                "Native bootstraps started again after they exited or were reset",
                self.bootstrap_restarts.load(Ordering::Relaxed),
            ),
            (
                "aws_custom_runtime_wasm_instance_starts_total",
                "counter",
                "WASI instances created",
                self.wasm_instance_starts.load(Ordering::Relaxed),
            ),
            (
                "aws_custom_runtime_deadlines_total",
                "counter",
                "Invocations that passed their deadline",
                self.deadlines.load(Ordering::Relaxed),
            ),
            (
                "aws_custom_runtime_response_streams_cut_total",
                "counter",
                "Response streams cut before their end (limit, deadline, broken upload)",
                self.streams_cut.load(Ordering::Relaxed),
            ),
            (
                "aws_custom_runtime_wasm_outbound_denied_total",
                "counter",
                "Outgoing HTTP requests of components refused by WASM_ALLOWED_OUTBOUND_HOSTS",
                self.outbound_denied.load(Ordering::Relaxed),
            ),
            (
                "aws_custom_runtime_log_lines_dropped_total",
                "counter",
                "Log lines dropped because stderr was not being read",
                crate::logging::dropped_lines(),
            ),
            (
                "aws_custom_runtime_extension_restarts_total",
                "counter",
                "Lambda extensions started again after they exited, failed or were reset",
                self.extension_restarts.load(Ordering::Relaxed),
            ),
            (
                "aws_custom_runtime_telemetry_dropped_total",
                "counter",
                "Telemetry API records dropped (a subscriber's buffer full or its destination down)",
                self.telemetry_dropped.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{{base}}} {v}"
            );
        }
        self.envs.render(base, &mut out, escape);
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(&Labels {
            name: "fn".into(),
            namespace: "ns".into(),
            resource_group: "functions.extensions.triggermesh.io".into(),
            component: "function".into(),
        })
    }

    #[test]
    fn renders_the_go_runtime_families() {
        let m = metrics();
        m.record(
            "plain-http",
            "unknown",
            Verdict::Success,
            Duration::from_millis(15),
        );
        m.record(
            "plain-http",
            "unknown",
            Verdict::UserError,
            Duration::from_millis(3),
        );
        m.record("t", "s\"q", Verdict::HostError, Duration::from_secs(20));
        let text = m.render(2, 1);
        let base =
            r#"name="fn",namespace_name="ns",resource_group="functions.extensions.triggermesh.io""#;
        assert!(text.contains(&format!(
            "function_event_processing_success_count{{{base},event_type=\"plain-http\",event_source=\"unknown\"}} 1"
        )), "{text}");
        assert!(text.contains("user_managed=\"true\"} 1"));
        assert!(text.contains("event_source=\"s\\\"q\",user_managed=\"false\"} 1"));
        assert!(text.contains("event_source=\"unknown\",le=\"10\"} 1"));
        assert!(text.contains("event_source=\"unknown\",le=\"20\"} 2"));
        assert!(text.contains("event_source=\"s\\\"q\",le=\"+Inf\"} 1"));
        assert!(text.contains("aws_custom_runtime_queue_depth{"));
        assert!(text.contains("} 2\n"));
    }

    #[test]
    fn series_are_bounded_and_no_count_is_lost() {
        let m = metrics();
        let n = MAX_SERIES * 3;
        for i in 0..n {
            m.record(
                &format!("type-{i}"),
                "src",
                Verdict::Success,
                Duration::ZERO,
            );
        }
        // The last real series keeps counting after the table filled up.
        let last = format!("type-{}", MAX_SERIES - 1);
        m.record(&last, "src", Verdict::Success, Duration::ZERO);
        let series = m.series.lock().unwrap();
        assert_eq!(
            series.len(),
            MAX_SERIES + 1,
            "the real ones and the overflow"
        );
        let total: u64 = series.iter().map(|s| s.success).sum();
        assert_eq!(total, n as u64 + 1, "every count is somewhere");
        let other = series.iter().find(|s| s.event_type == OVERFLOW).unwrap();
        assert_eq!(other.success, (n - MAX_SERIES) as u64);
        let kept = series.iter().find(|s| s.event_type == last).unwrap();
        assert_eq!(kept.success, 2);
    }
}
