//! The invocation context: decodes the host's context JSON (`ABI.md`) into a [`Context`] shaped
//! like `lambda_runtime`'s, and reads the function's configuration from the environment.
//! Pure code: it makes no host calls.

use crate::{Diagnostic, diagnostic::type_name_of_val};
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

/// Client context sent by the AWS Mobile SDK.
#[derive(Serialize, Deserialize, Clone, Debug, Eq, PartialEq)]
pub struct ClientContext {
    /// Information about the mobile application invoking the function.
    #[serde(default)]
    pub client: ClientApplication,
    /// Custom properties attached to the mobile event context.
    #[serde(default)]
    pub custom: HashMap<String, String>,
    /// Environment settings from the mobile client.
    #[serde(default)]
    pub environment: HashMap<String, String>,
}

/// AWS Mobile SDK client fields.
#[derive(Serialize, Deserialize, Default, Clone, Debug, Eq, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientApplication {
    /// The mobile app installation id.
    #[serde(alias = "installation_id")]
    pub installation_id: String,
    /// The app title for the mobile app as registered with AWS' mobile services.
    #[serde(alias = "app_title")]
    pub app_title: String,
    /// The version name of the application as registered with AWS' mobile services.
    #[serde(alias = "app_version_name")]
    pub app_version_name: String,
    /// The app version code.
    #[serde(alias = "app_version_code")]
    pub app_version_code: String,
    /// The package name for the mobile application invoking the function.
    #[serde(alias = "app_package_name")]
    pub app_package_name: String,
}

/// Cognito identity information sent with the event.
#[derive(Serialize, Deserialize, Clone, Debug, Eq, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CognitoIdentity {
    /// The unique identity id for the Cognito credentials invoking the function.
    #[serde(alias = "cognitoIdentityId", alias = "identity_id")]
    pub identity_id: String,
    /// The identity pool id the caller is "registered" with.
    #[serde(alias = "cognitoIdentityPoolId", alias = "identity_pool_id")]
    pub identity_pool_id: String,
}

/// The function's configuration, from the Lambda environment variables the host sets.
#[derive(Debug, Default, Clone, Eq, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The name of the function (`AWS_LAMBDA_FUNCTION_NAME`).
    pub function_name: String,
    /// The memory available to the function in MB (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
    pub memory: i32,
    /// The version of the function being executed (`AWS_LAMBDA_FUNCTION_VERSION`).
    pub version: String,
    /// The CloudWatch Logs stream name (`AWS_LAMBDA_LOG_STREAM_NAME`).
    pub log_stream: String,
    /// The CloudWatch Logs group name (`AWS_LAMBDA_LOG_GROUP_NAME`).
    pub log_group: String,
}

impl Config {
    /// Reads the configuration from the environment. Unlike `lambda_runtime`, a missing or
    /// malformed variable yields an empty value (or 0) instead of a panic: the guest's
    /// environment belongs to the host, and a function should not die over a log-group name.
    /// On wasm32-wasip1 it reads the environment the instance started with, from the host
    /// (what `env::set_var` changed is not seen).
    pub fn from_env() -> Self {
        let [function_name, memory, version, log_stream, log_group] = env_vars([
            "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "AWS_LAMBDA_LOG_GROUP_NAME",
        ]);
        Config {
            function_name,
            memory: memory.parse().unwrap_or(0),
            version,
            log_stream,
            log_group,
        }
    }
}

/// The values of `names` in the environment (empty when unset or not UTF-8). On
/// wasm32-wasip1 in one pass over the block WASI hands over: the environment the instance
/// started with, which `env::set_var` does not change; elsewhere through `env::var`.
fn env_vars<const N: usize>(names: [&str; N]) -> [String; N] {
    #[cfg(all(target_arch = "wasm32", not(target_env = "p2")))]
    {
        let (block, starts) = crate::abi::environment();
        pick_vars(&block, &starts, names)
    }
    #[cfg(not(all(target_arch = "wasm32", not(target_env = "p2"))))]
    names.map(|name| std::env::var(name).unwrap_or_default())
}

/// The values of `names` among the variables at `starts` of `block` (each `key=value` ended
/// by a NUL, WASI's layout): what `getenv` finds, the first variable of a name, read without
/// comparing a name with a variable whose `=` is not where that name ends.
fn pick_vars<const N: usize>(block: &[u8], starts: &[usize], names: [&str; N]) -> [String; N] {
    let mut found: [Option<&[u8]>; N] = [None; N];
    for var in starts.iter().filter_map(|&s| block.get(s..)) {
        for (slot, name) in found.iter_mut().zip(names) {
            let n = name.len();
            if slot.is_none() && n > 0 && var.get(n) == Some(&b'=') && &var[..n] == name.as_bytes()
            {
                let value = &var[n + 1..];
                let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                *slot = Some(&value[..end]);
            }
        }
    }
    found.map(|value| {
        value
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or_default()
            .to_owned()
    })
}

