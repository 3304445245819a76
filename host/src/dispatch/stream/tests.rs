use bytes::Bytes;
use http_body_util::BodyExt;

use super::*;

#[tokio::test]
async fn chunks_arrive_in_order_then_the_stream_completes() {
    let (mut w, mut r) = channel(4, 100);
    w.send(Bytes::from_static(b"a")).await.unwrap();
    w.send(Bytes::from_static(b"b")).await.unwrap();
    w.finish();
    assert_eq!(r.next().await, Ok(Bytes::from_static(b"a")));
    assert_eq!(r.next().await, Ok(Bytes::from_static(b"b")));
    assert_eq!(r.next().await, Err(Ending::Complete));
}

#[tokio::test]
async fn a_writer_waits_for_a_slow_reader() {
    let (mut w, mut r) = channel(1, 100);
    w.send(Bytes::from_static(b"1")).await.unwrap();
    let second = w.send(Bytes::from_static(b"2"));
    tokio::pin!(second);
    assert!(
        futures_poll(&mut second).is_pending(),
        "the channel holds one chunk"
    );
    assert_eq!(r.next().await, Ok(Bytes::from_static(b"1")));
    second.await.unwrap();
}

fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(f).poll(&mut cx)
}

#[tokio::test]
async fn a_stream_past_its_limit_is_cut_at_the_limit() {
    let (mut w, r) = channel(4, 5);
    w.send(Bytes::from_static(b"abc")).await.unwrap();
    assert_eq!(
        w.send(Bytes::from_static(b"defg")).await,
        Err(SendError::PastLimit(5))
    );
    assert_eq!(w.sent(), 5);
    let mut body = r;
    let mut seen = Vec::new();
    let err = loop {
        match body.frame().await {
            Some(Ok(f)) => seen.extend_from_slice(f.data_ref().unwrap()),
            Some(Err(e)) => break e,
            None => panic!("a cut stream must end in an error"),
        }
    };
    assert_eq!(seen, b"abcde");
    assert_eq!(err, Cut::PastLimit { limit: 5 });
}

#[tokio::test]
async fn an_error_after_data_becomes_trailers() {
    let (mut w, r) = channel(4, 100);
    w.send(Bytes::from_static(b"partial")).await.unwrap();
    w.fail(StreamError {
        error_type: "Oops".into(),
        body: Bytes::from_static(b"{\"errorMessage\":\"bad\"}"),
    });
    let collected = BodyExt::collect(r).await.unwrap();
    let trailers = collected.trailers().cloned().unwrap();
    assert_eq!(collected.to_bytes(), Bytes::from_static(b"partial"));
    assert_eq!(trailers[ERROR_TYPE_TRAILER], "Oops");
    assert_eq!(
        trailers[ERROR_BODY_TRAILER],
        "eyJlcnJvck1lc3NhZ2UiOiJiYWQifQ=="
    );
}

#[tokio::test]
async fn a_dropped_writer_cuts_the_stream() {
    let (w, mut r) = channel(4, 100);
    drop(w);
    assert!(matches!(r.next().await, Err(Ending::Cut(Cut::Broken(_)))));
}

#[tokio::test]
async fn a_dropped_reader_closes_the_writer_and_reports_abandoned() {
    let (mut w, mut r) = channel(4, 100);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let s = seen.clone();
    r.on_end(move |e| *s.lock().unwrap() = Some(e.clone()));
    drop(r);
    assert!(w.is_closed());
    assert_eq!(
        w.send(Bytes::from_static(b"x")).await,
        Err(SendError::Closed)
    );
    assert_eq!(*seen.lock().unwrap(), Some(Ending::Abandoned));
}

#[tokio::test]
async fn on_end_sees_the_ending_once() {
    let (w, mut r) = channel(4, 100);
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    r.on_end(move |e| {
        assert_eq!(e, &Ending::Complete);
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    w.finish();
    assert_eq!(r.next().await, Err(Ending::Complete));
    drop(r);
    assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test]
async fn buffering_a_stream_gives_a_response_or_fails_past_the_limit() {
    let (mut w, r) = channel(4, 100);
    w.send(Bytes::from_static(b"hello")).await.unwrap();
    w.finish();
    let s = Streamed {
        head: None,
        content_type: Some("text/plain".into()),
        body: r,
    };
    match s.buffer(10).await {
        Outcome::Response { body, content_type } => {
            assert_eq!(body, Bytes::from_static(b"hello"));
            assert_eq!(content_type.as_deref(), Some("text/plain"));
        }
        other => panic!("{other:?}"),
    }
    let (mut w, r) = channel(4, 100);
    let s = Streamed {
        head: None,
        content_type: None,
        body: r,
    };
    tokio::spawn(async move {
        let _ = w.send(Bytes::from_static(b"0123456789ab")).await;
        w.finish();
    });
    assert!(matches!(
        s.buffer(10).await,
        Outcome::Failed(InvocationError::ResponseTooLarge { .. })
    ));
}
