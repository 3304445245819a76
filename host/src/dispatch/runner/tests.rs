//! Runner lives, init failures, per-runner concurrency and delivery nonces, in memory.

use std::time::Duration;

use bytes::Bytes;

use crate::dispatch::*;
use crate::lambda_error::Diagnostic;

const TTL: Duration = Duration::from_secs(30);

fn event() -> Event {
    Event {
        body: Bytes::from_static(b"{}"),
        ..Event::default()
    }
}

fn diag(t: &str, m: &str) -> Diagnostic {
    Diagnostic {
        error_type: t.into(),
        error_message: m.into(),
        stack_trace: None,
    }
}

fn ok() -> Outcome {
    Outcome::Response {
        body: Bytes::new(),
        content_type: None,
    }
}

fn init_error_of(outcome: Outcome) -> Diagnostic {
    match outcome {
        Outcome::Failed(InvocationError::InitError(d)) => (*d).clone(),
        o => panic!("expected an init error, got {o:?}"),
    }
}

/// Polls `runner` once so that it becomes ready, without taking anything.
async fn become_ready(d: &Dispatcher, runner: RunnerId) {
    let poll = d.next(runner);
    let _ = tokio::time::timeout(Duration::from_millis(1), poll).await;
}

#[tokio::test]
async fn when_every_runner_fails_init_queued_and_new_invocations_get_its_error_at_once() {
    let d = Dispatcher::new(2, 8);
    become_ready(&d, 0).await;
    become_ready(&d, 1).await;
    let queued = d.enqueue(d.admit().unwrap(), event(), TTL);
    // Both restart; one fails init: the other may still take work.
    d.runner_started(0);
    d.runner_started(1);
    d.init_error(0, diag("Runtime.ImportModuleError", "no module named x"));
    assert_eq!(d.queued(), 1, "runner 1 may still become ready");
    // The other exits before asking for work, reporting nothing.
    let e = d.runner_ended(1, || diag("Runtime.ExitError", "exit status 2"));
    assert_eq!(e.unwrap().error_type, "Runtime.ExitError");
    let first = init_error_of(queued.outcome().await.0);
    assert_eq!(first.error_type, "Runtime.ImportModuleError");
    assert_eq!(first.error_message, "no module named x");
    let new = d.enqueue(d.admit().unwrap(), event(), TTL);
    assert_eq!(
        init_error_of(new.outcome().await.0).error_type,
        "Runtime.ImportModuleError"
    );
    // Runner 0 reported in this life: it is given nothing, and its end says so.
    assert!(
        tokio::time::timeout(Duration::from_millis(20), d.next(0))
            .await
            .is_err()
    );
    let e = d.runner_ended(0, || diag("Runtime.ExitError", "exit status 1"));
    assert_eq!(e.unwrap().error_type, "Runtime.ImportModuleError");
    // Recovery: a new life that asks for work takes invocations again.
    d.runner_started(1);
    become_ready(&d, 1).await;
    assert_eq!(d.runner_state(1), RunnerState::Ready);
    let t = d.enqueue(d.admit().unwrap(), event(), TTL);
    let inv = d.next(1).await;
    d.complete(&inv.id, ok()).unwrap();
    assert!(matches!(t.outcome().await.0, Outcome::Response { .. }));
}

#[tokio::test]
async fn a_runner_that_was_ready_is_not_failing_init_when_it_ends() {
    let d = Dispatcher::new(1, 4);
    d.runner_started(0);
    become_ready(&d, 0).await;
    assert!(
        d.runner_ended(0, || diag("Runtime.ExitError", "x"))
            .is_none()
    );
    d.runner_started(0);
    assert_eq!(d.runner_state(0), RunnerState::Initialising);
    // Failing stays failing across restarts until a life is ready.
    assert!(
        d.runner_ended(0, || diag("Runtime.ExitError", "x"))
            .is_some()
    );
    d.runner_started(0);
    assert!(matches!(d.runner_state(0), RunnerState::FailedInit(_)));
}

