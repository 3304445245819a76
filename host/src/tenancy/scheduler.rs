//! Which execution environment serves which pending invocation, when environments are
//! bound to tenants. Pending invocations wait in one queue per tenant; tenants are served
//! round-robin, each with at most `max_concurrency` environments busy, so one tenant's
//! flood delays another tenant by about one invocation, not by the flood. An invocation
//! goes to its tenant's idle warm environment first, else to a clean one (never used, or
//! reset since), else to the environment that another tenant used least recently, which
//! must then be reset before it receives it. Pure state: the caller turns the returned
//! [`Action`]s into wake-ups and resets.

use std::collections::{HashMap, VecDeque};

use super::TenantId;

/// An environment, by the index of its runner.
pub type EnvId = usize;

/// What the caller must do after a change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The environment has an invocation to take: wake it.
    Deliver(EnvId),
    /// The environment must be reset (it changes tenant) before it takes its invocation.
    Reset(EnvId),
}

/// Where an environment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvState {
    /// Not asking for work (starting, restarting, or its poll was dropped).
    Away,
    /// Waiting for an invocation.
    Idle,
    /// An invocation waits in its mailbox.
    Assigned,
    /// An invocation waits in its mailbox, to be taken once the environment is reset.
    Resetting,
    /// Running the invocation it took.
    Busy,
}

/// How an environment came to be chosen, for the warm-hit ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The tenant's own warm environment.
    Warm,
    /// An environment that had served nobody since its last start.
    Clean,
    /// Another tenant's environment, reset.
    Switch,
}

struct Env<T> {
    tenant: Option<TenantId>,
    state: EnvState,
    /// The logical time it was last handed an invocation.
    last_used: u64,
    mailbox: Option<T>,
}

/// What was decided for one invocation (for logs and counters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub env: EnvId,
    pub tenant: TenantId,
    pub choice: Choice,
    /// The tenant the environment served before, on a switch.
    pub previous: Option<TenantId>,
}

pub struct Scheduler<T> {
    queues: HashMap<TenantId, VecDeque<T>>,
    /// Tenants with pending invocations, in the order they are served next.
    ring: VecDeque<TenantId>,
    busy: HashMap<TenantId, usize>,
    envs: Vec<Env<T>>,
    max_concurrency: usize,
    queue_share: usize,
    clock: u64,
    queued: usize,
    /// Assignments since the caller last took them.
    decided: Vec<Assignment>,
}

impl<T> Scheduler<T> {
    pub fn new(envs: usize, max_concurrency: usize, queue_share: usize) -> Scheduler<T> {
        Scheduler {
            queues: HashMap::new(),
            ring: VecDeque::new(),
            busy: HashMap::new(),
            envs: (0..envs.max(1))
                .map(|_| Env {
                    tenant: None,
                    state: EnvState::Away,
                    last_used: 0,
                    mailbox: None,
                })
                .collect(),
            max_concurrency: max_concurrency.max(1),
            queue_share: queue_share.max(1),
            clock: 0,
            queued: 0,
            decided: Vec::new(),
        }
    }

    /// Queues `item` of `tenant`; gives it back when the tenant already has its share of the
    /// queue waiting. `is_dead` tells an invocation whose caller is gone, dropped to make room.
    pub fn push(
        &mut self,
        tenant: TenantId,
        item: T,
        is_dead: impl Fn(&T) -> bool,
    ) -> Result<Vec<Action>, T> {
        let queue = self.queues.entry(tenant.clone()).or_default();
        if queue.len() >= self.queue_share {
            let before = queue.len();
            queue.retain(|i| !is_dead(i));
            self.queued -= before - queue.len();
            if queue.len() >= self.queue_share {
                return Err(item);
            }
        }
        if queue.is_empty() && !self.ring.contains(&tenant) {
            self.ring.push_back(tenant);
        }
        queue.push_back(item);
        self.queued += 1;
        Ok(self.pump())
    }

    /// The environment asks for work: what it ran is done.
    pub fn idle(&mut self, env: EnvId) -> Vec<Action> {
        let Some(e) = self.envs.get_mut(env) else {
            return Vec::new();
        };
        match e.state {
            EnvState::Busy => {
                e.state = EnvState::Idle;
                let tenant = e.tenant.clone();
                self.release(tenant.as_ref());
            }
            EnvState::Away => e.state = EnvState::Idle,
            EnvState::Idle | EnvState::Assigned | EnvState::Resetting => {}
        }
        self.pump()
    }

    /// The environment ended the invocation it ran (answered, failed, or handed it back):
    /// it is idle again, even before it asks for more, so that its tenant's next call finds
    /// it warm. What is assigned to it waits in its mailbox until it asks.
    pub fn finished(&mut self, env: EnvId) -> Vec<Action> {
        match self.envs.get_mut(env) {
            Some(e) if e.state == EnvState::Busy => {
                e.state = EnvState::Idle;
                let tenant = e.tenant.clone();
                self.release(tenant.as_ref());
                self.pump()
            }
            _ => Vec::new(),
        }
    }

    /// The invocation waiting for `env`, unless it must be reset first. The environment is
    /// busy from then on.
    pub fn take(&mut self, env: EnvId) -> Option<T> {
        let e = self.envs.get_mut(env)?;
        if e.state != EnvState::Assigned {
            return None;
        }
        let item = e.mailbox.take();
        // Its invocation was withdrawn while it was being reset ([`Scheduler::drain`]).
        e.state = if item.is_some() {
            EnvState::Busy
        } else {
            EnvState::Idle
        };
        item
    }

