//! How requests become events and replies: `RESPONSE_FORMAT` and the settings of each
//! wrapper (API Gateway payload version, CloudEvents overrides and response mode), parsed
//! and checked here into the `Wrapper` the public endpoint uses.

use clap::builder::{EnumValueParser, PossibleValue};
use clap::{Args, ValueEnum};

use super::ConfigError;
use super::parse::Blank;
use crate::wrapper::apigateway::{self, PayloadVersion};
use crate::wrapper::cloudevents::{
    self, DEFAULT_SOURCE, DEFAULT_SUBJECT, DEFAULT_TYPE, ResponseMode,
};
use crate::wrapper::{Wrapper, WrapperKind};

/// The event wrapper and its settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Event format")]
pub struct FormatArgs {
    /// Event wrapper (any case).
    #[arg(long, env = "RESPONSE_FORMAT", value_name = "RESPONSE_FORMAT",
          default_value = "PASSTHROUGH", ignore_case = true,
          value_parser = Blank(EnumValueParser::<ResponseFormat>::new()))]
    pub response_format: ResponseFormat,

    /// API_GATEWAY: proxy payload format version, 1.0 (REST API) or 2.0 (HTTP API).
    #[arg(long, env = "API_GATEWAY_PAYLOAD_VERSION", value_name = "API_GATEWAY_PAYLOAD_VERSION",
          default_value = "1.0", value_parser = apigateway::parse_version)]
    pub api_gateway_payload_version: PayloadVersion,

    /// CLOUDEVENTS: type of the reply event; set empty: no reply event in data mode.
    /// Default: CE_TYPE, else ce.klr.triggermesh.io.
    #[arg(long, env = "CE_OVERRIDES_TYPE", value_name = "CE_OVERRIDES_TYPE")]
    pub ce_type: Option<String>,

    /// CLOUDEVENTS: CE_OVERRIDES_TYPE as the Go runtime's README names it; the other wins.
    /// Unset: CE_OVERRIDES_TYPE's default.
    #[arg(long, env = "CE_TYPE", value_name = "CE_TYPE")]
    pub ce_type_fallback: Option<String>,

    /// CLOUDEVENTS: source of the reply event (never empty).
    /// Default: CE_SOURCE, else knative-lambda-runtime.
    #[arg(long, env = "CE_OVERRIDES_SOURCE", value_name = "CE_OVERRIDES_SOURCE")]
    pub ce_source: Option<String>,

    /// CLOUDEVENTS: CE_OVERRIDES_SOURCE as the Go runtime's README names it; the other wins.
    /// Unset: CE_OVERRIDES_SOURCE's default.
    #[arg(long, env = "CE_SOURCE", value_name = "CE_SOURCE")]
    pub ce_source_fallback: Option<String>,

    /// CLOUDEVENTS: subject of the reply event; set empty: none.
    /// Default: CE_SUBJECT, else klr-response.
    #[arg(
        long,
        env = "CE_OVERRIDES_SUBJECT",
        value_name = "CE_OVERRIDES_SUBJECT"
    )]
    pub ce_subject: Option<String>,

    /// CLOUDEVENTS: CE_OVERRIDES_SUBJECT as the Go runtime's README names it; the other wins.
    /// Unset: CE_OVERRIDES_SUBJECT's default.
    #[arg(long, env = "CE_SUBJECT", value_name = "CE_SUBJECT")]
    pub ce_subject_fallback: Option<String>,

    /// CLOUDEVENTS: what the function's reply is (any case).
    #[arg(long, env = "CE_FUNCTION_RESPONSE_MODE", value_name = "CE_FUNCTION_RESPONSE_MODE",
          default_value = "data", ignore_case = true,
          value_parser = Blank(EnumValueParser::<ResponseMode>::new()))]
    pub ce_response_mode: ResponseMode,
}

/// How requests become events and outcomes become replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ResponseFormat {
    /// The request body is the event, the function's response the reply.
    #[default]
    #[value(name = "PASSTHROUGH")]
    Passthrough,
    /// API Gateway proxy events and responses.
    #[value(name = "API_GATEWAY")]
    ApiGateway,
    /// CloudEvents in, a CloudEvent out.
    #[value(name = "CLOUDEVENTS")]
    CloudEvents,
}

// The wrapper owns the mode; config only names its spellings.
impl ValueEnum for ResponseMode {
    fn value_variants<'a>() -> &'a [Self] {
        &[ResponseMode::Data, ResponseMode::Event]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            ResponseMode::Data => PossibleValue::new("data")
                .help("The reply is the event's data; the host makes the event"),
            ResponseMode::Event => PossibleValue::new("event").help(
                "The reply is a whole event in structured JSON; the host fills in what is missing",
            ),
        })
    }
}

impl FormatArgs {
    pub(super) fn wrapper(&self) -> Result<Wrapper, ConfigError> {
        Ok(Wrapper::new(match self.response_format {
            ResponseFormat::Passthrough => WrapperKind::Passthrough,
            ResponseFormat::ApiGateway => WrapperKind::ApiGateway(self.api_gateway_payload_version),
            ResponseFormat::CloudEvents => WrapperKind::CloudEvents(self.cloudevents()?),
        }))
    }

    /// The Go runtime's code reads CE_OVERRIDES_*, its README documents CE_*: both are read,
    /// the first wins. A value set empty means "none" except for the source, which every
    /// CloudEvent needs (Go sent events without one).
    fn cloudevents(&self) -> Result<cloudevents::Settings, ConfigError> {
        let source = match either(
            &self.ce_source,
            "CE_OVERRIDES_SOURCE",
            &self.ce_source_fallback,
            "CE_SOURCE",
        ) {
            None => DEFAULT_SOURCE.to_owned(),
            Some((var, value)) if value.trim().is_empty() => {
                return Err(ConfigError::Invalid {
                    var,
                    value: value.to_owned(),
                    reason: "every CloudEvent needs a source; unset it for the default".into(),
                });
            }
            Some((_, value)) => value.trim().to_owned(),
        };
        let type_ = either(
            &self.ce_type,
            "CE_OVERRIDES_TYPE",
            &self.ce_type_fallback,
            "CE_TYPE",
        );
        let subject = either(
            &self.ce_subject,
            "CE_OVERRIDES_SUBJECT",
            &self.ce_subject_fallback,
            "CE_SUBJECT",
        );
        Ok(cloudevents::Settings {
            event_type: or_default(type_, DEFAULT_TYPE),
            source,
            subject: or_default(subject, DEFAULT_SUBJECT),
            mode: self.ce_response_mode,
        })
    }
}

/// The variable that sets a value, and the value: `first` when set (even empty), else `second`.
fn either<'a>(
    first: &'a Option<String>,
    first_var: &'static str,
    second: &'a Option<String>,
    second_var: &'static str,
) -> Option<(&'static str, &'a str)> {
    match (first, second) {
        (Some(v), _) => Some((first_var, v)),
        (None, Some(v)) => Some((second_var, v)),
        (None, None) => None,
    }
}

/// Unset: the default; set empty: none; else the value, trimmed.
fn or_default(value: Option<(&str, &str)>, default: &str) -> Option<String> {
    match value {
        None => Some(default.to_owned()),
        Some((_, v)) => Some(v.trim().to_owned()).filter(|v| !v.is_empty()),
    }
}
