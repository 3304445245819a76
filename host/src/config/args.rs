//! The command line and environment as clap reads them: one flag and one environment
//! variable per setting, each shown in `--help` with its default. The only place the host
//! reads its environment; `Config::build` turns these raw values into the checked `Config`.
//! Groups of related settings are flattened in from their own modules.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{BoolishValueParser, EnumValueParser};
use clap::{ArgAction, Parser, ValueEnum};

use super::format::FormatArgs;
use super::function::FunctionArgs;
use super::lambda_env::LambdaEnvArgs;
use super::parse::{self, Blank, PortOrOff};
use super::tenancy::TenancyArgs;
use super::wasm::WasmArgs;

/// Command line and environment of `aws-custom-runtime`. Every flag has an environment
/// variable of the same meaning; the names are those of triggermesh's Go runtime.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "aws-custom-runtime",
    version,
    about = "Runs an AWS Lambda custom-runtime function behind an HTTP endpoint: an executable \
             `bootstrap` as processes served the Lambda Runtime API (2018-06-01), or a \
             `bootstrap.wasm` WASI module in wasmtime.",
    long_about = "Runs an AWS Lambda custom-runtime function behind an HTTP endpoint; every \
                  request to PORT is one invocation.\n\n\
                  The function's folder (LAMBDA_TASK_ROOT) decides the invoker. An executable \
                  `bootstrap` runs as INVOKER_COUNT native processes, all served the Lambda \
                  Runtime API (2018-06-01) on one port, each on its own loopback address \
                  (127.0.0.N+1), restarted when it exits and reset when it passes FUNCTION_TTL. A `bootstrap.wasm` (wasm32-wasip1) \
                  runs in wasmtime, sandboxed: a guest of the lambda_v1 SDK loops in \
                  INVOKER_COUNT long-lived instances (WASM_ISOLATION=loop) or gets a fresh \
                  instance per invocation (WASM_ISOLATION=invocation); a plain WASI command \
                  runs once per invocation, event on stdin, reply on stdout.",
    after_help = "Every option can also be set by the environment variable shown in brackets \
                  (the flag wins)."
)]
pub struct Args {
    /// What to do; no verb: serve.
    #[command(subcommand)]
    pub command: Option<super::Command>,

    /// Public HTTP port; every request to it is one invocation. 0: a port assigned by the OS.
    #[arg(long, env = "PORT", value_name = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Port of the Runtime API, the same for every bootstrap: bootstrap N is served on
    /// 127.0.0.(N+1) at this port (AWS_LAMBDA_RUNTIME_API). Unset or 0: a port assigned by
    /// the OS, free on every one of those addresses.
    #[arg(long, env = "INTERNAL_API_PORT", value_name = "INTERNAL_API_PORT")]
    pub internal_api_port: Option<u16>,

