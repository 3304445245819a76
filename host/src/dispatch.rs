//! The Dispatcher owns every invocation from its admission to its one outcome: the bounded
//! queue of pending invocations, the map of in-flight ones, deadlines and runner resets.
//! It does no I/O; the public endpoint, the Runtime API and the invokers are adapters over it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};

mod delivery;
mod runner;
pub mod sending;
pub mod stream;
mod tenant;
mod types;

pub use self::delivery::StaleDelivery;
pub use self::runner::RunnerState;
pub use self::stream::Streamed;
pub use self::types::*;

/// Index of a runner (a bootstrap process or a WASI instance slot).
pub type RunnerId = usize;

/// The queue is full: the caller should retry later.
#[derive(Debug, thiserror::Error)]
#[error("too many invocations pending ({0}); retry later")]
pub struct Overloaded(pub usize);

/// A request id that is unknown, expired or already answered.
#[derive(Debug, thiserror::Error)]
#[error("Invalid request ID")]
pub struct InvalidRequestId;

/// Admission to the dispatcher, taken before a request body is read so that memory stays
/// bounded by `queue_size` bodies whatever the load.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

/// What became of an invocation a poll took from the queue.
#[allow(
    clippy::large_enum_variant,
    reason = "a return value moved once into the poll's answer; boxing would add an allocation per invocation"
)]
enum Handed {
    /// Delivered, with its nonce.
    Out((Invocation, Arc<str>)),
    /// Answered, withdrawn or requeued: the poll waits for the next one.
    Skipped,
    /// Requeued: the poll's life of the runner ended or is being reset, so it takes nothing.
    Refused,
}

struct Queued {
    invocation: Invocation,
    reply: oneshot::Sender<Outcome>,
    ttl: Duration,
}

struct InFlight {
    runner: RunnerId,
    reply: oneshot::Sender<Outcome>,
    ttl: Duration,
    /// When the invocation must have ended.
    deadline: Instant,
    /// The nonce of this delivery (`Lambda-Runtime-Invocation-Id`).
    delivery: Arc<str>,
    /// One of the runner's concurrency slots, free again when this ends.
    _slot: OwnedSemaphorePermit,
}

pub struct Dispatcher {
    tx: async_channel::Sender<Queued>,
    rx: async_channel::Receiver<Queued>,
    inflight: Mutex<HashMap<Arc<str>, InFlight>>,
    admission: Arc<Semaphore>,
    capacity: usize,
    resets: Box<[Notify]>,
    gates: Box<[watch::Sender<Gate>]>,
    ready: watch::Sender<bool>,
    /// Per-tenant queues and environments (`TENANT_ISOLATION_MODE=PER_TENANT`).
    tenancy: Option<tenant::Tenancy>,
    /// Per runner, the streamed responses it is still sending (see [`Dispatcher::sending`]).
    sending: sending::Senders,
    runners: runner::Runners,
}

/// How many more invocations a runner may take and how many it took. A runner whose
/// allowance ran out takes nothing more until it is reopened: that is how a runner is
/// drained before a recycle, without failing anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gate {
    /// `None`: no bound.
    pub allowance: Option<u64>,
    pub taken: u64,
}

impl Gate {
    /// Takes one invocation; false when the allowance ran out.
    fn take(&mut self) -> bool {
        match &mut self.allowance {
            Some(0) => return false,
            Some(n) => *n -= 1,
            None => {}
        }
        self.taken += 1;
        true
    }
}

impl Dispatcher {
    /// A dispatcher for `runners` runner slots admitting at most `queue_size` invocations,
    /// one at a time per runner.
    pub fn new(runners: usize, queue_size: usize) -> Arc<Dispatcher> {
        Dispatcher::with_concurrency(runners, queue_size, 1)
    }

