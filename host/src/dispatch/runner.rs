//! Each runner's life as the Dispatcher sees it: whether it is initialising, ready, or
//! failing init with the error it reported, and how many invocations it may hold at once.
//! Decides when no runner can take work (every one is failing init), so that invocations
//! are answered with the init error at once instead of at their deadline. Plain state
//! under one short lock: no I/O, no waiting.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, Semaphore};

use super::{Dispatcher, InvocationError, Outcome, RunnerId};
use crate::lambda_error::{Diagnostic, MAX_LOGGED, clip};

/// Where a runner is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum RunnerState {
    /// Started, has not asked for an invocation yet (at start-up, or after a crash, a reset
    /// or a recycle of a runner that had been ready).
    Initialising,
    /// Has asked for an invocation in its current life.
    Ready,
    /// Its last life ended in init (it reported `/init/error`, or exited before asking for
    /// an invocation); it stays so across restarts until a life of it is ready.
    FailedInit(Arc<Diagnostic>),
}

#[derive(Debug)]
struct Life {
    state: RunnerState,
    /// This life asked for an invocation.
    polled: bool,
    /// What this life reported to `/init/error`.
    reported: Option<Arc<Diagnostic>>,
    /// A supervisor starts its lives (a bootstrap the host runs); an external runtime's
    /// (`INVOKER_COUNT=0`) are invisible, so its next poll after an init error is a new life.
    supervised: bool,
    /// Counts the lives a supervisor started: a poll begun in an earlier life (its
    /// connection not yet seen closed) is given nothing.
    generation: u64,
    /// This life is being reset (an invocation it held passed its deadline): its supervisor
    /// is killing it, so its open polls are given nothing more.
    resetting: bool,
    /// The process of this life, once its supervisor has started it.
    pid: Option<u32>,
}

/// The runners' lives and their concurrency slots.
pub(super) struct Runners {
    lives: Mutex<Vec<Life>>,
    /// Per runner, one permit per invocation it may hold (`AWS_LAMBDA_MAX_CONCURRENCY`).
    slots: Box<[Arc<Semaphore>]>,
    /// Per runner: it reported an init error (the supervisor ends a life that lingers).
    reported: Box<[Notify]>,
}

impl Runners {
    pub(super) fn new(runners: usize, max_concurrency: usize) -> Runners {
        let life = || Life {
            state: RunnerState::Initialising,
            polled: false,
            reported: None,
            supervised: false,
            generation: 0,
            resetting: false,
            pid: None,
        };
        Runners {
            lives: Mutex::new((0..runners).map(|_| life()).collect()),
            slots: (0..runners)
                .map(|_| Arc::new(Semaphore::new(max_concurrency.max(1))))
                .collect(),
            reported: (0..runners).map(|_| Notify::new()).collect(),
        }
    }

