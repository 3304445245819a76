use super::*;
use bytes::Bytes;

fn event(body: &'static str) -> Event {
    Event {
        body: Bytes::from_static(body.as_bytes()),
        ..Event::default()
    }
}

fn respond(body: &'static str) -> Outcome {
    Outcome::Response {
        body: Bytes::from_static(body.as_bytes()),
        content_type: None,
    }
}

#[tokio::test]
async fn an_invocation_round_trips_once() {
    let d = Dispatcher::new(1, 4);
    let t = d.enqueue(d.admit().unwrap(), event("hi"), Duration::from_secs(5));
    let inv = d.next(0).await;
    assert_eq!(&inv.event.body[..], b"hi");
    assert_eq!(&inv.id, t.id());
    d.complete(&inv.id, respond("yo")).unwrap();
    assert!(
        d.complete(&inv.id, respond("again")).is_err(),
        "never twice"
    );
    match t.outcome().await.0 {
        Outcome::Response { body, .. } => assert_eq!(&body[..], b"yo"),
        o => panic!("{o:?}"),
    }
}

#[tokio::test]
async fn admission_is_bounded_and_released() {
    let d = Dispatcher::new(1, 1);
    let t = d.enqueue(d.admit().unwrap(), event("a"), Duration::from_secs(5));
    assert!(d.admit().is_err());
    let inv = d.next(0).await;
    d.complete(&inv.id, respond("")).unwrap();
    t.outcome().await;
    assert!(d.admit().is_ok());
}

