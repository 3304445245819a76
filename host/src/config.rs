//! Every knob of the host: its environment variable, its CLI flag, its default and its
//! validation. This is the only module that reads the process environment.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::wrapper::{Wrapper, WrapperKind, cloudevents};

/// Command line and environment of `aws-custom-runtime`. Every flag has an environment
/// variable of the same meaning; the names are those of triggermesh's Go runtime.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "aws-custom-runtime",
    version,
    about = "Runs an AWS Lambda custom-runtime function (an executable `bootstrap`) behind an \
             HTTP endpoint, serving it the Lambda Runtime API (2018-06-01).",
    after_help = "Every option can also be set by the environment variable shown in brackets."
)]
pub struct Args {
    /// Public HTTP port; every request to it is one invocation.
    #[arg(long, env = "PORT", value_name = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// First port of the Runtime API (127.0.0.1 only); bootstrap N listens on this port + N.
    /// Unset or 0: ports assigned by the OS.
    #[arg(long, env = "INTERNAL_API_PORT", value_name = "INTERNAL_API_PORT")]
    pub internal_api_port: Option<u16>,

    /// Number of bootstrap processes to run (0: start none, an external runtime polls).
    #[arg(
        long,
        env = "INVOKER_COUNT",
        value_name = "INVOKER_COUNT",
        default_value_t = 4
    )]
    pub invoker_count: usize,

    /// Largest request or response body, in MB (10^6 bytes, as the Go runtime).
    #[arg(long, env = "REQUEST_SIZE_LIMIT", value_name = "REQUEST_SIZE_LIMIT",
          default_value = "5", value_parser = parse_megabytes)]
    pub request_size_limit: usize,

    /// Deadline of an invocation, counted from its arrival (Go duration: 500ms, 10s, 1m30s).
    #[arg(long, env = "FUNCTION_TTL", value_name = "FUNCTION_TTL",
          default_value = "10s", value_parser = parse_go_duration)]
    pub function_ttl: Duration,

    /// Event wrapper: PASSTHROUGH (default), API_GATEWAY or CLOUDEVENTS.
    #[arg(long, env = "RESPONSE_FORMAT", value_name = "RESPONSE_FORMAT", value_parser = parse_format)]
    pub response_format: Option<ResponseFormat>,

    /// API_GATEWAY: proxy payload format version, 1.0 (REST API) or 2.0 (HTTP API).
    #[arg(long, env = "API_GATEWAY_PAYLOAD_VERSION", value_name = "API_GATEWAY_PAYLOAD_VERSION",
          default_value = "1.0", value_parser = crate::wrapper::apigateway::parse_version)]
    pub api_gateway_payload_version: crate::wrapper::apigateway::PayloadVersion,

    /// CLOUDEVENTS: type of the reply event (also read from CE_TYPE).
    #[arg(long, env = "CE_OVERRIDES_TYPE", value_name = "CE_OVERRIDES_TYPE")]
    pub ce_type: Option<String>,

    /// CLOUDEVENTS: source of the reply event (also read from CE_SOURCE).
    #[arg(long, env = "CE_OVERRIDES_SOURCE", value_name = "CE_OVERRIDES_SOURCE")]
    pub ce_source: Option<String>,

    /// CLOUDEVENTS: subject of the reply event (also read from CE_SUBJECT).
    #[arg(
        long,
        env = "CE_OVERRIDES_SUBJECT",
        value_name = "CE_OVERRIDES_SUBJECT"
    )]
    pub ce_subject: Option<String>,

    /// CLOUDEVENTS: `data` (the reply is the event's data) or `event` (the whole event).
    #[arg(
        long,
        env = "CE_FUNCTION_RESPONSE_MODE",
        value_name = "CE_FUNCTION_RESPONSE_MODE"
    )]
    pub ce_response_mode: Option<String>,

    /// Knative sink (http:// URL): results are POSTed there instead of being returned.
    #[arg(long, env = "K_SINK", value_name = "K_SINK")]
    pub k_sink: Option<String>,

    /// Port of the Prometheus endpoint (/metrics); `off` disables it.
    #[arg(long, env = "METRICS_PROMETHEUS_PORT", value_name = "METRICS_PROMETHEUS_PORT",
          default_value = "9092", value_parser = parse_port_or_off)]
    pub metrics_port: PortOrOff,

    /// Handler name passed to the bootstrap as `_HANDLER`.
    #[arg(long, env = "_HANDLER", value_name = "_HANDLER")]
    pub handler: Option<String>,

    /// Folder holding the function (`bootstrap`); default: the current folder.
    #[arg(long, env = "LAMBDA_TASK_ROOT", value_name = "LAMBDA_TASK_ROOT")]
    pub task_root: Option<PathBuf>,

    /// Most invocations accepted and not yet answered (queued + running); beyond it the
    /// public endpoint answers 503 with Retry-After. Bounds memory under any load.
    #[arg(long, env = "QUEUE_SIZE", value_name = "QUEUE_SIZE", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_size: u32,

    /// WASI functions: `loop` (long-lived instances, globals persist between invocations, as
    /// on AWS) or `invocation` (a fresh sandbox for every invocation, for multi-tenant use).
    #[arg(long, env = "WASM_ISOLATION", value_name = "WASM_ISOLATION", default_value = "loop",
          value_parser = parse_isolation)]
    pub wasm_isolation: Isolation,

    /// WASI functions: linear memory cap per instance (e.g. 128MiB, 64MB, 512KiB; a bare
    /// number is MiB). Default: AWS_LAMBDA_FUNCTION_MEMORY_SIZE MiB.
    #[arg(long, env = "WASM_MEMORY_LIMIT", value_name = "WASM_MEMORY_LIMIT",
          value_parser = parse_memory)]
    pub wasm_memory_limit: Option<usize>,

    /// WASI functions: folder of precompiled modules (created private to this user).
    /// Default: aws-custom-runtime-cache in the temp folder; `off` disables the cache.
    #[arg(long, env = "WASM_CACHE_DIR", value_name = "WASM_CACHE_DIR")]
    pub wasm_cache_dir: Option<String>,

    /// WASI functions: write /tmp/perf-<pid>.map so that `perf` names the guest's functions
    /// in profiles (`true`/`false`).
    #[arg(long, env = "WASM_PERF_MAP", value_name = "WASM_PERF_MAP", default_value = "false",
          value_parser = parse_flag, action = clap::ArgAction::Set)]
    pub wasm_perf_map: bool,
}