    /// As [`Dispatcher::new`], each runner holding up to `per_runner` invocations at once
    /// (`AWS_LAMBDA_MAX_CONCURRENCY`).
    pub fn with_concurrency(
        runners: usize,
        queue_size: usize,
        per_runner: usize,
    ) -> Arc<Dispatcher> {
        let (tx, rx) = async_channel::unbounded();
        Arc::new(Dispatcher {
            tx,
            rx,
            inflight: Mutex::new(HashMap::new()),
            admission: Arc::new(Semaphore::new(queue_size)),
            capacity: queue_size,
            resets: (0..runners.max(1)).map(|_| Notify::new()).collect(),
            gates: (0..runners.max(1))
                .map(|_| watch::channel(Gate::default()).0)
                .collect(),
            ready: watch::channel(false).0,
            tenancy: None,
            sending: sending::Senders::new(runners.max(1)),
            runners: runner::Runners::new(runners.max(1), per_runner),
        })
    }

    /// A dispatcher whose runners are execution environments bound to tenants by `policy`.
    pub fn with_tenancy(
        runners: usize,
        queue_size: usize,
        policy: &crate::tenancy::Policy,
        stats: Arc<crate::tenancy::stats::Stats>,
    ) -> Arc<Dispatcher> {
        let mut d = Arc::into_inner(Dispatcher::new(runners, queue_size))
            .unwrap_or_else(|| unreachable!("a new dispatcher has one owner"));
        d.tenancy = Some(tenant::Tenancy::new(runners, policy, stats));
        Arc::new(d)
    }

    /// Reserves room for one invocation, or says the host is overloaded.
    pub fn admit(&self) -> Result<Admission, Overloaded> {
        self.admission
            .clone()
            .try_acquire_owned()
            .map(|permit| Admission { _permit: permit })
            .map_err(|_| Overloaded(self.capacity))
    }

    /// Queues an event; its deadline is `ttl` from now.
    pub fn enqueue(self: &Arc<Self>, admission: Admission, event: Event, ttl: Duration) -> Ticket {
        let id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let deadline = Instant::now() + ttl;
        let deadline_ms = (SystemTime::now() + ttl)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let (reply, rx) = oneshot::channel();
        let invocation = Invocation {
            id: id.clone(),
            event,
            deadline,
            deadline_ms,
        };
        self.push(Queued {
            invocation,
            reply,
            ttl,
        });
        // Checked after the push, so that a runner failing init meanwhile cannot miss it.
        if let Some(init_error) = self.runners.none_can_work() {
            self.fail_queued(&init_error);
        }
        Ticket {
            id,
            rx: Some(rx),
            ttl,
            deadline,
            dispatcher: self.clone(),
            admission: Some(admission),
        }
    }

    /// Waits for the next invocation for `runner`, skipping the ones whose caller has
    /// already been answered or has hung up (they are withdrawn, never delivered). Cancel-safe.
    pub async fn next(&self, runner: RunnerId) -> Invocation {
        self.deliver(runner).await.0
    }