/// The execution context of one invocation: the fields of `lambda_runtime::Context`, plus the
/// event's content type, which the host passes along.
#[non_exhaustive]
#[derive(Clone, Debug, Deserialize, Eq, PartialEq, Serialize)]
pub struct Context {
    /// The request id the host generated for this invocation.
    pub request_id: String,
    /// The execution deadline, in milliseconds since the Unix epoch.
    pub deadline: u64,
    /// The ARN of the Lambda function being invoked.
    pub invoked_function_arn: String,
    /// The X-Ray trace id for the current invocation.
    pub xray_trace_id: Option<String>,
    /// The client context sent by the caller (AWS Mobile SDK), if any.
    pub client_context: Option<ClientContext>,
    /// The Cognito identity of the caller, if any.
    pub identity: Option<CognitoIdentity>,
    /// The tenant id of the invocation (the host's `TENANT_ISOLATION_MODE=PER_TENANT`);
    /// `None` without tenant isolation.
    pub tenant_id: Option<String>,
    /// The content type of the event, when the caller gave one.
    pub content_type: Option<String>,
    /// The function's configuration, from the environment.
    pub env_config: Arc<Config>,
}

impl Default for Context {
    fn default() -> Context {
        Context {
            request_id: String::new(),
            deadline: 0,
            invoked_function_arn: String::new(),
            xray_trace_id: None,
            client_context: None,
            identity: None,
            tenant_id: None,
            content_type: None,
            env_config: Arc::new(Config::default()),
        }
    }
}

/// The context as the host encodes it (`ABI.md`). Unknown keys are ignored so that a newer
/// host can add some without breaking older guests.
#[derive(Deserialize)]
struct WireContext {
    request_id: String,
    deadline_ms: u64,
    invoked_function_arn: String,
    trace_id: Option<String>,
    /// Raw JSON text, as in the `Lambda-Runtime-Client-Context` header.
    client_context: Option<String>,
    /// Raw JSON text, as in the `Lambda-Runtime-Cognito-Identity` header.
    cognito_identity: Option<String>,
    content_type: Option<String>,
    tenant_id: Option<String>,
}

impl Context {
    /// The execution deadline of the current invocation.
    pub fn deadline(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.deadline)
    }

    /// Decodes the host's context JSON.
    pub(crate) fn decode(json: &[u8], env_config: Arc<Config>) -> Result<Context, ContextError> {
        let wire: WireContext = serde_json::from_slice(json).map_err(|source| ContextError {
            field: "context",
            source,
        })?;
        Ok(Context {
            request_id: wire.request_id,
            deadline: wire.deadline_ms,
            invoked_function_arn: wire.invoked_function_arn,
            xray_trace_id: wire.trace_id,
            client_context: decode_embedded(wire.client_context, "client_context")?,
            identity: decode_embedded(wire.cognito_identity, "cognito_identity")?,
            tenant_id: wire.tenant_id,
            content_type: wire.content_type,
            env_config,
        })
    }
}

/// Decodes a field that carries JSON as text; an empty text means absent, as in
/// `lambda_runtime`'s treatment of an empty header.
fn decode_embedded<T: serde::de::DeserializeOwned>(
    text: Option<String>,
    field: &'static str,
) -> Result<Option<T>, ContextError> {
    match text.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|source| ContextError { field, source }),
    }
}

/// The host's context JSON (or a JSON text inside it) could not be decoded.
#[derive(Debug)]
pub(crate) struct ContextError {
    field: &'static str,
    source: serde_json::Error,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid invocation {}: {}", self.field, self.source)
    }
}

impl From<ContextError> for Diagnostic {
    fn from(value: ContextError) -> Self {
        Diagnostic {
            error_type: type_name_of_val(&value),
            error_message: value.to_string(),
        }
    }
}

