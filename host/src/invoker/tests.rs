//! How a runner's end maps to its invocation's outcome, and the restart backoff.

use super::*;

const TTL: Duration = Duration::from_secs(3);

fn ev(stderr: &str) -> Evidence<'_> {
    Evidence {
        stderr,
        init_error: None,
        function_ttl: TTL,
    }
}

#[test]
fn every_end_fails_a_held_invocation_with_its_own_error() {
    let cases = [
        (Ended::Deadline, InvocationError::Timeout(TTL)),
        (
            Ended::Reset,
            InvocationError::RunnerExited(
                "the runtime was reset because another invocation it was running passed its \
                 deadline (3.00 seconds)"
                    .into(),
            ),
        ),
        (
            Ended::Exit(3),
            InvocationError::RunnerExited("exit status 3; stderr: boom".into()),
        ),
        (
            Ended::Signal(9),
            InvocationError::RunnerExited("signal: SIGKILL; stderr: boom".into()),
        ),
        (
            Ended::Trap("wasm trap: unreachable".into()),
            InvocationError::Trap("wasm trap: unreachable; stderr: boom".into()),
        ),
        (
            Ended::Returned,
            InvocationError::RunnerExited("the function returned without answering".into()),
        ),
        (
            Ended::HostFailure("cannot create a sandbox: x".into()),
            InvocationError::HostFailure("cannot create a sandbox: x".into()),
        ),
        (
            Ended::Stopped,
            InvocationError::RunnerExited("stopped with the host".into()),
        ),
    ];
    for (ended, expected) in cases {
        assert_eq!(ended.failure(&ev("boom")), expected, "{ended:?}");
    }
}

#[test]
fn an_init_error_explains_any_end_but_a_deadline() {
    let init = Diagnostic {
        error_type: "Runtime.NoHandler".into(),
        error_message: "none".into(),
        stack_trace: None,
    };
    let ev = Evidence {
        init_error: Some(&init),
        ..ev("")
    };
    assert_eq!(
        Ended::Exit(1).failure(&ev),
        InvocationError::InitFailed("Runtime.NoHandler: none".into())
    );
    assert_eq!(Ended::Deadline.failure(&ev), InvocationError::Timeout(TTL));
}

#[test]
fn a_command_answers_with_its_exit() {
    let out = Bytes::from_static(b"hi");
    match Ended::Returned.command_outcome(out.clone(), 2, &ev("")) {
        Outcome::Response { body, .. } => assert_eq!(body, out),
        o => panic!("{o:?}"),
    }
    match Ended::Exit(4).command_outcome(out.clone(), 2, &ev("bad input")) {
        Outcome::FunctionError(d) => {
            assert_eq!(d.error_type, "Runtime.ExitError");
            assert_eq!(d.error_message, "bad input");
        }
        o => panic!("{o:?}"),
    }
    match Ended::Trap("wasm trap: x".into()).command_outcome(out.clone(), 2, &ev("")) {
        Outcome::FunctionError(d) => {
            assert_eq!(d.error_type, "Runtime.WasmTrap");
            assert_eq!(d.error_message, "wasm trap: x");
        }
        o => panic!("{o:?}"),
    }
    assert!(matches!(
        Ended::Deadline.command_outcome(out.clone(), 2, &ev("")),
        Outcome::Failed(InvocationError::Timeout(_))
    ));
    // Three bytes in a pipe of limit + 1: cut, its real size unknown.
    match Ended::Returned.command_outcome(Bytes::from_static(b"abc"), 2, &ev("")) {
        Outcome::Failed(e @ InvocationError::ResponseTooLarge { .. }) => {
            assert!(e.to_string().contains("more than 2 bytes"), "{e}");
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn backoff_resets_after_a_run_that_served_or_lasted() {
    let short = Duration::from_millis(5);
    let b = backoff_after(Duration::ZERO, short, false);
    assert_eq!(b, Duration::from_millis(100));
    assert_eq!(backoff_after(b, short, false), Duration::from_millis(200));
    assert_eq!(backoff_after(b, short, true), Duration::ZERO);
    assert_eq!(backoff_after(b, HEALTHY_RUN, false), Duration::ZERO);
    assert_eq!(backoff_after(MAX_BACKOFF, short, false), MAX_BACKOFF);
}

/// The WASI runners read a guest's stderr only for the ends that quote it: an end whose
/// failure or outcome would change with stderr must say so.
#[test]
fn only_the_ends_that_quote_stderr_need_it_read() {
    let ends = [
        Ended::Returned,
        Ended::Exit(1),
        Ended::Signal(9),
        Ended::Trap("wasm trap: unreachable".into()),
        Ended::HostFailure("x".into()),
        Ended::Deadline,
        Ended::Reset,
        Ended::Recycled,
        Ended::Switched,
        Ended::Stopped,
    ];
    for ended in ends {
        let quoted = ended.failure(&ev("boom")) != ended.failure(&ev(""))
            || format!("{:?}", ended.command_outcome(Bytes::new(), 10, &ev("boom")))
                != format!("{:?}", ended.command_outcome(Bytes::new(), 10, &ev("")));
        assert_eq!(quoted, ended.explained_by_stderr(), "{ended:?}");
    }
}