    /// As [`Dispatcher::next`], with the nonce of this delivery: a fresh one each time an
    /// invocation is handed out, a requeued one included. A runner that reported an init
    /// error in its current life is given nothing; it holds at most its concurrency.
    pub async fn deliver(&self, runner: RunnerId) -> (Invocation, Arc<str>) {
        let Some(life) = self.runners.poll(runner) else {
            return std::future::pending().await;
        };
        self.ready.send_if_modified(|r| !std::mem::replace(r, true));
        if let Some(t) = &self.tenancy {
            return self.next_for_tenant(t, runner, life).await;
        }
        let gate = self.gate_of(runner);
        let mut open = gate.subscribe();
        let slots = self.runners.slots(runner).clone();
        loop {
            // Never fails: the sender lives as long as `self`.
            let _ = open.wait_for(|g| g.allowance != Some(0)).await;
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return std::future::pending().await;
            };
            let Ok(queued) = self.rx.recv().await else {
                // Only when the dispatcher is being dropped: nothing will ever come.
                return std::future::pending().await;
            };
            match self.hand_out(runner, life, gate, slot, queued) {
                Handed::Out(handed) => return handed,
                Handed::Skipped => {}
                Handed::Refused => return std::future::pending().await,
            }
        }
    }

    /// Hands `queued` to `runner` in a fresh delivery, unless its caller is gone (dropped),
    /// its deadline passed (answered), or the runner's gate closed or the poll's life of it
    /// ended or is being reset meanwhile (requeued).
    fn hand_out(
        &self,
        runner: RunnerId,
        life: u64,
        gate: &watch::Sender<Gate>,
        slot: OwnedSemaphorePermit,
        queued: Queued,
    ) -> Handed {
        let Queued {
            invocation,
            reply,
            ttl,
        } = queued;
        // Checked under the lock that `expire` takes, so a caller that gives up either
        // sees the invocation in flight or the runner sees the caller gone.
        let mut inflight = self.lock();
        if reply.is_closed() {
            return Handed::Skipped;
        }
        if invocation.deadline <= Instant::now() {
            drop(inflight);
            let _ = reply.send(Outcome::Failed(InvocationError::Timeout(ttl)));
            return Handed::Skipped;
        }
        // This poll's life of the runner is over or being reset (checked under the lock
        // `expire` takes, so a reset either sees this delivery in flight or stops it): the
        // invocation goes back, and the poll waits for its connection to close.
        let refused = !self.runners.may_take(runner, life);
        // The gate closed while this poll waited: the invocation goes back (to the end
        // of the queue, the one place a channel offers).
        if refused || !gate.send_if_modified(Gate::take) {
            drop(inflight);
            self.push(Queued {
                invocation,
                reply,
                ttl,
            });
            return if refused {
                Handed::Refused
            } else {
                Handed::Skipped
            };
        }
        let delivery: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let held = InFlight {
            runner,
            reply,
            ttl,
            deadline: invocation.deadline,
            delivery: delivery.clone(),
            _slot: slot,
        };
        inflight.insert(invocation.id.clone(), held);
        Handed::Out((invocation, delivery))
    }

    /// Ends an in-flight invocation with the function's outcome.
    pub fn complete(&self, id: &str, outcome: Outcome) -> Result<(), InvalidRequestId> {
        let entry = self.lock().remove(id).ok_or(InvalidRequestId)?;
        // The caller may have gone away; the outcome then has nobody to reach.
        let _ = entry.reply.send(outcome);
        self.finished(entry.runner);
        Ok(())
    }

    /// Ends an in-flight invocation with the outcome `runner` sent; an invocation another
    /// runner holds is not this runner's to answer.
    pub fn complete_from(
        &self,
        runner: RunnerId,
        id: &str,
        outcome: Outcome,
    ) -> Result<(), InvalidRequestId> {
        let entry = self.take_held(runner, id).ok_or(InvalidRequestId)?;
        let _ = entry.reply.send(outcome);
        self.finished(runner);
        Ok(())
    }

    /// Removes `id` from the in-flight map if `runner` holds it.
    fn take_held(&self, runner: RunnerId, id: &str) -> Option<InFlight> {
        self.take_delivery(runner, id, None)
    }

    /// Removes `id` from the in-flight map if `runner` holds it (in delivery `nonce`, if
    /// given).
    fn take_delivery(&self, runner: RunnerId, id: &str, nonce: Option<&str>) -> Option<InFlight> {
        let mut map = self.lock();
        match map.get(id) {
            Some(f) if f.runner == runner && nonce.is_none_or(|n| *f.delivery == *n) => {
                map.remove(id)
            }
            _ => None,
        }
    }

    /// The deadline of `id`, if `runner` holds it now.
    pub fn deadline_held(&self, runner: RunnerId, id: &str) -> Option<Instant> {
        self.lock()
            .get(id)
            .filter(|f| f.runner == runner)
            .map(|f| f.deadline)
    }

    /// Resets `runner` as at a deadline: its supervisor kills it and starts it again. For a
    /// runner still sending a stream past its invocation's deadline.
    pub fn reset(&self, runner: RunnerId) {
        self.runners.resetting(runner);
        self.reset_signal(runner).notify_waiters();
    }

    /// Whether `runner` holds `id` now.
    pub fn is_held_by(&self, runner: RunnerId, id: &str) -> bool {
        self.lock().get(id).is_some_and(|f| f.runner == runner)
    }

    /// Puts back an invocation that `runner` was handed but never received (the reply to
    /// its poll was lost). False when it has ended or moved on meanwhile.
    pub fn return_undelivered(&self, runner: RunnerId, invocation: Invocation) -> bool {
        let Some(InFlight { reply, ttl, .. }) = self.take_held(runner, &invocation.id) else {
            return false;
        };
        self.finished(runner);
        self.push(Queued {
            invocation,
            reply,
            ttl,
        });
        true
    }

    /// Whether `id` is in flight now.
    pub fn is_in_flight(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// Fails every invocation `runner` holds, at once (its process exited, its instance
    /// trapped). Returns how many there were.
    pub fn fail_runner(&self, runner: RunnerId, error: InvocationError) -> usize {
        let failed: Vec<InFlight> = {
            let mut map = self.lock();
            let ids: Vec<Arc<str>> = map
                .iter()
                .filter(|(_, f)| f.runner == runner)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        let n = failed.len();
        for f in failed {
            let _ = f.reply.send(Outcome::Failed(error.clone()));
        }
        self.finished(runner);
        n
    }

    /// Tells the tenant scheduler that `runner` ended what it held.
    fn finished(&self, runner: RunnerId) {
        if let Some(t) = &self.tenancy {
            t.finished(runner);
        }
    }

    /// Signalled when a runner must be reset (an invocation it held passed its deadline).
    /// Only a runner waiting on it at that moment is reset.
    pub fn reset_signal(&self, runner: RunnerId) -> &Notify {
        &self.resets[runner.min(self.resets.len() - 1)]
    }

    /// Lets `runner` take `allowance` more invocations (`None`: any number).
    pub fn allow(&self, runner: RunnerId, allowance: Option<u64>) {
        self.gate_of(runner)
            .send_modify(|g| g.allowance = allowance);
    }

    /// Stops giving `runner` invocations (it is drained before a recycle).
    pub fn drain(&self, runner: RunnerId) {
        self.allow(runner, Some(0));
    }

    /// Watches `runner`'s gate: its allowance and how many invocations it took.
    pub fn gate(&self, runner: RunnerId) -> watch::Receiver<Gate> {
        self.gate_of(runner).subscribe()
    }

    /// How many invocations `runner` holds now, counting the streams it is still sending.
    pub fn held_by(&self, runner: RunnerId) -> usize {
        let held = self.lock().values().filter(|f| f.runner == runner).count();
        held + self.sending.count(runner)
    }

    /// Marks `runner` busy sending a streamed response until the guard is dropped: its
    /// invocation has ended for the Dispatcher, but a drained runner is not recycled
    /// mid-stream.
    pub fn sending(&self, runner: RunnerId) -> sending::Sending<'_> {
        self.sending.guard(runner)
    }

    fn gate_of(&self, runner: RunnerId) -> &watch::Sender<Gate> {
        &self.gates[runner.min(self.gates.len() - 1)]
    }

    /// Puts `queued` at the end of the queue. The channel is unbounded, admission bounds
    /// it; it closes only with the dispatcher.
    fn push(&self, queued: Queued) {
        if let Some(t) = &self.tenancy {
            return t.push(queued);
        }
        if let Err(e) = self.tx.try_send(queued) {
            let _ = e
                .into_inner()
                .reply
                .send(Outcome::Failed(InvocationError::ShuttingDown));
        }
    }

    /// Becomes true once a runner has asked for an invocation: the function is ready.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Invocations waiting for a runner.
    pub fn queued(&self) -> usize {
        self.rx.len() + self.tenancy.as_ref().map_or(0, |t| t.queued())
    }

    /// Invocations a runner holds.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    /// Ends `id` past its deadline: the runner holding it, if any, is reset.
    fn expire(&self, id: &str) {
        let mut inflight = self.lock();
        let held_by = inflight.remove(id).map(|f| f.runner);
        if let Some(runner) = held_by {
            // Marked under the in-flight lock, as `hand_out` checks it.
            self.runners.resetting(runner);
            drop(inflight);
            self.reset_signal(runner).notify_waiters();
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, InFlight>> {
        // A panic elsewhere must not wedge every invocation: the map stays consistent
        // because every critical section is a single insert or remove.
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The caller's side of one invocation. A ticket dropped before its outcome (the caller
/// hung up) withdraws its invocation if it is still queued, and leaves a watcher that resets
/// the runner holding it at the deadline, so nothing is left running past it.
pub struct Ticket {
    id: Arc<str>,
    /// `None` once the outcome has been taken.
    rx: Option<oneshot::Receiver<Outcome>>,
    ttl: Duration,
    deadline: Instant,
    dispatcher: Arc<Dispatcher>,
    admission: Option<Admission>,
}

impl Ticket {
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// When the invocation must have ended (a streamed response included).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Waits for the outcome, or for the deadline: then the invocation is withdrawn if
    /// still queued, or its runner is reset if it held it. The admission comes back so that
    /// the caller holds its place until it has delivered the result.
    pub async fn outcome(mut self) -> (Outcome, Option<Admission>) {
        let outcome = match self.rx.as_mut() {
            Some(rx) => wait(rx, &self.id, self.deadline, self.ttl, &self.dispatcher).await,
            None => Outcome::Failed(InvocationError::ShuttingDown),
        };
        self.rx = None;
        (outcome, self.admission.take())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        // The caller hung up. Decided under the lock `next` takes: a queued invocation is
        // closed, so no runner will take it; one a runner holds keeps running.
        let in_flight = {
            let inflight = self.dispatcher.lock();
            let held = inflight.contains_key(&*self.id);
            if !held {
                rx.close();
            }
            held
        };
        if !in_flight && rx.try_recv().is_ok() {
            return; // It had already ended: its place is free now.
        }
        let (id, deadline, ttl) = (self.id.clone(), self.deadline, self.ttl);
        let dispatcher = self.dispatcher.clone();
        let admission = self.admission.take();
        // The place is held until the invocation ends: at its outcome, or at the deadline,
        // when its runner is reset (a withdrawn one still sits in the queue until then).
        let watch = async move {
            if in_flight {
                let _ = wait(&mut rx, &id, deadline, ttl, &dispatcher).await;
            } else {
                crate::deadline::Deadline::at(deadline).await;
            }
            drop(admission);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(watch);
            }
            // No runtime left to wait on (the host is stopping): end it now.
            Err(_) => self.dispatcher.expire(&self.id),
        }
    }
}

/// The outcome of invocation `id`, or its end at the deadline.
async fn wait(
    rx: &mut oneshot::Receiver<Outcome>,
    id: &str,
    deadline: Instant,
    ttl: Duration,
    dispatcher: &Dispatcher,
) -> Outcome {
    // On the deadline thread, not tokio's timer: almost every invocation ends before it,
    // and arming a tokio timer at one request at a time wakes the other worker.
    let expiry = crate::deadline::Deadline::at(deadline);
    let ended = tokio::select! {
        biased;
        ended = &mut *rx => Some(ended),
        () = expiry => None,
    };
    match ended {
        Some(Ok(outcome)) => outcome,
        Some(Err(_)) => Outcome::Failed(InvocationError::ShuttingDown),
        None => {
            rx.close();
            if let Ok(outcome) = rx.try_recv() {
                return outcome;
            }
            dispatcher.expire(id);
            Outcome::Failed(InvocationError::Timeout(ttl))
        }
    }
}

#[cfg(test)]
mod tests;
