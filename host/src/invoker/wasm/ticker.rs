//! The epoch ticker of an engine: the clock that lets a store's deadline callback stop a
//! guest that never calls the host. It ticks only while some guest may be running: a
//! [`Running`] guard is held across every stretch of guest code (a store's whole life, or a
//! long-lived instance's work between two `next` calls). With no guard held for
//! `IDLE_TICKS` ticks the thread parks, so that an idle host does not wake 500 times a
//! second; the first guard taken after that wakes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances while a guest runs: a guest past its deadline is stopped
/// within this.
const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Ticks with no guest running, and no guard taken, before the ticker parks (200 ms).
const IDLE_TICKS: u32 = 100;

/// How long a parked ticker sleeps before it looks whether its engine still exists.
const PARKED_CHECK: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    /// Guards held now.
    running: AtomicUsize,
    /// A guard was taken since the ticker last looked.
    taken: AtomicBool,
    /// The ticker is parked, or about to park.
    parked: AtomicBool,
}

/// A handle on an engine's ticker; cheap to clone.
#[derive(Clone)]
pub struct Ticker {
    state: Arc<State>,
    /// `None` when the thread could not be started (deadlines then hold only at host calls).
    thread: Option<Thread>,
}

/// Held while guest code may run: the epoch advances meanwhile.
pub struct Running {
    state: Arc<State>,
}

impl Ticker {
    /// Starts the ticker of `engine`; it ends once the engine is dropped.
    pub fn start(engine: &Engine) -> Ticker {
        Ticker::start_checking(engine, PARKED_CHECK)
    }

    /// As [`Ticker::start`], a parked ticker looking for its engine every `parked_check`.
    fn start_checking(engine: &Engine, parked_check: Duration) -> Ticker {
        let state = Arc::new(State::default());
        let weak = engine.weak();
        let shared = state.clone();
        let spawned = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || tick(weak, &shared, parked_check));
        let thread = match spawned {
            Ok(handle) => Some(handle.thread().clone()),
            Err(e) => {
                tracing::error!(
                    "cannot start the epoch ticker: deadlines will only hold at host calls: {e}"
                );
                None
            }
        };
        Ticker { state, thread }
    }

    /// Marks guest code as running until the guard is dropped, waking a parked ticker.
    pub fn run(&self) -> Running {
        let s = &self.state;
        s.running.fetch_add(1, Ordering::SeqCst);
        if !s.taken.load(Ordering::Relaxed) {
            s.taken.store(true, Ordering::Relaxed);
        }
        // Paired with the ticker's store of `parked` before it reads `running`: either it
        // sees this guard and stays awake, or this sees it parked and wakes it.
        if s.parked.load(Ordering::SeqCst)
            && let Some(t) = &self.thread
        {
            t.unpark();
        }
        Running {
            state: self.state.clone(),
        }
    }

    /// Whether the ticker is parked (for tests).
    #[cfg(test)]
    fn is_parked(&self) -> bool {
        self.state.parked.load(Ordering::SeqCst)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.state.running.fetch_sub(1, Ordering::SeqCst);
    }
}

fn tick(weak: wasmtime::EngineWeak, state: &State, parked_check: Duration) {
    let mut idle = 0u32;
    while let Some(engine) = weak.upgrade() {
        engine.increment_epoch();
        drop(engine);
        let busy = state.running.load(Ordering::SeqCst) > 0;
        if busy || state.taken.swap(false, Ordering::Relaxed) {
            idle = 0;
        } else {
            idle = idle.saturating_add(1);
        }
        if idle < IDLE_TICKS {
            std::thread::sleep(EPOCH_TICK);
            continue;
        }
        state.parked.store(true, Ordering::SeqCst);
        if state.running.load(Ordering::SeqCst) == 0 {
            std::thread::park_timeout(parked_check);
        }
        state.parked.store(false, Ordering::SeqCst);
        if state.running.load(Ordering::SeqCst) > 0 {
            idle = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        Engine::new(&config).unwrap()
    }

    /// A ticker that, once parked, only a guard wakes (within any test's time).
    fn ticker(engine: &Engine) -> Ticker {
        Ticker::start_checking(engine, Duration::from_secs(3600))
    }

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("never {what}");
    }

    #[test]
    fn parks_when_no_guest_runs_and_wakes_for_the_next_one() {
        let engine = engine();
        let ticker = ticker(&engine);
        wait_until("parked", || ticker.is_parked());

        let running = ticker.run();
        wait_until("woken", || !ticker.is_parked());
        // A guest that runs forever keeps it awake: the epoch must keep advancing.
        std::thread::sleep(EPOCH_TICK * (IDLE_TICKS + 50));
        assert!(!ticker.is_parked(), "parked while a guest was running");
        drop(running);
        wait_until("parked again", || ticker.is_parked());
    }

    #[test]
    fn a_running_guest_sees_the_epoch_advance_after_an_idle_spell() {
        let engine = engine();
        let ticker = ticker(&engine);
        wait_until("parked", || ticker.is_parked());
        // `(module (func (export "spin") (loop (br 0))))`: an endless loop with a deadline
        // one tick away, which ends only if the epoch moves.
        let spin_wasm: &[u8] = &[
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
            0x03, 0x02, 0x01, 0x00, 0x07, 0x08, 0x01, 0x04, b's', b'p', b'i', b'n', 0x00, 0x00,
            0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b,
        ];
        let module = wasmtime::Module::new(&engine, spin_wasm).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        store.set_epoch_deadline(1);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let spin = instance
            .get_typed_func::<(), ()>(&mut store, "spin")
            .unwrap();
        let running = ticker.run();
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _running = running;
            let _ = done.send(spin.call(&mut store, ()).unwrap_err());
        });
        let trap = ended
            .recv_timeout(Duration::from_secs(30))
            .expect("the guest was never interrupted");
        assert_eq!(
            trap.downcast_ref::<wasmtime::Trap>(),
            Some(&wasmtime::Trap::Interrupt)
        );
    }
}
