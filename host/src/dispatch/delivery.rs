//! Invocation ids (`Lambda-Runtime-Invocation-Id`): every delivery of an invocation to a
//! runner has its own nonce, which the runtime echoes with its answer, so that an answer to
//! a delivery that ended (it timed out and the runner was reset, or it was delivered again)
//! is refused instead of answering the invocation. No I/O.

use super::{Dispatcher, Outcome, RunnerId};

/// An answer that echoes a delivery the runner no longer holds: the invocation ended (its
/// deadline passed and the runner was reset) or was delivered again since.
#[derive(Debug, thiserror::Error)]
#[error(
    "invocation {id} is no longer held in delivery {nonce} (it timed out, or was delivered \
     again); this answer was not taken"
)]
pub struct StaleDelivery {
    pub id: String,
    pub nonce: String,
}

impl Dispatcher {
    /// As [`Dispatcher::complete_from`] for an answer that echoes the delivery's nonce
    /// (`Lambda-Runtime-Invocation-Id`): refused unless `runner` holds `id` in that delivery.
    pub fn complete_delivery(
        &self,
        runner: RunnerId,
        id: &str,
        nonce: &str,
        outcome: Outcome,
    ) -> Result<(), StaleDelivery> {
        let entry = self
            .take_delivery(runner, id, Some(nonce))
            .ok_or_else(|| StaleDelivery {
                id: id.to_owned(),
                nonce: nonce.to_owned(),
            })?;
        let _ = entry.reply.send(outcome);
        self.finished(runner);
        Ok(())
    }

    /// Whether `runner` holds `id` in the delivery `nonce`: false for an invocation that
    /// ended, moved on, or was delivered again since.
    pub fn holds_delivery(&self, runner: RunnerId, id: &str, nonce: &str) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|f| f.runner == runner && &*f.delivery == nonce)
    }
}
