// Observability and request hygiene through the real app: request ids, one log line per request,
// /metrics as Prometheus text whose counters move with traffic, security headers, CORS, timeouts.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createLogger } from '../src/log';
import { newTarget, postEvent, startService, until, type Target } from './harness';

// Creating an embedded database takes about 4 s (initdb), near bun's 5 s default.
setDefaultTimeout(60_000);

const lines: string[] = [];
const log = createLogger('debug', (l) => lines.push(l));
const KEY = 'ops-secret-abcdefghijklmnop';

/** Samples of one metric from Prometheus text: sum of the values of lines named exactly `name`. */
function sample(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] ?? '').includes(labels)) sum += Number(m[3]);
  }
  return sum;
}

describe('observability [embedded]', () => {
  let target: Target;
  let svc: Awaited<ReturnType<typeof startService>>;
  let _open!: () => void;
  const gate: Promise<void> = Promise.resolve();
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target, { API_KEYS: `ops:admin:${KEY}`, CORS_ORIGINS: 'https://dash.example' }, { log, faults: { beforeWrite: () => gate } });
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });
  const auth = { authorization: `Bearer ${KEY}` };

  test('X-Request-Id: a sane one from the client comes back; otherwise one is made', async () => {
    const mine = await svc.app.request('/health', { headers: { 'x-request-id': 'trace-42.abc' } });
    expect(mine.headers.get('x-request-id')).toBe('trace-42.abc');
    const insane = await svc.app.request('/health', { headers: { 'x-request-id': 'has spaces and <tags>' } });
    expect(insane.headers.get('x-request-id')).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
    const none = await svc.app.request('/health');
    const again = await svc.app.request('/health');
    expect(none.headers.get('x-request-id')).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
    expect(again.headers.get('x-request-id')).not.toBe(none.headers.get('x-request-id'));
  });

  test('each request logs one JSON line with its id, route, status, latency and key name', async () => {
    await postEvent(svc.app, { service: 'obs', message: 'm' }, { ...auth, 'x-request-id': 'line-check-1' });
    await until(() => lines.some((l) => l.includes('line-check-1')));
    const line = JSON.parse(lines.find((l) => l.includes('line-check-1'))!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 'info', msg: 'request', requestId: 'line-check-1', method: 'POST', route: '/events', status: 202, key: 'ops' });
    expect(typeof line.ms).toBe('number');
    expect(lines.join('\n')).not.toContain(KEY);
  });

  test('/metrics is Prometheus text, and its counters move with traffic', async () => {
    const scrape = async () => {
      const res = await svc.app.request('/metrics', { headers: auth });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain');
      return res.text();
    };
    await until(() => svc.queue.depth === 0); // earlier tests' events are written before the first scrape
    const before = await scrape();
    for (const line of before.split('\n').filter(Boolean)) {
      expect(line).toMatch(
        /^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (NaN|\+Inf|-Inf))$/,
      );
    }
    for (const name of [
      'aurore_events_accepted_total',
      'aurore_events_written_total',
      'aurore_queue_depth_events',
      'aurore_queue_capacity_events',
      'aurore_batch_insert_duration_seconds',
      'aurore_batch_size_events',
      'aurore_circuit_breaker_open',
      'aurore_requests_rate_limited_total',
      'aurore_http_request_duration_seconds',
      'aurore_event_loop_lag_seconds',
    ]) {
      expect(before).toContain(`# TYPE ${name} `);
    }
    const written = svc.batcher.stats.written;
    for (let i = 0; i < 3; i++) expect((await postEvent(svc.app, { service: 'obs', message: `m${i}` }, auth)).status).toBe(202);
    expect((await postEvent(svc.app, { service: '', message: 'bad' }, auth)).status).toBe(400);
    await until(() => svc.batcher.stats.written === written + 3);
    const after = await scrape();
    expect(sample(after, 'aurore_events_accepted_total') - sample(before, 'aurore_events_accepted_total')).toBe(3);
    expect(sample(after, 'aurore_events_received_total') - sample(before, 'aurore_events_received_total')).toBe(4);
    expect(sample(after, 'aurore_events_invalid_total') - sample(before, 'aurore_events_invalid_total')).toBe(1);
    expect(sample(after, 'aurore_events_written_total') - sample(before, 'aurore_events_written_total')).toBe(3);
    expect(
      sample(after, 'aurore_http_request_duration_seconds_count', 'route="/events",method="POST",status="202"') -
        sample(before, 'aurore_http_request_duration_seconds_count', 'route="/events",method="POST",status="202"'),
    ).toBe(3);
    expect(sample(after, 'aurore_batch_size_events_count')).toBeGreaterThan(sample(before, 'aurore_batch_size_events_count'));
    // The request histogram (counted in place, not by prom-client's Histogram): cumulative buckets
    // ending at the count, in prom-client's own label order.
    const series = 'route="/events",method="POST",status="202"}';
    const buckets = after.split('\n').filter((l) => l.startsWith('aurore_http_request_duration_seconds_bucket{le=') && l.includes(series));
    expect(buckets.map((l) => l.slice(l.indexOf('le="') + 4, l.indexOf('",')))).toEqual([
      '0.0005',
      '0.001',
      '0.0025',
      '0.005',
      '0.01',
      '0.025',
      '0.05',
      '0.1',
      '0.25',
      '1',
      '5',
      '+Inf',
    ]);
    const counts = buckets.map((l) => Number(l.split(' ')[1]));
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(counts.at(-1)).toBe(sample(after, 'aurore_http_request_duration_seconds_count', series.slice(0, -1)));
    expect(sample(after, 'aurore_http_request_duration_seconds_sum', series.slice(0, -1))).toBeGreaterThan(0);
  });

  test('/metrics needs the admin scope when keys are set', async () => {
    expect((await svc.app.request('/metrics')).status).toBe(401);
  });

  test('JSON is served with headers that keep it inert in a browser', async () => {
    await postEvent(svc.app, { service: 'xss', message: '<script>alert(1)</script>' }, auth);
    await until(() => svc.queue.depth === 0);
    const res = await svc.app.request('/events?service=xss', { headers: auth });
    expect(res.headers.get('content-type')).toContain('application/json');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(res.headers.get('cache-control')).toBe('no-store');
    // stored verbatim, not "sanitised"
    expect(((await res.json()) as { events: { message: string }[] }).events[0]!.message).toBe('<script>alert(1)</script>');
  });

  test('the fast 202 of POST /events carries the same browser-safety headers as every JSON answer', async () => {
    const res = await postEvent(svc.app, { service: 'xss', message: 'fast path' }, auth);
    expect(res.status).toBe(202);
    expect({
      type: res.headers.get('content-type'),
      nosniff: res.headers.get('x-content-type-options'),
      csp: res.headers.get('content-security-policy'),
      cache: res.headers.get('cache-control'),
    }).toEqual({
      type: expect.stringContaining('application/json'),
      nosniff: 'nosniff',
      csp: expect.stringContaining("default-src 'none'"),
      cache: 'no-store',
    });
  });

  test('an absurdly long URL is 414, still with a request id', async () => {
    const res = await svc.app.request(`/events?q=${'x'.repeat(9000)}`, { headers: auth });
    expect(res.status).toBe(414);
    expect(res.headers.get('x-request-id')).not.toBeNull();
  });

  test('CORS answers only the configured origins', async () => {
    const ok = await svc.app.request('/events', { method: 'OPTIONS', headers: { origin: 'https://dash.example', 'access-control-request-method': 'GET' } });
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://dash.example');
    const other = await svc.app.request('/events', { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});

// Its own service: a REQUEST_TIMEOUT_MS of 300 ms for every route would make the suite above depend on
// how long a maintenance run keeps the embedded database busy.
describe('request timeout [embedded]', () => {
  let target: Target;
  let svc: Awaited<ReturnType<typeof startService>>;
  let open!: () => void;
  let gate: Promise<void> = Promise.resolve();
  const auth = { authorization: `Bearer ${KEY}` };
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(
      target,
      { API_KEYS: `ops:admin:${KEY}`, REQUEST_TIMEOUT_MS: '300', WAIT_TIMEOUT_MS: '10000' },
      { log, faults: { beforeWrite: () => gate } },
    );
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });

  test('a request that outlives REQUEST_TIMEOUT_MS is a 503 request_timeout, and its event is still written', async () => {
    gate = new Promise<void>((r) => (open = r));
    const res = await svc.app.request('/events?wait=true', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ service: 'slow', message: 'm' }),
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toBe('request_timeout');
    // Its duration (300 ms) is counted in the buckets above 0.25 s and not below.
    const metrics = await (await svc.app.request('/metrics', { headers: auth })).text();
    const bucket = (le: string) =>
      metrics.split('\n').find((l) => l.startsWith(`aurore_http_request_duration_seconds_bucket{le="${le}",route="/events",method="POST",status="503"}`));
    expect([bucket('0.25'), bucket('1')]).toEqual([expect.stringMatching(/ 0$/), expect.stringMatching(/ 1$/)]);
    open();
    gate = Promise.resolve();
    await until(() => svc.queue.depth === 0);
    const got = (await (await svc.app.request('/events?service=slow', { headers: auth })).json()) as { pagination: { total: number } };
    expect(got.pagination.total).toBe(1);
  });
});
