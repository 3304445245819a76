//! The Telemetry API (2022-07-01): subscriptions, the records the host produces (function
//! and extension output lines, `platform.*` events) and their delivery in batches to each
//! subscriber's HTTP destination. Producing a record never waits: each subscriber has a
//! bounded buffer, and what does not fit is dropped, counted and reported to it
//! (`platform.logsDropped`). Only the delivery tasks touch sockets.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::registry::ExtensionId;
pub use super::subscription::Subscription;
use crate::metrics::Metrics;

/// Records buffered per subscriber, whatever its `maxItems`: beyond, they are dropped.
const MAX_BUFFERED: usize = 20_000;
/// Bytes buffered per subscriber.
const MAX_BUFFERED_BYTES: usize = 8 * 1024 * 1024;
/// Records kept from init for the subscribers that come during it.
const MAX_BACKLOG: usize = 1_000;
/// A refused connection is tried again this many times, this long apart: the
/// `lambda-extension` crate binds its listener anew after every connection.
const CONNECT_TRIES: u32 = 20;
const CONNECT_RETRY: Duration = Duration::from_millis(25);
/// How long a destination may take to answer one batch.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which kind of record, for the subscription's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Platform,
    Function,
    Extension,
}

/// One serialized record and its kind.
#[derive(Debug, Clone)]
struct Record {
    kind: Kind,
    json: Bytes,
}

/// A record `{"time", "type", "record"}` as Lambda sends it.
pub fn record(kind_name: &str, record: Value) -> Bytes {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Bytes::from(json!({ "time": time, "type": kind_name, "record": record }).to_string())
}

struct Buffer {
    items: VecDeque<Bytes>,
    bytes: usize,
    dropped: u64,
    dropped_bytes: u64,
}

struct Subscriber {
    extension: ExtensionId,
    sub: Subscription,
    buffer: Mutex<Buffer>,
    wake: Notify,
    stop: tokio_util::sync::CancellationToken,
}

impl Subscriber {
    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wants(&self, kind: Kind) -> bool {
        match kind {
            Kind::Platform => self.sub.platform,
            Kind::Function => self.sub.function,
            Kind::Extension => self.sub.extension,
        }
    }

    fn push(&self, json: &Bytes) -> bool {
        let mut b = self.lock();
        if b.items.len() >= MAX_BUFFERED || b.bytes + json.len() > MAX_BUFFERED_BYTES {
            b.dropped += 1;
            b.dropped_bytes += json.len() as u64;
            return false;
        }
        b.bytes += json.len();
        b.items.push_back(json.clone());
        let full = b.items.len() >= self.sub.max_items || b.bytes >= self.sub.max_bytes;
        drop(b);
        if full {
            self.wake.notify_one();
        }
        true
    }
}

/// Every subscription of the host and the records produced before init ended.
pub struct Telemetry {
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
    /// Quick checks on the output path: no subscriber and no backlog, nothing to serialize.
    any: AtomicBool,
    backlog_open: AtomicBool,
    backlog: Mutex<Option<VecDeque<Record>>>,
    /// Counts the records dropped because a subscriber's buffer was full or its
    /// destination failed.
    metrics: Arc<Metrics>,
}

/// The host's one telemetry hub, for the output forwarders deep in process supervision.
static HUB: OnceLock<Arc<Telemetry>> = OnceLock::new();

/// Makes `t` the hub that [`output_line`] feeds; the first one stays.
pub fn install(t: Arc<Telemetry>) {
    let _ = HUB.set(t);
}

/// A line a function (`Kind::Function`) or an extension wrote; never waits.
pub fn output_line(kind: Kind, line: &str) {
    if let Some(t) = HUB.get() {
        t.publish_with(kind, || {
            let name = if kind == Kind::Extension {
                "extension"
            } else {
                "function"
            };
            record(name, Value::String(line.to_owned()))
        });
    }
}

impl Telemetry {
    pub fn new(metrics: Arc<Metrics>) -> Telemetry {
        Telemetry {
            subscribers: Mutex::new(Vec::new()),
            any: AtomicBool::new(false),
            backlog_open: AtomicBool::new(true),
            backlog: Mutex::new(Some(VecDeque::new())),
            metrics,
        }
    }

