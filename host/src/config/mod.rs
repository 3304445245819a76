//! Every knob of the host: its environment variable, its CLI flag, its default and its
//! validation. The only module that reads the process environment (through clap, in
//! [`Args`]); [`Config::build`] checks the raw values once into the typed [`Config`] the
//! rest of the host runs with.
//!
//! `args` holds the serving settings and flattens in the groups of `function` (identity,
//! metric labels), `lambda_env` (what a bootstrap sees), `format` (event wrappers) and
//! `wasm` (WASI functions); `parse` has the value parsers clap does not provide.

mod args;
mod command;
mod format;
mod function;
mod lambda_env;
mod parse;
mod sink;
mod tenancy;
mod wasm;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use args::{Args, TracingMode};
pub use command::{Command, compile_settings};
pub use format::{FormatArgs, ResponseFormat};
pub use function::{FunctionArgs, FunctionInfo};
pub use lambda_env::LambdaEnvArgs;
pub use parse::{PortOrOff, parse_go_duration, parse_megabytes, parse_memory};
pub use sink::SinkArgs;
pub use tenancy::TenancyArgs;
pub use wasm::{Isolation, WasmArgs, WasmSettings};

use crate::sink::{CeOverrides, Sink, SinkOptions};

/// What runs the function.
#[derive(Debug, Clone)]
pub enum FunctionKind {
    /// An executable `bootstrap`, started as processes.
    Native { bootstrap: PathBuf },
    /// `bootstrap.wasm`, run in wasmtime.
    Wasm(WasmSettings),
}

/// The validated configuration the host runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub public_addr: SocketAddr,
    pub internal_api_port: Option<u16>,
    pub invoker_count: usize,
    /// The host's async worker threads (`TOKIO_WORKER_THREADS`, else by kind).
    pub worker_threads: usize,
    /// Invocations one runner may hold at once (`AWS_LAMBDA_MAX_CONCURRENCY`). Unset: not
    /// bounded by the host; a classic client polls once at a time.
    pub max_concurrency: Option<usize>,
    pub body_limit: usize,
    /// Largest streamed response, in bytes (`STREAMING_RESPONSE_LIMIT`).
    pub streaming_limit: usize,
    pub function_ttl: Duration,
    /// How long a caller may take to send its request body (`REQUEST_READ_TIMEOUT`).
    pub request_read_timeout: Duration,
    /// How long a caller may take to read its reply (`RESPONSE_WRITE_TIMEOUT`).
    pub response_write_timeout: Duration,
    /// Recycle a bootstrap after this many invocations (`BOOTSTRAP_MAX_INVOCATIONS`).
    pub bootstrap_max_invocations: Option<u64>,
    /// Recycle a bootstrap at this age (`BOOTSTRAP_MAX_AGE`).
    pub bootstrap_max_age: Option<Duration>,
    /// Whether public callers may set the client context and Cognito identity headers
    /// (`PUBLIC_CONTEXT_HEADERS`).
    pub public_context_headers: bool,
    /// Whether the host makes trace ids (`TRACING_MODE`).
    pub tracing_mode: TracingMode,
    /// Where the host writes its addresses once its sockets are bound (`ADDRESS_FILE`).
    pub address_file: Option<PathBuf>,
    pub wrapper: crate::wrapper::Wrapper,
    /// Where results go instead of the reply (`K_SINK`).
    pub sink: Option<Sink>,
    /// CloudEvent extensions set on every CloudEvent sent or replied (`K_CE_OVERRIDES`).
    pub ce_overrides: Option<CeOverrides>,
    /// Prometheus port (`METRICS_PROMETHEUS_PORT`); None: no metrics endpoint; 0: any.
    pub metrics_port: Option<u16>,
    pub metric_labels: crate::metrics::Labels,
    pub task_root: PathBuf,
    pub kind: FunctionKind,
    pub queue_size: usize,
    pub function: FunctionInfo,
    /// Environment given to every bootstrap on top of the host's own (which it inherits).
    pub lambda_env: BTreeMap<String, String>,
    /// Tenant isolation (`TENANT_ISOLATION_MODE` and its caps).
    pub tenancy: crate::tenancy::Policy,
    /// The extensions found in `LAMBDA_EXTENSIONS_DIR` (native functions only).
    pub extensions: Vec<PathBuf>,
    /// Time the runtime and extensions get to stop (`SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: Duration,
}

/// Why start-up refused the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Bootstrap(String),
}

impl Config {
    /// Validates parsed `args`; relative paths are taken from the current folder.
    pub fn from_args(args: Args) -> Result<Config, anyhow::Error> {
        let cwd = std::env::current_dir()?;
        Ok(Config::build(args, &cwd)?)
    }