#[tokio::test]
async fn a_runner_holds_at_most_its_concurrency() {
    let d = Dispatcher::with_concurrency(1, 8, 2);
    let tickets: Vec<Ticket> = (0..3)
        .map(|_| d.enqueue(d.admit().unwrap(), event(), TTL))
        .collect();
    let a = d.next(0).await;
    let b = d.next(0).await;
    assert_ne!(a.id, b.id);
    let third = d.next(0);
    tokio::pin!(third);
    assert!(
        tokio::time::timeout(Duration::from_millis(20), &mut third)
            .await
            .is_err(),
        "a third poll waits while two are held"
    );
    d.complete(&a.id, ok()).unwrap();
    let c = third.await;
    assert_eq!(d.held_by(0), 2);
    // A crash fails all it held.
    assert_eq!(
        d.fail_runner(0, InvocationError::RunnerExited("x".into())),
        2
    );
    drop(c);
    drop(tickets);
}

#[tokio::test]
async fn each_delivery_has_its_own_nonce_and_a_stale_one_answers_nothing() {
    let d = Dispatcher::new(1, 4);
    let t = d.enqueue(d.admit().unwrap(), event(), TTL);
    let (inv, first) = d.deliver(0).await;
    assert!(d.return_undelivered(0, inv));
    let (inv, second) = d.deliver(0).await;
    assert_ne!(
        first, second,
        "a requeued invocation is delivered with a new nonce"
    );
    assert!(!d.holds_delivery(0, &inv.id, &first));
    assert!(d.complete_delivery(0, &inv.id, &first, ok()).is_err());
    assert!(d.is_in_flight(&inv.id), "a stale answer does not end it");
    d.complete_delivery(0, &inv.id, &second, ok()).unwrap();
    assert!(matches!(t.outcome().await.0, Outcome::Response { .. }));
}

#[tokio::test]
async fn an_external_runtime_that_reported_an_init_error_recovers_when_it_polls_again() {
    let d = Dispatcher::new(1, 4);
    d.init_error(0, diag("Runtime.Custom", "nope"));
    let t = d.enqueue(d.admit().unwrap(), event(), TTL);
    assert_eq!(init_error_of(t.outcome().await.0).error_message, "nope");
    // No supervisor starts its lives (INVOKER_COUNT=0): its next poll is a new one.
    become_ready(&d, 0).await;
    assert_eq!(d.runner_state(0), RunnerState::Ready);
    let t = d.enqueue(d.admit().unwrap(), event(), TTL);
    let inv = d.next(0).await;
    d.complete(&inv.id, ok()).unwrap();
    assert!(matches!(t.outcome().await.0, Outcome::Response { .. }));
}

#[tokio::test]
async fn per_tenant_invocations_get_the_init_error_at_once_too() {
    use crate::tenancy::{Policy, TenancyMode, TenantId};
    let policy = Policy {
        mode: TenancyMode::PerTenant,
        max_concurrency: 1,
        queue_share: 8,
        ..Policy::default()
    };
    let d = Dispatcher::with_tenancy(2, 8, &policy, Default::default());
    let of = |tenant: &str| Event {
        tenant_id: Some(TenantId::parse(tenant).unwrap()),
        ..event()
    };
    // Both environments bound and idle: a's next invocation waits in env 0's mailbox
    // while a's and b's further ones wait in their queues.
    let a = d.enqueue(d.admit().unwrap(), of("a"), TTL);
    let b = d.enqueue(d.admit().unwrap(), of("b"), TTL);
    let ia = d.next(0).await;
    let ib = d.next(1).await;
    d.complete(&ia.id, ok()).unwrap();
    d.complete(&ib.id, ok()).unwrap();
    let _ = (a.outcome().await, b.outcome().await);
    become_ready(&d, 0).await;
    let waiting: Vec<Ticket> = ["a", "a", "b", "c"]
        .into_iter()
        .map(|t| d.enqueue(d.admit().unwrap(), of(t), TTL))
        .collect();
    assert!(d.queued() >= 3, "{} queued", d.queued());
    d.runner_started(0);
    d.runner_started(1);
    d.init_error(0, diag("Runtime.Custom", "bad config"));
    let e = d.runner_ended(1, || diag("Runtime.ExitError", "exit status 1"));
    assert!(e.is_some());
    for t in waiting {
        let got = tokio::time::timeout(Duration::from_secs(1), t.outcome())
            .await
            .expect("answered at once, not at the deadline");
        assert_eq!(init_error_of(got.0).error_message, "bad config");
    }
    assert_eq!(d.queued(), 0);
}

