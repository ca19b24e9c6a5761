// A small k6-compatible runner under Bun, so the k6 scripts in loadtest/k6 are executed for real
// where k6 cannot be installed (these machines; CI): `bun loadtest/k6run/main.ts [-e K=V ...] script.js`.
// It runs the script's init code, setup(), its scenario (constant-arrival-rate,
// ramping-arrival-rate or constant-vus) with one thread per VU, and teardown(), then evaluates the
// thresholds the script declares and exits 99 when one fails, as `k6 run` does. It implements what
// the scripts here use (modules.ts), not all of k6: an unsupported executor or API fails loudly.
import { MessageChannel, Worker } from 'node:worker_threads';
import { resolve } from 'node:path';
import { evaluateThresholds, Registry, type MetricType, type Sample } from './metrics';
import { registerK6Modules, type WireRequest, type WireResponse } from './modules';

interface Scenario {
  executor: string;
  rate?: number;
  startRate?: number;
  timeUnit?: string;
  duration?: string;
  stages?: { target: number; duration: string }[];
  preAllocatedVUs?: number;
  maxVUs?: number;
  vus?: number;
  gracefulStop?: string;
}
interface Options {
  scenarios?: Record<string, Scenario>;
  vus?: number;
  duration?: string;
  thresholds?: Record<string, (string | { threshold: string })[]>;
}

/** '1m30s', '15s', '500ms', '2h' -> milliseconds. */
export function parseDuration(s: string | undefined, fallback = 0): number {
  if (!s) return fallback;
  let ms = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let m: RegExpExecArray | null;
  let seen = '';
  while ((m = re.exec(s))) {
    ms += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms']!;
    seen += m[0];
  }
  if (seen !== s) throw new Error(`'${s}' is not a k6 duration (e.g. 30s, 1m30s, 500ms)`);
  return ms;
}

/** Iterations due by `t` ms into an arrival-rate scenario: the integral of its rate. */
export function iterationsDue(sc: Scenario, t: number): number {
  const unit = parseDuration(sc.timeUnit, 1000);
  if (sc.executor === 'constant-arrival-rate') return Math.floor((sc.rate! * Math.min(t, parseDuration(sc.duration))) / unit);
  let at = 0;
  let rate = sc.startRate ?? 0;
  let due = 0;
  for (const st of sc.stages ?? []) {
    const len = parseDuration(st.duration);
    const part = Math.min(len, Math.max(0, t - at));
    // linear ramp from `rate` to `target` over `len`: area under it for the first `part` ms
    const endRate = len ? rate + ((st.target - rate) * part) / len : st.target;
    due += ((rate + endRate) / 2) * (part / unit);
    at += len;
    rate = st.target;
  }
  return Math.floor(due + 1e-9);
}

export function scenarioLength(sc: Scenario): number {
  if (sc.executor === 'ramping-arrival-rate') return (sc.stages ?? []).reduce((n, st) => n + parseDuration(st.duration), 0);
  return parseDuration(sc.duration);
}

class Vu {
  readonly worker: Worker;
  busy = false;
  readonly ready: Promise<void>;
  private onDone: ((m: { samples: Sample[]; error: string | null; data?: string }) => void) | null = null;

  constructor(
    readonly id: number,
    script: string,
    env: Record<string, string>,
    private readonly run: Runner,
  ) {
    const signal = new SharedArrayBuffer(4);
    const flag = new Int32Array(signal);
    const { port1, port2 } = new MessageChannel();
    this.worker = new Worker(new URL('./vu.ts', import.meta.url), { workerData: { script, env, vu: id, signal, port: port1 }, transferList: [port1 as never] });
    port2.on('message', async (req: WireRequest) => {
      port2.postMessage(await run.fetch(req));
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
    });
    this.worker.unref();
    port2.unref();
    this.ready = new Promise((res, rej) => {
      this.worker.on('error', rej);
      this.worker.on('message', (m: { op: string; samples?: Sample[]; error: string | null; data?: string; name?: string; type?: MetricType }) => {
        if (m.op === 'declare') run.registry.declare(m.name!, m.type!);
        if (m.samples) for (const s of m.samples) run.registry.add(s);
        if (m.op === 'ready') res();
        if (m.op === 'done') this.onDone?.(m as never);
      });
    });
  }

  exec(op: 'setup' | 'iteration' | 'teardown', data?: string, iteration = 0): Promise<string | undefined> {
    this.busy = true;
    return new Promise((res) => {
      this.onDone = (m) => {
        this.busy = false;
        if (m.error) this.run.iterationError(op, m.error);
        res(m.data);
      };
      this.worker.postMessage({ op, data, iteration });
    });
  }
}

class Runner {
  readonly registry = new Registry();
  private errors = 0;
  constructor(
    private readonly script: string,
    private readonly env: Record<string, string>,
  ) {}

  async fetch(req: WireRequest): Promise<WireResponse> {
    const started = performance.now();
    try {
      const res = await fetch(req.url, { method: req.method, headers: req.headers, body: req.body, signal: AbortSignal.timeout(req.timeoutMs) });
      const body = await res.text();
      return { status: res.status, body, headers: Object.fromEntries(res.headers), durationMs: performance.now() - started, error: '' };
    } catch (e) {
      return { status: 0, body: '', headers: {}, durationMs: performance.now() - started, error: (e as Error).message };
    }
  }

