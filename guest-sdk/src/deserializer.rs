//! Turns a payload into the handler's event type. Named and worded like `lambda_runtime`'s
//! module of the same name, so an undeserializable event reports the same kind of error.

use crate::{Context, Diagnostic, LambdaEvent, diagnostic::type_name_of_val};
use serde::de::DeserializeOwned;
use std::fmt;

const ERROR_CONTEXT: &str =
    "failed to deserialize the incoming data into the function's payload type";

/// The payload could not be deserialized into the type the function receives.
#[derive(Debug)]
pub(crate) struct DeserializeError {
    inner: serde_path_to_error::Error<serde_json::Error>,
}

impl fmt::Display for DeserializeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.inner.path().to_string();
        if path == "." {
            write!(f, "{ERROR_CONTEXT}: {}", self.inner)
        } else {
            write!(f, "{ERROR_CONTEXT}: [{path}] {}", self.inner)
        }
    }
}

impl std::error::Error for DeserializeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.inner)
    }
}

impl From<DeserializeError> for Diagnostic {
    fn from(value: DeserializeError) -> Self {
        Diagnostic {
            error_type: type_name_of_val(&value),
            error_message: value.to_string(),
        }
    }
}

/// Deserializes the JSON payload into the handler's event type. The path of a failure is
/// found by decoding the payload a second time with the path tracked, so that an event that
/// decodes pays nothing for it (tracking it on every key and element was a tenth of the
/// echo guest's instructions in a fresh instance).
pub(crate) fn deserialize<T: DeserializeOwned>(
    body: &[u8],
    context: Context,
) -> Result<LambdaEvent<T>, DeserializeError> {
    if let Ok(payload) = serde_json::from_slice(body) {
        return Ok(LambdaEvent::new(payload, context));
    }
    let json = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(json)
        .map(|payload| LambdaEvent::new(payload, context))
        .map_err(|inner| DeserializeError { inner })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Order {
        #[allow(dead_code)]
        id: u32,
    }

    #[test]
    fn a_mistyped_field_is_reported_with_its_path() {
        let err = deserialize::<Order>(br#"{"id": "seven"}"#, Context::default())
            .expect_err("id is not a number");
        let diagnostic = Diagnostic::from(err);
        assert_eq!(
            diagnostic.error_type,
            "&lambda_wasi::deserializer::DeserializeError"
        );
        assert!(
            diagnostic.error_message.starts_with(
                "failed to deserialize the incoming data into the function's payload type: [id] "
            ),
            "{}",
            diagnostic.error_message
        );
    }

    #[test]
    fn a_payload_that_is_not_json_is_an_error() {
        let err = deserialize::<serde_json::Value>(b"not json", Context::default())
            .expect_err("not JSON");
        assert!(err.to_string().starts_with(ERROR_CONTEXT));
    }
}
