// The Node handler of host/tests/node_client.rs: reports the context the runtime client
// built from the host's /next headers, and fails on request.
class TeapotError extends Error {
  constructor(message) {
    super(message);
    this.name = "TeapotError";
  }
}

exports.handler = async (event, context) => {
  if (event && event.fail) {
    throw new TeapotError(event.fail);
  }
  return {
    pid: process.pid,
    event,
    requestId: context.awsRequestId,
    functionArn: context.invokedFunctionArn,
    functionName: context.functionName,
    remainingMs: context.getRemainingTimeInMillis(),
    clientContext: context.clientContext ?? null,
    identity: context.identity ?? null,
    trace: process.env._X_AMZN_TRACE_ID ?? null,
  };
};