impl std::error::Error for ContextError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(value: serde_json::Value) -> Result<Context, ContextError> {
        let bytes = serde_json::to_vec(&value).expect("test JSON serializes");
        Context::decode(&bytes, Arc::new(Config::default()))
    }

    /// Where each NUL-terminated variable of `block` starts, as WASI's pointers say.
    fn starts(block: &[u8]) -> Vec<usize> {
        let mut starts = vec![0];
        starts.extend(
            block
                .iter()
                .enumerate()
                .filter(|&(i, &b)| b == 0 && i + 1 < block.len())
                .map(|(i, _)| i + 1),
        );
        starts
    }

    #[test]
    fn picks_variables_from_the_wasi_environment_block_as_getenv_would() {
        let block =
            b"AWS_REGION=eu\0B==x=y\0A=first\0noequals\0\0A=second\0BAD=\xff\0=anon\0AB=no\0";
        let [a, b, region, bad, missing, empty] = pick_vars(
            block,
            &starts(block),
            ["A", "B", "AWS_REGION", "BAD", "MISSING", ""],
        );
        assert_eq!(a, "first", "the first variable of a name wins");
        assert_eq!(b, "=x=y", "a value may hold '='");
        assert_eq!(region, "eu");
        assert_eq!(bad, "", "not UTF-8 reads as unset, as env::var");
        assert_eq!(missing, "");
        assert_eq!(empty, "", "no variable has an empty name");
        assert_eq!(pick_vars(b"", &[], ["A"]), [String::new()]);
    }

    #[test]
    fn a_variable_ends_at_its_nul_wherever_the_pointers_say_the_next_starts() {
        // Pointers out of order, one past the block, one into the middle of a variable.
        let block = b"AB=cd\0X=1\0";
        let [x, ab, b] = pick_vars(block, &[6, 99, 0, 1], ["X", "AB", "B"]);
        assert_eq!((x.as_str(), ab.as_str()), ("1", "cd"));
        assert_eq!(
            b, "cd",
            "a pointer into a variable reads from there, to its NUL"
        );
    }

    #[test]
    fn decodes_a_full_context_with_embedded_client_context_and_identity() {
        let ctx = decode(json!({
            "request_id": "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
            "deadline_ms": 1_542_409_706_888_u64,
            "invoked_function_arn": "arn:aws:lambda:us-east-2:123456789012:function:custom-runtime",
            "trace_id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
            "client_context": r#"{"client":{"installation_id":"i-1","app_title":"Test","app_version_name":"1.0","app_version_code":"1","app_package_name":"com.example"},"custom":{"tenant":"blue"},"environment":{"platform":"Android"}}"#,
            "cognito_identity": r#"{"cognitoIdentityId":"us-east-1:1234","cognitoIdentityPoolId":"us-east-1:pool"}"#,
            "content_type": "application/json"
        }))
        .expect("context decodes");

        assert_eq!(ctx.request_id, "8476a536-e9f4-11e8-9739-2dfe598c3fcd");
        assert_eq!(ctx.deadline, 1_542_409_706_888);
        assert_eq!(
            ctx.deadline(),
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_542_409_706_888)
        );
        assert_eq!(
            ctx.invoked_function_arn,
            "arn:aws:lambda:us-east-2:123456789012:function:custom-runtime"
        );
        assert_eq!(
            ctx.xray_trace_id.as_deref(),
            Some("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
        );
        let client = ctx.client_context.expect("client context present");
        assert_eq!(
            client.custom.get("tenant").map(String::as_str),
            Some("blue")
        );
        assert_eq!(client.client.app_title, "Test");
        assert_eq!(client.environment["platform"], "Android");
        let identity = ctx.identity.expect("identity present");
        assert_eq!(identity.identity_id, "us-east-1:1234");
        assert_eq!(identity.identity_pool_id, "us-east-1:pool");
        assert_eq!(ctx.content_type.as_deref(), Some("application/json"));
        assert_eq!(ctx.tenant_id, None);
    }

    #[test]
    fn null_missing_or_empty_optional_fields_are_none() {
        let ctx = decode(json!({
            "request_id": "r",
            "deadline_ms": 1,
            "invoked_function_arn": "arn",
            "trace_id": null,
            "client_context": "",
            "cognito_identity": null
        }))
        .expect("context decodes");
        assert_eq!(ctx.xray_trace_id, None);
        assert_eq!(ctx.client_context, None);
        assert_eq!(ctx.identity, None);
        assert_eq!(ctx.content_type, None);
    }

    #[test]
    fn a_client_context_with_only_custom_keys_decodes() {
        let ctx = decode(json!({
            "request_id": "r",
            "deadline_ms": 1,
            "invoked_function_arn": "arn",
            "client_context": r#"{"custom":{"k":"v"}}"#
        }))
        .expect("context decodes");
        let client = ctx.client_context.expect("client context present");
        assert_eq!(client.custom["k"], "v");
        assert_eq!(client.client, ClientApplication::default());
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let ctx = decode(json!({
            "request_id": "r",
            "deadline_ms": 1,
            "invoked_function_arn": "arn",
            "tenant_id": "t-1",
            "added_in_a_later_host": {"x": 1}
        }))
        .expect("context decodes");
        assert_eq!(ctx.tenant_id.as_deref(), Some("t-1"));
    }

    #[test]
    fn a_missing_request_id_is_an_error() {
        let err = decode(json!({"deadline_ms": 1, "invoked_function_arn": "arn"}))
            .expect_err("request_id is required");
        assert!(err.to_string().starts_with("invalid invocation context: "));
        assert!(err.to_string().contains("request_id"), "{err}");
    }

    #[test]
    fn a_malformed_client_context_names_the_field() {
        let err = decode(json!({
            "request_id": "r",
            "deadline_ms": 1,
            "invoked_function_arn": "arn",
            "client_context": "{not json"
        }))
        .expect_err("client context is not JSON");
        assert!(
            err.to_string()
                .starts_with("invalid invocation client_context: "),
            "{err}"
        );
    }

    #[test]
    fn context_serializes_like_lambda_runtime_plus_content_type() {
        let value = serde_json::to_value(Context::default()).expect("context serializes");
        let mut keys: Vec<_> = value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "client_context",
                "content_type",
                "deadline",
                "env_config",
                "identity",
                "invoked_function_arn",
                "request_id",
                "tenant_id",
                "xray_trace_id"
            ]
        );
    }
}
