// The Node handler of host/tests/node_concurrent.rs, run by aws-lambda-ric 4 with
// AWS_LAMBDA_MAX_CONCURRENCY set. Its worker threads each load this module, so the
// invocations meet through files in `event.dir`, not memory: each one holds `run-<id>`
// while it runs and marks `peak-K` whenever it sees K running. It waits (up to
// `event.wait_ms`) until `event.n` have run at once and answers the most it saw (`seen`),
// so that a waiter that wakes after a sibling answered still sees that they overlapped.
// With `event.go` it then waits for that file too; `"then": "hang"` never answers after
// that, `"then": "kill"` kills the whole process and `"then": "exit"` calls
// process.exit(1) (which, in a worker thread, ends only that thread).
// Only synchronous fs calls: ric 4's /next polls keep libuv's thread pool busy.
const fs = require("fs");
const path = require("path");
const { threadId } = require("worker_threads");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function peak(dir) {
  const names = fs.readdirSync(dir);
  const running = names.filter((n) => n.startsWith("run-")).length;
  fs.writeFileSync(path.join(dir, `peak-${running}`), "");
  const peaks = names.filter((n) => n.startsWith("peak-")).map((n) => Number(n.slice(5)));
  return Math.max(running, ...peaks);
}

exports.handler = async (event, context) => {
  const mine = path.join(event.dir, `run-${context.awsRequestId}`);
  fs.writeFileSync(mine, String(threadId));
  const start = Date.now();
  let seen = 0;
  while ((seen = peak(event.dir)) < event.n && Date.now() - start < event.wait_ms) {
    await sleep(20);
  }
  while (event.go && !fs.existsSync(event.go) && Date.now() - start < event.wait_ms) {
    await sleep(20);
  }
  if (event.then === "hang") {
    await new Promise(() => {});
  } else if (event.then === "kill") {
    process.kill(process.pid, "SIGKILL");
  } else if (event.then === "exit") {
    process.exit(1);
  }
  fs.unlinkSync(mine);
  return {
    seen,
    pid: process.pid,
    threadId,
    requestId: context.awsRequestId,
    maxConcurrency: process.env.AWS_LAMBDA_MAX_CONCURRENCY ?? null,
  };
};