/// How WASI instances map to invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    Loop,
    Invocation,
}

/// What runs the function.
#[derive(Debug, Clone)]
pub enum FunctionKind {
    /// An executable `bootstrap`, started as processes.
    Native { bootstrap: PathBuf },
    /// `bootstrap.wasm`, run in wasmtime.
    Wasm(WasmSettings),
}

#[derive(Debug, Clone)]
pub struct WasmSettings {
    pub module: PathBuf,
    pub isolation: Isolation,
    pub memory_limit: usize,
    pub cache_dir: Option<PathBuf>,
    pub perf_map: bool,
}

/// How requests become events and outcomes become replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    Passthrough,
    ApiGateway,
    CloudEvents,
}

/// The validated configuration the host runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub public_addr: SocketAddr,
    pub internal_api_port: Option<u16>,
    pub invoker_count: usize,
    pub body_limit: usize,
    pub function_ttl: Duration,
    pub wrapper: crate::wrapper::Wrapper,
    /// Where results go instead of the reply (`K_SINK`).
    pub sink: Option<String>,
    /// Prometheus port (`METRICS_PROMETHEUS_PORT`); None: no metrics endpoint.
    pub metrics_port: Option<u16>,
    pub metric_labels: crate::metrics::Labels,
    pub task_root: PathBuf,
    pub kind: FunctionKind,
    pub queue_size: usize,
    pub function: FunctionInfo,
    /// Environment given to every bootstrap on top of the host's own (which it inherits).
    pub lambda_env: BTreeMap<String, String>,
    /// Recycle a bootstrap after this many invocations (`BOOTSTRAP_MAX_INVOCATIONS`).
    pub bootstrap_max_invocations: Option<u64>,
    /// Recycle a bootstrap once it is this old (`BOOTSTRAP_MAX_AGE`).
    pub bootstrap_max_age: Option<Duration>,
    pub request_read_timeout: Duration,
    pub response_write_timeout: Duration,
    pub address_file: Option<PathBuf>,
}

/// What the function knows of itself: names the ARN, the log group and the bootstrap env.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub name: String,
    pub version: String,
    pub memory_mb: u32,
    pub region: String,
    pub account: String,
    pub handler: Option<String>,
}

