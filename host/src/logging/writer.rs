//! The log's writer: formatted lines are appended to a bounded buffer in memory, and one
//! thread writes what has gathered to stderr. Appending never waits for stderr; a line that
//! does not fit is dropped and counted.
//!
//! Why not tracing-appender's non-blocking writer: it sends every line through a channel
//! whose receiver, idle between lines, spins (`sched_yield`) and is woken for each one, and
//! writes each line with its own `write(2)`. With one line an invocation at c=1 a line cost
//! ≈ 40 µs of host CPU, 25 µs of which this writer saves (README, "What the profiles show").
//! Here the writer thread, once woken by the first line of a
//! batch, waits [`GATHER`] for the lines that follow it and writes them all with one call:
//! lines reach stderr at most that much later, in the order they were logged.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer gathers lines after the first of a batch before writing them.
const GATHER: Duration = Duration::from_millis(2);
/// A batch's buffer larger than this after its write is given back (a burst is over).
const KEEP_CAPACITY: usize = 64 * 1024;

/// Where the fmt layer writes its lines: `make_writer` hands out a [`Line`] per event.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Flushes what is buffered when dropped (waiting at most `flush_for` for a stuck stderr).
pub struct Guard {
    shared: Arc<Shared>,
    flush_for: Duration,
}

struct Shared {
    state: Mutex<Pending>,
    /// The writer waits here for a first line or for the guard's drop.
    wake: Condvar,
    /// The guard waits here for the writer's last write.
    flushed: Condvar,
    dropped: AtomicU64,
    limit: usize,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// The writer is waiting on `wake` (a first line must wake it).
    idle: bool,
    closing: bool,
    done: bool,
}

/// Starts the writer thread `name`, writing to `out`, that buffers at most `limit` bytes.
pub fn start<W: Write + Send + 'static>(
    out: W,
    limit: usize,
    name: &str,
) -> std::io::Result<(LogWriter, Guard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(Pending::default()),
        wake: Condvar::new(),
        flushed: Condvar::new(),
        dropped: AtomicU64::new(0),
        limit,
    });
    let writer = shared.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || writer.run(out))?;
    let guard = Guard {
        shared: shared.clone(),
        flush_for: Duration::from_secs(1),
    };
    Ok((LogWriter { shared }, guard))
}

impl LogWriter {
    /// Lines dropped so far because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// One event's output: the fmt layer writes a whole formatted line with one `write_all`.
pub struct Line<'a>(&'a Shared);

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(&self.shared)
    }
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: &[u8]) {
        let mut p = self.lock();
        if p.lines.len() + line.len() > self.limit {
            drop(p);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let first = p.lines.is_empty();
        p.lines.extend_from_slice(line);
        let wake = first && p.idle;
        drop(p);
        if wake {
            self.wake.notify_one();
        }
    }

    /// The writer thread: waits for a first line, gathers, writes the batch; until the
    /// guard's drop has been followed by a write of everything buffered before it.
    fn run(&self, mut out: impl Write) {
        let mut batch = Vec::new();
        loop {
            let mut p = self.lock();
            while p.lines.is_empty() && !p.closing {
                p.idle = true;
                p = self.wake.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            p.idle = false;
            let closing = p.closing;
            drop(p);
            if !closing {
                std::thread::sleep(GATHER);
            }
            std::mem::swap(&mut self.lock().lines, &mut batch);
            // A stderr that is gone loses the lines; there is nowhere to say so.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            if batch.capacity() > KEEP_CAPACITY {
                batch = Vec::new();
            }
            let mut p = self.lock();
            if p.closing && p.lines.is_empty() {
                p.done = true;
                drop(p);
                self.flushed.notify_all();
                return;
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut p = self.shared.lock();
        p.closing = true;
        self.shared.wake.notify_one();
        let _ = self
            .shared
            .flushed
            .wait_timeout_while(p, self.flush_for, |p| !p.done);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// An output that records each write and, while `hold` is set, blocks in its first
    /// write until the test sends on the channel.
    #[derive(Clone)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        hold: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
        entered: mpsc::SyncSender<()>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(release) = self.hold.lock().unwrap().take() {
                let _ = self.entered.send(());
                let _ = release.recv();
            }
            self.writes.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A recorder whose first write blocks until the returned sender is used; the receiver
    /// says that the writer is inside that write.
    fn held() -> (Recorder, mpsc::Sender<()>, mpsc::Receiver<()>) {
        let (release_tx, release_rx) = mpsc::channel();
        let (entered_tx, entered_rx) = mpsc::sync_channel(1);
        let recorder = Recorder {
            writes: Arc::default(),
            hold: Arc::new(Mutex::new(Some(release_rx))),
            entered: entered_tx,
        };
        (recorder, release_tx, entered_rx)
    }

    fn log(w: &LogWriter, line: &str) {
        w.make_writer().write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn lines_logged_while_stderr_is_busy_are_written_together_in_order() {
        let (out, release, entered) = held();
        let writes = out.writes.clone();
        let (w, mut guard) = start(out, 1 << 20, "test-log-writer").unwrap();
        guard.flush_for = Duration::from_secs(60);
        log(&w, "first\n");
        entered.recv().unwrap(); // the writer is inside the write of the first batch
        let lines: Vec<String> = (0..100).map(|i| format!("line {i}\n")).collect();
        for l in &lines {
            log(&w, l);
        }
        release.send(()).unwrap();
        drop(guard);
        let writes = writes.lock().unwrap();
        let all: Vec<u8> = writes.concat();
        let expected = format!("first\n{}", lines.concat());
        assert_eq!(String::from_utf8(all).unwrap(), expected);
        // The first batch, then the 100 lines gathered behind it: one more write.
        assert_eq!(writes.len(), 2, "{} writes", writes.len());
        assert_eq!(w.dropped(), 0);
    }

    #[test]
    fn a_full_buffer_drops_and_counts_whole_lines_without_waiting() {
        let (out, release, entered) = held();
        let writes = out.writes.clone();
        let (w, mut guard) = start(out, 100, "test-log-writer").unwrap();
        guard.flush_for = Duration::from_secs(60);
        log(&w, "stuck\n");
        entered.recv().unwrap();
        // 10 lines of 20 bytes into a 100-byte buffer while stderr is stuck: 5 fit.
        for i in 0..10 {
            log(&w, &format!("{i:019}\n"));
        }
        assert_eq!(w.dropped(), 5);
        release.send(()).unwrap();
        drop(guard);
        let text = String::from_utf8(writes.lock().unwrap().concat()).unwrap();
        let expected: String = (0..5).map(|i| format!("{i:019}\n")).collect();
        assert_eq!(text, format!("stuck\n{expected}"));
    }

    #[test]
    fn the_guard_flushes_what_is_buffered() {
        let (out, release, _entered) = held();
        drop(release); // the first write does not block
        let writes = out.writes.clone();
        let (w, mut guard) = start(out, 1 << 20, "test-log-writer").unwrap();
        guard.flush_for = Duration::from_secs(60);
        log(&w, "last words\n");
        drop(guard);
        assert_eq!(writes.lock().unwrap().concat(), b"last words\n");
    }
}
