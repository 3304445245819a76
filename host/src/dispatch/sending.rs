//! Which runners are still sending a streamed response: its invocation ended for the
//! Dispatcher at its first byte, but the runner stays busy (a drained runner is not
//! recycled mid-stream) until the stream is sent. Counters only.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Per runner, how many streamed responses it is still sending.
pub struct Senders(Box<[AtomicUsize]>);

impl Senders {
    pub fn new(runners: usize) -> Senders {
        Senders((0..runners).map(|_| Default::default()).collect())
    }

    fn slot(&self, runner: usize) -> &AtomicUsize {
        &self.0[runner.min(self.0.len() - 1)]
    }

    pub fn count(&self, runner: usize) -> usize {
        self.slot(runner).load(Ordering::Relaxed)
    }

    pub fn guard(&self, runner: usize) -> Sending<'_> {
        let slot = self.slot(runner);
        slot.fetch_add(1, Ordering::Relaxed);
        Sending(slot)
    }
}

/// A runner sending a stream; dropped when the stream has been sent.
pub struct Sending<'a>(&'a AtomicUsize);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