impl FunctionInfo {
    /// The ARN a function sees in `Lambda-Runtime-Invoked-Function-Arn`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account, self.name
        )
    }
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
    /// Parses the command line and the environment, and validates them.
    pub fn from_env() -> Result<Config, anyhow::Error> {
        let args = Args::parse();
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let cwd = std::env::current_dir()?;
        Ok(Config::build(args, &env, &cwd)?)
    }

    /// Validates `args`; `env` is the host environment (for the Lambda variables a user may
    /// set themselves), `cwd` resolves a relative task root.
    pub fn build(
        args: Args,
        env: &BTreeMap<String, String>,
        cwd: &Path,
    ) -> Result<Config, ConfigError> {
        let sink = args.k_sink.filter(|s| !s.trim().is_empty());
        if let Some(url) = &sink
            && let Err(reason) = crate::sink::Sink::new(url)
        {
            return Err(ConfigError::Invalid {
                var: "K_SINK",
                value: url.clone(),
                reason,
            });
        }
        let task_root = match args.task_root.filter(|p| !p.as_os_str().is_empty()) {
            Some(p) if p.is_absolute() => p,
            Some(p) => cwd.join(p),
            None => cwd.to_path_buf(),
        };
        if !task_root.is_dir() {
            return Err(ConfigError::Invalid {
                var: "LAMBDA_TASK_ROOT",
                value: task_root.display().to_string(),
                reason: "not a folder".into(),
            });
        }
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let memory_mb = match get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") {
            None => 128,
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                var: "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                value: v.clone(),
                reason: "expected a whole number of MB".into(),
            })?,
        };
        let function = FunctionInfo {
            name: get("AWS_LAMBDA_FUNCTION_NAME")
                .or_else(|| get("K_SERVICE"))
                .unwrap_or_else(|| "function".into()),
            version: get("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_else(|| "$LATEST".into()),
            memory_mb,
            region: get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            account: get("AWS_ACCOUNT_ID").unwrap_or_else(|| "000000000000".into()),
            handler: args.handler.filter(|h| !h.is_empty()),
        };
        let wrapper_kind = match args.response_format.unwrap_or(ResponseFormat::Passthrough) {
            ResponseFormat::Passthrough => WrapperKind::Passthrough,
            ResponseFormat::ApiGateway => WrapperKind::ApiGateway(args.api_gateway_payload_version),
            ResponseFormat::CloudEvents => {
                // The Go runtime's code reads CE_OVERRIDES_*, its README documents CE_*.
                let either = |a: Option<String>, b: &str| a.or_else(|| env.get(b).cloned());
                let settings = cloudevents::settings(
                    either(args.ce_type, "CE_TYPE"),
                    either(args.ce_source, "CE_SOURCE"),
                    either(args.ce_subject, "CE_SUBJECT"),
                    args.ce_response_mode,
                )
                .map_err(|reason| ConfigError::Invalid {
                    var: "CE_OVERRIDES_TYPE/CE_OVERRIDES_SOURCE/CE_OVERRIDES_SUBJECT/CE_FUNCTION_RESPONSE_MODE",
                    value: String::new(),
                    reason,
                })?;
                WrapperKind::CloudEvents(settings)
            }
        };
        let wrapper = Wrapper::new(wrapper_kind);
        let lambda_env = lambda_env(&function, &task_root, env);
        let module = task_root.join("bootstrap.wasm");
        let kind = if module.is_file() {
            if args.invoker_count == 0 {
                return Err(ConfigError::Invalid {
                    var: "INVOKER_COUNT",
                    value: "0".into(),
                    reason: "a WASI function needs at least one instance".into(),
                });
            }
            let cache_dir = match args.wasm_cache_dir.as_deref().map(str::trim) {
                Some("off") => None,
                Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
                _ => Some(std::env::temp_dir().join("aws-custom-runtime-cache")),
            };
            FunctionKind::Wasm(WasmSettings {
                module,
                isolation: args.wasm_isolation,
                memory_limit: args
                    .wasm_memory_limit
                    .unwrap_or(function.memory_mb as usize * MIB),
                cache_dir,
                perf_map: args.wasm_perf_map,
            })
        } else {
            let bootstrap = task_root.join("bootstrap");
            if args.invoker_count > 0 {
                check_executable(&bootstrap)?;
            }
            FunctionKind::Native { bootstrap }
        };
        Ok(Config {
            public_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, args.port)),
            internal_api_port: args.internal_api_port.filter(|p| *p != 0),
            invoker_count: args.invoker_count,
            body_limit: args.request_size_limit,
            function_ttl: args.function_ttl,
            wrapper,
            sink,
            metrics_port: args.metrics_port.0,
            metric_labels: crate::metrics::Labels {
                name: get("NAME").unwrap_or_default(),
                namespace: get("NAMESPACE").unwrap_or_default(),
                resource_group: get("RESOURCE_GROUP")
                    .unwrap_or_else(|| "functions.extensions.triggermesh.io".into()),
                component: get("K_COMPONENT").unwrap_or_else(|| "function".into()),
            },
            task_root,
            kind,
            queue_size: args.queue_size as usize,
            function,
            lambda_env,
            bootstrap_max_invocations: None,
            bootstrap_max_age: None,
            request_read_timeout: Duration::from_secs(10),
            response_write_timeout: Duration::from_secs(30),
            address_file: env.get("ADDRESS_FILE").map(PathBuf::from),
        })
    }
}

