//! Counters of execution environments: resets by cause, tenant switches, warm hits, and
//! invocations per tenant. The per-tenant table is bounded: at most [`MAX_TRACKED`]
//! tenants are counted by name (later ones under `other`), and the text shows the
//! [`TOP`] busiest of them, the rest summed under `other`, so no label set grows without
//! bound. Rendered into the metrics text by `metrics.rs`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::TenantId;
use super::scheduler::Choice;

/// Tenants counted by name.
pub const MAX_TRACKED: usize = 256;
/// Tenants shown by name.
pub const TOP: usize = 16;
const OTHER: &str = "other";

/// Why an environment was reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetCause {
    /// It changes hands to another tenant.
    TenantSwitch,
    /// Its process exited or its instance trapped.
    Crash,
    /// An invocation it held passed its deadline.
    Deadline,
}

impl ResetCause {
    const ALL: [ResetCause; 3] = [
        ResetCause::TenantSwitch,
        ResetCause::Crash,
        ResetCause::Deadline,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ResetCause::TenantSwitch => "tenant_switch",
            ResetCause::Crash => "crash",
            ResetCause::Deadline => "deadline",
        }
    }
}

#[derive(Default, Clone, Copy)]
struct PerTenant {
    invocations: u64,
    warm: u64,
}

#[derive(Default)]
pub struct Stats {
    resets: [AtomicU64; 3],
    switches: AtomicU64,
    warm: AtomicU64,
    cold: AtomicU64,
    tenants: Mutex<(HashMap<TenantId, PerTenant>, PerTenant)>,
}

impl Stats {
    pub fn reset(&self, cause: ResetCause) {
        let i = ResetCause::ALL
            .iter()
            .position(|c| *c == cause)
            .unwrap_or(0);
        self.resets[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn resets(&self, cause: ResetCause) -> u64 {
        let i = ResetCause::ALL
            .iter()
            .position(|c| *c == cause)
            .unwrap_or(0);
        self.resets[i].load(Ordering::Relaxed)
    }

    /// Counts one invocation handed to an environment chosen as `choice`.
    pub fn assigned(&self, tenant: &TenantId, choice: Choice) {
        let warm = choice == Choice::Warm;
        if warm {
            self.warm.fetch_add(1, Ordering::Relaxed);
        } else {
            self.cold.fetch_add(1, Ordering::Relaxed);
        }
        if choice == Choice::Switch {
            self.switches.fetch_add(1, Ordering::Relaxed);
        }
        let mut guard = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let (named, other) = &mut *guard;
        let slot = if named.contains_key(tenant) || named.len() < MAX_TRACKED {
            named.entry(tenant.clone()).or_default()
        } else {
            other
        };
        slot.invocations += 1;
        slot.warm += u64::from(warm);
    }

    /// The warm-hit ratio so far (0 when nothing was assigned).
    pub fn warm_ratio(&self) -> f64 {
        let warm = self.warm.load(Ordering::Relaxed) as f64;
        let all = warm + self.cold.load(Ordering::Relaxed) as f64;
        if all == 0.0 { 0.0 } else { warm / all }
    }

    /// The Prometheus text of these counters; `base` holds the function's labels.
    pub fn render(&self, base: &str, out: &mut String, escape: impl Fn(&str) -> String) {
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let name = "aws_custom_runtime_env_resets_total";
        family(
            out,
            name,
            "counter",
            "Execution environments reset, by cause",
        );
        for cause in ResetCause::ALL {
            let _ = writeln!(
                out,
                "{name}{{{base},cause=\"{}\"}} {}",
                cause.label(),
                self.resets(cause)
            );
        }
        let counters = [
            (
                "aws_custom_runtime_tenant_switches_total",
                "Environments handed to another tenant (each after a reset)",
                self.switches.load(Ordering::Relaxed),
            ),
            (
                "aws_custom_runtime_env_warm_hits_total",
                "Invocations served by their tenant's warm environment",
                self.warm.load(Ordering::Relaxed),
            ),
            (
                "aws_custom_runtime_env_cold_starts_total",
                "Invocations served by a clean or reset environment",
                self.cold.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            family(out, name, "counter", help);
            let _ = writeln!(out, "{name}{{{base}}} {v}");
        }
        let name = "aws_custom_runtime_env_warm_hit_ratio";
        family(
            out,
            name,
            "gauge",
            "Share of invocations that found a warm environment",
        );
        let _ = writeln!(out, "{name}{{{base}}} {}", self.warm_ratio());
        self.render_tenants(base, out, escape);
    }

    fn render_tenants(&self, base: &str, out: &mut String, escape: impl Fn(&str) -> String) {
        let (mut top, mut other) = {
            let guard = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            let top: Vec<(TenantId, PerTenant)> =
                guard.0.iter().map(|(t, c)| (t.clone(), *c)).collect();
            (top, guard.1)
        };
        top.sort_by(|a, b| b.1.invocations.cmp(&a.1.invocations).then(a.0.cmp(&b.0)));
        for (_, c) in top.iter().skip(TOP) {
            other.invocations += c.invocations;
            other.warm += c.warm;
        }
        top.truncate(TOP);
        let mut rows: Vec<(String, PerTenant)> = top
            .into_iter()
            .map(|(t, c)| (escape(t.as_str()), c))
            .collect();
        if other.invocations > 0 {
            rows.push((OTHER.into(), other));
        }
        for (name, help, pick) in [
            (
                "aws_custom_runtime_tenant_invocations_total",
                "Invocations per tenant (the busiest tenants; the rest as other)",
                (|c: &PerTenant| c.invocations) as fn(&PerTenant) -> u64,
            ),
            (
                "aws_custom_runtime_tenant_warm_hits_total",
                "Warm hits per tenant (the busiest tenants; the rest as other)",
                |c: &PerTenant| c.warm,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (tenant, c) in &rows {
                let _ = writeln!(out, "{name}{{{base},tenant=\"{tenant}\"}} {}", pick(c));
            }
        }
    }
}
