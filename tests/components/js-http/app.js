// A wasi:http/proxy component in JavaScript (jco componentize) for the host's integration
// tests: echoes the request (method, path and query, sorted headers, body), sets a status and
// headers on /status?N, streams five flushed chunks on /stream. The same text as the Rust
// test component.
import {
  Fields,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from 'wasi:http/types@0.2.12';

const encoder = new TextEncoder();
const decoder = new TextDecoder('latin1');

function readBody(request) {
  const body = request.consume();
  const stream = body.stream();
  const chunks = [];
  for (;;) {
    try {
      chunks.push(stream.blockingRead(65536n));
    } catch (e) {
      if (e.payload && e.payload.tag === 'closed') break;
      throw e;
    }
  }
  stream[Symbol.dispose]();
  return chunks;
}

function reply(out, status, headers, chunks) {
  const response = new OutgoingResponse(
    Fields.fromList(headers.map(([k, v]) => [k, encoder.encode(v)])),
  );
  response.setStatusCode(status);
  const body = response.body();
  ResponseOutparam.set(out, { tag: 'ok', val: response });
  const stream = body.write();
  for (const chunk of chunks) {
    // blocking-write-and-flush takes at most 4096 bytes at a time.
    for (let i = 0; i < chunk.length; i += 4096) {
      stream.blockingWriteAndFlush(chunk.subarray(i, i + 4096));
    }
  }
  stream[Symbol.dispose]();
  OutgoingBody.finish(body, undefined);
}

function methodName(method) {
  return method.tag === 'other' ? method.val : method.tag.toUpperCase();
}

export const incomingHandler = {
  handle(request, out) {
    const path = request.pathWithQuery() ?? '';
    const [route, query = ''] = path.split('?', 2);
    if (route === '/status') {
      const status = /^\d+$/.test(query) ? Number(query) : 418;
      reply(out, status, [['x-guest', 'set'], ['content-type', 'text/x-probe']],
        [encoder.encode('status set')]);
    } else if (route === '/stream') {
      reply(out, 200, [], [0, 1, 2, 3, 4].map((i) => encoder.encode(`chunk ${i}\n`)));
    } else {
      const headers = request.headers().entries()
        .map(([k, v]) => `${k}: ${decoder.decode(v)}`)
        .sort();
      const text = `${methodName(request.method())} ${path}\n${headers.join('\n')}\n\n`;
      reply(out, 200, [['x-echo', 'yes']], [encoder.encode(text), ...readBody(request)]);
    }
  },
};
