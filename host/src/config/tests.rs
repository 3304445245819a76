//! Parsing and validation of every setting, through the same clap parser the binary uses
//! (flags stand for the variables: both reach the same value parser).

use std::path::Path;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::*;
use crate::wrapper::Wrapper;
use crate::wrapper::cloudevents::ResponseMode;

fn parse(flags: &[&str]) -> Result<Args, clap::Error> {
    Args::try_parse_from(std::iter::once("aws-custom-runtime").chain(flags.iter().copied()))
}

fn args(flags: &[&str]) -> Args {
    parse(flags).unwrap_or_else(|e| panic!("{flags:?}: {e}"))
}

/// A config for an external runtime (no bootstrap needed) in a fresh folder.
fn build(flags: &[&str]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let mut all = vec!["--invoker-count=0", "--task-root", root.as_str()];
    all.extend_from_slice(flags);
    Config::build(args(&all), dir.path())
}

fn config(flags: &[&str]) -> Config {
    build(flags).unwrap_or_else(|e| panic!("{flags:?}: {e}"))
}

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
    let format =
        |v: &str| parse(&[&format!("--response-format={v}")]).map(|a| a.format.response_format);
    for (spelling, want) in [
        ("passthrough", ResponseFormat::Passthrough),
        ("PASSTHROUGH", ResponseFormat::Passthrough),
        ("", ResponseFormat::Passthrough),
        (" api_gateway ", ResponseFormat::ApiGateway),
        ("API_GATEWAY", ResponseFormat::ApiGateway),
        ("CloudEvents", ResponseFormat::CloudEvents),
        ("CLOUDEVENTS", ResponseFormat::CloudEvents),
    ] {
        assert_eq!(format(spelling).ok(), Some(want), "{spelling:?}");
    }
    assert_eq!(
        args(&[]).format.response_format,
        ResponseFormat::Passthrough
    );
    let err = format("XML").unwrap_err().to_string();
    assert!(
        err.contains("RESPONSE_FORMAT") && err.contains("XML"),
        "{err}"
    );
    assert!(
        err.contains("API_GATEWAY"),
        "the error lists the choices: {err}"
    );
}

#[test]
fn switches_take_the_usual_spellings() {
    let perf_map =
        |v: &str| parse(&[&format!("--wasm-perf-map={v}")]).map(|a| a.wasm.wasm_perf_map);
    for yes in ["true", "TRUE", "1", "yes", "on", " On "] {
        assert_eq!(perf_map(yes).ok(), Some(true), "{yes}");
    }
    for no in ["false", "0", "no", "off", ""] {
        assert_eq!(perf_map(no).ok(), Some(false), "{no:?}");
    }
    assert!(perf_map("maybe").is_err());
}

#[test]
fn isolation_is_case_insensitive() {
    let iso = |v: &str| parse(&[&format!("--wasm-isolation={v}")]).map(|a| a.wasm.wasm_isolation);
    assert_eq!(iso("loop").ok(), Some(Isolation::Loop));
    assert_eq!(iso("Invocation").ok(), Some(Isolation::Invocation));
    assert_eq!(iso("").ok(), Some(Isolation::Loop));
    assert!(iso("fork").is_err());
}

#[test]
fn body_and_reply_timeouts_default_to_10s_and_30s() {
    let c = config(&[]);
    assert_eq!(c.request_read_timeout, Duration::from_secs(10));
    assert_eq!(c.response_write_timeout, Duration::from_secs(30));
    let c = config(&[
        "--request-read-timeout=1500ms",
        "--response-write-timeout=1m",
    ]);
    assert_eq!(c.request_read_timeout, Duration::from_millis(1500));
    assert_eq!(c.response_write_timeout, Duration::from_secs(60));
    for bad in ["0s", "soon", ""] {
        let err = parse(&[&format!("--request-read-timeout={bad}")]).unwrap_err();
        assert!(err.to_string().contains("REQUEST_READ_TIMEOUT"), "{err}");
        assert!(parse(&[&format!("--response-write-timeout={bad}")]).is_err());
    }
}

