//! Tenant isolation (`TENANT_ISOLATION_MODE=PER_TENANT`): the tenant id of an invocation and
//! its checks, the policy that decides which execution environment serves which tenant
//! ([`scheduler`]), the scratch folder every environment writes to ([`scratch`]), the
//! Landlock confinement of native environments ([`confine`]) and the counters of resets and
//! switches ([`stats`]). Pure policy and plain file operations: it never talks to a runner
//! or a caller; the Dispatcher and the invokers call it.

pub mod confine;
pub mod scheduler;
pub mod scratch;
pub mod stats;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};

/// AWS's Invoke header for the tenant id.
pub const DEFAULT_HEADER: &str = "x-amz-tenant-id";
/// Longest tenant id AWS accepts.
pub const MAX_TENANT_ID: usize = 256;

/// A checked tenant id: 1 to 256 characters of `[a-zA-Z0-9._:/=+\-@ ]`, as AWS's
/// `TenantId` parameter. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// Checks `raw`; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<TenantId, String> {
        if raw.is_empty() {
            return Err("the tenant id is empty".into());
        }
        let len = raw.chars().count();
        if len > MAX_TENANT_ID {
            return Err(format!(
                "the tenant id is {len} characters long; at most {MAX_TENANT_ID} are allowed"
            ));
        }
        if let Some(bad) = raw.chars().find(|c| !allowed(*c)) {
            return Err(format!(
                "the tenant id holds {bad:?}; only letters, digits, spaces and ._:/=+-@ are allowed"
            ));
        }
        Ok(TenantId(raw.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._:/=+-@ ".contains(c)
}

/// `TENANT_ISOLATION_MODE`, as AWS's `TenancyConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TenancyMode {
    /// One function, any caller: execution environments are shared (today's behaviour).
    #[default]
    #[value(name = "NONE")]
    None,
    /// Each execution environment serves one tenant for its life.
    #[value(name = "PER_TENANT")]
    PerTenant,
}

/// The tenancy settings the host runs with.
#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: TenancyMode,
    /// The header that carries the tenant id (`TENANT_ID_HEADER`).
    pub header: HeaderName,
    /// Most environments one tenant keeps busy at once (`TENANT_MAX_CONCURRENCY`).
    pub max_concurrency: usize,
    /// Most invocations of one tenant waiting for an environment (`TENANT_QUEUE_SHARE`).
    pub queue_share: usize,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            mode: TenancyMode::None,
            header: HeaderName::from_static(DEFAULT_HEADER),
            max_concurrency: 1,
            queue_share: 1,
        }
    }
}

/// A request whose tenant header does not fit the mode: 400 `InvalidParameterValueException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidTenant(pub String);

impl Policy {
    /// The defaults of the caps for `invokers` environments and a queue of `queue_size`:
    /// all environments but one (at least one), and half the queue (at least one).
    pub fn default_caps(invokers: usize, queue_size: usize) -> (usize, usize) {
        (invokers.saturating_sub(1).max(1), (queue_size / 2).max(1))
    }

    /// The tenant of a request with `headers`. In mode `NONE` a tenant header is refused, as
    /// AWS refuses it for a function without tenant isolation: a caller that believes it is
    /// isolated must learn that it is not.
    pub fn tenant_of(&self, headers: &HeaderMap) -> Result<Option<TenantId>, InvalidTenant> {
        let name = self.header.as_str();
        let values: Vec<_> = headers.get_all(&self.header).iter().collect();
        match (self.mode, values.as_slice()) {
            (TenancyMode::None, []) => Ok(None),
            (TenancyMode::None, _) => Err(InvalidTenant(format!(
                "the function does not use tenant isolation (TENANT_ISOLATION_MODE=NONE), \
                 but the request has a {name} header"
            ))),
            (TenancyMode::PerTenant, []) => Err(InvalidTenant(format!(
                "the function uses tenant isolation: the request needs a {name} header"
            ))),
            (TenancyMode::PerTenant, [one]) => {
                let text = one.to_str().map_err(|_| {
                    InvalidTenant(format!("{name}: the tenant id must be visible ASCII"))
                })?;
                TenantId::parse(text)
                    .map(Some)
                    .map_err(|e| InvalidTenant(format!("{name}: {e}")))
            }
            (TenancyMode::PerTenant, _) => Err(InvalidTenant(format!(
                "the request has more than one {name} header"
            ))),
        }
    }
}