    /// Validates `args`; `cwd` resolves a relative task root.
    pub fn build(args: Args, cwd: &Path) -> Result<Config, ConfigError> {
        let sink = sink(args.k_sink.as_deref(), &args.sink.options())?;
        let ce_overrides = args.sink.overrides()?;
        let task_root = task_root(args.function.task_root.as_deref(), cwd)?;
        let address_file = address_file(args.address_file.as_deref())?;
        let function = args.function.info();
        let mut wrapper = args.format.wrapper()?;
        wrapper.context = crate::wrapper::ContextOptions {
            accept_context_headers: args.public_context_headers,
            active_tracing: args.tracing_mode == TracingMode::Active,
        };
        let lambda_env = lambda_env::lambda_env(
            &function,
            function::set(&args.function.default_region),
            &task_root,
            &args.lambda_env,
        );
        let kind = kind(&args, &task_root, function.memory_mb)?;
        let tenancy = args
            .tenancy
            .policy(args.invoker_count.max(1), args.queue_size as usize)?;
        let extensions = match kind {
            FunctionKind::Native { .. } => crate::extensions::discover(&args.extensions_dir)?,
            FunctionKind::Wasm(_) => Vec::new(),
        };
        Ok(Config {
            public_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, args.port)),
            internal_api_port: args.internal_api_port.filter(|p| *p != 0),
            invoker_count: args.invoker_count,
            worker_threads: worker_threads(args.worker_threads, &kind, cores()),
            max_concurrency: args.lambda_env.max_concurrency.map(|n| n as usize),
            body_limit: args.request_size_limit,
            streaming_limit: args.streaming_response_limit,
            function_ttl: args.function_ttl,
            request_read_timeout: args.request_read_timeout,
            response_write_timeout: args.response_write_timeout,
            bootstrap_max_invocations: args.bootstrap_max_invocations.filter(|n| *n != 0),
            bootstrap_max_age: args.bootstrap_max_age.filter(|d| !d.is_zero()),
            public_context_headers: args.public_context_headers,
            tracing_mode: args.tracing_mode,
            address_file,
            wrapper,
            sink,
            ce_overrides,
            metrics_port: args.metrics_port.0,
            metric_labels: args.function.metric_labels(),
            task_root,
            kind,
            queue_size: args.queue_size as usize,
            function,
            lambda_env,
            tenancy,
            extensions,
            shutdown_timeout: args.shutdown_timeout,
        })
    }
}

/// The cores this process may use (its cgroup's CPU quota included), at least 1.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The host's async worker threads: as set, else one per core for a WASI host (its guests
/// run on them) and half the cores, at least one, for a native host, which only relays HTTP
/// while its bootstraps need the cores (`make bench`, native on 2 cores with one worker
/// instead of two: a fifth less host CPU per invocation, 7 % more requests per second at
/// c=1, level at c=64).
fn worker_threads(set: Option<u16>, kind: &FunctionKind, cores: usize) -> usize {
    match (set, kind) {
        (Some(n), _) => usize::from(n),
        (None, FunctionKind::Native { .. }) => (cores / 2).max(1),
        (None, FunctionKind::Wasm(_)) => cores,
    }
}

fn sink(url: Option<&str>, options: &SinkOptions) -> Result<Option<Sink>, ConfigError> {
    let Some(url) = url.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    Sink::new(url, options)
        .map(Some)
        .map_err(|reason| ConfigError::Invalid {
            var: "K_SINK",
            value: url.to_owned(),
            reason,
        })
}

fn task_root(arg: Option<&Path>, cwd: &Path) -> Result<PathBuf, ConfigError> {
    let root = match arg.filter(|p| !p.as_os_str().is_empty()) {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => cwd.join(p),
        None => cwd.to_path_buf(),
    };
    if !root.is_dir() {
        return Err(ConfigError::Invalid {
            var: "LAMBDA_TASK_ROOT",
            value: root.display().to_string(),
            reason: "not a folder".into(),
        });
    }
    Ok(root)
}

/// The file is written only once the sockets are bound, after the function's checks: a
/// folder that does not exist is better refused now, with the other settings.
fn address_file(arg: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(path) = arg.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(None);
    };
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    if folder.is_some_and(|f| !f.is_dir()) || path.is_dir() {
        return Err(ConfigError::Invalid {
            var: "ADDRESS_FILE",
            value: path.display().to_string(),
            reason: "expected a file in an existing folder".into(),
        });
    }
    Ok(Some(path.to_path_buf()))
}

/// A WASI module where there is `bootstrap.wasm`, else an executable `bootstrap`.
fn kind(args: &Args, task_root: &Path, memory_mb: u32) -> Result<FunctionKind, ConfigError> {
    let module = task_root.join("bootstrap.wasm");
    if module.is_file() {
        if args.invoker_count == 0 {
            return Err(ConfigError::Invalid {
                var: "INVOKER_COUNT",
                value: "0".into(),
                reason: "a WASI function needs at least one instance".into(),
            });
        }
        return Ok(FunctionKind::Wasm(args.wasm.settings(module, memory_mb)));
    }
    let bootstrap = task_root.join("bootstrap");
    if args.invoker_count > 0 {
        check_executable(&bootstrap)?;
    }
    Ok(FunctionKind::Native { bootstrap })
}

fn check_executable(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        ConfigError::Bootstrap(format!(
            "no bootstrap: {} cannot be read ({e}), and there is no bootstrap.wasm; \
             LAMBDA_TASK_ROOT must name the function's folder",
            path.display()
        ))
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(ConfigError::Bootstrap(format!(
            "bootstrap {} is not an executable file (chmod +x it)",
            path.display()
        )));
    }
    Ok(())
}
