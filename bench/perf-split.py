#!/usr/bin/env python3
"""Splits a host's CPU profile into the parts of one invocation's path.

Input: the text of `perf script` for a profile recorded with full call stacks of one host
process (`perf record --call-graph dwarf -e cpu-clock -p <host>` during a wrk run; the
release binary has no frame pointers, so `-g` alone cannot unwind its code). Each sample is
counted once, in the first part below whose marker appears anywhere in its stack, so the
order of PARTS matters (the reply's write, for one, runs inside hyper's dispatcher).

    python3 bench/perf-split.py perf.txt          # the share of each part
    python3 bench/perf-split.py perf.txt 5        # and the 5 hottest leaf functions of each

Multiply a share by the host's CPU per request (bench.py's `host_cpu_us_per_req`, or
utime + stime over the requests wrk counted) for microseconds per request.
"""

import collections
import re
import sys

# (part, markers): a sample belongs to the first part one of whose markers is in a frame;
# "leaf:" markers match the sampled function only (guest code calls the host's imports, so
# its frames are on the stack of much that is not the guest's own work).
PARTS = [
    ("reply written (writev, kernel TCP, waking the client)", ["Buffered<T,B>::poll_flush"]),
    ("request read and parsed", ["poll_read_head", "poll_read_from_io"]),
    ("public handler (wrapper, Dispatcher enqueue, timers)", ["Public::handle"]),
    ("fresh instance: store dropped, memory reset",
     ["drop_in_place<wasmtime::runtime::store", "DecommitQueue", "reset_with_pagemap"]),
    ("fresh instance: instantiation", ["pre_instantiate", "allocate_module", "Instance::new"]),
    ("guest code (JIT)", ["leaf:/tmp/perf-", "leaf:[JIT]", "leaf:[unknown]"]),
    ("WASI calls and context", ["wasmtime_wasi::"]),
    ("guest runner: host imports, Dispatcher hand-out, fibers",
     ["wasmtime::", "invoker::wasm", "BlockingContext"]),
    ("native runner: Runtime API handlers", ["runtime_api::", "RuntimeApi"]),
    ("idle: worker parked, I/O driver", ["park_internal", "park_timeout", "Driver::turn"]),
    ("hyper, other", ["hyper::"]),
    ("tokio scheduler", ["tokio::runtime"]),
]


def frames(sample):
    out = []
    for line in sample.strip().split("\n")[1:]:
        line = re.sub(r"^[0-9a-f]+ ", "", line.strip())
        out.append(re.sub(r"\+0x[0-9a-f]+", "", line))
    return out


def matches(stack, markers):
    for m in markers:
        if m.startswith("leaf:"):
            if m[5:] in stack[0]:
                return True
        elif any(m in frame for frame in stack):
            return True
    return False


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        samples = [frames(s) for s in f.read().split("\n\n")]
    samples = [s for s in samples if s]
    if not samples:
        sys.exit("no samples with call stacks in " + sys.argv[1])
    parts = collections.Counter()
    leaves = collections.defaultdict(collections.Counter)
    for stack in samples:
        part = next((name for name, markers in PARTS if matches(stack, markers)), "other")
        parts[part] += 1
        leaves[part][stack[0][:100]] += 1
    total = len(samples)
    print(f"{total} samples")
    for part, n in parts.most_common():
        print(f"{100 * n / total:5.1f} %  {part}")
        for leaf, m in leaves[part].most_common(top):
            print(f"          {100 * m / total:5.2f} %  {leaf}")


if __name__ == "__main__":
    main()