    pub(super) fn slots(&self, runner: RunnerId) -> &Arc<Semaphore> {
        &self.slots[runner.min(self.slots.len() - 1)]
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Life>> {
        // Every critical section leaves the lives consistent: a panic cannot wedge them.
        self.lives.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with<T>(&self, runner: RunnerId, f: impl FnOnce(&mut Life) -> T) -> T {
        let mut lives = self.lock();
        let last = lives.len() - 1;
        f(&mut lives[runner.min(last)])
    }

    pub(super) fn state(&self, runner: RunnerId) -> RunnerState {
        self.with(runner, |l| l.state.clone())
    }

    /// A new life of `runner` begins (its process was started again). A runner failing
    /// init stays failing until this life is ready.
    pub(super) fn start(&self, runner: RunnerId) {
        self.with(runner, |l| {
            l.polled = false;
            l.reported = None;
            l.supervised = true;
            l.generation += 1;
            l.resetting = false;
            l.pid = None;
            if l.state == RunnerState::Ready {
                l.state = RunnerState::Initialising;
            }
        });
    }

    /// `runner` asks for an invocation: the life it asks in if it may have one (it is
    /// ready now); `None` when this life of a supervised runner already reported an init
    /// error (it is expected to exit, and is given nothing until it has been started again)
    /// or is being reset.
    pub(super) fn poll(&self, runner: RunnerId) -> Option<u64> {
        self.with(runner, |l| {
            if l.resetting {
                return None;
            }
            if l.reported.is_some() {
                if l.supervised {
                    return None;
                }
                l.reported = None;
            }
            l.polled = true;
            l.state = RunnerState::Ready;
            Some(l.generation)
        })
    }

    /// Whether a poll `runner` began in life `generation` may still be handed work: that
    /// life is the current one and is not being reset.
    pub(super) fn may_take(&self, runner: RunnerId, generation: u64) -> bool {
        self.with(runner, |l| l.generation == generation && !l.resetting)
    }

    /// `runner` is to be reset: if a supervisor runs it, its current life takes nothing
    /// more (the supervisor kills it and starts a new one). A runner nobody supervises is
    /// not marked, since no new life would clear the mark.
    pub(super) fn resetting(&self, runner: RunnerId) {
        self.with(runner, |l| l.resetting |= l.supervised);
    }

    /// `runner` reported an init error. Returns the error every invocation gets if no
    /// runner can take work any more.
    pub(super) fn report(&self, runner: RunnerId, diag: Diagnostic) -> Option<Arc<Diagnostic>> {
        let diag = Arc::new(bounded(diag));
        self.with(runner, |l| {
            l.reported = Some(diag.clone());
            l.state = RunnerState::FailedInit(diag);
        });
        self.reported[runner.min(self.reported.len() - 1)].notify_one();
        self.none_can_work()
    }

    /// This life of `runner` ended (its process exited): its open polls take nothing more.
    /// If it never asked for an invocation, it failed init: with what it reported, else with
    /// `exited` (how it ended). Returns its init error, if it failed init.
    pub(super) fn end(
        &self,
        runner: RunnerId,
        exited: impl FnOnce() -> Diagnostic,
    ) -> Option<Arc<Diagnostic>> {
        self.with(runner, |l| {
            // A poll the dead process left open (its connection not yet seen closed) is
            // handed nothing more: what it would take goes to the next life.
            l.generation += 1;
            if l.polled {
                return None;
            }
            let diag = l
                .reported
                .clone()
                .unwrap_or_else(|| Arc::new(bounded(exited())));
            l.state = RunnerState::FailedInit(diag.clone());
            Some(diag)
        })
    }

    /// The init error to answer invocations with when every runner is failing init (the
    /// first runner's: at start-up they are the same function failing alike); `None` while
    /// one may still take work.
    pub(super) fn none_can_work(&self) -> Option<Arc<Diagnostic>> {
        let lives = self.lock();
        let mut first = None;
        for life in lives.iter() {
            match &life.state {
                RunnerState::FailedInit(d) => {
                    first.get_or_insert_with(|| d.clone());
                }
                _ => return None,
            }
        }
        first
    }
}

/// The runners' lives, as the supervisors and the Runtime API report them.
impl Dispatcher {
    /// A new life of `runner` begins: its process was (re)started.
    pub fn runner_started(&self, runner: RunnerId) {
        self.runners.start(runner);
    }

    /// The process of `runner`'s current life is `pid`.
    pub fn runner_spawned(&self, runner: RunnerId, pid: Option<u32>) {
        self.runners.with(runner, |l| l.pid = pid);
    }

    /// The process of `runner`'s current life, if a supervisor started one.
    pub fn runner_pid(&self, runner: RunnerId) -> Option<u32> {
        self.runners.with(runner, |l| l.pid)
    }

    /// `runner` reported an init error (`/init/error`): it takes nothing in this life, and
    /// when no runner can take work, every queued invocation is answered with this error.
    pub fn init_error(&self, runner: RunnerId, error: Diagnostic) {
        if let Some(init_error) = self.runners.report(runner, error) {
            self.fail_queued(&init_error);
        }
    }

    /// This life of `runner` ended. If it never asked for an invocation it failed init,
    /// with what it reported, else with `exited` (how it ended): that error is returned,
    /// and when no runner can take work, every queued invocation is answered with it.
    pub fn runner_ended(
        &self,
        runner: RunnerId,
        exited: impl FnOnce() -> Diagnostic,
    ) -> Option<Arc<Diagnostic>> {
        let init_error = self.runners.end(runner, exited)?;
        if let Some(e) = self.runners.none_can_work() {
            self.fail_queued(&e);
        }
        Some(init_error)
    }

    /// Resolves once the current life of `runner` has reported an init error (it should
    /// exit then; its supervisor ends it if it does not).
    pub async fn init_reported(&self, runner: RunnerId) {
        let signal = &self.runners.reported[runner.min(self.runners.reported.len() - 1)];
        loop {
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // A signal left from an earlier life is no report of this one.
            if self.runners.with(runner, |l| l.reported.is_some()) {
                return;
            }
            notified.await;
        }
    }

    /// Where `runner` is in its life.
    pub fn runner_state(&self, runner: RunnerId) -> RunnerState {
        self.runners.state(runner)
    }

    /// Answers every queued invocation with `init_error` (no runner can take them).
    pub(super) fn fail_queued(&self, init_error: &Arc<Diagnostic>) {
        let fail = |queued: super::Queued| {
            let error = InvocationError::InitError(init_error.clone());
            let _ = queued.reply.send(Outcome::Failed(error));
        };
        while let Ok(queued) = self.rx.try_recv() {
            fail(queued);
        }
        if let Some(t) = &self.tenancy {
            t.drain().into_iter().for_each(fail);
        }
    }
}

/// Most bytes of a reported error type kept (AWS's own types are short).
const MAX_TYPE: usize = 1024;

/// The error as kept: every invocation answered with it shares one copy of bounded size,
/// whatever the runtime posted.
fn bounded(d: Diagnostic) -> Diagnostic {
    Diagnostic {
        error_type: clip(&d.error_type, MAX_TYPE).to_owned(),
        error_message: clip(&d.error_message, MAX_LOGGED).to_owned(),
        stack_trace: None,
    }
}

#[cfg(test)]
mod tests;