const MIB: usize = 1 << 20;

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

/// The variables AWS sets in a Lambda execution environment, with their effective values:
/// the user's where the host environment sets them, else AWS's defaults; the task root,
/// library path and handler are the host's. (`AWS_LAMBDA_RUNTIME_API` is per bootstrap.)
fn lambda_env(
    f: &FunctionInfo,
    task_root: &Path,
    env: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let root = task_root.display().to_string();
    let runtime_dir = env
        .get("LAMBDA_RUNTIME_DIR")
        .cloned()
        .unwrap_or_else(|| "/var/runtime".into());
    let mut ld =
        format!("/lib64:/usr/lib64:{runtime_dir}:{runtime_dir}/lib:{root}:{root}/lib:/opt/lib");
    if let Some(old) = env.get("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
        ld = format!("{ld}:{old}");
    }
    let stream = format!(
        "{}/[{}]{}",
        today_utc(),
        f.version,
        uuid::Uuid::new_v4().simple()
    );
    let defaults = [
        ("AWS_LAMBDA_FUNCTION_NAME", f.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", f.version.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", f.memory_mb.to_string()),
        ("AWS_REGION", f.region.clone()),
        ("AWS_DEFAULT_REGION", f.region.clone()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", f.name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".into()),
        ("LAMBDA_RUNTIME_DIR", runtime_dir),
        ("TZ", ":UTC".into()),
        ("LANG", "en_US.UTF-8".into()),
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/bin".into(),
        ),
    ];
    let mut out: BTreeMap<String, String> = defaults
        .into_iter()
        .map(|(k, default)| {
            let value = env.get(k).filter(|v| !v.is_empty()).cloned();
            (k.to_string(), value.unwrap_or(default))
        })
        .collect();
    // The host decides these whatever the environment says.
    out.insert("LAMBDA_TASK_ROOT".into(), root);
    out.insert("LD_LIBRARY_PATH".into(), ld);
    if let Some(h) = &f.handler {
        out.insert("_HANDLER".into(), h.clone());
    }
    out
}

/// `YYYY/MM/DD` of today in UTC, as AWS names log streams.
fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}/{m:02}/{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A port, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct PortOrOff(pub Option<u16>);

fn parse_port_or_off(s: &str) -> Result<PortOrOff, String> {
    match s.trim() {
        "off" | "" => Ok(PortOrOff(None)),
        p => p
            .parse()
            .map(|p| PortOrOff(Some(p)))
            .map_err(|_| "expected a port number or off".into()),
    }
}

/// A switch as environment variables spell them: true/false, 1/0, yes/no, on/off.
fn parse_flag(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn parse_isolation(s: &str) -> Result<Isolation, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "loop" => Ok(Isolation::Loop),
        "invocation" => Ok(Isolation::Invocation),
        _ => Err("expected loop or invocation".into()),
    }
}

