// The streaming Node handler of host/tests/streaming_node.rs, on aws-lambda-ric's
// `awslambda.streamifyResponse`: writes "first", waits for the file `event.signal` (up to
// 20 s), then writes "after-signal" (or "no-signal"); with `event.prelude`, the HTTP head
// goes first through `awslambda.HttpResponseStream.from`; with `event.fail`, the stream
// fails after its first chunk.
const fs = require("fs");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(path) {
  const start = Date.now();
  while (Date.now() - start < 20000) {
    if (fs.existsSync(path)) {
      return "after-signal\n";
    }
    await sleep(20);
  }
  return "no-signal\n";
}

exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  let out = responseStream;
  if (event.prelude) {
    out = awslambda.HttpResponseStream.from(responseStream, event.prelude);
  }
  out.write("first\n");
  if (event.fail) {
    await sleep(50);
    throw new Error(event.fail);
  }
  if (event.signal) {
    out.write(await waitFor(event.signal));
  }
  out.end();
});
