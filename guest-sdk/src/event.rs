//! The request a handler receives: a typed payload and its invocation context.

use crate::Context;

/// An invocation: the event payload and its context.
#[derive(Clone, Debug)]
pub struct LambdaEvent<T> {
    /// The event payload.
    pub payload: T,
    /// The invocation context.
    pub context: Context,
}

impl<T> LambdaEvent<T> {
    /// Creates an event from a payload and a context.
    pub fn new(payload: T, context: Context) -> Self {
        Self { payload, context }
    }

    /// Splits the event into its payload and context.
    pub fn into_parts(self) -> (T, Context) {
        (self.payload, self.context)
    }
}
