//! The Extensions API's state machine: which extensions are registered, what each one
//! subscribed to, the events waiting for it, and which runner waits for which extension to
//! finish its INVOKE. Plain data behind one lock, no I/O and no waiting: the HTTP handlers
//! and the supervisors act on what its methods return.
//!
//! An extension's life, as the Lambda runtime interface emulator names its states:
//! `Registered` (until its first `next`), `Ready` (waiting in `next`), `Running` (it holds an
//! event: the next `next` says it is done with it), `InitError`, `ExitError`. An extension
//! acknowledges an INVOKE by asking for the next event after it; until then the runner that
//! served the invocation takes nothing new.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

pub use super::types::*;
use crate::dispatch::RunnerId;

/// Lambda runs at most 10 extensions per function.
pub const MAX_EXTENSIONS: usize = 10;

/// What `Lambda-Extension-Identifier` carries.
pub type ExtensionId = uuid::Uuid;

#[derive(Debug)]
struct Entry {
    id: ExtensionId,
    name: String,
    subs: Subscriptions,
    state: State,
    queue: VecDeque<Event>,
    /// The event it was last handed, until it asks for the next one.
    current: Option<Event>,
}

/// The INVOKEs of one invocation that extensions have not finished.
#[derive(Debug)]
struct Outstanding {
    runner: RunnerId,
    deadline: Instant,
    extensions: Vec<ExtensionId>,
}

/// Every registered extension and what waits on them.
#[derive(Debug)]
pub struct Registry {
    entries: Vec<Entry>,
    /// The host is initializing: any extension may register.
    open: bool,
    /// Files of `LAMBDA_EXTENSIONS_DIR`: such an extension registers again after a restart.
    external: HashSet<String>,
    /// By request id: a runner may hold several invocations at once.
    outstanding: HashMap<Arc<str>, Outstanding>,
    /// Set once a SHUTDOWN went out: no INVOKE follows it.
    shutting_down: bool,
    /// The last way an extension failed the host's init (init error, or exit during it).
    init_failure: Option<String>,
}

impl Registry {
    /// A registry expecting the external extensions named `external` (file names).
    pub fn new(external: impl IntoIterator<Item = String>) -> Registry {
        Registry {
            entries: Vec::new(),
            open: true,
            external: external.into_iter().collect(),
            outstanding: HashMap::new(),
            shutting_down: false,
            init_failure: None,
        }
    }

    /// `POST /register`. Registration is open during init; after it, only to an external
    /// extension the host restarted (its name is free again).
    pub fn register(&mut self, name: &str, subs: Subscriptions) -> Result<ExtensionId, ApiError> {
        if self.entries.iter().any(|e| e.name == name) {
            return Err(ApiError::InvalidState(format!(
                "extension {name:?} is already registered"
            )));
        }
        if !self.open && !self.external.contains(name) {
            return Err(ApiError::RegistrationClosed);
        }
        if self.entries.len() >= MAX_EXTENSIONS {
            return Err(ApiError::TooManyExtensions);
        }
        let id = uuid::Uuid::new_v4();
        self.entries.push(Entry {
            id,
            name: name.to_owned(),
            subs,
            state: State::Registered,
            queue: VecDeque::new(),
            current: None,
        });
        Ok(id)
    }

    /// `GET /event/next`: the extension is done with the event it held; returns the next
    /// event if one waits (else the caller waits and calls [`Registry::take`]).
    pub fn next(&mut self, id: ExtensionId) -> Result<Option<Event>, ApiError> {
        let entry = self.entry_mut(id)?;
        if matches!(entry.state, State::InitError | State::ExitError) {
            return Err(transition(entry, State::Ready));
        }
        let done = entry.current.take();
        entry.state = State::Ready;
        if let Some(Event::Invoke { request_id, .. }) = done {
            self.acknowledge(&request_id, id);
        }
        self.take(id)
    }

    /// The next event for an extension waiting in `next`, if one has come.
    pub fn take(&mut self, id: ExtensionId) -> Result<Option<Event>, ApiError> {
        let entry = self.entry_mut(id)?;
        if entry.state != State::Ready {
            return Ok(None);
        }
        let event = entry.queue.pop_front();
        if let Some(e) = &event {
            entry.current = Some(e.clone());
            entry.state = State::Running;
        }
        Ok(event)
    }

    /// `POST /init/error` (`init: true`) or `/exit/error`: the extension failed. Returns
    /// its name, for the log.
    pub fn fail(&mut self, id: ExtensionId, init: bool) -> Result<String, ApiError> {
        let target = if init {
            State::InitError
        } else {
            State::ExitError
        };
        let entry = self.entry_mut(id)?;
        let allowed = match target {
            // Lambda takes an init error only before the extension's first `next`.
            State::InitError => entry.state == State::Registered,
            _ => entry.state != State::ExitError,
        };
        if !allowed {
            return Err(transition(entry, target));
        }
        entry.state = target;
        entry.queue.clear();
        entry.current = None;
        let name = entry.name.clone();
        if init && self.open {
            self.init_failure = Some(format!("extension {name} reported an init error"));
        }
        self.forget_acks(id);
        Ok(name)
    }

