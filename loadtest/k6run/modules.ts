// The k6 modules the runner provides to a script, as k6 defines them: 'k6' (check, sleep, group,
// fail), 'k6/http' (synchronous requests, response callbacks) and 'k6/metrics' (Counter, Trend,
// Rate, Gauge). Each VU thread builds its own set around a Host that performs a request
// synchronously and collects the samples. Only what k6 documents; what this runner lacks says so.
import type { MetricType, Sample } from './metrics';

export interface WireRequest {
  method: string;
  url: string;
  body: string | null;
  headers: Record<string, string>;
  timeoutMs: number;
}
export interface WireResponse {
  status: number;
  body: string;
  headers: Record<string, string>;
  durationMs: number;
  error: string;
}

export interface Host {
  /** Performs one HTTP request and blocks until its answer (throws in the init context, as k6 does). */
  request(req: WireRequest): WireResponse;
  emit(s: Sample): void;
  sleep(seconds: number): void;
  /** Declares a metric's type (custom metrics at construction). */
  declare(name: string, type: MetricType): void;
}

type Tags = Record<string, string>;
type Params = { headers?: Record<string, string>; tags?: Tags; timeout?: string | number; responseCallback?: ResponseCallback | null };
type ResponseCallback = (res: { status: number }) => boolean;

/** Go's canonical header names, as k6 exposes them: 'retry-after' -> 'Retry-After'. */
const canonical = (h: string) => h.toLowerCase().replace(/(^|-)([a-z])/g, (_, d: string, c: string) => d + c.toUpperCase());

/** k6's res.json(selector): a gjson path of keys and indexes separated by dots; '#' is an array's length. */
export function select(value: unknown, selector?: string): unknown {
  if (!selector) return value;
  let v: unknown = value;
  for (const part of selector.split('.')) {
    if (v === null || v === undefined) return undefined;
    if (part === '#' && Array.isArray(v)) v = v.length;
    else v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function durationMs(t: string | number | undefined, fallback: number) {
  if (t === undefined) return fallback;
  if (typeof t === 'number') return t;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(t);
  return m ? Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'] : fallback;
}

export function k6Modules(host: Host) {
  let responseCallback: ResponseCallback | null = (r) => r.status >= 200 && r.status < 400;
  for (const [name, type] of [
    ['http_reqs', 'counter'],
    ['http_req_duration', 'trend'],
    ['http_req_failed', 'rate'],
    ['checks', 'rate'],
    ['iterations', 'counter'],
    ['iteration_duration', 'trend'],
    ['dropped_iterations', 'counter'],
  ] as const)
    host.declare(name, type);

  function request(method: string, url: string, body?: unknown, params: Params = {}) {
    let text: string | null = null;
    const headers: Record<string, string> = { ...params.headers };
    if (typeof body === 'string') text = body;
    else if (body && typeof body === 'object') {
      text = new URLSearchParams(body as Record<string, string>).toString(); // k6 form-encodes objects
      headers['Content-Type'] ??= 'application/x-www-form-urlencoded';
    }
    const r = host.request({ method, url, body: text, headers, timeoutMs: durationMs(params.timeout, 60_000) });
    const res = {
      status: r.status,
      body: r.body,
      headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [canonical(k), v])),
      timings: { duration: r.durationMs },
      error: r.error,
      error_code: r.error ? 1000 : 0,
      url,
      request: { method, url, body: text, headers },
      json: (selector?: string) => select(JSON.parse(r.body), selector),
    };
    const cb = params.responseCallback === undefined ? responseCallback : params.responseCallback;
    const expected = cb ? cb(res) : true;
    const tags: Tags = { method, url, name: url, status: String(r.status), expected_response: String(expected), ...params.tags };
    host.emit({ metric: 'http_reqs', type: 'counter', value: 1, tags });
    host.emit({ metric: 'http_req_duration', type: 'trend', value: r.durationMs, tags });
    host.emit({ metric: 'http_req_failed', type: 'rate', value: expected ? 0 : 1, tags });
    return res;
  }

  const http = {
    request: (method: string, url: string, body?: unknown, params?: Params) => request(method.toUpperCase(), url, body, params),
    get: (url: string, params?: Params) => request('GET', url, null, params),
    head: (url: string, params?: Params) => request('HEAD', url, null, params),
    post: (url: string, body?: unknown, params?: Params) => request('POST', url, body, params),
    put: (url: string, body?: unknown, params?: Params) => request('PUT', url, body, params),
    patch: (url: string, body?: unknown, params?: Params) => request('PATCH', url, body, params),
    del: (url: string, body?: unknown, params?: Params) => request('DELETE', url, body, params),
    options: (url: string, body?: unknown, params?: Params) => request('OPTIONS', url, body, params),
    batch: () => {
      throw new Error('http.batch is not supported by this runner');
    },
    setResponseCallback: (cb: ResponseCallback | null) => void (responseCallback = cb),
    expectedStatuses:
      (...specs: (number | { min: number; max: number })[]): ResponseCallback =>
      (r) =>
        specs.some((s) => (typeof s === 'number' ? r.status === s : r.status >= s.min && r.status <= s.max)),
  };

  const k6 = {
    check<T>(value: T, sets: Record<string, (v: T) => unknown>, tags: Tags = {}) {
      let all = true;
      for (const [name, fn] of Object.entries(sets)) {
        const ok = Boolean(fn(value));
        all &&= ok;
        host.emit({ metric: 'checks', type: 'rate', value: ok ? 1 : 0, tags: { check: name, ...tags } });
      }
      return all;
    },
    sleep: (seconds: number) => host.sleep(seconds),
    group: <T>(_name: string, fn: () => T) => fn(),
    fail: (message?: string) => {
      throw new Error(message ?? 'fail()');
    },
  };

  const metric = (type: MetricType) =>
    class {
      constructor(readonly name: string) {
        host.declare(name, type);
      }
      add(value: number | boolean, tags: Tags = {}) {
        host.emit({ metric: this.name, type, value: Number(value), tags });
      }
    };
  const metrics = { Counter: metric('counter'), Trend: metric('trend'), Rate: metric('rate'), Gauge: metric('gauge') };

  return { k6: k6, 'k6/http': http, 'k6/metrics': metrics };
}

/** Makes `import ... from 'k6/...'` resolve to these modules in this thread. */
export function registerK6Modules(host: Host) {
  const mods = k6Modules(host);
  Bun.plugin({
    name: 'k6 modules',
    setup(build) {
      for (const [name, exports] of Object.entries(mods)) build.module(name, () => ({ exports: { default: exports, ...exports }, loader: 'object' }));
    },
  });
}
