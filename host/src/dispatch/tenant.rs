//! The Dispatcher's side of tenant isolation: with `TENANT_ISOLATION_MODE=PER_TENANT`,
//! pending invocations wait in the [`Scheduler`]'s per-tenant queues instead of the shared
//! channel, and each runner (one execution environment) receives only what the scheduler
//! put in its mailbox. A runner bound to another tenant is told to reset first
//! ([`Dispatcher::switch_signal`]); its invoker resets it and reports the new start
//! ([`Dispatcher::env_started`]), and only then may the mailbox be taken. No I/O.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use super::{Dispatcher, Invocation, InvocationError, Outcome, Queued, RunnerId};
use crate::tenancy::scheduler::{Action, Choice, Scheduler};
use crate::tenancy::stats::Stats;
use crate::tenancy::{Policy, TenantId};
use std::sync::Arc;

pub(super) struct Tenancy {
    scheduler: Mutex<Scheduler<Queued>>,
    /// Per runner: its mailbox has something.
    wake: Box<[Notify]>,
    /// Per runner: it must be reset to change tenant.
    switch: Box<[Notify]>,
    stats: Arc<Stats>,
}

impl Tenancy {
    pub(super) fn new(runners: usize, policy: &Policy, stats: Arc<Stats>) -> Tenancy {
        let runners = runners.max(1);
        Tenancy {
            scheduler: Mutex::new(Scheduler::new(
                runners,
                policy.max_concurrency,
                policy.queue_share,
            )),
            wake: (0..runners).map(|_| Notify::new()).collect(),
            switch: (0..runners).map(|_| Notify::new()).collect(),
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Scheduler<Queued>> {
        self.scheduler.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes and resets what the scheduler decided, and logs and counts its choices.
    fn perform(&self, actions: Vec<Action>) {
        let decided = self.lock().take_decided();
        for a in decided {
            self.stats.assigned(&a.tenant, a.choice);
            match a.choice {
                Choice::Switch => tracing::info!(
                    env = a.env,
                    tenant = %a.tenant,
                    previous = a.previous.as_ref().map(|t| t.as_str()),
                    "environment resets to serve another tenant"
                ),
                Choice::Clean => {
                    tracing::info!(env = a.env, tenant = %a.tenant, "environment bound to tenant")
                }
                Choice::Warm => {}
            }
        }
        for action in actions {
            match action {
                Action::Deliver(r) => self.wake[r.min(self.wake.len() - 1)].notify_one(),
                Action::Reset(r) => self.switch[r.min(self.switch.len() - 1)].notify_one(),
            }
        }
    }

    /// Queues `queued` under its tenant; over the tenant's share it fails at once.
    pub(super) fn push(&self, queued: Queued) {
        let Some(tenant) = queued.invocation.event.tenant_id.clone() else {
            let _ = queued
                .reply
                .send(Outcome::Failed(InvocationError::HostFailure(
                    "an invocation without a tenant reached a per-tenant function".into(),
                )));
            return;
        };
        let pushed = self
            .lock()
            .push(tenant.clone(), queued, |q| q.reply.is_closed());
        match pushed {
            Ok(actions) => self.perform(actions),
            Err(q) => {
                let _ = q
                    .reply
                    .send(Outcome::Failed(InvocationError::TenantThrottled(
                        tenant.to_string(),
                    )));
            }
        }
    }

    /// `runner` ended the invocation it held.
    pub(super) fn finished(&self, runner: RunnerId) {
        let actions = self.lock().finished(runner);
        self.perform(actions);
    }

    /// Withdraws every pending invocation (every runner is failing init).
    pub(super) fn drain(&self) -> Vec<Queued> {
        self.lock().drain()
    }

    pub(super) fn queued(&self) -> usize {
        self.lock().queued()
    }
}

impl Dispatcher {
    /// `next` for a per-tenant function: waits for what the scheduler puts in `runner`'s
    /// mailbox. Cancel-safe: a mailbox not taken stays for the runner's next poll.
    pub(super) async fn next_for_tenant(
        &self,
        t: &Tenancy,
        runner: RunnerId,
        life: u64,
    ) -> (Invocation, Arc<str>) {
        let gate = self.gate_of(runner);
        let mut open = gate.subscribe();
        let slots = self.runners.slots(runner).clone();
        let wake = &t.wake[runner.min(t.wake.len() - 1)];
        loop {
            let _ = open.wait_for(|g| g.allowance != Some(0)).await;
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return std::future::pending().await;
            };
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (item, actions) = {
                let mut s = t.lock();
                let actions = s.idle(runner);
                (s.take(runner), actions)
            };
            t.perform(actions);
            let Some(queued) = item else {
                notified.await;
                continue;
            };
            match self.hand_out(runner, life, gate, slot, queued) {
                super::Handed::Out(handed) => return handed,
                super::Handed::Skipped => {}
                super::Handed::Refused => return std::future::pending().await,
            }
        }
    }

    /// Resolves when `runner` must be reset to serve another tenant (never without tenant
    /// isolation). The invoker then resets it and calls [`Dispatcher::env_started`].
    pub async fn switch_signal(&self, runner: RunnerId) {
        let Some(t) = &self.tenancy else {
            return std::future::pending().await;
        };
        let signal = &t.switch[runner.min(t.switch.len() - 1)];
        loop {
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // A signal left over from a reset that already happened is no reason for another.
            if t.lock().must_reset(runner) {
                return;
            }
            notified.await;
        }
    }

    /// `runner`'s environment was (re)started: a new process or instance with an empty
    /// scratch folder. Called by the invokers at every start, whatever ended the last.
    pub fn env_started(&self, runner: RunnerId) {
        if let Some(t) = &self.tenancy {
            let actions = t.lock().started(runner);
            t.perform(actions);
        }
    }

    /// The tenant `runner`'s environment is bound to, for logs.
    pub fn tenant_of(&self, runner: RunnerId) -> Option<TenantId> {
        let t = self.tenancy.as_ref()?;
        t.lock().tenant_of(runner).cloned()
    }

    /// Whether environments are bound to tenants.
    pub fn per_tenant(&self) -> bool {
        self.tenancy.is_some()
    }
}