    /// Sends INVOKE for `request_id`, served by `runner`, to every extension subscribed to
    /// it; `runner` takes nothing new until they have all asked for their next event.
    /// Returns how many got it.
    pub fn invoke(
        &mut self,
        runner: RunnerId,
        request_id: &Arc<str>,
        deadline: Instant,
        deadline_ms: u64,
        trace_id: Option<String>,
    ) -> usize {
        if self.shutting_down {
            return 0;
        }
        let mut got = Vec::new();
        for e in &mut self.entries {
            // One that has not asked for its first event yet (restarting) holds nothing.
            if e.subs.invoke && matches!(e.state, State::Ready | State::Running) {
                e.queue.push_back(Event::Invoke {
                    runner,
                    request_id: request_id.clone(),
                    deadline_ms,
                    trace_id: trace_id.clone(),
                });
                got.push(e.id);
            }
        }
        let n = got.len();
        if n > 0 {
            self.outstanding.insert(
                request_id.clone(),
                Outstanding {
                    runner,
                    deadline,
                    extensions: got,
                },
            );
        }
        n
    }

    /// Whether `runner` may take its next invocation; else the earliest deadline of the
    /// INVOKEs it waits on and the extensions still holding them.
    pub fn pending(&self, runner: RunnerId) -> Option<(Instant, Vec<String>)> {
        let mut deadline: Option<Instant> = None;
        let mut names: Vec<String> = Vec::new();
        for o in self.outstanding.values().filter(|o| o.runner == runner) {
            deadline = Some(deadline.map_or(o.deadline, |d| d.min(o.deadline)));
            for e in &o.extensions {
                if let Some(entry) = self.entries.iter().find(|x| x.id == *e)
                    && !names.contains(&entry.name)
                {
                    names.push(entry.name.clone());
                }
            }
        }
        deadline.map(|d| (d, names))
    }

    /// The extension named `name` is gone (its process ended, or it is being reset): what it
    /// held no longer holds any runner back. Returns whether it had registered.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(i) = self.entries.iter().position(|e| e.name == name) else {
            return false;
        };
        let entry = self.entries.remove(i);
        if self.open && self.init_failure.is_none() {
            self.init_failure = Some(format!("extension {name} exited during init"));
        }
        self.forget_acks(entry.id);
        true
    }

    /// How an extension failed init, if one did (init is then retried as the extension
    /// restarts).
    pub fn init_failure(&self) -> Option<&str> {
        self.init_failure.as_deref()
    }

    /// Queues a SHUTDOWN for the extensions subscribed to it: `names` (all when `None`).
    /// Pending INVOKEs are dropped; no runner waits on them any more.
    pub fn shutdown(&mut self, names: Option<&[String]>, reason: ShutdownReason, deadline_ms: u64) {
        if names.is_none() {
            self.shutting_down = true;
            self.outstanding.clear();
        }
        for e in &mut self.entries {
            if names.is_some_and(|n| !n.contains(&e.name)) {
                continue;
            }
            e.queue.retain(|ev| !matches!(ev, Event::Invoke { .. }));
            if e.subs.shutdown
                && matches!(e.state, State::Registered | State::Ready | State::Running)
            {
                e.queue.push_back(Event::Shutdown {
                    reason,
                    deadline_ms,
                });
            }
        }
        if let Some(names) = names {
            let ids: Vec<ExtensionId> = self
                .entries
                .iter()
                .filter(|e| names.contains(&e.name))
                .map(|e| e.id)
                .collect();
            for id in ids {
                self.forget_acks(id);
            }
        }
    }

    /// Whether init may end: every external extension registered, and every registered one
    /// has asked for its first event.
    pub fn init_ready(&self) -> bool {
        let registered = |name: &String| self.entries.iter().any(|e| &e.name == name);
        self.external.iter().all(registered)
            && self
                .entries
                .iter()
                .all(|e| matches!(e.state, State::Ready | State::Running))
    }

    /// Whether every external extension has registered (the runtime may start).
    pub fn all_registered(&self) -> bool {
        self.external
            .iter()
            .all(|name| self.entries.iter().any(|e| &e.name == name))
    }

    /// Ends init: from now on only a restarted external extension may register.
    pub fn close_registration(&mut self) {
        self.open = false;
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The state of the extension named `name`, if registered.
    pub fn state_of(&self, name: &str) -> Option<State> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.state)
    }

    /// The identifier of the extension named `name`, if registered.
    pub fn id_of(&self, name: &str) -> Option<ExtensionId> {
        self.entries.iter().find(|e| e.name == name).map(|e| e.id)
    }

    /// Whether the extension named `name` waits for a SHUTDOWN.
    pub fn subscribed_to_shutdown(&self, name: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.name == name && e.subs.shutdown)
    }

    pub fn is_registered(&self, id: ExtensionId) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    pub fn name_of(&self, id: ExtensionId) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.name.as_str())
    }

    fn acknowledge(&mut self, request_id: &str, id: ExtensionId) {
        if let Some(o) = self.outstanding.get_mut(request_id) {
            o.extensions.retain(|e| *e != id);
            if o.extensions.is_empty() {
                self.outstanding.remove(request_id);
            }
        }
    }

    fn forget_acks(&mut self, id: ExtensionId) {
        for o in self.outstanding.values_mut() {
            o.extensions.retain(|e| *e != id);
        }
        self.outstanding.retain(|_, o| !o.extensions.is_empty());
    }

    fn entry_mut(&mut self, id: ExtensionId) -> Result<&mut Entry, ApiError> {
        self.entries
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or_else(|| ApiError::UnknownIdentifier(id.to_string()))
    }
}

fn transition(entry: &Entry, to: State) -> ApiError {
    ApiError::InvalidState(format!(
        "extension {:?} cannot go from state {} to {}",
        entry.name,
        entry.state.name(),
        to.name()
    ))
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
