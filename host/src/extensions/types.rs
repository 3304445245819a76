//! The Extensions API's vocabulary: the events an extension receives, its lifecycle
//! states, its subscriptions and the misuse errors Lambda names. Plain data, no I/O.

use std::sync::Arc;

use super::registry::MAX_EXTENSIONS;
use crate::dispatch::RunnerId;

/// Why a SHUTDOWN is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    Spindown,
    Timeout,
    Failure,
}

impl ShutdownReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Spindown => "spindown",
            ShutdownReason::Timeout => "timeout",
            ShutdownReason::Failure => "failure",
        }
    }
}

/// An event handed to an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Invoke {
        runner: RunnerId,
        request_id: Arc<str>,
        deadline_ms: u64,
        trace_id: Option<String>,
    },
    Shutdown {
        reason: ShutdownReason,
        deadline_ms: u64,
    },
}

/// The lifecycle state of one extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Registered,
    Ready,
    Running,
    InitError,
    ExitError,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Registered => "Registered",
            State::Ready => "Ready",
            State::Running => "Running",
            State::InitError => "InitError",
            State::ExitError => "ExitError",
        }
    }
}

/// A misuse of the Extensions API, as Lambda answers it (403 with this `errorType`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("unknown extension identifier {0}")]
    UnknownIdentifier(String),
    #[error("invalid event type {0:?}: an extension subscribes to INVOKE and SHUTDOWN only")]
    InvalidEventType(String),
    #[error("extension registration is closed: it is open only while the function initializes")]
    RegistrationClosed,
    #[error("extension limit ({MAX_EXTENSIONS}) reached")]
    TooManyExtensions,
    #[error("{0}")]
    InvalidState(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ApiError {
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::MissingHeader(_) => "Extension.MissingHeader",
            ApiError::UnknownIdentifier(_) => "Extension.UnknownExtensionIdentifier",
            ApiError::InvalidEventType(_) => "Extension.InvalidEventType",
            ApiError::RegistrationClosed => "Extension.RegistrationClosed",
            ApiError::TooManyExtensions => "Extension.TooManyExtensions",
            ApiError::InvalidState(_) => "Extension.InvalidExtensionState",
            ApiError::InvalidRequest(_) => "InvalidRequestFormat",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subscriptions {
    pub invoke: bool,
    pub shutdown: bool,
}

impl Subscriptions {
    /// The events of a register request; anything but INVOKE and SHUTDOWN is refused.
    pub fn parse(events: &[String]) -> Result<Subscriptions, ApiError> {
        let mut subs = Subscriptions::default();
        for e in events {
            match e.as_str() {
                "INVOKE" => subs.invoke = true,
                "SHUTDOWN" => subs.shutdown = true,
                other => return Err(ApiError::InvalidEventType(other.to_owned())),
            }
        }
        Ok(subs)
    }
}
