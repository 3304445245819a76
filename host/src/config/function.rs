//! Who the function is: the Lambda identity settings (name, version, memory, region,
//! account, handler, task root) and the Knative names that label its metrics, as flags and
//! variables, and the `FunctionInfo` and metric labels made from them.

use std::path::PathBuf;

use clap::Args;
use clap::builder::StringValueParser;

use super::parse::{self, Blank};

/// The function's identity and metric labels.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Function")]
pub struct FunctionArgs {
    /// Handler name passed to the bootstrap as `_HANDLER`. Unset: none.
    #[arg(long, env = "_HANDLER", value_name = "_HANDLER")]
    pub handler: Option<String>,

    /// Folder holding the function (`bootstrap` or `bootstrap.wasm`); default: the current
    /// folder.
    #[arg(long, env = "LAMBDA_TASK_ROOT", value_name = "LAMBDA_TASK_ROOT", value_parser = parse::path())]
    pub task_root: Option<PathBuf>,

    /// Function name in the ARN, the log group and the bootstrap's environment.
    /// Default: K_SERVICE, else `function`.
    #[arg(
        long,
        env = "AWS_LAMBDA_FUNCTION_NAME",
        value_name = "AWS_LAMBDA_FUNCTION_NAME"
    )]
    pub function_name: Option<String>,

    /// Knative service name: the function name when AWS_LAMBDA_FUNCTION_NAME is unset.
    #[arg(long, env = "K_SERVICE", value_name = "K_SERVICE")]
    pub k_service: Option<String>,

    /// Function version passed to the function.
    #[arg(long, env = "AWS_LAMBDA_FUNCTION_VERSION", value_name = "AWS_LAMBDA_FUNCTION_VERSION",
          default_value = "$LATEST", value_parser = Blank(StringValueParser::new()))]
    pub function_version: String,

    /// Memory size in MB passed to the function; also the default WASM_MEMORY_LIMIT.
    #[arg(long, env = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
          value_name = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", default_value = "128",
          value_parser = Blank(clap::value_parser!(u32)))]
    pub memory_size: u32,

    /// Region in the function ARN and the environment. Default: AWS_DEFAULT_REGION, else
    /// us-east-1.
    #[arg(long, env = "AWS_REGION", value_name = "AWS_REGION")]
    pub region: Option<String>,

    /// Region read when AWS_REGION is unset; passed to the function. Default: AWS_REGION.
    #[arg(long, env = "AWS_DEFAULT_REGION", value_name = "AWS_DEFAULT_REGION")]
    pub default_region: Option<String>,

    /// Account id in the function ARN.
    #[arg(long, env = "AWS_ACCOUNT_ID", value_name = "AWS_ACCOUNT_ID",
          default_value = "000000000000", value_parser = Blank(StringValueParser::new()))]
    pub account_id: String,

    /// Metrics: the `name` label (the Go runtime's). Default: empty.
    #[arg(long = "metrics-name", env = "NAME", value_name = "NAME")]
    pub name: Option<String>,

    /// Metrics: the `namespace` label. Default: empty.
    #[arg(
        long = "metrics-namespace",
        env = "NAMESPACE",
        value_name = "NAMESPACE"
    )]
    pub namespace: Option<String>,

    /// Metrics: the `resource_group` label.
    #[arg(long, env = "RESOURCE_GROUP", value_name = "RESOURCE_GROUP",
          default_value = "functions.extensions.triggermesh.io",
          value_parser = Blank(StringValueParser::new()))]
    pub resource_group: String,

    /// Metrics: the prefix of every metric name (the Knative component).
    #[arg(long, env = "K_COMPONENT", value_name = "K_COMPONENT", default_value = "function",
          value_parser = Blank(StringValueParser::new()))]
    pub k_component: String,
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

/// `value` unless it is unset or blank.
pub(super) fn set(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.trim().is_empty())
}

impl FunctionArgs {
    pub(super) fn info(&self) -> FunctionInfo {
        FunctionInfo {
            name: set(&self.function_name)
                .or_else(|| set(&self.k_service))
                .unwrap_or_else(|| "function".into()),
            version: self.function_version.clone(),
            memory_mb: self.memory_size,
            region: set(&self.region)
                .or_else(|| set(&self.default_region))
                .unwrap_or_else(|| "us-east-1".into()),
            account: self.account_id.clone(),
            handler: set(&self.handler),
        }
    }

    pub(super) fn metric_labels(&self) -> crate::metrics::Labels {
        crate::metrics::Labels {
            name: set(&self.name).unwrap_or_default(),
            namespace: set(&self.namespace).unwrap_or_default(),
            resource_group: self.resource_group.clone(),
            component: self.k_component.clone(),
        }
    }
}
