//! The accept loop over real loopback sockets: lost replies are told apart from read ones.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Connection, Options, Served, serve};

/// A server whose every reply is `size` bytes and counts the replies reported lost.
async fn server(size: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let lost = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let counter = lost.clone();
    let options = Options {
        drain: None,
        write_timeout: Some(Duration::from_secs(5)),
    };
    tokio::spawn(serve(listener, stop.clone(), options, move |req| {
        let counter = counter.clone();
        async move {
            if let Some(c) = req.extensions().get::<Connection>() {
                c.on_reply_lost(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                });
            }
            http::Response::new(Served::from(Full::new(Bytes::from(vec![b'x'; size]))))
        }
    }));
    (addr, lost, stop)
}

async fn settle() {
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_reply_cut_off_by_a_reset_is_reported_lost() {
    let (addr, lost, _stop) = server(16 << 20).await;
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut first = [0u8; 1024];
        let _ = s.read(&mut first).unwrap();
        // Hang up with a reset while most of the reply is still to be written.
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    })
    .await
    .unwrap();
    for _ in 0..500 {
        if lost.load(Ordering::SeqCst) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the lost reply was never reported");
}

#[tokio::test]
async fn a_reply_read_before_the_next_request_is_never_reported_lost() {
    let (addr, lost, _stop) = server(10).await;
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        for _ in 0..2 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
        }
        // The last reply was read too; a clean close says nothing was lost.
    })
    .await
    .unwrap();
    settle().await;
    assert_eq!(lost.load(Ordering::SeqCst), 0);
}
