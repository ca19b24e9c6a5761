// One virtual user of the k6-compatible runner, in a thread of its own: it runs the script's init
// code, then setup, iterations or teardown when the runner says so. k6 scripts call http.get/post
// SYNCHRONOUSLY, so a request goes to the runner's thread (which owns fetch) and this thread waits
// on shared memory (Atomics.wait) until the answer is there (receiveMessageOnPort reads it).
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import type { Sample } from './metrics';
import { registerK6Modules, type WireRequest, type WireResponse } from './modules';

interface VuData {
  script: string;
  env: Record<string, string>;
  vu: number;
  signal: SharedArrayBuffer;
  port: MessagePort;
}
const { script, env, vu, signal, port } = workerData as VuData;
const flag = new Int32Array(signal);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
let samples: Sample[] = [];

const g = globalThis as Record<string, unknown>;
g.__ENV = env;
g.__VU = vu;
g.__ITER = 0;

registerK6Modules({
  request(req: WireRequest): WireResponse {
    Atomics.store(flag, 0, 0);
    port.postMessage(req);
    for (;;) {
      Atomics.wait(flag, 0, 0, 1000);
      const got = receiveMessageOnPort(port);
      if (got) return got.message as WireResponse;
    }
  },
  emit: (s) => void samples.push(s),
  sleep: (seconds) => void Atomics.wait(sleeper, 0, 0, Math.max(0, seconds * 1000)),
  declare: (name, type) => parentPort!.postMessage({ op: 'declare', name, type }),
});

const mod = (await import(script)) as { default?: (data: unknown) => void; setup?: () => unknown; teardown?: (data: unknown) => void };

function flush() {
  const out = samples;
  samples = [];
  return out;
}

parentPort!.on('message', (cmd: { op: 'setup' | 'iteration' | 'teardown'; iteration?: number; data?: string }) => {
  const data = cmd.data === undefined ? undefined : (JSON.parse(cmd.data) as unknown);
  const started = performance.now();
  let result: unknown;
  let error: string | null = null;
  try {
    if (cmd.op === 'setup') result = mod.setup?.();
    else if (cmd.op === 'teardown') mod.teardown?.(data);
    else {
      g.__ITER = cmd.iteration;
      mod.default?.(data);
    }
  } catch (e) {
    error = (e as Error).stack ?? String(e);
  }
  if (cmd.op === 'iteration') {
    samples.push(
      { metric: 'iterations', type: 'counter', value: 1, tags: {} },
      { metric: 'iteration_duration', type: 'trend', value: performance.now() - started, tags: {} },
    );
  }
  parentPort!.postMessage({ op: 'done', samples: flush(), error, data: result === undefined ? undefined : JSON.stringify(result) });
});
parentPort!.postMessage({ op: 'ready', samples: flush() });
