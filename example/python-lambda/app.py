"""An echo Lambda function in Python, built into a component of the lambda:function world
(guest-sdk/wit) with componentize-py: `make python-lambda` at the repository root.

An API Gateway event (1.0 `httpMethod`, 2.0 `requestContext.http`) gets a proxy response that
echoes the method, path and body. Any other event is `{"op": ...}`: `echo` answers
`{"payload": data}`, `context` the invocation's context, `error` a function error, `count` the
invocations this instance served, `spin` never ends, `grow` allocates until the memory cap
stops it, `crash` raises (the host sees a trap), `fetch` GETs `http://{authority}/` through
wasi:http and answers the status or the error code.
"""

import json

from wit_world import exports
from wit_world.imports import outgoing_handler, wasi_http_types as http
from componentize_py_types import Err
from wit_world.imports.lambda_function_types import Context, FunctionError, Response

# Module state: kept between invocations in `loop` isolation, new in `invocation`.
served = 0


class Handler(exports.Handler):
    def handle(self, event: bytes, context: Context) -> Response:
        global served
        served += 1
        payload = json.loads(event) if event else {}
        http = payload.get("requestContext", {}).get("http", {}) if isinstance(payload, dict) else {}
        method = payload.get("httpMethod") or http.get("method") if isinstance(payload, dict) else None
        if method:
            echo = {
                "method": method,
                "path": payload.get("path") or payload.get("rawPath"),
                "body": payload.get("body"),
            }
            return reply({
                "statusCode": 200,
                "headers": {"content-type": "application/json", "x-lambda-world": "python"},
                "body": json.dumps(echo),
            })
        op = payload.get("op", "echo") if isinstance(payload, dict) else "echo"
        if op == "echo":
            return reply({"payload": payload.get("data") if isinstance(payload, dict) else None})
        if op == "context":
            return reply(describe(context))
        if op == "count":
            return reply({"count": served})
        if op == "error":
            raise Err(FunctionError(error_type="EchoFailure", error_message=payload.get("message", "")))
        if op == "spin":
            while True:
                pass
        if op == "grow":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if op == "fetch":
            return reply(fetch(payload.get("authority", "")))
        if op == "crash":
            raise RuntimeError("the function crashed on purpose")
        raise Err(FunctionError(error_type="UnknownOp", error_message=f"unknown op {op!r}"))


def describe(context: Context) -> dict:
    client = json.loads(context.client_context) if context.client_context else None
    return {
        "request_id": context.request_id,
        "deadline_ms": context.deadline_ms,
        "function_arn": context.invoked_function_arn,
        "trace_id": context.trace_id,
        "client_custom": client.get("custom") if isinstance(client, dict) else None,
        "identity_pool": None,
        "tenant_id": context.tenant_id,
        "content_type": context.content_type,
    }


def fetch(authority: str) -> dict:
    request = http.OutgoingRequest(http.Fields())
    request.set_scheme(http.Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query("/")
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        return {"status": None, "error": type(e.value).__name__}
    future.subscribe().block()
    outcome = future.get()
    response = outcome.value if outcome is not None else None
    if isinstance(response, Err):
        return {"status": None, "error": type(response.value).__name__}
    return {"status": response.value.status(), "error": None}


def reply(value) -> Response:
    return Response(body=json.dumps(value).encode(), content_type=None)
