//! The settings of Knative sinks besides `K_SINK` itself, named as Knative's SinkBinding
//! injects them: extra trusted CAs, CloudEvent overrides, the delivery timeout. Parsed here
//! into the `SinkOptions` and `CeOverrides` the sink and the public endpoint take.

use std::time::Duration;

use clap::Args;

use super::ConfigError;
use crate::sink::{CeOverrides, SinkOptions};

/// Knative sink settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Knative sinks")]
pub struct SinkArgs {
    /// PEM certificates (the text, as SinkBinding injects it) trusted for an https:// K_SINK
    /// in addition to the built-in Mozilla roots and the system's. Unset: those roots only.
    #[arg(long, env = "K_CA_CERTS", value_name = "K_CA_CERTS")]
    pub k_ca_certs: Option<String>,

    /// CloudEvent extensions set on every CloudEvent the host sends or replies with:
    /// `{"extensions":{"name":"value",...}}`. Unset: none.
    #[arg(long, env = "K_CE_OVERRIDES", value_name = "K_CE_OVERRIDES")]
    pub k_ce_overrides: Option<String>,

    /// Bound of each delivery attempt to K_SINK, in seconds (decimals allowed). Default: 10.
    #[arg(long, env = "K_SINK_TIMEOUT", value_name = "K_SINK_TIMEOUT",
          value_parser = parse_seconds)]
    pub k_sink_timeout: Option<Duration>,
}

impl SinkArgs {
    pub(super) fn options(&self) -> SinkOptions {
        SinkOptions {
            ca_certs: self.k_ca_certs.clone().filter(|p| !p.trim().is_empty()),
            timeout: self.k_sink_timeout.unwrap_or(crate::sink::ATTEMPT_TIMEOUT),
        }
    }

    pub(super) fn overrides(&self) -> Result<Option<CeOverrides>, ConfigError> {
        let Some(json) = self
            .k_ce_overrides
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        else {
            return Ok(None);
        };
        CeOverrides::parse(json)
            .map(Some)
            .map_err(|reason| ConfigError::Invalid {
                var: "K_CE_OVERRIDES",
                value: json.to_owned(),
                reason,
            })
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err("expected seconds above 0, at most a day".into());
    }
    Ok(Duration::from_secs_f64(secs))
}