    /// Withdraws every pending invocation, queued or waiting in a mailbox (no environment
    /// can take work: they are all failing init). An environment being reset for another
    /// tenant still is reset: it stays bound to the new tenant and takes nothing after it.
    pub fn drain(&mut self) -> Vec<T> {
        let mut out: Vec<T> = Vec::with_capacity(self.queued);
        self.ring.clear();
        for (_, q) in self.queues.drain() {
            out.extend(q);
        }
        self.queued = 0;
        for i in 0..self.envs.len() {
            let Some(item) = self.envs[i].mailbox.take() else {
                continue;
            };
            out.push(item);
            let e = &mut self.envs[i];
            if e.state == EnvState::Assigned {
                e.state = EnvState::Idle;
            }
            let tenant = e.tenant.clone();
            self.release(tenant.as_ref());
        }
        out
    }

    /// The environment was (re)started: a new process or instance, its scratch emptied. One
    /// being reset for a tenant may now take its invocation; any other starts clean, bound
    /// to nobody, unless an invocation already waits for it.
    pub fn started(&mut self, env: EnvId) -> Vec<Action> {
        let Some(e) = self.envs.get_mut(env) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        match e.state {
            EnvState::Resetting | EnvState::Assigned => {
                e.state = EnvState::Assigned;
                actions.push(Action::Deliver(env));
            }
            EnvState::Busy => {
                e.state = EnvState::Away;
                let tenant = e.tenant.take();
                self.release(tenant.as_ref());
            }
            EnvState::Idle | EnvState::Away => {
                e.state = EnvState::Away;
                e.tenant = None;
            }
        }
        actions.extend(self.pump());
        actions
    }

    /// Whether `env` waits for a reset before it may take its invocation.
    pub fn must_reset(&self, env: EnvId) -> bool {
        self.envs
            .get(env)
            .is_some_and(|e| e.state == EnvState::Resetting)
    }

    /// The tenant `env` is bound to.
    pub fn tenant_of(&self, env: EnvId) -> Option<&TenantId> {
        self.envs.get(env).and_then(|e| e.tenant.as_ref())
    }

    pub fn state_of(&self, env: EnvId) -> Option<EnvState> {
        self.envs.get(env).map(|e| e.state)
    }

    /// Invocations waiting in tenant queues or mailboxes.
    pub fn queued(&self) -> usize {
        self.queued + self.envs.iter().filter(|e| e.mailbox.is_some()).count()
    }

    /// The assignments made since the last call.
    pub fn take_decided(&mut self) -> Vec<Assignment> {
        std::mem::take(&mut self.decided)
    }

    fn release(&mut self, tenant: Option<&TenantId>) {
        let Some(t) = tenant else { return };
        if let Some(n) = self.busy.get_mut(t) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.busy.remove(t);
            }
        }
    }

    /// Hands pending invocations to idle environments, tenants in round-robin order.
    fn pump(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        loop {
            let cap = self.max_concurrency;
            let busy = &self.busy;
            let Some(pos) = self
                .ring
                .iter()
                .position(|t| busy.get(t).copied().unwrap_or(0) < cap)
            else {
                break;
            };
            let tenant = self.ring[pos].clone();
            let Some((env, choice)) = self.choose(&tenant) else {
                break;
            };
            let Some(item) = self.queues.get_mut(&tenant).and_then(VecDeque::pop_front) else {
                self.ring.remove(pos);
                continue;
            };
            self.queued -= 1;
            // Served: to the back of the round.
            self.ring.remove(pos);
            if self.queues.get(&tenant).is_some_and(|q| !q.is_empty()) {
                self.ring.push_back(tenant.clone());
            } else {
                self.queues.remove(&tenant);
            }
            *self.busy.entry(tenant.clone()).or_default() += 1;
            self.clock += 1;
            let e = &mut self.envs[env];
            let previous = e.tenant.replace(tenant.clone());
            e.mailbox = Some(item);
            e.last_used = self.clock;
            if choice == Choice::Switch {
                e.state = EnvState::Resetting;
                actions.push(Action::Reset(env));
            } else {
                e.state = EnvState::Assigned;
                actions.push(Action::Deliver(env));
            }
            self.decided.push(Assignment {
                env,
                tenant,
                choice,
                previous: previous.filter(|_| choice == Choice::Switch),
            });
        }
        actions
    }

    /// The environment for `tenant`'s next invocation, if any is idle.
    fn choose(&self, tenant: &TenantId) -> Option<(EnvId, Choice)> {
        let idle = || {
            self.envs
                .iter()
                .enumerate()
                .filter(|(_, e)| e.state == EnvState::Idle)
        };
        let warm = idle()
            .filter(|(_, e)| e.tenant.as_ref() == Some(tenant))
            .max_by_key(|(_, e)| e.last_used);
        if let Some((i, _)) = warm {
            return Some((i, Choice::Warm));
        }
        if let Some((i, _)) = idle().find(|(_, e)| e.tenant.is_none()) {
            return Some((i, Choice::Clean));
        }
        idle()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(i, _)| (i, Choice::Switch))
    }
}
