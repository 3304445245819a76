//! Starts the real `aws-custom-runtime` binary for a test and talks HTTP to it.
#![allow(dead_code)]

pub mod swap;
pub mod tenants;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_aws-custom-runtime");

/// The folder the workspace builds binaries into (target/debug or target/release).
pub fn target_dir() -> PathBuf {
    Path::new(BIN).parent().unwrap().to_path_buf()
}

/// The workspace's target folder, where the guests of the other targets are built
/// (`target/wasm32-wasip1/release`, ...), whether the host was built for the default target
/// (`target/debug`) or with `--target` (`target/<triple>/debug`, as CI builds for musl).
pub fn target_root() -> PathBuf {
    let profile_dir = target_dir();
    let above = profile_dir.parent().unwrap();
    // A triple starts with the architecture it runs on (`x86_64-unknown-linux-musl`).
    let triple = format!("{}-", std::env::consts::ARCH);
    match above.file_name().and_then(|n| n.to_str()) {
        Some(name) if name.starts_with(&triple) => above.parent().unwrap().to_path_buf(),
        _ => above.to_path_buf(),
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A built binary of the workspace, or a clear failure saying how to build it.
pub fn built(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `make test` (it builds the test functions first)",
        p.display()
    );
    p
}

/// A fresh function folder whose `bootstrap` is `bootstrap` (a copy), with extra files.
pub fn function_dir(bootstrap: &Path, extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(bootstrap, dir.path().join("bootstrap")).unwrap();
    for (name, content) in extra {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

/// A function folder with a shell-script bootstrap.
pub fn script_dir(script: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The addresses a host reports in its `ADDRESS_FILE`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Addresses {
    pub public: SocketAddr,
    pub runtime_api: Vec<SocketAddr>,
    pub metrics: Option<SocketAddr>,
}

/// A running host. Killed on drop; its log is printed when the test failed.
pub struct Host {
    child: Child,
    pub port: u16,
    pub addresses: Addresses,
    logs: Arc<Mutex<String>>,
    pub client: reqwest::Client,
    _state: tempfile::TempDir,
}

impl Host {
    /// Starts the host on `task_root` and waits until its public port accepts connections.
    pub fn start(task_root: &Path, env: &[(&str, &str)]) -> Host {
        let host = Host::spawn(task_root, env);
        host.wait_ready(Duration::from_secs(30));
        host
    }

    /// Starts the host and waits until it has bound its sockets (not until it is ready).
    pub fn spawn(task_root: &Path, env: &[(&str, &str)]) -> Host {
        let state = tempfile::tempdir().unwrap();
        let address_file = state.path().join("addresses.json");
        let mut cmd = Command::new(BIN);
        cmd.env("PORT", "0")
            .env("ADDRESS_FILE", &address_file)
            .env("LAMBDA_TASK_ROOT", task_root)
            .env("RUST_LOG", "info")
            .env("METRICS_PROMETHEUS_PORT", "0")
            .env_remove("INTERNAL_API_PORT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start aws-custom-runtime");
        let logs = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut l = logs.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .build()
            .unwrap();
        let addresses = read_addresses(&address_file, &mut child, &logs);
        Host {
            child,
            port: addresses.public.port(),
            addresses,
            logs,
            client,
            _state: state,
        }
    }

    pub fn wait_ready(&self, within: Duration) {
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            self.assert_starting(start, within);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails the test when the host has exited or `within` has passed since `start`.
    fn assert_starting(&self, start: Instant, within: Duration) {
        if self.exited() {
            // The log readers finish once the pipes close: give them a moment.
            std::thread::sleep(Duration::from_millis(200));
            panic!("host exited before it was ready:\n{}", self.logs());
        }
        assert!(
            start.elapsed() < within,
            "host not ready after {within:?}:\n{}",
            self.logs()
        );
    }

    /// Whether the host's process has ended. It is left unreaped, for `Drop` and `wait`.
    fn exited(&self) -> bool {
        use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        !matches!(waitid(Id::Pid(pid), flags), Ok(WaitStatus::StillAlive))
    }

    /// As `wait_ready`, yielding to the test's other tasks meanwhile.
    pub async fn ready(&self, within: Duration) {
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            self.assert_starting(start, within);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The host's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `kB` field of the host's `/proc/PID/status`: `VmRSS` (resident now) or `VmHWM`
    /// (the most it was ever resident).
    pub fn memory_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_else(|e| panic!("cannot read the host's status: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status:\n{status}"))
    }

    pub fn is_listening(&self) -> bool {
        TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until the log holds `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) {
        let start = Instant::now();
        while !self.logs().contains(needle) {
            assert!(
                start.elapsed() < within,
                "log never said {needle:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The Runtime API address the host reports for bootstrap `n`.
    pub fn runtime_api(&self, n: usize) -> String {
        self.addresses
            .runtime_api
            .get(n)
            .map(|a| a.to_string())
            .unwrap_or_else(|| panic!("no Runtime API for bootstrap {n}: {:?}", self.addresses))
    }

    /// The metrics endpoint the host reports.
    pub fn metrics_url(&self) -> String {
        let port = self
            .addresses
            .metrics
            .unwrap_or_else(|| panic!("no metrics endpoint:\n{}", self.logs()))
            .port();
        format!("http://127.0.0.1:{port}/metrics")
    }

    /// The metrics text, as Prometheus scrapes it.
    pub async fn metrics(&self) -> String {
        let r = self.client.get(self.metrics_url()).send().await;
        r.unwrap().text().await.unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < within,
                "host did not exit within {within:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .expect("request failed")
    }

    /// POSTs JSON and returns status and parsed body.
    pub async fn invoke(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self.post("/", body.to_string()).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}\n{}", self.logs()));
        (status, value)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- host log ----\n{}", self.logs());
        }
    }
}

/// Waits for the host to write its `ADDRESS_FILE` (it does once its sockets are bound).
fn read_addresses(path: &Path, child: &mut Child, logs: &Mutex<String>) -> Addresses {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).expect("ADDRESS_FILE is JSON");
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Give the log readers a moment to catch the last lines.
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "host exited ({status}) before binding:\n{}",
                logs.lock().unwrap()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "host never wrote its ADDRESS_FILE:\n{}",
            logs.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `aws-custom-runtime` to completion (for start-up failures).
pub fn run_to_exit(env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut cmd = Command::new(BIN);
    cmd.env("PORT", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run aws-custom-runtime");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    (out.status, text)
}

/// Hand-made HTTP/1.1 for clients that no well-behaved library would be: ones that stall
/// mid-body or never read their reply.
pub mod raw {
    use std::io;
    use std::net::SocketAddr;

    use tokio::io::{AsyncRead, AsyncReadExt};
    use tokio::net::{TcpSocket, TcpStream};

    /// A connection whose receive buffer is `window` bytes, so that a reply it does not read
    /// stays in the host instead of in this side's kernel buffer.
    pub async fn connect_small_window(addr: SocketAddr, window: u32) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        // Set before connect: it bounds the window the handshake announces.
        socket.set_recv_buffer_size(window).unwrap();
        socket.connect(addr).await.unwrap()
    }

    /// A POST head declaring `content_length` bytes of body.
    pub fn post_head(path: &str, content_length: usize) -> String {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {content_length}\r\n\r\n")
    }

    /// The status and body of one response (by Content-Length, else up to EOF).
    pub async fn read_response(
        stream: &mut (impl AsyncRead + Unpin),
    ) -> io::Result<(u16, Vec<u8>)> {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "closed before a response head: {:?}",
                        String::from_utf8_lossy(&buf)
                    ),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("not an HTTP response: {head:?}")))?;
        let length = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        });
        let mut body = buf.split_off(end + 4);
        while length.is_none_or(|n| body.len() < n) {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        if let Some(n) = length {
            body.truncate(n);
        }
        Ok((status, body))
    }

    /// The status of a response that has started to arrive, read without consuming it.
    pub async fn peek_status(stream: &TcpStream) -> io::Result<u16> {
        let mut head = [0u8; 12];
        loop {
            let n = stream.peek(&mut head).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if n == head.len() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("not an HTTP response: {head:?}")))
    }
}

/// Posts `event` to `host`'s public endpoint on a task of its own: its status and its body
/// (JSON, or the text when it is not JSON).
pub fn invoke(
    host: &Host,
    event: serde_json::Value,
) -> tokio::task::JoinHandle<(u16, serde_json::Value)> {
    let req = host
        .client
        .post(host.url("/"))
        .body(event.to_string())
        .timeout(Duration::from_secs(90));
    tokio::spawn(async move {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    })
}

/// The results of `calls`, in order.
pub async fn all(
    calls: Vec<tokio::task::JoinHandle<(u16, serde_json::Value)>>,
) -> Vec<(u16, serde_json::Value)> {
    let mut out = Vec::new();
    for c in calls {
        out.push(c.await.unwrap());
    }
    out
}
