#!/usr/bin/env python3
"""POSTs `{"name":"bench"}` N times, one after the other, on one keep-alive connection, and
fails on any status but 200: a fixed amount of work for counting a host's instructions per
invocation under `valgrind --tool=callgrind` (see bench/README.md).

    python3 bench/sequential.py <port> <requests>
"""

import http.client
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    port, n = int(sys.argv[1]), int(sys.argv[2])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    for i in range(n):
        conn.request("POST", "/", body=b'{"name":"bench"}', headers=headers)
        reply = conn.getresponse()
        body = reply.read()
        if reply.status != 200:
            sys.exit(f"request {i}: {reply.status} {body[:200]!r}")


if __name__ == "__main__":
    main()
