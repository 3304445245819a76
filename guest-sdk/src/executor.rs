//! A minimal executor for guests without an async runtime. Host calls block from the guest's
//! view, so the runtime loop and ordinary handlers are always ready when polled; a future that
//! stays pending can only be woken by something it started itself.

use std::{
    future::Future,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{self, Poll, Wake, Waker},
    thread::{self, Thread},
};

/// Runs a future to completion on the current thread.
///
/// Use it to drive [`run`](crate::run) without tokio:
/// `fn main() -> Result<(), Error> { lambda_wasi::block_on(lambda_wasi::run(service_fn(f))) }`.
///
/// # Panics
///
/// In a single-threaded wasm guest, if the future is pending and has not woken itself: no other
/// thread and no I/O reactor exist that could ever wake it, so waiting would hang until the
/// deadline. Futures that wait on timers or sockets need a real runtime (tokio's
/// `current_thread` flavour builds for `wasm32-wasip1`).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let signal = Arc::new(Signal {
        woken: AtomicBool::new(false),
        thread: thread::current(),
    });
    let waker = Waker::from(Arc::clone(&signal));
    let mut cx = task::Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        while !signal.woken.swap(false, Ordering::Acquire) {
            wait_for_wake();
        }
    }
}

struct Signal {
    woken: AtomicBool,
    thread: Thread,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
fn wait_for_wake() {
    panic!(
        "lambda_wasi::block_on: the future is pending and nothing in a single-threaded wasm guest \
         can wake it; use an async runtime for futures that wait on timers or I/O"
    );
}

#[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
fn wait_for_wake() {
    thread::park();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_output_of_a_ready_future() {
        assert_eq!(block_on(async { 40 + 2 }), 42);
    }

    #[test]
    fn repolls_a_future_that_wakes_itself() {
        let mut polls = 0;
        let output = block_on(std::future::poll_fn(|cx| {
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        }));
        assert_eq!(output, 3);
    }

    #[test]
    fn waits_for_a_wake_from_another_thread() {
        let (tx, rx) = std::sync::mpsc::channel::<Waker>();
        let waker_thread = thread::spawn(move || {
            if let Ok(waker) = rx.recv() {
                waker.wake();
            }
        });
        let mut sent = Some(tx);
        let output = block_on(std::future::poll_fn(|cx| match sent.take() {
            Some(tx) => {
                tx.send(cx.waker().clone()).expect("waker thread is alive");
                Poll::Pending
            }
            None => Poll::Ready("woken"),
        }));
        assert_eq!(output, "woken");
        waker_thread.join().expect("waker thread ends");
    }
}