#[tokio::test(start_paused = true)]
async fn an_expired_invocation_is_withdrawn_and_never_delivered() {
    let d = Dispatcher::new(1, 4);
    let late = d.enqueue(d.admit().unwrap(), event("late"), Duration::from_millis(10));
    let outcome = late.outcome().await.0;
    assert!(matches!(
        outcome,
        Outcome::Failed(InvocationError::Timeout(_))
    ));
    let _fresh = d.enqueue(d.admit().unwrap(), event("fresh"), Duration::from_secs(5));
    assert_eq!(&d.next(0).await.event.body[..], b"fresh");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_in_flight_resets_the_runner() {
    let d = Dispatcher::new(2, 4);
    let t = d.enqueue(d.admit().unwrap(), event("slow"), Duration::from_millis(10));
    let inv = d.next(1).await;
    let reset = d.reset_signal(1).notified();
    tokio::pin!(reset);
    reset.as_mut().enable();
    assert!(matches!(
        t.outcome().await.0,
        Outcome::Failed(InvocationError::Timeout(_))
    ));
    reset.await;
    assert!(d.complete(&inv.id, respond("too late")).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_ticket_dropped_by_its_caller_still_resets_the_runner_at_the_deadline() {
    let d = Dispatcher::new(1, 1);
    let t = d.enqueue(d.admit().unwrap(), event("slow"), Duration::from_millis(10));
    let inv = d.next(0).await;
    let reset = d.reset_signal(0).notified();
    tokio::pin!(reset);
    reset.as_mut().enable();
    drop(t);
    assert!(
        d.admit().is_err(),
        "the abandoned invocation keeps its place"
    );
    reset.await;
    assert!(d.complete(&inv.id, respond("too late")).is_err());
    tokio::task::yield_now().await;
    assert!(d.admit().is_ok(), "and gives it back at the deadline");
}

#[tokio::test]
async fn a_ticket_dropped_in_flight_gives_its_place_back_when_the_runner_answers() {
    let d = Dispatcher::new(1, 1);
    let t = d.enqueue(d.admit().unwrap(), event("a"), Duration::from_secs(60));
    let inv = d.next(0).await;
    drop(t);
    assert!(d.admit().is_err(), "held while the runner works");
    d.complete(&inv.id, respond("done")).unwrap();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        d.admit().is_ok(),
        "free once it answered, not at the deadline"
    );
}

#[tokio::test]
async fn a_queued_invocation_whose_caller_left_is_never_delivered() {
    let d = Dispatcher::new(1, 4);
    drop(d.enqueue(d.admit().unwrap(), event("gone"), Duration::from_secs(5)));
    let _fresh = d.enqueue(d.admit().unwrap(), event("fresh"), Duration::from_secs(5));
    assert_eq!(&d.next(0).await.event.body[..], b"fresh");
}

#[tokio::test]
async fn a_dead_runner_fails_only_its_own_invocations() {
    let d = Dispatcher::new(2, 4);
    let a = d.enqueue(d.admit().unwrap(), event("a"), Duration::from_secs(5));
    let b = d.enqueue(d.admit().unwrap(), event("b"), Duration::from_secs(5));
    let ia = d.next(0).await;
    let ib = d.next(1).await;
    let err = InvocationError::RunnerExited("signal 9".into());
    assert_eq!(d.fail_runner(0, err), 1);
    assert!(matches!(
        a.outcome().await.0,
        Outcome::Failed(InvocationError::RunnerExited(_))
    ));
    assert!(d.complete(&ia.id, respond("")).is_err());
    d.complete(&ib.id, respond("b")).unwrap();
    assert!(matches!(b.outcome().await.0, Outcome::Response { .. }));
}

#[tokio::test]
async fn a_drained_runner_takes_nothing_until_reopened() {
    let d = Dispatcher::new(2, 4);
    d.allow(0, Some(1));
    let a = d.enqueue(d.admit().unwrap(), event("a"), Duration::from_secs(5));
    let ia = d.next(0).await;
    assert_eq!(d.held_by(0), 1);
    let _b = d.enqueue(d.admit().unwrap(), event("b"), Duration::from_secs(5));
    assert!(futures_poll_once(Box::pin(d.next(0))).await.is_none());
    d.complete(&ia.id, respond("a")).unwrap();
    assert!(matches!(a.outcome().await.0, Outcome::Response { .. }));
    assert_eq!(d.held_by(0), 0);
    assert_eq!(
        *d.gate(0).borrow(),
        Gate {
            allowance: Some(0),
            taken: 1
        }
    );
    // Another runner takes what the drained one leaves.
    assert_eq!(&d.next(1).await.event.body[..], b"b");
    d.allow(0, None);
    let _c = d.enqueue(d.admit().unwrap(), event("c"), Duration::from_secs(5));
    assert_eq!(&d.next(0).await.event.body[..], b"c");
}

#[tokio::test]
async fn a_poll_waiting_when_the_gate_closes_puts_its_invocation_back() {
    let d = Dispatcher::new(2, 4);
    let poll = tokio::spawn({
        let d = d.clone();
        async move { d.next(0).await }
    });
    tokio::task::yield_now().await;
    d.drain(0);
    let _a = d.enqueue(d.admit().unwrap(), event("a"), Duration::from_secs(5));
    assert_eq!(&d.next(1).await.event.body[..], b"a");
    assert!(!poll.is_finished());
    poll.abort();
}

#[test]
fn the_response_size_check_says_the_real_size_or_more_than_the_limit() {
    assert!(check_response_size(ResponseSize::Exactly(6), 6).is_ok());
    let e = check_response_size(ResponseSize::Exactly(7), 6).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Response payload size (7 bytes) exceeded maximum allowed payload size (6 bytes)."
    );
    let e = check_response_size(ResponseSize::PastLimit, 6).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Response payload size (more than 6 bytes) exceeded maximum allowed payload size (6 bytes)."
    );
}

#[tokio::test]
async fn readiness_follows_the_first_poll() {
    let d = Dispatcher::new(1, 4);
    let ready = d.ready();
    assert!(!*ready.borrow());
    let poll = d.next(0);
    tokio::pin!(poll);
    assert!(futures_poll_once(poll.as_mut()).await.is_none());
    assert!(*ready.borrow());
}

async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
    tokio::time::timeout(Duration::from_millis(10), f)
        .await
        .ok()
}