/// Whether `poll` stays pending (it was handed nothing) while the runtime runs a while.
async fn stays_pending<F: std::future::Future>(poll: std::pin::Pin<&mut F>) -> bool {
    tokio::time::timeout(Duration::from_millis(20), poll)
        .await
        .is_err()
}

#[tokio::test(start_paused = true)]
async fn a_runner_being_reset_is_handed_nothing_and_its_old_polls_nothing_after_it() {
    let d = Dispatcher::with_concurrency(1, 8, 4);
    d.runner_started(0);
    let late = d.enqueue(d.admit().unwrap(), event(), Duration::from_millis(200));
    let held = d.next(0).await;
    assert_eq!(held.id, *late.id());
    // Two more polls of this life wait for work (a concurrent runtime's open polls).
    let before = d.next(0);
    tokio::pin!(before);
    let also_before = d.next(0);
    tokio::pin!(also_before);
    assert!(stays_pending(before.as_mut()).await);
    let reset = d.reset_signal(0).notified();
    tokio::pin!(reset);
    reset.as_mut().enable();
    // The held invocation passes its deadline: the runner is reset.
    assert!(matches!(
        late.outcome().await.0,
        Outcome::Failed(InvocationError::Timeout(_))
    ));
    reset.await;
    // Until its supervisor starts it again, neither its open polls nor new ones are
    // handed the next invocation: it waits in the queue.
    let next = d.enqueue(d.admit().unwrap(), event(), TTL);
    assert!(stays_pending(before.as_mut()).await);
    assert!(stays_pending(also_before.as_mut()).await);
    let during = d.next(0);
    tokio::pin!(during);
    assert!(stays_pending(during.as_mut()).await);
    assert_eq!(d.queued(), 1);
    assert_eq!(d.in_flight(), 0);
    // The new life takes it.
    d.runner_started(0);
    let inv = d.next(0).await;
    assert_eq!(inv.id, *next.id());
    d.complete(&inv.id, ok()).unwrap();
    assert!(matches!(next.outcome().await.0, Outcome::Response { .. }));
    // A poll that a life left open when the next began (its connection not yet seen
    // closed) takes nothing: the next invocation goes to the new life.
    let stale = d.next(0);
    tokio::pin!(stale);
    assert!(stays_pending(stale.as_mut()).await);
    d.runner_started(0);
    let last = d.enqueue(d.admit().unwrap(), event(), TTL);
    assert!(stays_pending(stale.as_mut()).await);
    assert_eq!(d.queued(), 1);
    let inv = d.next(0).await;
    assert_eq!(inv.id, *last.id());
}

#[tokio::test(start_paused = true)]
async fn a_poll_left_open_by_a_runner_that_exited_takes_nothing() {
    let d = Dispatcher::new(1, 8);
    d.runner_started(0);
    // Ready, then killed while its poll was open; the supervisor saw the exit first.
    let open = d.next(0);
    tokio::pin!(open);
    assert!(stays_pending(open.as_mut()).await);
    assert!(
        d.runner_ended(0, || diag("Runtime.ExitError", "signal: SIGKILL"))
            .is_none()
    );
    // Queued during the pause before the restart: the dead poll leaves it in the queue.
    let queued = d.enqueue(d.admit().unwrap(), event(), TTL);
    assert!(stays_pending(open.as_mut()).await);
    assert_eq!(d.queued(), 1);
    assert_eq!(d.in_flight(), 0);
    d.runner_started(0);
    let inv = d.next(0).await;
    assert_eq!(inv.id, *queued.id());
}

#[tokio::test(start_paused = true)]
async fn an_external_runtime_past_a_deadline_keeps_taking_work() {
    // INVOKER_COUNT=0: no supervisor starts its lives, so nothing would end a reset.
    let d = Dispatcher::new(1, 8);
    let late = d.enqueue(d.admit().unwrap(), event(), Duration::from_millis(200));
    let _held = d.next(0).await;
    let _ = late.outcome().await;
    let next = d.enqueue(d.admit().unwrap(), event(), TTL);
    let inv = d.next(0).await;
    assert_eq!(inv.id, *next.id());
}