  iterationError(op: string, error: string) {
    if (this.errors++ < 5) console.error(`[k6run] ${op} threw: ${error}`);
  }

  async vu(id: number) {
    const v = new Vu(id, this.script, this.env, this);
    await v.ready;
    return v;
  }

  /** Runs one scenario; resolves when its last iteration is done. */
  async scenario(sc: Scenario, data: string | undefined) {
    const length = scenarioLength(sc);
    const vus: Vu[] = [];
    const iterations = new Map<number, number>();
    const running: Promise<unknown>[] = [];
    const start = (v: Vu) => {
      const n = iterations.get(v.id) ?? 0;
      iterations.set(v.id, n + 1);
      running.push(v.exec('iteration', data, n));
    };
    if (sc.executor === 'constant-vus') {
      for (let i = 1; i <= (sc.vus ?? 1); i++) vus.push(await this.vu(i));
      const end = performance.now() + length;
      await Promise.all(
        vus.map(async (v) => {
          while (performance.now() < end) {
            start(v);
            await running.at(-1);
          }
        }),
      );
      return;
    }
    if (sc.executor !== 'constant-arrival-rate' && sc.executor !== 'ramping-arrival-rate')
      throw new Error(`executor '${sc.executor}' is not supported by this runner`);
    for (let i = 1; i <= (sc.preAllocatedVUs ?? 1); i++) vus.push(await this.vu(i));
    let spawning = 0;
    const began = performance.now();
    let dispatched = 0;
    for (;;) {
      const t = performance.now() - began;
      const due = iterationsDue(sc, t);
      for (; dispatched < due; dispatched++) {
        const idle = vus.find((v) => !v.busy);
        if (idle) start(idle);
        else if (vus.length + spawning < (sc.maxVUs ?? vus.length)) {
          // k6 initializes another VU when none is free; meanwhile this iteration waits for it.
          spawning++;
          running.push(
            this.vu(vus.length + spawning).then((v) => {
              spawning--;
              vus.push(v);
              start(v);
            }),
          );
        } else this.registry.add({ metric: 'dropped_iterations', type: 'counter', value: 1, tags: {} });
      }
      if (t >= length) break;
      await Bun.sleep(2);
    }
    await Promise.all(running);
    for (const v of vus) await v.worker.terminate();
  }

  async run(options: Options) {
    const scenarios = options.scenarios ?? { default: { executor: 'constant-vus', vus: options.vus ?? 1, duration: options.duration ?? '10s' } };
    const began = performance.now();
    const side = await this.vu(0); // setup and teardown run in a VU of their own, as in k6
    const data = await side.exec('setup');
    await Promise.all(Object.values(scenarios).map((sc) => this.scenario(sc, data)));
    const seconds = (performance.now() - began) / 1000;
    await side.exec('teardown', data);
    await side.worker.terminate();
    return { seconds, errors: this.errors };
  }
}

function parseArgs(argv: string[]) {
  const env: Record<string, string> = {};
  let script = '';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-e' || a === '--env') {
      const kv = argv[++i] ?? '';
      const eq = kv.indexOf('=');
      if (eq < 1) throw new Error(`-e takes NAME=VALUE, got '${kv}'`);
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (a === 'run') continue;
    else script = a;
  }
  if (!script) throw new Error('usage: bun loadtest/k6run/main.ts [run] [-e NAME=VALUE ...] script.js');
  return { script: resolve(script), env };
}

if (import.meta.main) {
  const { script, env: cliEnv } = parseArgs(process.argv.slice(2));
  // k6 passes the system environment to __ENV, and -e on top of it.
  const env = { ...(process.env as Record<string, string>), ...cliEnv };
  const runner = new Runner(script, env);
  // The init context: read the options (requests are not allowed there, as in k6).
  (globalThis as Record<string, unknown>).__ENV = env;
  (globalThis as Record<string, unknown>).__VU = 0;
  (globalThis as Record<string, unknown>).__ITER = 0;
  registerK6Modules({
    request: () => {
      throw new Error('http requests are not allowed in the init context');
    },
    emit: () => {},
    sleep: () => {},
    declare: (name, type) => runner.registry.declare(name, type),
  });
  const { options = {} } = (await import(script)) as { options?: Options };
  console.error(
    `[k6run] ${script}: ${
      Object.entries(options.scenarios ?? {})
        .map(([n, s]) => `${n} (${s.executor})`)
        .join(', ') || 'default'
    }`,
  );
  const { seconds, errors } = await runner.run(options);
  const results = evaluateThresholds(options.thresholds ?? {}, runner.registry, seconds);
  const count = (m: string) => runner.registry.values(m).values.reduce((a, b) => a + b, 0);
  console.log(
    `\n  iterations ${count('iterations')}, dropped ${count('dropped_iterations')}, http_reqs ${count('http_reqs')}, script errors ${errors}, ${seconds.toFixed(1)} s`,
  );
  for (const r of results)
    console.log(`  ${r.ok ? '✓' : '✗'} ${r.key}: ${r.expression} (${Number.isNaN(r.value) ? 'no samples' : Math.round(r.value * 1000) / 1000})`);
  const failed = results.filter((r) => !r.ok);
  if (failed.length) console.log(`\n  thresholds on metrics failed: ${failed.map((r) => `${r.key} ${r.expression}`).join('; ')}`);
  process.exit(failed.length ? 99 : 0);
}