/// A memory size: a number with an optional unit (B, KB, KiB, MB, MiB, GB, GiB); a bare
/// number is MiB, as `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
pub fn parse_memory(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("expected a size such as 128MiB, got {s:?}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "mi" | "mib" | "m" => MIB as f64,
        "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "mb" => 1e6,
        "g" | "gi" | "gib" => (1u64 << 30) as f64,
        "gb" => 1e9,
        u => {
            return Err(format!(
                "unknown unit {u:?} (use KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    let bytes = n * mult;
    if !(65_536.0..=(4u64 << 30) as f64).contains(&bytes) {
        return Err("expected a size between 64KiB (one wasm page) and 4GiB".into());
    }
    Ok(bytes as usize)
}

fn parse_format(s: &str) -> Result<ResponseFormat, String> {
    match s.trim().to_ascii_uppercase().as_str() {
        "" | "PASSTHROUGH" => Ok(ResponseFormat::Passthrough),
        "API_GATEWAY" => Ok(ResponseFormat::ApiGateway),
        "CLOUDEVENTS" => Ok(ResponseFormat::CloudEvents),
        _ => Err("expected PASSTHROUGH, API_GATEWAY or CLOUDEVENTS".into()),
    }
}

/// A size in MB (10^6 bytes, as the Go runtime counts them); fractions allowed.
pub fn parse_megabytes(s: &str) -> Result<usize, String> {
    let mb: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of MB, got {s:?}"))?;
    if !mb.is_finite() || mb <= 0.0 || mb > 4096.0 {
        return Err("expected a number of MB above 0 and at most 4096".into());
    }
    Ok((mb * 1e6).round() as usize)
}

/// Parses a Go `time.Duration` string: a sequence of decimal numbers with units
/// (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), such as `300ms`, `1.5h` or `2h45m`.
/// A bare number is taken as seconds, as older Go runtime versions read it.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return positive(Duration::from_secs(secs));
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {s:?} (e.g. 10s, 500ms, 1m30s)"))?;
        if num_len == 0 {
            return Err(format!("invalid duration {s:?} (e.g. 10s, 500ms, 1m30s)"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid number in duration {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        total += value * nanos_per;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1e18 {
        return Err(format!("duration {s:?} is too long"));
    }
    positive(Duration::from_nanos(total as u64))
}

fn positive(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err("the duration must be above zero".into())
    } else {
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_go() {
        let ms = |s| parse_go_duration(s).map(|d| d.as_millis());
        assert_eq!(ms("10s"), Ok(10_000));
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("1.5h"), Ok(5_400_000));
        assert_eq!(ms("2h45m"), Ok(9_900_000));
        assert_eq!(ms("1500us"), Ok(1));
        assert_eq!(ms("7"), Ok(7_000));
        for bad in ["", "s", "10x", "1m30", "-1s", "0s", "ten seconds"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn megabytes_are_decimal_like_the_go_runtime() {
        assert_eq!(parse_megabytes("5"), Ok(5_000_000));
        assert_eq!(parse_megabytes("0.5"), Ok(500_000));
        assert!(parse_megabytes("0").is_err());
        assert!(parse_megabytes("lots").is_err());
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("128"), Ok(128 << 20));
        assert_eq!(parse_memory("64MiB"), Ok(64 << 20));
        assert_eq!(parse_memory("1GiB"), Ok(1 << 30));
        assert_eq!(parse_memory("500 KB"), Ok(500_000));
        assert!(parse_memory("1KiB").is_err());
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("8GiB").is_err());
    }

    #[test]
    fn formats_are_validated() {
        assert_eq!(parse_format("passthrough"), Ok(ResponseFormat::Passthrough));
        assert!(parse_format("XML").is_err());
    }

    #[test]
    fn switches_take_the_usual_spellings() {
        for yes in ["true", "TRUE", "1", "yes", "on"] {
            assert_eq!(parse_flag(yes), Ok(true), "{yes}");
        }
        for no in ["false", "0", "no", "off", ""] {
            assert_eq!(parse_flag(no), Ok(false), "{no:?}");
        }
        assert!(parse_flag("maybe").is_err());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_781), (2026, 11, 24));
    }

    #[test]
    fn user_lambda_env_wins_but_task_root_is_the_hosts() {
        let mut env = BTreeMap::new();
        env.insert("AWS_REGION".to_string(), "eu-west-3".to_string());
        env.insert("LAMBDA_TASK_ROOT".to_string(), "/elsewhere".to_string());
        let f = FunctionInfo {
            name: "f".into(),
            version: "$LATEST".into(),
            memory_mb: 128,
            region: "eu-west-3".into(),
            account: "1".into(),
            handler: Some("h.x".into()),
        };
        let out = lambda_env(&f, Path::new("/var/task"), &env);
        assert_eq!(out["AWS_REGION"], "eu-west-3", "the user's own value stays");
        assert_eq!(out["LAMBDA_TASK_ROOT"], "/var/task");
        assert_eq!(out["_HANDLER"], "h.x");
        assert_eq!(out["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/f");
        assert_eq!(f.arn(), "arn:aws:lambda:eu-west-3:1:function:f");
    }
}