    /// Publishes a record built only when someone may want it.
    pub fn publish_with(&self, kind: Kind, build: impl FnOnce() -> Bytes) {
        if !self.wanted() {
            return;
        }
        let json = build();
        if let Some(backlog) = self
            .backlog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            && backlog.len() < MAX_BACKLOG
        {
            backlog.push_back(Record {
                kind,
                json: json.clone(),
            });
        }
        let subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for s in subscribers.iter().filter(|s| s.wants(kind)) {
            if !s.push(&json) {
                self.metrics
                    .telemetry_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether a record may reach anyone now.
    pub fn wanted(&self) -> bool {
        self.any.load(Ordering::Relaxed) || self.backlog_open.load(Ordering::Relaxed)
    }

    /// Init ended: records are no longer kept for later subscribers.
    pub fn end_backlog(&self) {
        self.backlog_open.store(false, Ordering::Relaxed);
        self.backlog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Adds (or replaces) the subscription of `extension` and starts delivering to it.
    pub fn subscribe(self: &Arc<Self>, extension: ExtensionId, sub: Subscription) {
        let subscriber = Arc::new(Subscriber {
            extension,
            sub,
            buffer: Mutex::new(Buffer {
                items: VecDeque::new(),
                bytes: 0,
                dropped: 0,
                dropped_bytes: 0,
            }),
            wake: Notify::new(),
            stop: tokio_util::sync::CancellationToken::new(),
        });
        if let Some(backlog) = self
            .backlog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            for r in backlog.iter().filter(|r| subscriber.wants(r.kind)) {
                subscriber.push(&r.json);
            }
        }
        {
            let mut all = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
            for old in all.iter().filter(|s| s.extension == extension) {
                old.stop.cancel();
            }
            all.retain(|s| s.extension != extension);
            all.push(subscriber.clone());
            self.any.store(true, Ordering::Relaxed);
        }
        tokio::spawn(deliver(self.clone(), subscriber));
    }

    /// Ends the subscription of an extension that is gone.
    pub fn unsubscribe(&self, extension: ExtensionId) {
        let mut all = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        for s in all.iter().filter(|s| s.extension == extension) {
            s.stop.cancel();
        }
        all.retain(|s| s.extension != extension);
        self.any.store(!all.is_empty(), Ordering::Relaxed);
    }

    /// Delivers what every subscriber has buffered now, at most `within` (at shutdown).
    pub async fn flush(&self, within: Duration) {
        let subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let all = async {
            for s in subscribers {
                while let Some(batch) = take_batch(&s) {
                    if send(&s.sub, batch.0).await.is_err() {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(within, all).await;
    }
}

/// Sends the subscriber's records in batches: when `maxItems` or `maxBytes` are reached or
/// `timeoutMs` passed since the last batch.
async fn deliver(hub: Arc<Telemetry>, s: Arc<Subscriber>) {
    loop {
        tokio::select! {
            _ = s.stop.cancelled() => return,
            _ = s.wake.notified() => {}
            _ = tokio::time::sleep(s.sub.timeout) => {}
        }
        while let Some((batch, n)) = take_batch(&s) {
            if let Err(e) = send(&s.sub, batch).await {
                tracing::debug!("telemetry batch of {n} records not delivered: {e}");
                hub.metrics
                    .telemetry_dropped
                    .fetch_add(n as u64, Ordering::Relaxed);
                s.lock().dropped += n as u64;
                break;
            }
            if s.stop.is_cancelled() {
                return;
            }
        }
    }
}

/// The next batch (a JSON array) and how many records it holds; a `platform.logsDropped`
/// record leads it when records were dropped since the last one.
fn take_batch(s: &Subscriber) -> Option<(Bytes, usize)> {
    let mut b = s.lock();
    if b.items.is_empty() && b.dropped == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(b.bytes.min(s.sub.max_bytes) + 2);
    out.push(b'[');
    let mut n = 0;
    if b.dropped > 0 && s.sub.platform {
        let dropped = record(
            "platform.logsDropped",
            json!({
                "reason": "Some logs were dropped because the extension could not keep up",
                "droppedRecords": b.dropped,
                "droppedBytes": b.dropped_bytes,
            }),
        );
        out.extend_from_slice(&dropped);
        n += 1;
    }
    b.dropped = 0;
    b.dropped_bytes = 0;
    while let Some(item) = b.items.front() {
        if n > 0 && (n >= s.sub.max_items || out.len() + item.len() > s.sub.max_bytes) {
            break;
        }
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
        b.bytes -= item.len();
        b.items.pop_front();
        n += 1;
    }
    out.push(b']');
    (n > 0).then(|| (Bytes::from(out), n))
}

/// POSTs one batch on a connection of its own.
async fn send(sub: &Subscription, batch: Bytes) -> Result<(), String> {
    let stream = connect(sub.destination).await?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::post(sub.path.as_str())
        .header(
            http::header::HOST,
            format!("sandbox.localdomain:{}", sub.destination.port()),
        )
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(batch))
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(DELIVERY_TIMEOUT, sender.send_request(req)).await {
        Ok(Ok(res)) if res.status().is_success() => Ok(()),
        Ok(Ok(res)) => Err(format!("the destination answered {}", res.status())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the destination did not answer in time".into()),
    }
}

async fn connect(addr: SocketAddr) -> Result<tokio::net::TcpStream, String> {
    let mut tries = 0;
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e)
                if e.kind() == std::io::ErrorKind::ConnectionRefused && tries < CONNECT_TRIES =>
            {
                tries += 1;
                tokio::time::sleep(CONNECT_RETRY).await;
            }
            Err(e) => return Err(format!("cannot connect to {addr}: {e}")),
        }
    }
}

#[cfg(test)]
#[path = "telemetry_tests.rs"]
mod tests;
