//! The environment AWS gives a function, rebuilt for every bootstrap: the variables a user
//! may set themselves (read here as flags and variables, so that `--help` lists them with
//! AWS's defaults) and the ones the host decides.

use std::collections::BTreeMap;
use std::path::Path;

use clap::Args;
use clap::builder::StringValueParser;

use super::function::{FunctionInfo, set};
use super::parse::Blank;

/// The Lambda execution environment's variables that a user may override.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Lambda environment (passed to the function)")]
pub struct LambdaEnvArgs {
    /// Runtime folder, also on the bootstrap's LD_LIBRARY_PATH.
    #[arg(long, env = "LAMBDA_RUNTIME_DIR", value_name = "LAMBDA_RUNTIME_DIR",
          default_value = "/var/runtime", value_parser = Blank(StringValueParser::new()))]
    pub runtime_dir: String,

    /// Appended to the library path AWS sets (its folders, then the task root's).
    /// Unset: AWS's path only.
    #[arg(
        long,
        env = "LD_LIBRARY_PATH",
        value_name = "LD_LIBRARY_PATH",
        hide_env_values = true
    )]
    pub ld_library_path: Option<String>,

    /// Log group the function is told it logs to. Default: `/aws/lambda/<function name>`.
    #[arg(
        long,
        env = "AWS_LAMBDA_LOG_GROUP_NAME",
        value_name = "AWS_LAMBDA_LOG_GROUP_NAME"
    )]
    pub log_group_name: Option<String>,

    /// Log stream the function is told it logs to. Default: `YYYY/MM/DD/[version]<uuid>`, as
    /// AWS names them.
    #[arg(
        long,
        env = "AWS_LAMBDA_LOG_STREAM_NAME",
        value_name = "AWS_LAMBDA_LOG_STREAM_NAME"
    )]
    pub log_stream_name: Option<String>,

    /// How the function is told its environment was started.
    #[arg(long, env = "AWS_LAMBDA_INITIALIZATION_TYPE",
          value_name = "AWS_LAMBDA_INITIALIZATION_TYPE", default_value = "on-demand",
          value_parser = Blank(StringValueParser::new()))]
    pub initialization_type: String,

    /// The runtime the function is told it runs in.
    #[arg(long, env = "AWS_EXECUTION_ENV", value_name = "AWS_EXECUTION_ENV",
          default_value = "AWS_Lambda_provided.al2023",
          value_parser = Blank(StringValueParser::new()))]
    pub execution_env: String,

    /// Time zone of the function.
    #[arg(long, env = "TZ", value_name = "TZ", default_value = ":UTC",
          value_parser = Blank(StringValueParser::new()))]
    pub tz: String,

    /// Locale of the function.
    #[arg(long, env = "LANG", value_name = "LANG", default_value = "en_US.UTF-8",
          value_parser = Blank(StringValueParser::new()))]
    pub lang: String,

    /// Invocations each bootstrap may hold at once (Lambda Managed Instances): passed to the
    /// bootstraps, whose runtime client then long-polls that many times, and a bootstrap
    /// holds no more. Unset: not passed (a classic client polls once at a time).
    #[arg(long, env = "AWS_LAMBDA_MAX_CONCURRENCY", value_name = "AWS_LAMBDA_MAX_CONCURRENCY",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrency: Option<u32>,

    /// Program search path of the function.
    #[arg(long, env = "PATH", value_name = "PATH", hide_env_values = true,
          default_value = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/bin",
          value_parser = Blank(StringValueParser::new()))]
    pub path: String,
}

/// The variables AWS sets in a Lambda execution environment, with their effective values:
/// the user's where they are set, else AWS's defaults; the task root, library path and
/// handler are the host's. (`AWS_LAMBDA_RUNTIME_API` is per bootstrap.) `default_region`
/// is `AWS_DEFAULT_REGION` as the user set it.
pub(super) fn lambda_env(
    f: &FunctionInfo,
    default_region: Option<String>,
    task_root: &Path,
    args: &LambdaEnvArgs,
) -> BTreeMap<String, String> {
    let root = task_root.display().to_string();
    let runtime_dir = &args.runtime_dir;
    let mut ld =
        format!("/lib64:/usr/lib64:{runtime_dir}:{runtime_dir}/lib:{root}:{root}/lib:/opt/lib");
    if let Some(old) = set(&args.ld_library_path) {
        ld = format!("{ld}:{old}");
    }
    let log_group = set(&args.log_group_name).unwrap_or_else(|| format!("/aws/lambda/{}", f.name));
    let stream = set(&args.log_stream_name).unwrap_or_else(|| {
        let today = chrono::Utc::now().format("%Y/%m/%d");
        format!("{today}/[{}]{}", f.version, uuid::Uuid::new_v4().simple())
    });
    let vars = [
        ("AWS_LAMBDA_FUNCTION_NAME", f.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", f.version.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", f.memory_mb.to_string()),
        ("AWS_REGION", f.region.clone()),
        (
            "AWS_DEFAULT_REGION",
            default_region.unwrap_or_else(|| f.region.clone()),
        ),
        ("AWS_LAMBDA_LOG_GROUP_NAME", log_group),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE",
            args.initialization_type.clone(),
        ),
        ("AWS_EXECUTION_ENV", args.execution_env.clone()),
        ("LAMBDA_RUNTIME_DIR", runtime_dir.clone()),
        ("TZ", args.tz.clone()),
        ("LANG", args.lang.clone()),
        ("PATH", args.path.clone()),
        // The host decides these whatever the environment says.
        ("LAMBDA_TASK_ROOT", root),
        ("LD_LIBRARY_PATH", ld),
    ];
    let mut out: BTreeMap<String, String> =
        vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    if let Some(h) = &f.handler {
        out.insert("_HANDLER".into(), h.clone());
    }
    if let Some(n) = args.max_concurrency {
        out.insert("AWS_LAMBDA_MAX_CONCURRENCY".into(), n.to_string());
    }
    out
}
