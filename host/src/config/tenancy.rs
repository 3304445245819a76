//! The settings of tenant isolation (`TENANT_ISOLATION_MODE` and its caps), parsed here into
//! the `tenancy::Policy` the Dispatcher and the public endpoint take.

use clap::Args;
use clap::builder::EnumValueParser;
use http::HeaderName;

use super::ConfigError;
use super::parse::Blank;
use crate::tenancy::{DEFAULT_HEADER, Policy, TenancyMode};

/// Tenant isolation settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tenant isolation")]
pub struct TenancyArgs {
    /// `PER_TENANT`: every execution environment serves one tenant (named by the tenant
    /// header) for its life, and is reset before it serves another; `NONE`: environments
    /// are shared, and a request with a tenant header is refused (400).
    #[arg(long, env = "TENANT_ISOLATION_MODE", value_name = "TENANT_ISOLATION_MODE",
          default_value = "NONE", ignore_case = true,
          value_parser = Blank(EnumValueParser::<TenancyMode>::new()))]
    pub tenant_isolation_mode: TenancyMode,

    /// The request header that carries the tenant id (a gateway in front may use its own;
    /// then only that header counts).
    #[arg(
        long,
        env = "TENANT_ID_HEADER",
        value_name = "TENANT_ID_HEADER",
        default_value = "X-Amz-Tenant-Id"
    )]
    pub tenant_id_header: String,

    /// Most execution environments one tenant keeps busy at once. Default: INVOKER_COUNT - 1,
    /// at least 1.
    #[arg(long, env = "TENANT_MAX_CONCURRENCY", value_name = "TENANT_MAX_CONCURRENCY",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub tenant_max_concurrency: Option<u32>,

    /// Most invocations of one tenant waiting for an environment; past it that tenant gets
    /// 429 with Retry-After. Default: QUEUE_SIZE / 2, at least 1.
    #[arg(long, env = "TENANT_QUEUE_SHARE", value_name = "TENANT_QUEUE_SHARE",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub tenant_queue_share: Option<u32>,
}

impl TenancyArgs {
    /// The policy for `invokers` environments and a queue of `queue_size`.
    pub(super) fn policy(&self, invokers: usize, queue_size: usize) -> Result<Policy, ConfigError> {
        let raw = self.tenant_id_header.trim();
        let raw = if raw.is_empty() { DEFAULT_HEADER } else { raw };
        let header = HeaderName::try_from(raw).map_err(|e| ConfigError::Invalid {
            var: "TENANT_ID_HEADER",
            value: raw.to_owned(),
            reason: format!("not a header name: {e}"),
        })?;
        let (concurrency, share) = Policy::default_caps(invokers, queue_size);
        Ok(Policy {
            mode: self.tenant_isolation_mode,
            header,
            max_concurrency: self
                .tenant_max_concurrency
                .map_or(concurrency, |n| n as usize),
            queue_share: self.tenant_queue_share.map_or(share, |n| n as usize),
        })
    }
}