    /// Number of bootstrap processes, or WASI instance slots, to run (native only, 0: start
    /// none, an external runtime polls).
    #[arg(
        long,
        env = "INVOKER_COUNT",
        value_name = "INVOKER_COUNT",
        default_value_t = 4
    )]
    pub invoker_count: usize,

    /// Largest request or response body, in MB (10^6 bytes, as the Go runtime).
    #[arg(long, env = "REQUEST_SIZE_LIMIT", value_name = "REQUEST_SIZE_LIMIT",
          default_value = "5", value_parser = parse::parse_megabytes)]
    pub request_size_limit: usize,

    /// Largest streamed response, in MB (10^6 bytes, as AWS); past it the stream is cut and
    /// the caller sees an incomplete response.
    #[arg(long, env = "STREAMING_RESPONSE_LIMIT", value_name = "STREAMING_RESPONSE_LIMIT",
          default_value = "200", value_parser = parse::parse_megabytes)]
    pub streaming_response_limit: usize,

    /// Deadline of an invocation, counted from its arrival (Go duration: 500ms, 10s, 1m30s).
    #[arg(long, env = "FUNCTION_TTL", value_name = "FUNCTION_TTL",
          default_value = "10s", value_parser = parse::parse_go_duration)]
    pub function_ttl: Duration,

    /// How long a caller may take to send its request body (Go duration); after it: 408.
    #[arg(long, env = "REQUEST_READ_TIMEOUT", value_name = "REQUEST_READ_TIMEOUT",
          default_value = "10s", value_parser = parse::parse_go_duration)]
    pub request_read_timeout: Duration,

    /// How long a caller may take to read the reply (Go duration); after it the connection
    /// is closed.
    #[arg(long, env = "RESPONSE_WRITE_TIMEOUT", value_name = "RESPONSE_WRITE_TIMEOUT",
          default_value = "30s", value_parser = parse::parse_go_duration)]
    pub response_write_timeout: Duration,

    /// Most invocations accepted and not yet answered (queued + running); beyond it the
    /// public endpoint answers 503 with Retry-After. Bounds memory under any load.
    #[arg(long, env = "QUEUE_SIZE", value_name = "QUEUE_SIZE", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_size: u32,

    /// Restart a bootstrap (drained, nothing failed) after this many invocations, to bound
    /// what a long-lived process accumulates. 0 or unset: never.
    #[arg(long, env = "BOOTSTRAP_MAX_INVOCATIONS", value_name = "BOOTSTRAP_MAX_INVOCATIONS",
          value_parser = parse::parse_count_or_off)]
    pub bootstrap_max_invocations: Option<u64>,

    /// Restart a bootstrap (drained, nothing failed) once it is this old (Go duration: 6h,
    /// 90m), as AWS recycles execution environments. 0 or unset: never.
    #[arg(long, env = "BOOTSTRAP_MAX_AGE", value_name = "BOOTSTRAP_MAX_AGE",
          value_parser = parse::parse_duration_or_off)]
    pub bootstrap_max_age: Option<Duration>,

    /// Whether callers of the public endpoint may set X-Amz-Client-Context and
    /// X-Amz-Cognito-Identity; false drops them, as a Lambda Function URL does.
    #[arg(long, env = "PUBLIC_CONTEXT_HEADERS", value_name = "PUBLIC_CONTEXT_HEADERS",
          default_value = "true", action = ArgAction::Set,
          value_parser = Blank(BoolishValueParser::new()))]
    pub public_context_headers: bool,

    /// X-Ray tracing: `PassThrough` forwards the caller's X-Amzn-Trace-Id only; `Active`
    /// also makes a trace id when the caller sent none.
    #[arg(long, env = "TRACING_MODE", value_name = "TRACING_MODE", default_value = "PassThrough",
          ignore_case = true, value_parser = Blank(EnumValueParser::<TracingMode>::new()))]
    pub tracing_mode: TracingMode,

    /// Knative sink (http:// or https:// URL): results are POSTed there instead of being
    /// returned.
    /// Unset: results are the replies.
    #[arg(long, env = "K_SINK", value_name = "K_SINK")]
    pub k_sink: Option<String>,

    /// Port of the Prometheus endpoint (/metrics); 0: a port assigned by the OS; `off`
    /// disables it.
    #[arg(long, env = "METRICS_PROMETHEUS_PORT", value_name = "METRICS_PROMETHEUS_PORT",
          default_value = "9092", value_parser = parse::parse_port_or_off)]
    pub metrics_port: PortOrOff,

    /// The host writes the addresses of its sockets there, as JSON, as soon as they are
    /// bound (for supervisors and tests that start it on port 0); the public one accepts
    /// connections once the function is ready. Unset: no file.
    #[arg(long, env = "ADDRESS_FILE", value_name = "ADDRESS_FILE", value_parser = parse::path())]
    pub address_file: Option<PathBuf>,

    /// The host's async worker threads. Default: a native host, which only relays HTTP
    /// between callers and bootstraps that need the cores more, half the cores (at least 1);
    /// a WASI host, which runs its guests on them, one per core. The bootstraps inherit it.
    #[arg(long, env = "TOKIO_WORKER_THREADS", value_name = "TOKIO_WORKER_THREADS",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,

    /// Log filter: a level (debug, info, warn) or directives (aws_custom_runtime=debug).
    /// Default: RUST_LOG, else info.
    #[arg(long, env = "LOG_LEVEL", value_name = "LOG_LEVEL")]
    pub log_level: Option<String>,

    /// Log filter read when LOG_LEVEL is unset or invalid.
    #[arg(long, env = "RUST_LOG", value_name = "RUST_LOG")]
    pub rust_log: Option<String>,

    /// Folder of Lambda extensions (native functions): every executable file in it is
    /// started before the bootstraps and served the Extensions and Telemetry APIs; at most
    /// 10. `off`: none.
    #[arg(
        long,
        env = "LAMBDA_EXTENSIONS_DIR",
        value_name = "LAMBDA_EXTENSIONS_DIR",
        default_value = "/opt/extensions"
    )]
    pub extensions_dir: String,

    /// How long the runtime and the extensions get to stop once the invocations in flight
    /// have finished (SIGTERM, SHUTDOWN), before SIGKILL (Go duration; Lambda gives 2s).
    #[arg(long, env = "SHUTDOWN_TIMEOUT", value_name = "SHUTDOWN_TIMEOUT",
          default_value = "2s", value_parser = parse::parse_go_duration)]
    pub shutdown_timeout: Duration,

    #[command(flatten)]
    pub function: FunctionArgs,

    #[command(flatten)]
    pub lambda_env: LambdaEnvArgs,

    #[command(flatten)]
    pub format: FormatArgs,

    #[command(flatten)]
    pub wasm: WasmArgs,

    #[command(flatten)]
    pub tenancy: TenancyArgs,

    #[command(flatten)]
    pub sink: super::SinkArgs,
}

impl Args {
    /// The log filters to try in order: LOG_LEVEL, RUST_LOG, then `info`.
    pub fn log_filters(&self) -> impl Iterator<Item = &str> {
        [self.log_level.as_deref(), self.rust_log.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .chain(std::iter::once("info"))
    }
}

/// X-Ray tracing, as a Lambda function's `TracingConfig` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TracingMode {
    /// Trace only what the caller traces: its X-Amzn-Trace-Id is forwarded, none is made.
    #[default]
    #[value(name = "PassThrough")]
    PassThrough,
    /// A trace id is made for every invocation whose caller sent none.
    #[value(name = "Active")]
    Active,
}
