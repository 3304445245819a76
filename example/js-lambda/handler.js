// An echo Lambda function in JavaScript, built into a component of the lambda:function world
// (guest-sdk/wit) with jco componentize: `make js-lambda` at the repository root.
//
// An API Gateway event (1.0 `httpMethod`, 2.0 `requestContext.http`) gets a proxy response that
// echoes the method, path and body. Any other event is `{"op": ...}`: `echo` answers
// `{"payload": data}`, `context` the invocation's context, `error` a function error, `count` the
// invocations this instance served.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Module state: kept between invocations in `loop` isolation, new in `invocation`.
let served = 0;

function reply(value) {
  return { body: encoder.encode(JSON.stringify(value)), contentType: undefined };
}

function fail(errorType, errorMessage) {
  // A thrown value becomes the `err` case of the handler's result.
  return { errorType, errorMessage };
}

export const handler = {
  handle(event, context) {
    served += 1;
    const text = decoder.decode(event);
    const payload = text ? JSON.parse(text) : {};
    const method = payload.httpMethod ?? payload.requestContext?.http?.method;
    if (method) {
      const echo = { method, path: payload.path ?? payload.rawPath, body: payload.body ?? null };
      return reply({
        statusCode: 200,
        headers: { "content-type": "application/json", "x-lambda-world": "javascript" },
        body: JSON.stringify(echo),
      });
    }
    switch (payload.op ?? "echo") {
      case "echo":
        return reply({ payload: payload.data ?? null });
      case "count":
        return reply({ count: served });
      case "context": {
        const client = context.clientContext ? JSON.parse(context.clientContext) : null;
        return reply({
          request_id: context.requestId,
          deadline_ms: Number(context.deadlineMs),
          function_arn: context.invokedFunctionArn,
          trace_id: context.traceId ?? null,
          client_custom: client?.custom ?? null,
          identity_pool: null,
          tenant_id: context.tenantId ?? null,
          content_type: context.contentType,
        });
      }
      case "error":
        throw fail("EchoFailure", payload.message ?? "");
      default:
        throw fail("UnknownOp", `unknown op ${JSON.stringify(payload.op)}`);
    }
  },
};
