//! Function errors as the host reports them: an `errorType` and an `errorMessage`. The
//! conversions name errors exactly as `lambda_runtime` does (`std::any::type_name` of a
//! reference to the error), so a function reports the same `errorType` natively and in wasm.

use serde::{Deserialize, Serialize};
use std::any::type_name;

/// Diagnostic information about a function error.
///
/// Handlers may return any error type that converts into a `Diagnostic`. The provided
/// conversions derive [`error_type`](Diagnostic::error_type) from the error's type name, which
/// is rarely descriptive; implement `From<YourError> for Diagnostic` (or return a `Diagnostic`)
/// to choose it:
///
/// ```
/// use lambda_wasi::{Diagnostic, LambdaEvent};
///
/// async fn handler(_event: LambdaEvent<()>) -> Result<(), Diagnostic> {
///     Err(Diagnostic {
///         error_type: "OrderNotFound".into(),
///         error_message: "no order 42".into(),
///     })
/// }
/// ```
#[derive(Debug, Eq, PartialEq, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// The kind of error, reported as `errorType`.
    pub error_type: String,
    /// What went wrong, reported as `errorMessage`.
    pub error_message: String,
}

/// The `errorType` of an error reported through one of the generic conversions.
pub(crate) fn type_name_of_val<T>(_: T) -> String {
    type_name::<T>().into()
}

macro_rules! diagnostic_from_display {
    ($($source:ty),* $(,)?) => {$(
        impl From<$source> for Diagnostic {
            fn from(value: $source) -> Self {
                Diagnostic {
                    error_type: type_name_of_val(&value),
                    error_message: value.to_string(),
                }
            }
        }
    )*};
}

diagnostic_from_display!(
    crate::Error,
    Box<dyn std::error::Error>,
    std::convert::Infallible,
    String,
    &'static str,
    std::io::Error,
    serde_json::Error,
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_with_lambda_field_names() {
        let diagnostic = Diagnostic {
            error_type: "InvalidEventDataError".into(),
            error_message: "Error parsing event data.".into(),
        };
        assert_eq!(
            serde_json::to_value(diagnostic).expect("diagnostic serializes"),
            json!({
                "errorType": "InvalidEventDataError",
                "errorMessage": "Error parsing event data.",
            })
        );
    }

    #[test]
    fn boxed_errors_are_named_like_lambda_runtime_names_them() {
        let boxed: crate::Error = "disk on fire".into();
        let diagnostic = Diagnostic::from(boxed);
        assert_eq!(
            diagnostic.error_type,
            "&alloc::boxed::Box<dyn core::error::Error + core::marker::Send + core::marker::Sync>"
        );
        assert_eq!(diagnostic.error_message, "disk on fire");
    }

    #[test]
    fn strings_and_io_errors_are_named_by_their_type() {
        assert_eq!(
            Diagnostic::from(String::from("x")).error_type,
            "&alloc::string::String"
        );
        assert_eq!(Diagnostic::from("x").error_type, "&&str");
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let diagnostic = Diagnostic::from(io);
        assert_eq!(diagnostic.error_type, "&std::io::error::Error");
        assert_eq!(diagnostic.error_message, "gone");
    }
}
