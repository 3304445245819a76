#!/usr/bin/env python3
"""The benchmark driver behind `make bench`: starts each scenario's server, loads it with
wrk, samples the server's memory and CPU from /proc, and reports every scenario as a
ratio to the reference echo server measured in the same round. Builds nothing: the
Makefile builds the binaries first. Only standard library; Linux only (/proc).

Usage: bench/bench.py [--smoke] [--rounds R] [--duration S] [--profile release|debug]
                      [--only SCENARIO,...] [--alt HOST_BINARY] [--alt-wasm FOLDER]

--only and --alt are for a quick A/B look while changing the host: --only runs those
scenarios (and the reference) and skips tenancy, cold starts and the stream; --alt runs
every chosen glibc scenario a second time, as `<scenario>-alt`, with another build of the host
(say, the commit before a change), in the same rounds; --alt-wasm gives those runs the
wasm-echo.wasm and wasm-stdio.wasm in FOLDER instead of this build's (a change to the guest
SDK). Such runs are written under target/bench-only, never to bench/results.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = ROOT / "bench" / "wrk.lua"
SMALL_BODY = b'{"name":"bench"}'
BIG_BODY_BYTES = 1_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# native-extension: the native scenario with one no-op Lambda extension subscribed to INVOKE
# (the test extension of tests/functions/extension, file name `noop`), so that the cost of
# its round trips per invocation shows next to `native`. component-*: the same wasm-echo
# source built for wasm32-wasip2, a Lambda component (guest-sdk/wit), next to its lambda_v1
# build in wasm-loop / wasm-invocation.
SCENARIOS = ["reference", "native", "native-extension", "wasm-loop", "wasm-invocation",
             "wasm-stdio", "component-loop", "component-invocation", "http-rust", "http-python",
             "bash"]
# bash: the bash example (example/bash, two curl processes and a few coreutils per
# invocation) at c=1 only, for the host's CPU per curl-driven invocation; its throughput is
# its process spawns'.
LOADS_OF = {"bash": {"c1"}}
# wasi:http components (make functions builds them): Rust and Python echoes of the request.
COMPONENTS = {"http-rust": "rust-http.wasm", "http-python": "python-http.wasm"}
# The shipped image's binary (static musl build) on the same scenarios as its glibc twin;
# run when target/x86_64-unknown-linux-musl/<profile>/aws-custom-runtime exists (`make bench`
# builds it; the smoke run's debug profile has none and skips them).
MUSL = "x86_64-unknown-linux-musl"
MUSL_SCENARIOS = ["native-musl", "wasm-loop-musl"]

# `wasmtime serve` (wasmtime-cli from crates.io, the version of the host's wasmtime, which
# `make bench` installs into target/bench-cache once) on the component of http-rust, so that
# the two hosts are compared in the same run; skipped, with a note, where it is not built
# (the smoke run).
WASMTIME_VERSION = "48.0.8"
WASMTIME_SCENARIOS = ["wasmtime-serve"]

# (target name, scenario, load, metric, comparison, bound); ratios are to the reference.
# The targets of the performance issue (README, "Performance").
TARGETS = [
    ("native c=64 throughput >= 20% of reference", "native", "c64", "rps_ratio", ">=", 0.20),
    ("native c=1 p50 <= 1.8x reference", "native", "c1", "p50_ratio", "<=", 1.8),
    ("wasm-loop c=64 throughput >= 85% of reference", "wasm-loop", "c64", "rps_ratio", ">=", 0.85),
    ("wasm-invocation c=64 throughput >= 50% of reference", "wasm-invocation", "c64",
     "rps_ratio", ">=", 0.50),
    ("wasm-stdio c=64 throughput >= 45% of reference", "wasm-stdio", "c64", "rps_ratio", ">=",
     0.45),
    ("native 1 MB c=4 throughput >= 40% of reference", "native", "1mb-c4", "rps_ratio", ">=",
     0.40),
    ("wasm-loop 1 MB c=4 throughput >= 40% of reference", "wasm-loop", "1mb-c4", "rps_ratio",
     ">=", 0.40),
    ("native host RSS idle <= 10 MB", "native", "c1", "rss_idle_mb", "<=", 10.0),
    ("native host RSS peak at c=64 <= 30 MB", "native", "c64", "rss_peak_mb", "<=", 30.0),
]
# (target name, scenario, other scenario, load, bound): req/s of one over the other, medians
# of the per-round ratios.
PAIR_TARGETS = [
    ("http-rust c=64 >= 1.5x wasmtime serve on the same component", "http-rust",
     "wasmtime-serve", "c64", 1.5),
]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_wrk():
    """The load generator is Debian's wrk; a fresh machine gets it here."""
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        sys.exit("bench: wrk is missing; install it (apt-get install wrk)")
    log("wrk is missing: installing it with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- /proc sampling -------------------------------------------------------------------

def proc_stat(pid):
    """(ppid, utime + stime in ticks) of one process, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def tree(pid):
    """`pid` and its descendants (the native host's bootstraps)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st:
                children.setdefault(st[0], []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kb(pid):
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


def cpu_ticks(pids):
    return sum((proc_stat(p) or (0, 0))[1] for p in pids)


class RssSampler:
    """Peak VmRSS of the server (and of its process tree) every 100 ms during a run."""

    def __init__(self, pid):
        self.pid, self.peak, self.peak_tree = pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while True:
            pids = tree(self.pid)
            self.peak = max(self.peak, rss_kb(self.pid))
            self.peak_tree = max(self.peak_tree, sum(rss_kb(p) for p in pids))
            if self._stop.wait(0.1):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# ---- servers --------------------------------------------------------------------------

def http_post(port, body=SMALL_BODY, timeout=5.0):
    """One POST on a fresh connection; returns the status, or None if nothing listens."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                      b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            head = b""
            while b"\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                head += chunk
            return int(head.split(b" ", 2)[1])
    except (ConnectionError, OSError, ValueError, IndexError):
        return None


class Server:
    def __init__(self, name, cmd, env, logdir):
        self.name, self.port = name, free_port()
        env = dict(env, PORT=str(self.port))
        cmd = [a.replace("{port}", str(self.port)) for a in cmd]
        self.log_path = Path(logdir) / f"{name}-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout=None):
        """Seconds from process start to the first 200, polling in a tight loop. A Python
        component compiles for tens of seconds on its first start (then it is cached)."""
        timeout = timeout or (300.0 if self.name == "http-python" else 60.0)
        while time.perf_counter() - self.started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                                   f"log: {self.log_path}\n{self.log_tail()}")
            if http_post(self.port, timeout=timeout) == 200:
                return time.perf_counter() - self.started
            time.sleep(0.0002)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; log:\n{self.log_tail()}")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_tail(self, n=20):
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


class Setup:
    """Binaries, function folders and the environment of every scenario."""

    def __init__(self, profile, workdir, alt=None, only=None, alt_wasm=None):
        self.alt = Path(alt).resolve() if alt else None
        self.only = only
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        # CARGO_BUILD_TARGET (CI builds everything for musl): the binaries are under its folder.
        built_for = os.environ.get("CARGO_BUILD_TARGET", "")
        bins = target / built_for / profile
        wasm = target / "wasm32-wasip1" / "release"
        wasip2 = target / "wasm32-wasip2" / "release"
        self.host = bins / "aws-custom-runtime"
        musl = target / MUSL / profile / "aws-custom-runtime"
        self.musl = musl if musl.exists() and built_for != MUSL else None
        self.echo = bins / "bench-echo"
        wasmtime = target / "bench-cache" / f"wasmtime-{WASMTIME_VERSION}" / "bin" / "wasmtime"
        self.wasmtime = wasmtime if wasmtime.exists() else None
        components = target / "components"
        extension = bins / "test-extension"
        needed = ([self.host, self.echo, bins / "bootstrap", extension, wasm / "wasm-echo.wasm",
                   wasm / "wasm-stdio.wasm", bins / "stream-function", wasip2 / "wasm-echo.wasm"]
                  + [components / c for c in COMPONENTS.values()])
        missing = [str(p) for p in needed if not p.exists()]
        if missing:
            sys.exit("bench: missing binaries (run `make bench`, which builds them):\n  "
                     + "\n  ".join(missing))
        self.work = Path(workdir)
        self.logs = self.work / "logs"
        self.logs.mkdir()
        self.fn = {}
        for name, src, dest in [("native", bins / "bootstrap", "bootstrap"),
                                ("stream", bins / "stream-function", "bootstrap"),
                                ("wasm-echo", wasm / "wasm-echo.wasm", "bootstrap.wasm"),
                                ("wasm-stdio", wasm / "wasm-stdio.wasm", "bootstrap.wasm"),
                                ("component-echo", wasip2 / "wasm-echo.wasm", "bootstrap.wasm")] + [
                                    (name, components / c, "bootstrap.wasm")
                                    for name, c in COMPONENTS.items()]:
            d = self.work / name
            d.mkdir()
            shutil.copy2(src, d / dest)
            self.fn[name] = d
        # The -alt runs' own guests, when given: `<name>-alt` beside `<name>`.
        for name in ("wasm-echo", "wasm-stdio") if alt_wasm else ():
            d = self.work / f"{name}-alt"
            d.mkdir()
            shutil.copy2(Path(alt_wasm) / f"{name}.wasm", d / "bootstrap.wasm")
            self.fn[f"{name}-alt"] = d
        self.extensions = self.work / "extensions"
        self.extensions.mkdir()
        shutil.copy2(extension, self.extensions / "noop")
        # The same module precompiled as an image build does (`compile`), cache off.
        d = self.work / "wasm-precompiled"
        d.mkdir()
        shutil.copy2(wasm / "wasm-echo.wasm", d / "bootstrap.wasm")
        self.fn["wasm-precompiled"] = d
        self.cache = self.work / "wasm-cache"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("RUST_LOG", "RUST_BACKTRACE", "LOG_LEVEL", "WASM_",
                                     "INVOKER_COUNT", "LAMBDA_TASK_ROOT", "QUEUE_SIZE"))}
        self.base_env = dict(base, METRICS_PROMETHEUS_PORT="off", RUST_LIB_BACKTRACE="0",
                             LAMBDA_EXTENSIONS_DIR="off")
        subprocess.run([str(self.host), "compile", str(d)], check=True, capture_output=True,
                       env=dict(self.base_env, INVOKER_COUNT="4"))

    def scenarios(self):
        chosen = (SCENARIOS + (MUSL_SCENARIOS if self.musl else [])
                  + (WASMTIME_SCENARIOS if self.wasmtime else []))
        if self.only:
            chosen = ["reference"] + [s for s in chosen if s in self.only and s != "reference"]
        if self.alt:
            chosen += [s + "-alt" for s in chosen
                       if s not in ["reference"] + MUSL_SCENARIOS + WASMTIME_SCENARIOS]
        return chosen

    def start(self, scenario, cache_dir=None):
        env = dict(self.base_env, INVOKER_COUNT="4", WASM_CACHE_DIR=str(cache_dir or self.cache))
        host, fn = self.host, self.fn
        if scenario.endswith("-alt"):
            host, scenario = self.alt, scenario.removesuffix("-alt")
            fn = dict(fn, **{k.removesuffix("-alt"): v for k, v in fn.items() if k.endswith("-alt")})
        if scenario.endswith("-musl"):
            host, scenario = self.musl, scenario.removesuffix("-musl")
        if scenario == "reference":
            return Server(scenario, [str(self.echo)], self.base_env, self.logs)
        if scenario == "wasmtime-serve":
            # Its defaults (pooling allocator, a fresh instance per request, no limit on
            # concurrent requests); wasi:cli as the host gives it, for Rust's std.
            cmd = [str(self.wasmtime), "serve", "-Scli", "--addr", "127.0.0.1:{port}",
                   str(self.fn["http-rust"] / "bootstrap.wasm")]
            return Server(scenario, cmd, self.base_env, self.logs)
        if scenario == "native":
            env["LAMBDA_TASK_ROOT"] = str(self.fn["native"])
        elif scenario == "native-extension":
            env["LAMBDA_TASK_ROOT"] = str(self.fn["native"])
            env["LAMBDA_EXTENSIONS_DIR"] = str(self.extensions)
        elif scenario in ("wasm-loop", "wasm-invocation"):
            env["LAMBDA_TASK_ROOT"] = str(fn["wasm-echo"])
            env["WASM_ISOLATION"] = scenario.removeprefix("wasm-")
        elif scenario == "stream":
            env["LAMBDA_TASK_ROOT"] = str(self.fn["stream"])
            env["INVOKER_COUNT"] = "1"
        elif scenario in ("component-loop", "component-invocation"):
            env["LAMBDA_TASK_ROOT"] = str(self.fn["component-echo"])
            env["WASM_ISOLATION"] = scenario.removeprefix("component-")
        elif scenario == "wasm-stdio":
            env["LAMBDA_TASK_ROOT"] = str(fn["wasm-stdio"])
            env["WASM_ISOLATION"] = "invocation"
        elif scenario in COMPONENTS:
            env["LAMBDA_TASK_ROOT"] = str(self.fn[scenario])
        elif scenario == "bash":
            env["LAMBDA_TASK_ROOT"] = str(ROOT / "example" / "bash")
        elif scenario == "wasm-precompiled":
            env.update(LAMBDA_TASK_ROOT=str(self.fn["wasm-precompiled"]), WASM_CACHE_DIR="off")
        else:
            raise ValueError(scenario)
        return Server(scenario, [str(host)], env, self.logs)


# ---- response streaming ---------------------------------------------------------------

STREAM_CHUNK = 65536
STREAM_MB = 50


def stream_once(port, event, timeout=120.0):
    """POSTs `event` and reads the whole reply: (seconds to the first byte, seconds to the
    last, bytes read, whether the chunked body ended cleanly)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        start = time.perf_counter()
        s.sendall(b"POST / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(event), event))
        first, total, tail = None, 0, b""
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            if first is None:
                first = time.perf_counter() - start
            total += len(chunk)
            tail = (tail + chunk)[-7:]
        return first or 0.0, time.perf_counter() - start, total, tail.endswith(b"0\r\n\r\n")


def measure_stream(setup, megabytes):
    """A `megabytes` MB stream from the lambda_runtime streaming function: time to first
    byte, throughput and the host's peak RSS, beside the reference echo's time to first
    byte for a small request (what a caller waits for either way)."""
    chunks = max(1, megabytes * 1_000_000 // STREAM_CHUNK)
    event = json.dumps({"chunks": chunks, "size": STREAM_CHUNK}).encode()
    ref = setup.start("reference")
    try:
        ref.wait_ready()
        ref_first, _, _, _ = stream_once(ref.port, SMALL_BODY)
    finally:
        ref.stop()
    server = setup.start("stream")
    try:
        server.wait_ready()
        idle = rss_kb(server.proc.pid)
        with RssSampler(server.proc.pid) as rss:
            first, last, total, clean = stream_once(server.port, event)
        if not clean or total < chunks * STREAM_CHUNK:
            raise RuntimeError(f"the stream ended after {total} bytes (clean end: {clean})")
        return {
            "bytes": chunks * STREAM_CHUNK, "ttfb_ms": first * 1000,
            "reference_ttfb_ms": ref_first * 1000, "seconds": last,
            "throughput_mb_s": total / 1e6 / max(last - first, 1e-9),
            "rss_idle_mb": idle / 1024, "rss_peak_mb": rss.peak / 1024,
        }
    finally:
        server.stop()


# ---- load -----------------------------------------------------------------------------

def run_wrk(server, conns, duration, body_file=None, tenants=None):
    """One closed-loop wrk run; returns its numbers and the server's RSS and CPU."""
    threads = min(2, conns)
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--timeout", "10s",
           "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{server.port}/"]
    env = dict(os.environ, BENCH_BODY_FILE=str(body_file or ""),
               BENCH_TENANTS=str(tenants or ""))
    pids = tree(server.proc.pid)
    cpu0, cpu0_host = cpu_ticks(pids), cpu_ticks([server.proc.pid])
    with RssSampler(server.proc.pid) as rss:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                             timeout=duration + 60)
    cpu1, cpu1_host = cpu_ticks(pids), cpu_ticks([server.proc.pid])
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    r = json.loads(line.removeprefix("BENCH_RESULT "))
    n = max(r["requests"], 1)
    errors = sum(r["errors"].values())
    lat = r["latency_us"]
    return {
        "requests": r["requests"],
        "rps": r["requests"] / (r["duration_us"] / 1e6),
        "p50_ms": lat["p50"] / 1000, "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000, "p999_ms": lat["p999"] / 1000,
        "max_ms": lat["max"] / 1000,
        "errors": errors, "error_detail": r["errors"],
        "rss_peak_mb": rss.peak / 1024, "rss_peak_tree_mb": rss.peak_tree / 1024,
        "cpu_us_per_req": (cpu1 - cpu0) / CLK_TCK * 1e6 / n,
        "host_cpu_us_per_req": (cpu1_host - cpu0_host) / CLK_TCK * 1e6 / n,
    }


def runs_of(scenario, loads):
    """The loads `scenario` runs at (its -alt twin's too)."""
    only = LOADS_OF.get(scenario.removesuffix("-alt"))
    return [x for x in loads if only is None or x[0] in only]


def warmup_conns(scenario, loads):
    """Connections of the warm-up: 64, or the most `scenario` runs at when it is limited."""
    return max(c for _, c, _ in runs_of(scenario, loads))


def measure_scenario(setup, scenario, loads, duration, warmup):
    server = setup.start(scenario)
    try:
        startup = server.wait_ready()
        time.sleep(0.3)
        pid = server.proc.pid
        idle = rss_kb(pid) / 1024
        idle_tree = sum(rss_kb(p) for p in tree(pid)) / 1024
        if warmup:
            run_wrk(server, warmup_conns(scenario, loads), warmup)
        out = {}
        for load, conns, body in runs_of(scenario, loads):
            r = run_wrk(server, conns, duration, body)
            r.update(rss_idle_mb=idle, rss_idle_tree_mb=idle_tree, startup_s=startup)
            if not server.alive():
                raise RuntimeError(f"{scenario} died during {load}:\n{server.log_tail()}")
            out[load] = r
            log(f"  {scenario:16} {load:7} {r['rps']:9.0f} req/s  p50 {r['p50_ms']:.3f} ms  "
                f"p99 {r['p99_ms']:.3f} ms  errors {r['errors']}  peak {r['rss_peak_mb']:.1f} MB")
        return out
    finally:
        code = server.stop()
        if code not in (0, -signal.SIGTERM):
            log(f"  {scenario} exited with {code} on SIGTERM; log: {server.log_path}")


def cold_starts(setup, repeats):
    """Process start to first 200: native, WASI compiling, WASI from the precompiled cache,
    WASI from the image's precompiled artifact (bootstrap.cwasm, cache off)."""
    out = {"native": [], "wasm-no-cache": [], "wasm-cache": [], "wasm-precompiled": []}
    warm = setup.work / "cold-cache"
    s = setup.start("wasm-loop", cache_dir=warm)  # fills the cache; not counted
    try:
        s.wait_ready()
    finally:
        s.stop()
    for i in range(repeats):
        for kind in out:
            if kind == "native":
                s = setup.start("native")
            elif kind == "wasm-cache":
                s = setup.start("wasm-loop", cache_dir=warm)
            elif kind == "wasm-precompiled":
                s = setup.start("wasm-precompiled")
            else:
                s = setup.start("wasm-loop", cache_dir=setup.work / f"fresh-cache-{i}")
            try:
                out[kind].append(s.wait_ready() * 1000)
            finally:
                s.stop()
    return {k: {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v),
                "samples_ms": v} for k, v in out.items()}


# ---- tenant isolation -----------------------------------------------------------------

def post_tenant(port, tenant, timeout=10.0):
    """One timed POST naming `tenant`; (status, milliseconds)."""
    body = SMALL_BODY
    began = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                  b"X-Amz-Tenant-Id: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                  % (tenant.encode(), len(body), body))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), (time.perf_counter() - began) * 1000


def warm_ratio(metrics_port):
    """The host's warm-hit ratio, from its metrics."""
    with socket.create_connection(("127.0.0.1", metrics_port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("aws_custom_runtime_env_warm_hit_ratio{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def tenancy(setup, duration, switches):
    """TENANT_ISOLATION_MODE=PER_TENANT: the cost of a tenant switch (native: a bootstrap
    restart; WASI: a fresh instance) next to a warm call, and throughput at c=64 with 1
    tenant and with 100 tenants round-robin, with the warm-hit ratio of each run."""
    out, failures = {}, []
    for kind in ("native", "wasm-loop"):
        for name, invokers, tenants in (("switch", "1", None), ("1-tenant", "4", 1),
                                        ("100-tenants", "4", 100)):
            metrics_port = free_port()
            env = dict(setup.base_env, INVOKER_COUNT=invokers, TENANT_ISOLATION_MODE="PER_TENANT",
                       METRICS_PROMETHEUS_PORT=str(metrics_port), WASM_CACHE_DIR=str(setup.cache),
                       LAMBDA_TASK_ROOT=str(setup.fn["native" if kind == "native" else "wasm-echo"]))
            server = Server(f"{kind}-{name}", [str(setup.host)], env, setup.logs)
            try:
                deadline = time.perf_counter() + 60
                while post_ready(server.port) is None:
                    if time.perf_counter() > deadline or not server.alive():
                        raise RuntimeError(f"{kind} not ready:\n{server.log_tail()}")
                    time.sleep(0.01)
                if tenants is None:
                    warm, switch = [], []
                    for i in range(switches):
                        for tenant, into in (("a", switch), ("a", warm), ("b", switch),
                                             ("b", warm)):
                            status, ms = post_tenant(server.port, tenant)
                            if status != 200:
                                raise RuntimeError(f"{kind} switch: status {status}")
                            into.append(ms)
                    r = {"warm_ms": statistics.median(warm),
                         "switch_ms": statistics.median(switch)}
                    log(f"  {kind:10} tenant switch {r['switch_ms']:.2f} ms, "
                        f"warm call {r['warm_ms']:.2f} ms")
                else:
                    r = run_wrk(server, 64, duration, tenants=tenants)
                    r = {"rps": r["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                         "errors": r["errors"]}
                    log(f"  {kind:10} {name:12} {r['rps']:9.0f} req/s  p50 {r['p50_ms']:.3f} ms"
                        f"  errors {r['errors']}")
                    if r["errors"]:
                        failures.append(f"tenancy {kind} {name}: {r['errors']} errors")
                r["warm_hit_ratio"] = warm_ratio(metrics_port)
                out[f"{kind} {name}"] = r
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                failures.append(f"tenancy {kind} {name}: {e}")
                log(f"  tenancy {kind} {name} FAILED: {e}")
            finally:
                server.stop()
    return out, failures


def post_ready(port):
    """A tenant's call succeeds: the host is ready."""
    try:
        status, _ = post_tenant(port, "ready", timeout=2)
        return status if status == 200 else None
    except (OSError, ValueError, IndexError):
        return None


def tenancy_markdown(results, reference_rps):
    lines = ["", "Tenant isolation (PER_TENANT): switch = a call that resets an environment "
             "for another tenant; c=64 with 1 tenant and 100 tenants round-robin", "",
             "| run | req/s (ratio to reference c=64) | p50 ms | switch ms | warm ms | warm hits |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        rps = r.get("rps")
        ratio = f" ({rps / reference_rps:.2f})" if rps and reference_rps else ""
        cell = lambda k, f="{:.2f}": f.format(r[k]) if r.get(k) is not None else "–"
        lines.append(f"| {name} | {cell('rps', '{:.0f}')}{ratio} | {cell('p50_ms')} | "
                     f"{cell('switch_ms')} | {cell('warm_ms')} | {cell('warm_hit_ratio')} |")
    return "\n".join(lines)


# ---- report ---------------------------------------------------------------------------

def summarize(rounds, loads, scenarios=SCENARIOS):
    """Medians over rounds; ratios are taken within each round, then their median."""
    table = {}
    for scenario in scenarios:
        for load, _, _ in loads:
            runs = [r[scenario][load] for r in rounds if load in r.get(scenario, {})]
            pairs = [(r[scenario][load], r["reference"][load]) for r in rounds
                     if load in r.get(scenario, {}) and load in r.get("reference", {})]
            if not runs:
                continue
            med = {k: statistics.median(x[k] for x in runs)
                   for k in runs[0] if isinstance(runs[0][k], (int, float))}
            med["errors"] = sum(x["errors"] for x in runs)
            med["rounds"] = len(runs)
            if pairs:
                med["rps_ratio"] = statistics.median(x["rps"] / ref["rps"] for x, ref in pairs)
                med["p50_ratio"] = statistics.median(
                    x["p50_ms"] / ref["p50_ms"] for x, ref in pairs)
            others = [o for _, this, o, at, _ in PAIR_TARGETS if (this, at) == (scenario, load)]
            for other in others:
                against = [r[scenario][load]["rps"] / r[other][load]["rps"] for r in rounds
                           if load in r.get(scenario, {}) and r.get(other, {}).get(load, {})
                           .get("rps")]
                if against:
                    med.setdefault("ratio_to", {})[other] = statistics.median(against)
            table.setdefault(scenario, {})[load] = med
    return table


def check_targets(table, cold):
    out = []
    for name, scenario, load, metric, cmp, bound in TARGETS:
        v = table.get(scenario, {}).get(load, {}).get(metric)
        met = v is not None and (v >= bound if cmp == ">=" else v <= bound)
        out.append({"target": name, "value": v, "met": met})
    for name, scenario, other, load, bound in PAIR_TARGETS:
        v = table.get(scenario, {}).get(load, {}).get("ratio_to", {}).get(other)
        out.append({"target": name, "value": v, "met": v is not None and v >= bound})
    if cold:
        v = cold["wasm-cache"]["median_ms"]
        out.append({"target": "cold start with the module cache <= 20 ms", "value": v,
                    "met": v <= 20})
        v = cold["wasm-precompiled"]["median_ms"]
        out.append({"target": "cold start with the image's bootstrap.cwasm <= 20 ms",
                    "value": v, "met": v <= 20})
    errors = sum(m["errors"] for s in table.values() for m in s.values())
    out.append({"target": "0 errors in every run", "value": errors, "met": errors == 0})
    return out


def markdown(table, cold, targets):
    lines = ["| scenario | load | req/s | × ref req/s | p50 ms | × ref p50 | p99 ms | p99.9 ms "
             "| errors | RSS idle MB | RSS peak MB | CPU µs/req | host CPU µs/req |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for scenario, by_load in table.items():
        for load, m in by_load.items():
            lines.append(
                f"| {scenario} | {load} | {m['rps']:.0f} | {m.get('rps_ratio', 0):.2f} "
                f"| {m['p50_ms']:.3f} | {m.get('p50_ratio', 0):.2f} | {m['p99_ms']:.3f} "
                f"| {m['p999_ms']:.3f} | {m['errors']} | {m['rss_idle_mb']:.1f} "
                f"| {m['rss_peak_mb']:.1f} | {m['cpu_us_per_req']:.0f} "
                f"| {m['host_cpu_us_per_req']:.0f} |")
    if cold:
        lines += ["", "| cold start (process start → first 200) | median ms | min ms | max ms |",
                  "|---|--:|--:|--:|"]
        names = {"native": "native (rust-native)",
                 "wasm-no-cache": "WASI, no precompiled cache (compiles)",
                 "wasm-cache": "WASI, precompiled cache",
                 "wasm-precompiled": "WASI, image's bootstrap.cwasm (cache off)"}
        for k, v in cold.items():
            lines.append(f"| {names[k]} | {v['median_ms']:.1f} | {v['min_ms']:.1f} "
                         f"| {v['max_ms']:.1f} |")
    musl = [(s.removesuffix("-musl"), s, load) for s in MUSL_SCENARIOS if s in table
            for load in table[s] if load in table.get(s.removesuffix("-musl"), {})]
    if musl:
        lines += ["", "| musl ÷ glibc binary | load | musl req/s | glibc req/s | ratio |",
                  "|---|---|--:|--:|--:|"]
        for glibc, m, load in musl:
            a, b = table[m][load]["rps"], table[glibc][load]["rps"]
            lines.append(f"| {glibc} | {load} | {a:.0f} | {b:.0f} | {a / b:.2f} |")
    lines += ["", "| target | value | met |", "|---|--:|---|"]
    for t in targets:
        v = t["value"]
        shown = "n/a" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))
        lines.append(f"| {t['target']} | {shown} | {'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines)


def machine():
    model = next((ln.split(":", 1)[1].strip() for ln in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "unknown")
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "-uno"],
                           capture_output=True, text=True).stdout.strip()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "loadavg": os.getloadavg(), "git": rev + ("-dirty" if dirty else ""),
            "wrk": (wrk.stdout + wrk.stderr).splitlines()[0] if wrk.stdout + wrk.stderr else ""}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true",
                    help="CI check: 1 round, 2 s runs, c=1 and c=64 only, 1 cold start each")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--profile", default="release", help="cargo profile folder: release, debug")
    ap.add_argument("--cold-repeats", type=int, default=5)
    ap.add_argument("--out", help="folder for the JSON (default bench/results; "
                                  "smoke: target/bench-smoke; --only/--alt: target/bench-only)")
    ap.add_argument("--only", help="comma-separated scenarios (the reference is always run); "
                                   "skips tenancy, cold starts and the stream")
    ap.add_argument("--alt", help="another host binary: each scenario again as <scenario>-alt")
    ap.add_argument("--alt-wasm", help="with --alt: a folder with the wasm-echo.wasm and "
                                       "wasm-stdio.wasm the -alt runs load")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.duration, args.cold_repeats = 1, 2, 1
    only = set(args.only.split(",")) if args.only else None
    known = set(SCENARIOS + MUSL_SCENARIOS + WASMTIME_SCENARIOS)
    if only and only - known:
        sys.exit(f"bench: unknown scenarios {sorted(only - known)}")
    if args.alt and not Path(args.alt).is_file():
        sys.exit(f"bench: --alt {args.alt} is not a file")
    if args.alt_wasm and not (args.alt and all(
            (Path(args.alt_wasm) / f"{n}.wasm").is_file() for n in ("wasm-echo", "wasm-stdio"))):
        sys.exit(f"bench: --alt-wasm needs --alt and {args.alt_wasm}/wasm-echo.wasm and "
                 "wasm-stdio.wasm")
    partial = bool(only or args.alt)
    out_dir = Path(args.out) if args.out else (
        ROOT / "target" / "bench-smoke" if args.smoke
        else ROOT / "target" / "bench-only" if partial else ROOT / "bench" / "results")

    ensure_wrk()
    began = time.time()
    info = machine()
    log(f"{info['nproc']} CPUs ({info['cpu']}), kernel {info['kernel']}, "
        f"load {info['loadavg'][0]:.2f}; {args.rounds} rounds of {args.duration} s runs")
    failures = []
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        setup = Setup(args.profile, work, args.alt, only, args.alt_wasm)
        scenarios = setup.scenarios()
        if not setup.musl:
            log(f"no {MUSL} build of the host for this profile: musl scenarios skipped")
        if not setup.wasmtime:
            log(f"no wasmtime-cli {WASMTIME_VERSION} in target/bench-cache (`make bench` "
                "installs it): wasmtime-serve skipped")
        big = Path(work) / "body-1mb.json"
        prefix = b'{"name":"bench","data":"'
        big.write_bytes(prefix + b"a" * (BIG_BODY_BYTES - len(prefix) - 2) + b'"}')
        loads = [("c1", 1, None), ("c64", 64, None)]
        if not args.smoke:
            loads.append(("1mb-c4", 4, big))
        warmup = 0 if args.smoke else 1
        rounds = []
        for i in range(args.rounds):
            log(f"round {i + 1}/{args.rounds}")
            scenarios = setup.scenarios()
            order = scenarios[i % len(scenarios):] + scenarios[:i % len(scenarios)]
            result = {}
            for scenario in order:
                try:
                    result[scenario] = measure_scenario(setup, scenario, loads, args.duration,
                                                        warmup)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    failures.append(f"{scenario} (round {i + 1}): {e}")
                    log(f"  {scenario} FAILED: {e}")
            rounds.append(result)
        tenancy_results, tenancy_failures, cold, stream = None, [], None, None
        if not partial:
            log("tenant isolation")
            tenancy_results, tenancy_failures = tenancy(setup, args.duration,
                                                        2 if args.smoke else 20)
            failures += tenancy_failures
            log("cold starts")
            try:
                cold = cold_starts(setup, args.cold_repeats)
            except RuntimeError as e:
                failures.append(f"cold start: {e}")
            megabytes = 2 if args.smoke else STREAM_MB
            log(f"a {megabytes} MB response stream")
            try:
                stream = measure_stream(setup, megabytes)
            except (RuntimeError, OSError) as e:
                failures.append(f"stream: {e}")

    table = summarize(rounds, loads, scenarios)
    targets = check_targets(table, cold)
    checks, failed = 0, 0
    if not partial:
        checks, failed = 2, int(cold is None) + int(stream is None)
    for scenario in scenarios:
        for load, _, _ in runs_of(scenario, loads):
            m = table.get(scenario, {}).get(load)
            checks += 1
            if m is None or m["rounds"] < args.rounds:
                failures.append(f"{scenario} {load}: missing from some round")
            elif m["errors"]:
                failures.append(f"{scenario} {load}: {m['errors']} errors")
            elif m["requests"] == 0:
                failures.append(f"{scenario} {load}: no request completed")
            else:
                continue
            failed += 1
    report = markdown(table, cold, targets)
    reference_rps = table.get("reference", {}).get("c64", {}).get("rps")
    if tenancy_results is not None:
        report += "\n" + tenancy_markdown(tenancy_results, reference_rps)
        checks += 1
        failed += int(bool(tenancy_failures))
    alt = [(s.removesuffix("-alt"), s, load) for s in scenarios if s.endswith("-alt")
           for load in table.get(s, {}) if load in table.get(s.removesuffix("-alt"), {})]
    if alt:
        report += ("\n\n| alt ÷ this build | load | alt req/s | this req/s | ratio |"
                   "\n|---|---|--:|--:|--:|")
        for this, other, load in alt:
            a, b = table[other][load]["rps"], table[this][load]["rps"]
            report += f"\n| {this} | {load} | {a:.0f} | {b:.0f} | {a / b:.2f} |"
    print(report)
    if stream:
        print(f"\nResponse stream ({stream['bytes'] / 1e6:.0f} MB, native lambda_runtime): "
              f"first byte {stream['ttfb_ms']:.1f} ms (reference echo "
              f"{stream['reference_ttfb_ms']:.1f} ms), {stream['throughput_mb_s']:.0f} MB/s, "
              f"host RSS {stream['rss_idle_mb']:.1f} MB idle, "
              f"{stream['rss_peak_mb']:.1f} MB peak")
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{stamp}.json"
    path.write_text(json.dumps({
        "machine": info, "loadavg_end": os.getloadavg(), "smoke": args.smoke,
        "profile": args.profile, "rounds": args.rounds, "duration_s": args.duration,
        "elapsed_s": time.time() - began, "summary": table, "cold_start": cold,
        "tenancy": tenancy_results,
        "targets": targets, "runs": rounds, "failures": failures, "stream": stream,
    }, indent=1) + "\n")
    log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
        f"in {time.time() - began:.0f} s")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
    # Scenario × load runs and the cold starts, each passed when it ran with no error.
    print(f"\nbench: {checks - failed} passed, {failed} failed")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
