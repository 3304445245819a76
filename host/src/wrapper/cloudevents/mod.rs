//! CloudEvents (`RESPONSE_FORMAT=CLOUDEVENTS`) with the Go runtime's semantics: an event
//! (structured or binary mode) becomes its data as the payload and its attributes as the
//! client context's `custom` map (`request.rs`); the function's reply becomes a CloudEvents
//! 1.0 event, sent back in binary mode (`response.rs`). Pure: no I/O, no configuration
//! reading. The event model, its JSON format and its validation are the `cloudevents-sdk`
//! crate's. The HTTP binding is written here over the crate's message traits, because the
//! crate's own binding does not percent-encode header values (nor decode them), which the
//! binding's spec requires (section 3.1.3.2).
//!
//! Go runtime behaviour kept, from `pkg/converter/cloudevents/cloudevents.go` and its test:
//! the attributes reach the function as `Lambda-Runtime-Client-Context:
//! {"custom": {"<attribute>": "<value as text>", ...}}` under their own names (`id`, `type`,
//! `source`, `specversion`, extensions...); the defaults of the reply's type, source and
//! subject; `CE_FUNCTION_RESPONSE_MODE=event`; no event when the reply is empty or the type
//! is set empty. Changed: see each function.

mod request;
mod response;

use percent_encoding::{AsciiSet, CONTROLS};

pub use request::decode;
pub use response::{encode, stream_headers};

/// The reply's type when `CE_OVERRIDES_TYPE` (`CE_TYPE`) is unset (the Go runtime's).
pub const DEFAULT_TYPE: &str = "ce.klr.triggermesh.io";
/// The reply's source when `CE_OVERRIDES_SOURCE` (`CE_SOURCE`) is unset.
pub const DEFAULT_SOURCE: &str = "knative-lambda-runtime";
/// The reply's subject when `CE_OVERRIDES_SUBJECT` (`CE_SUBJECT`) is unset.
pub const DEFAULT_SUBJECT: &str = "klr-response";

const STRUCTURED: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";

/// The incoming event's type and source, for metrics labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeAttrs {
    pub event_type: String,
    pub source: String,
}

/// What the HTTP binding percent-encodes in header values: space, `"`, `%` and everything
/// outside printable ASCII (non-ASCII bytes are always encoded).
const HEADER_VALUE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// What the function's reply is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseMode {
    /// The event's data; the host makes the event (the Go runtime's default).
    #[default]
    Data,
    /// A whole event in structured JSON; the host fills in what is missing.
    Event,
}

/// How replies become events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `None` when the type is set empty: then, in data mode, no event (the Go runtime's rule).
    pub event_type: Option<String>,
    pub source: String,
    /// `None` when the subject is set empty.
    pub subject: Option<String>,
    pub mode: ResponseMode,
}

/// The settings of `CE_OVERRIDES_TYPE` (or `CE_TYPE`), `CE_OVERRIDES_SOURCE` (`CE_SOURCE`),
/// `CE_OVERRIDES_SUBJECT` (`CE_SUBJECT`) and `CE_FUNCTION_RESPONSE_MODE`, each `None` when
/// unset; the defaults are the Go runtime's. Unlike Go, an empty source (an event needs
/// one) and a mode other than `data` or `event` (Go took any other word for `data`) are
/// refused.
pub fn settings(
    type_override: Option<String>,
    source_override: Option<String>,
    subject_override: Option<String>,
    response_mode: Option<String>,
) -> Result<Settings, String> {
    let set = |value: Option<String>, default: &str| match value {
        None => Some(default.to_owned()),
        Some(v) => Some(v.trim().to_owned()).filter(|v| !v.is_empty()),
    };
    let source = set(source_override, DEFAULT_SOURCE).ok_or(
        "CE_OVERRIDES_SOURCE (CE_SOURCE) must not be empty: every CloudEvent needs a source",
    )?;
    let mode = match response_mode.as_deref().map(str::trim) {
        None | Some("") => ResponseMode::Data,
        Some(m) if m.eq_ignore_ascii_case("data") => ResponseMode::Data,
        Some(m) if m.eq_ignore_ascii_case("event") => ResponseMode::Event,
        Some(other) => {
            return Err(format!(
                "CE_FUNCTION_RESPONSE_MODE must be `data` or `event`, not {other:?}"
            ));
        }
    };
    Ok(Settings {
        event_type: set(type_override, DEFAULT_TYPE),
        source,
        subject: set(subject_override, DEFAULT_SUBJECT),
        mode,
    })
}

#[cfg(test)]
mod tests;
