//! Deadlines that are almost never reached: an invocation's, and hyper's header-read timeout
//! of every connection. Each is armed and dropped once or twice per request, and on tokio's
//! timer each arming that comes earlier than the wheel's next expiry wakes the thread parked
//! on the I/O driver (an `eventfd` write and a context switch), which at one request at a
//! time is most of them. Here they are entries of one ordered map that a single thread,
//! `deadlines`, sleeps on: arming one is an insert under a lock, and the thread is woken
//! only when the new deadline is earlier than the one it sleeps until, which for deadlines
//! of a fixed length, armed in order, is never. An entry that is dropped before its time is
//! removed; the thread then wakes at the time it had set, finds the next one and sleeps
//! again. If the thread cannot be started, the deadlines fall back to tokio's timer.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The thread's clock, or `None` when its thread could not be started.
static CLOCK: LazyLock<Option<Arc<Clock>>> = LazyLock::new(Clock::start);

type Key = (Instant, u64);

struct Clock {
    state: Mutex<State>,
    /// Signalled when an entry comes earlier than the time the thread sleeps until.
    earlier: Condvar,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<Key, Waker>,
    /// Tells apart entries armed for the same instant.
    next_id: u64,
    /// The time the thread sleeps until; `None` while it waits for a first entry.
    wakes_at: Option<Instant>,
}

impl Clock {
    fn start() -> Option<Arc<Clock>> {
        let clock = Arc::new(Clock {
            state: Mutex::new(State::default()),
            earlier: Condvar::new(),
        });
        let run = clock.clone();
        match std::thread::Builder::new()
            .name("deadlines".into())
            .spawn(move || run.run())
        {
            Ok(_) => Some(clock),
            Err(e) => {
                tracing::warn!("cannot start the deadline thread ({e}); using tokio's timer");
                None
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is one map operation: a panic cannot leave it half done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every entry whose time has come, then sleeps until the next one. Never returns.
    fn run(&self) {
        let mut due = Vec::new();
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            while let Some(entry) = state.entries.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            state.wakes_at = state.entries.first_key_value().map(|(k, _)| k.0);
            if !due.is_empty() {
                // Woken outside the lock: a waker may take a while, and a woken task may
                // drop its entry at once.
                drop(state);
                for waker in due.drain(..) {
                    // A waker that panics must not stop every other deadline.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
                }
                state = self.lock();
                continue;
            }
            state = match state.wakes_at {
                Some(at) => {
                    let wait = at.saturating_duration_since(now);
                    self.earlier
                        .wait_timeout(state, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.earlier.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    fn insert(&self, at: Instant, waker: Waker) -> Key {
        let mut state = self.lock();
        let key = (at, state.next_id);
        state.next_id += 1;
        state.entries.insert(key, waker);
        if state.wakes_at.is_none_or(|t| at < t) {
            state.wakes_at = Some(at);
            self.earlier.notify_one();
        }
        key
    }

    /// Puts `waker` in place of the entry's, unless it would wake the same task. False when
    /// the entry is gone: the thread removes an entry only when it is due.
    fn update(&self, key: &Key, waker: &Waker) -> bool {
        let mut state = self.lock();
        let Some(w) = state.entries.get_mut(key) else {
            return false;
        };
        if !w.will_wake(waker) {
            w.clone_from(waker);
        }
        true
    }

    fn remove(&self, key: &Key) {
        self.lock().entries.remove(key);
    }
}

/// A future that is ready at `at`; it is armed when first polled and disarmed when dropped.
pub struct Deadline {
    at: Instant,
    armed: Armed,
}

enum Armed {
    No,
    Entry(Key),
    /// The deadline thread could not be started.
    Tokio(Pin<Box<tokio::time::Sleep>>),
}

impl Deadline {
    /// Ready at `at`.
    pub fn at(at: Instant) -> Deadline {
        Deadline {
            at,
            armed: Armed::No,
        }
    }

    fn disarm(&mut self) {
        if let Armed::Entry(key) = std::mem::replace(&mut self.armed, Armed::No)
            && let Some(clock) = CLOCK.as_ref()
        {
            clock.remove(&key);
        }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Armed::Tokio(sleep) = &mut this.armed {
            return sleep.as_mut().poll(cx);
        }
        if Instant::now() >= this.at {
            this.disarm();
            return Poll::Ready(());
        }
        match (&this.armed, CLOCK.as_ref()) {
            (Armed::Entry(key), Some(clock)) => {
                // Fired between the check of the time above and now: it woke the waker
                // it had, which may not be this one.
                if !clock.update(key, cx.waker()) {
                    this.armed = Armed::No;
                    return Poll::Ready(());
                }
            }
            (_, Some(clock)) => {
                this.armed = Armed::Entry(clock.insert(this.at, cx.waker().clone()))
            }
            (_, None) => {
                let mut sleep = Box::pin(tokio::time::sleep_until(this.at.into()));
                let polled = sleep.as_mut().poll(cx);
                this.armed = Armed::Tokio(sleep);
                return polled;
            }
        }
        Poll::Pending
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// hyper's timer on [`Deadline`]s: what the servers' header-read timeout runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct HyperTimer;

impl hyper::rt::Sleep for Deadline {}

impl hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadline::at(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadline::at(deadline))
    }
}

#[cfg(test)]
mod tests;
