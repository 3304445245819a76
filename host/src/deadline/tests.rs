use super::*;

use std::time::Duration;

/// Bounds a wait that would otherwise hang the test run if a wake-up were lost.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("a deadline was never woken")
}

fn is_armed(d: &Deadline) -> bool {
    match &d.armed {
        Armed::Entry(key) => CLOCK
            .as_ref()
            .is_some_and(|c| c.lock().entries.contains_key(key)),
        _ => false,
    }
}

#[tokio::test]
async fn a_deadline_is_pending_before_its_time_and_ready_after_it() {
    let at = Instant::now() + Duration::from_millis(30);
    let mut d = std::pin::pin!(Deadline::at(at));
    assert!(futures_poll(d.as_mut()).is_pending());
    within(d).await;
    assert!(Instant::now() >= at);
}

#[tokio::test]
async fn a_deadline_already_past_is_ready_without_being_armed() {
    let mut d = Deadline::at(Instant::now() - Duration::from_millis(1));
    assert!(futures_poll(Pin::new(&mut d)).is_ready());
    assert!(matches!(d.armed, Armed::No));
}

#[tokio::test]
async fn deadlines_end_in_the_order_of_their_times() {
    let now = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, ms) in [(2, 60), (0, 20), (1, 40)] {
        let tx = tx.clone();
        tokio::spawn(async move {
            Deadline::at(now + Duration::from_millis(ms)).await;
            let _ = tx.send(i);
        });
    }
    drop(tx);
    let mut order = Vec::new();
    while let Some(i) = within(rx.recv()).await {
        order.push(i);
    }
    assert_eq!(order, [0, 1, 2]);
}

#[tokio::test]
async fn an_earlier_deadline_wakes_the_thread_that_sleeps_until_a_later_one() {
    // The thread sleeps until the hour-long one; the short one must not wait for it.
    let mut long = std::pin::pin!(Deadline::at(Instant::now() + Duration::from_secs(3600)));
    assert!(futures_poll(long.as_mut()).is_pending());
    tokio::select! {
        biased;
        () = Deadline::at(Instant::now() + Duration::from_millis(20)) => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => panic!("the thread slept on"),
    }
    assert!(futures_poll(long.as_mut()).is_pending());
}

#[tokio::test]
async fn a_dropped_deadline_leaves_no_entry() {
    let mut d = Deadline::at(Instant::now() + Duration::from_secs(3600));
    assert!(futures_poll(Pin::new(&mut d)).is_pending());
    assert!(is_armed(&d));
    let Armed::Entry(key) = d.armed else {
        panic!("armed on the clock")
    };
    drop(d);
    let clock = CLOCK.as_ref().unwrap();
    assert!(!clock.lock().entries.contains_key(&key));
}

#[tokio::test]
async fn a_deadline_polled_by_another_task_wakes_that_task() {
    let at = Instant::now() + Duration::from_millis(30);
    let mut d = Deadline::at(at);
    assert!(futures_poll(Pin::new(&mut d)).is_pending());
    // Moved to a task of its own: the entry must wake it, not the first poller.
    within(tokio::spawn(d)).await.unwrap();
}

#[tokio::test]
async fn a_deadline_the_thread_took_is_ready_whichever_task_polls_it_next() {
    // The thread takes an entry (it is due) and wakes the waker it holds; a poll with
    // another waker that comes just after must not wait for a wake-up that went elsewhere.
    let mut d = Deadline::at(Instant::now() + Duration::from_secs(3600));
    assert!(futures_poll(Pin::new(&mut d)).is_pending());
    let Armed::Entry(key) = d.armed else {
        panic!("armed on the clock")
    };
    CLOCK.as_ref().unwrap().remove(&key);
    let (waker, woken) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut d).poll(&mut cx).is_ready());
    assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn hyper_closes_a_connection_whose_headers_do_not_come_in_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (client, server) = tokio::io::duplex(1024);
    let service = hyper::service::service_fn(|_req| async {
        Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("ok")))
    });
    let conn = tokio::spawn(
        hyper::server::conn::http1::Builder::new()
            .timer(HyperTimer)
            .header_read_timeout(Duration::from_millis(50))
            .serve_connection(hyper_util::rt::TokioIo::new(server), service),
    );
    let mut client = client;
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = within(client.read_to_end(&mut rest)).await;
    assert!(read.is_ok() && rest.is_empty(), "closed without a reply");
    assert!(within(conn).await.unwrap().is_err(), "as a header timeout");
}

fn futures_poll<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    f.poll(&mut cx)
}

fn counting_waker() -> (Waker, Arc<std::sync::atomic::AtomicUsize>) {
    struct Count(Arc<std::sync::atomic::AtomicUsize>);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    (Waker::from(Arc::new(Count(n.clone()))), n)
}
