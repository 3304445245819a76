"""A wasi:http/proxy component in Python (componentize-py) for the host's integration tests:
echoes the request (method, path and query, sorted headers, body), sets a status and headers on
/status?N, streams five flushed chunks on /stream, writes N bytes to /tmp/fill on /fill?N and
tells on /tmp-seen whether that file is there. The same text as the Rust test component."""

import os

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import types
from wit_world.imports.streams import StreamError_Closed

METHODS = {
    types.Method_Get: "GET", types.Method_Head: "HEAD", types.Method_Post: "POST",
    types.Method_Put: "PUT", types.Method_Delete: "DELETE", types.Method_Patch: "PATCH",
    types.Method_Options: "OPTIONS", types.Method_Connect: "CONNECT", types.Method_Trace: "TRACE",
}


def method_name(method) -> str:
    if isinstance(method, types.Method_Other):
        return method.value
    return METHODS.get(type(method), "?")


def read_body(request: types.IncomingRequest) -> bytes:
    body = request.consume()
    stream = body.stream()
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(1 << 16))
        except Err as e:
            if isinstance(e.value, StreamError_Closed):
                break
            raise
    stream.__exit__(None, None, None)
    types.IncomingBody.finish(body)
    return b"".join(chunks)


def reply(out, status: int, headers, chunks) -> None:
    response = types.OutgoingResponse(types.Fields.from_list(headers))
    response.set_status_code(status)
    body = response.body()
    types.ResponseOutparam.set(out, Ok(response))
    stream = body.write()
    for chunk in chunks:
        # blocking-write-and-flush takes at most 4096 bytes at a time.
        for i in range(0, len(chunk), 4096):
            stream.blocking_write_and_flush(chunk[i:i + 4096])
    stream.__exit__(None, None, None)
    types.OutgoingBody.finish(body, None)


def fill(size: int) -> str:
    """Writes `size` bytes to /tmp/fill in 64 KiB pieces: `written N` and how it ended."""
    written = 0
    try:
        with open("/tmp/fill", "wb", buffering=0) as f:
            while written < size:
                written += f.write(b"\x07" * min(1 << 16, size - written))
    except OSError as e:
        return f"written {written} error {e}"
    return f"written {written} ok"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: types.IncomingRequest, response_out: types.ResponseOutparam) -> None:
        path = request.path_with_query() or ""
        route, _, query = path.partition("?")
        if route == "/status":
            status = int(query) if query.isdigit() else 418
            reply(response_out, status, [("x-guest", b"set"), ("content-type", b"text/x-probe")],
                  [b"status set"])
        elif route == "/fill":
            reply(response_out, 200, [], [fill(int(query) if query.isdigit() else 0).encode()])
        elif route == "/tmp-seen":
            seen = "yes" if os.path.exists("/tmp/fill") else "no"
            reply(response_out, 200, [], [f"tmpdir {os.environ.get('TMPDIR')} seen {seen}".encode()])
        elif route == "/stream":
            reply(response_out, 200, [], [f"chunk {i}\n".encode() for i in range(5)])
        else:
            headers = sorted(f"{k}: {v.decode('latin-1')}" for k, v in request.headers().entries())
            text = f"{method_name(request.method())} {path}\n" + "\n".join(headers) + "\n\n"
            reply(response_out, 200, [("x-echo", b"yes")], [text.encode() + read_body(request)])