#[test]
fn worker_threads_follow_the_kind_unless_set() {
    let native = FunctionKind::Native {
        bootstrap: "bootstrap".into(),
    };
    assert_eq!(worker_threads(None, &native, 2), 1);
    assert_eq!(worker_threads(None, &native, 1), 1);
    assert_eq!(worker_threads(None, &native, 8), 4);
    assert_eq!(worker_threads(Some(3), &native, 2), 3);
    // A WASI function: one per core, unless set.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bootstrap.wasm"), b"").unwrap();
    let root = dir.path().display().to_string();
    let wasm = Config::build(args(&["--task-root", &root]), dir.path()).unwrap();
    assert_eq!(wasm.worker_threads, cores());
    let set = ["--task-root", &root, "--worker-threads=6"];
    assert_eq!(
        Config::build(args(&set), dir.path())
            .unwrap()
            .worker_threads,
        6
    );
    // Zero or garbage stops start-up (tokio itself would panic on them).
    for bad in ["0", "-1", "many", ""] {
        assert!(
            parse(&[&format!("--worker-threads={bad}")]).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn bootstrap_recycling_is_off_unless_set_above_zero() {
    let c = config(&[]);
    assert_eq!(
        (c.bootstrap_max_invocations, c.bootstrap_max_age),
        (None, None)
    );
    for off in ["0", "off", ""] {
        let c = config(&[
            &format!("--bootstrap-max-invocations={off}"),
            &format!("--bootstrap-max-age={off}"),
        ]);
        assert_eq!(
            (c.bootstrap_max_invocations, c.bootstrap_max_age),
            (None, None),
            "{off:?}"
        );
    }
    let c = config(&[
        "--bootstrap-max-age=0s",
        "--bootstrap-max-invocations=100000",
    ]);
    assert_eq!(
        (c.bootstrap_max_invocations, c.bootstrap_max_age),
        (Some(100_000), None)
    );
    let c = config(&["--bootstrap-max-age=6h"]);
    assert_eq!(c.bootstrap_max_age, Some(Duration::from_secs(6 * 3600)));
    let err = parse(&["--bootstrap-max-invocations=-1"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("BOOTSTRAP_MAX_INVOCATIONS") && err.contains("-1"),
        "{err}"
    );
    let err = parse(&["--bootstrap-max-age=6 hours"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("BOOTSTRAP_MAX_AGE"), "{err}");
}

#[test]
fn public_context_headers_are_on_unless_switched_off() {
    assert!(config(&[]).public_context_headers);
    assert!(config(&["--public-context-headers="]).public_context_headers);
    assert!(config(&["--public-context-headers=YES"]).public_context_headers);
    assert!(!config(&["--public-context-headers=false"]).public_context_headers);
    assert!(!config(&["--public-context-headers=off"]).public_context_headers);
    assert!(parse(&["--public-context-headers=sometimes"]).is_err());
}

#[test]
fn tracing_mode_is_case_insensitive() {
    assert_eq!(config(&[]).tracing_mode, TracingMode::PassThrough);
    for (spelling, want) in [
        ("PassThrough", TracingMode::PassThrough),
        ("passthrough", TracingMode::PassThrough),
        ("", TracingMode::PassThrough),
        ("Active", TracingMode::Active),
        ("ACTIVE", TracingMode::Active),
    ] {
        let c = config(&[&format!("--tracing-mode={spelling}")]);
        assert_eq!(c.tracing_mode, want, "{spelling:?}");
    }
    let err = parse(&["--tracing-mode=always"]).unwrap_err().to_string();
    assert!(
        err.contains("TRACING_MODE") && err.contains("always"),
        "{err}"
    );
}

#[test]
fn address_file_must_be_in_an_existing_folder() {
    assert_eq!(config(&[]).address_file, None);
    assert_eq!(config(&["--address-file="]).address_file, None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("addresses.json");
    let c = config(&["--address-file", file.to_str().unwrap()]);
    assert_eq!(c.address_file.as_deref(), Some(file.as_path()));
    assert_eq!(
        config(&["--address-file=here.json"])
            .address_file
            .as_deref(),
        Some(Path::new("here.json"))
    );
    let missing = dir.path().join("no/such/folder/a.json");
    let err = build(&["--address-file", missing.to_str().unwrap()]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                var: "ADDRESS_FILE",
                ..
            }
        ),
        "{err}"
    );
    let err = build(&["--address-file", dir.path().to_str().unwrap()]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                var: "ADDRESS_FILE",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn port_zero_means_assigned_by_the_os() {
    let c = config(&["--port=0", "--metrics-port=0"]);
    assert_eq!(c.public_addr.port(), 0);
    assert_eq!(c.metrics_port, Some(0));
    assert_eq!(config(&["--metrics-port=off"]).metrics_port, None);
    assert_eq!(config(&[]).metrics_port, Some(9092));
    assert_eq!(config(&[]).public_addr.port(), 8080);
    assert!(parse(&["--metrics-port=70000"]).is_err());
}

#[test]
fn the_sink_is_held_parsed() {
    assert!(config(&[]).sink.is_none());
    assert!(config(&["--k-sink="]).sink.is_none());
    assert!(
        config(&["--k-sink=http://broker.default.svc.cluster.local/"])
            .sink
            .is_some()
    );
    assert!(config(&["--k-sink=https://example.com"]).sink.is_some());
    let err = build(&["--k-sink=ftp://example.com"]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { var: "K_SINK", value, .. } if value == "ftp://example.com"),
        "{err}"
    );
    let err = build(&["--k-sink=https://example.com", "--k-ca-certs=junk"]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { var: "K_SINK", .. }),
        "{err}"
    );
    assert!(parse(&["--k-sink-timeout=0"]).is_err());
    assert!(parse(&["--k-sink-timeout=soon"]).is_err());
}

#[test]
fn ce_overrides_are_checked() {
    assert!(config(&[]).ce_overrides.is_none());
    assert!(
        config(&[r#"--k-ce-overrides={"extensions":{"team":"a"}}"#])
            .ce_overrides
            .is_some()
    );
    let err = build(&[r#"--k-ce-overrides={"extensions":{"Bad":1}}"#]).unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError::Invalid {
                var: "K_CE_OVERRIDES",
                ..
            }
        ),
        "{err}"
    );
}

fn cloudevents(flags: &[&str]) -> Result<crate::wrapper::cloudevents::Settings, ConfigError> {
    let mut all = vec!["--response-format=CLOUDEVENTS"];
    all.extend_from_slice(flags);
    match build(&all)?.wrapper {
        Wrapper {
            kind: crate::wrapper::WrapperKind::CloudEvents(s),
            ..
        } => Ok(s),
        other => panic!("not the CloudEvents wrapper: {other:?}"),
    }
}

#[test]
fn cloudevents_settings_default_to_the_go_runtimes() {
    let s = cloudevents(&[]).unwrap();
    assert_eq!(s.event_type.as_deref(), Some("ce.klr.triggermesh.io"));
    assert_eq!(s.source, "knative-lambda-runtime");
    assert_eq!(s.subject.as_deref(), Some("klr-response"));
    assert_eq!(s.mode, ResponseMode::Data);
}

#[test]
fn cloudevents_overrides_win_over_the_readme_names() {
    let s = cloudevents(&[
        "--ce-type=my.type",
        "--ce-type-fallback=other.type",
        "--ce-source-fallback= src ",
        "--ce-subject=",
        "--ce-subject-fallback=ignored",
        "--ce-response-mode=Event",
    ])
    .unwrap();
    assert_eq!(
        (s.event_type.as_deref(), s.source.as_str()),
        (Some("my.type"), "src")
    );
    assert_eq!((s.subject, s.mode), (None, ResponseMode::Event));
    let s = cloudevents(&["--ce-type-fallback= "]).unwrap();
    assert_eq!(s.event_type, None, "a type set empty means no reply event");
    let mode = |v: &str| {
        cloudevents(&[&format!("--ce-response-mode={v}")])
            .unwrap()
            .mode
    };
    assert_eq!(mode("DATA"), ResponseMode::Data);
    assert_eq!(mode(""), ResponseMode::Data);
    assert_eq!(mode("event"), ResponseMode::Event);
}

#[test]
fn a_bad_cloudevents_setting_names_its_variable_and_value() {
    let err = cloudevents(&["--ce-source="]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { var: "CE_OVERRIDES_SOURCE", value, .. } if value.is_empty()),
        "{err}"
    );
    let err = cloudevents(&["--ce-source-fallback=  "]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { var: "CE_SOURCE", value, .. } if value == "  "),
        "{err}"
    );
    let err = parse(&["--ce-response-mode=both"]).unwrap_err().to_string();
    assert!(
        err.contains("CE_FUNCTION_RESPONSE_MODE") && err.contains("both"),
        "{err}"
    );
    assert!(!err.contains("CE_OVERRIDES_TYPE"), "{err}");
}

#[test]
fn function_identity_and_labels() {
    let c = config(&[
        "--k-service=svc",
        "--default-region=eu-west-1",
        "--memory-size=",
        "--metrics-name=n",
        "--k-component=",
    ]);
    assert_eq!(c.function.name, "svc");
    assert_eq!(c.function.region, "eu-west-1");
    assert_eq!(c.function.memory_mb, 128);
    assert_eq!(c.function.version, "$LATEST");
    assert_eq!(
        c.function.arn(),
        "arn:aws:lambda:eu-west-1:000000000000:function:svc"
    );
    assert_eq!(c.metric_labels.name, "n");
    assert_eq!(c.metric_labels.namespace, "");
    assert_eq!(c.metric_labels.component, "function");
    assert_eq!(
        c.metric_labels.resource_group,
        "functions.extensions.triggermesh.io"
    );
    let c = config(&[
        "--function-name=f",
        "--k-service=svc",
        "--region=ap-south-1",
        "--memory-size=512",
    ]);
    assert_eq!(
        (c.function.name.as_str(), c.function.region.as_str()),
        ("f", "ap-south-1")
    );
    assert_eq!(c.lambda_env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "512");
    let err = parse(&["--memory-size=lots"]).unwrap_err().to_string();
    assert!(err.contains("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), "{err}");
}

#[test]
fn user_lambda_env_wins_but_task_root_is_the_hosts() {
    let a = args(&[
        "--region=eu-west-3",
        "--account-id=1",
        "--function-name=f",
        "--handler=h.x",
        "--tz=Europe/Paris",
        "--ld-library-path=/mine",
        "--runtime-dir=/rt",
    ]);
    let f = a.function.info();
    let out = lambda_env::lambda_env(&f, None, Path::new("/var/task"), &a.lambda_env);
    assert_eq!(out["AWS_REGION"], "eu-west-3", "the user's own value stays");
    assert_eq!(out["AWS_DEFAULT_REGION"], "eu-west-3");
    assert_eq!(out["TZ"], "Europe/Paris");
    assert_eq!(out["LAMBDA_TASK_ROOT"], "/var/task");
    assert_eq!(
        out["LD_LIBRARY_PATH"],
        "/lib64:/usr/lib64:/rt:/rt/lib:/var/task:/var/task/lib:/opt/lib:/mine"
    );
    assert_eq!(out["_HANDLER"], "h.x");
    assert_eq!(out["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/f");
    assert_eq!(f.arn(), "arn:aws:lambda:eu-west-3:1:function:f");
}

#[test]
fn log_streams_are_named_by_todays_date_as_aws_names_them() {
    let a = args(&["--function-version=3"]);
    let out = lambda_env::lambda_env(&a.function.info(), None, Path::new("/t"), &a.lambda_env);
    let stream = &out["AWS_LAMBDA_LOG_STREAM_NAME"];
    let (date, rest) = stream.split_at(10);
    let parts: Vec<&str> = date.split('/').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [4, 2, 2],
        "{stream}"
    );
    assert!(
        parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())),
        "{stream}"
    );
    assert!(rest.starts_with("/[3]") && rest.len() == 4 + 32, "{stream}");
    let a = args(&["--log-stream-name=mine"]);
    let out = lambda_env::lambda_env(&a.function.info(), None, Path::new("/t"), &a.lambda_env);
    assert_eq!(out["AWS_LAMBDA_LOG_STREAM_NAME"], "mine");
}

/// Every variable the host reads; a contract with deployments.
const VARIABLES: &[&str] = &[
    "PORT",
    "INTERNAL_API_PORT",
    "INVOKER_COUNT",
    "AWS_LAMBDA_MAX_CONCURRENCY",
    "REQUEST_SIZE_LIMIT",
    "STREAMING_RESPONSE_LIMIT",
    "FUNCTION_TTL",
    "REQUEST_READ_TIMEOUT",
    "RESPONSE_WRITE_TIMEOUT",
    "QUEUE_SIZE",
    "BOOTSTRAP_MAX_INVOCATIONS",
    "BOOTSTRAP_MAX_AGE",
    "PUBLIC_CONTEXT_HEADERS",
    "TRACING_MODE",
    "K_SINK",
    "METRICS_PROMETHEUS_PORT",
    "ADDRESS_FILE",
    "LOG_LEVEL",
    "RUST_LOG",
    "RESPONSE_FORMAT",
    "API_GATEWAY_PAYLOAD_VERSION",
    "CE_OVERRIDES_TYPE",
    "CE_TYPE",
    "CE_OVERRIDES_SOURCE",
    "CE_SOURCE",
    "CE_OVERRIDES_SUBJECT",
    "CE_SUBJECT",
    "CE_FUNCTION_RESPONSE_MODE",
    "_HANDLER",
    "LAMBDA_TASK_ROOT",
    "AWS_LAMBDA_FUNCTION_NAME",
    "K_SERVICE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCOUNT_ID",
    "NAME",
    "NAMESPACE",
    "RESOURCE_GROUP",
    "K_COMPONENT",
    "LAMBDA_RUNTIME_DIR",
    "LD_LIBRARY_PATH",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_EXECUTION_ENV",
    "TZ",
    "LANG",
    "PATH",
    "WASM_ISOLATION",
    "WASM_MEMORY_LIMIT",
    "WASM_CACHE_DIR",
    "WASM_PERF_MAP",
    "WASM_TMP_LIMIT",
    "TENANT_ISOLATION_MODE",
    "TENANT_ID_HEADER",
    "TENANT_MAX_CONCURRENCY",
    "TENANT_QUEUE_SHARE",
    "WASM_ALLOWED_OUTBOUND_HOSTS",
    "LAMBDA_EXTENSIONS_DIR",
    "SHUTDOWN_TIMEOUT",
    "K_CA_CERTS",
    "K_CE_OVERRIDES",
    "K_SINK_TIMEOUT",
    "TOKIO_WORKER_THREADS",
];

#[test]
fn help_lists_every_variable_with_its_default() {
    let mut cmd = Args::command();
    let help = cmd.render_long_help().to_string();
    for var in VARIABLES {
        assert!(
            help.contains(&format!("[env: {var}=")) || help.contains(&format!("[env: {var}]")),
            "--help does not show {var}"
        );
    }
    let mut silent = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(var) = arg.get_env() else { continue };
        let var = var.to_string_lossy().into_owned();
        assert!(
            VARIABLES.contains(&var.as_str()),
            "{var} missing from VARIABLES"
        );
        let text = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let text = text.to_lowercase();
        if arg.get_default_values().is_empty()
            && !text.contains("default")
            && !text.contains("unset")
        {
            silent.push(var);
        }
    }
    assert!(
        silent.is_empty(),
        "--help does not say the default of {silent:?}"
    );
}

#[test]
fn tenant_isolation_defaults_follow_the_invokers_and_the_queue() {
    use crate::tenancy::TenancyMode;
    let c = config(&[]);
    assert_eq!(c.tenancy.mode, TenancyMode::None);
    assert_eq!(c.tenancy.header.as_str(), "x-amz-tenant-id");
    let c = config(&[
        "--tenant-isolation-mode=per_tenant",
        "--queue-size=10",
        "--tenant-id-header=X-Customer",
    ]);
    assert_eq!(c.tenancy.mode, TenancyMode::PerTenant);
    assert_eq!(c.tenancy.header.as_str(), "x-customer");
    assert_eq!((c.tenancy.max_concurrency, c.tenancy.queue_share), (1, 5));
    let c = config(&["--tenant-max-concurrency=7", "--tenant-queue-share=3"]);
    assert_eq!((c.tenancy.max_concurrency, c.tenancy.queue_share), (7, 3));
    assert!(parse(&["--tenant-isolation-mode=SOMETIMES"]).is_err());
    assert!(parse(&["--tenant-max-concurrency=0"]).is_err());
    assert!(matches!(
        build(&["--tenant-id-header=bad header"]),
        Err(ConfigError::Invalid {
            var: "TENANT_ID_HEADER",
            ..
        })
    ));
    let c = config(&["--wasm-tmp-limit=2MiB"]);
    assert!(matches!(c.kind, FunctionKind::Native { .. }));
    assert_eq!(
        args(&["--wasm-tmp-limit=2MiB"]).wasm.wasm_tmp_limit,
        2 << 20
    );
    assert_eq!(args(&[]).wasm.wasm_tmp_limit, 64 << 20);
}

#[test]
fn outbound_allow_list_is_parsed_and_malformed_entries_are_named() {
    let allowed = crate::outbound::AllowList::parse("http://localhost:8080").unwrap();
    let cmd = Args::command();
    let matches = cmd
        .clone()
        .try_get_matches_from([
            "aws-custom-runtime",
            "--wasm-allowed-outbound-hosts",
            "http://localhost:8080",
        ])
        .unwrap();
    let args = <Args as clap::FromArgMatches>::from_arg_matches(&matches).unwrap();
    assert_eq!(args.wasm.wasm_allowed_outbound_hosts, allowed);
    let default = cmd
        .clone()
        .try_get_matches_from(["aws-custom-runtime"])
        .unwrap();
    let args = <Args as clap::FromArgMatches>::from_arg_matches(&default).unwrap();
    assert!(args.wasm.wasm_allowed_outbound_hosts.is_empty());
    let err = cmd
        .try_get_matches_from([
            "aws-custom-runtime",
            "--wasm-allowed-outbound-hosts",
            "https://ok,tcp://db:5432",
        ])
        .unwrap_err()
        .to_string();
    assert!(err.contains("tcp://db:5432"), "{err}");
}
