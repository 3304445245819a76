use std::time::{Duration, Instant};

use super::*;

fn both() -> Subscriptions {
    Subscriptions {
        invoke: true,
        shutdown: true,
    }
}

fn id(s: &str) -> Arc<str> {
    s.into()
}

fn invoke(r: &mut Registry, runner: RunnerId, request: &str) -> usize {
    r.invoke(
        runner,
        &id(request),
        Instant::now() + Duration::from_secs(1),
        7,
        None,
    )
}

#[test]
fn an_invoke_holds_its_runner_until_the_extension_asks_for_its_next_event() {
    let mut r = Registry::new(["ext".to_owned()]);
    let ext = r.register("ext", both()).unwrap();
    assert!(!r.init_ready(), "registered, not yet polling");
    assert_eq!(r.next(ext).unwrap(), None);
    assert!(r.init_ready());
    assert_eq!(invoke(&mut r, 0, "a"), 1);
    assert_eq!(r.pending(0).unwrap().1, ["ext"]);
    assert!(r.pending(1).is_none(), "other runners go on");
    match r.take(ext).unwrap() {
        Some(Event::Invoke { request_id, .. }) => assert_eq!(&*request_id, "a"),
        other => panic!("{other:?}"),
    }
    assert!(r.pending(0).is_some(), "still processing");
    assert_eq!(r.next(ext).unwrap(), None);
    assert!(r.pending(0).is_none(), "acknowledged by its next call");
}

#[test]
fn invokes_of_several_runners_queue_and_each_is_delivered_once() {
    let mut r = Registry::new([]);
    let ext = r.register("ext", both()).unwrap();
    r.next(ext).unwrap();
    invoke(&mut r, 0, "a");
    invoke(&mut r, 1, "b");
    let first = r.take(ext).unwrap();
    assert!(matches!(first, Some(Event::Invoke { runner: 0, .. })));
    assert_eq!(r.take(ext).unwrap(), None, "one event at a time");
    let second = r.next(ext).unwrap();
    assert!(matches!(second, Some(Event::Invoke { runner: 1, .. })));
    assert!(r.pending(0).is_none());
    assert!(r.pending(1).is_some());
    assert_eq!(r.next(ext).unwrap(), None);
    assert!(r.pending(1).is_none());
}

#[test]
fn a_runner_holding_two_invocations_waits_for_both_invokes() {
    let mut r = Registry::new([]);
    let ext = r.register("ext", both()).unwrap();
    r.next(ext).unwrap();
    invoke(&mut r, 0, "a");
    invoke(&mut r, 0, "b");
    r.take(ext).unwrap();
    r.next(ext).unwrap();
    assert!(r.pending(0).is_some(), "b is not finished yet");
    r.next(ext).unwrap();
    assert!(r.pending(0).is_none());
}

#[test]
fn an_extension_that_subscribed_only_to_shutdown_holds_nothing() {
    let mut r = Registry::new([]);
    let ext = r
        .register(
            "ext",
            Subscriptions {
                invoke: false,
                shutdown: true,
            },
        )
        .unwrap();
    r.next(ext).unwrap();
    assert_eq!(invoke(&mut r, 0, "a"), 0);
    assert!(r.pending(0).is_none());
    r.shutdown(None, ShutdownReason::Spindown, 9);
    assert_eq!(
        r.take(ext).unwrap(),
        Some(Event::Shutdown {
            reason: ShutdownReason::Spindown,
            deadline_ms: 9
        })
    );
}

#[test]
fn registration_closes_after_init_except_for_a_restarted_external_extension() {
    let mut r = Registry::new(["ext".to_owned()]);
    r.register("ext", both()).unwrap();
    r.close_registration();
    assert_eq!(
        r.register("other", both()),
        Err(ApiError::RegistrationClosed)
    );
    assert!(matches!(
        r.register("ext", both()),
        Err(ApiError::InvalidState(_))
    ));
    assert!(r.remove("ext"));
    assert!(r.register("ext", both()).is_ok());
}

#[test]
fn at_most_ten_extensions_register() {
    let mut r = Registry::new([]);
    for i in 0..MAX_EXTENSIONS {
        r.register(&format!("e{i}"), both()).unwrap();
    }
    assert_eq!(
        r.register("one-more", both()),
        Err(ApiError::TooManyExtensions)
    );
}

#[test]
fn unknown_events_and_identifiers_are_refused() {
    assert_eq!(
        Subscriptions::parse(&["INVOKE".into(), "BOGUS".into()]),
        Err(ApiError::InvalidEventType("BOGUS".into()))
    );
    let mut r = Registry::new([]);
    assert!(matches!(
        r.next(uuid::Uuid::new_v4()),
        Err(ApiError::UnknownIdentifier(_))
    ));
}

#[test]
fn an_init_error_comes_only_before_the_first_next_and_ends_the_extension_s_polls() {
    let mut r = Registry::new([]);
    let a = r.register("a", both()).unwrap();
    assert_eq!(r.fail(a, true).unwrap(), "a");
    assert!(matches!(r.next(a), Err(ApiError::InvalidState(_))));
    assert!(!r.init_ready());
    assert_eq!(r.init_failure(), Some("extension a reported an init error"));
    let b = r.register("b", both()).unwrap();
    r.next(b).unwrap();
    assert!(matches!(r.fail(b, true), Err(ApiError::InvalidState(_))));
    assert!(r.fail(b, false).is_ok());
    assert!(matches!(r.fail(b, false), Err(ApiError::InvalidState(_))));
}

#[test]
fn a_removed_or_failed_extension_releases_the_runners_it_held() {
    let mut r = Registry::new([]);
    let a = r.register("a", both()).unwrap();
    let b = r.register("b", both()).unwrap();
    r.next(a).unwrap();
    r.next(b).unwrap();
    invoke(&mut r, 0, "x");
    r.remove("a");
    assert_eq!(r.pending(0).unwrap().1, ["b"]);
    r.fail(b, false).unwrap();
    assert!(r.pending(0).is_none());
}

#[test]
fn a_shutdown_replaces_pending_invokes_and_frees_every_runner() {
    let mut r = Registry::new([]);
    let a = r.register("a", both()).unwrap();
    r.next(a).unwrap();
    invoke(&mut r, 0, "x");
    invoke(&mut r, 1, "y");
    r.shutdown(None, ShutdownReason::Spindown, 1);
    assert!(r.pending(0).is_none() && r.pending(1).is_none());
    assert!(matches!(r.take(a).unwrap(), Some(Event::Shutdown { .. })));
    assert_eq!(invoke(&mut r, 0, "z"), 0, "nothing after a shutdown");
}

#[test]
fn a_reset_sends_shutdown_timeout_to_that_extension_only() {
    let mut r = Registry::new([]);
    let a = r.register("a", both()).unwrap();
    let b = r.register("b", both()).unwrap();
    r.next(a).unwrap();
    r.next(b).unwrap();
    invoke(&mut r, 0, "x");
    r.take(a).unwrap();
    r.shutdown(Some(&["a".to_owned()]), ShutdownReason::Timeout, 1);
    assert_eq!(r.pending(0).unwrap().1, ["b"]);
    assert!(matches!(
        r.next(a).unwrap(),
        Some(Event::Shutdown {
            reason: ShutdownReason::Timeout,
            ..
        })
    ));
    assert!(matches!(r.take(b).unwrap(), Some(Event::Invoke { .. })));
}
