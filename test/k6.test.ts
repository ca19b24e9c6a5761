// The k6 scripts run for real (k6 cannot be installed here): a k6-compatible runner under Bun
// (loadtest/k6run) executes each one at a low rate against the real service, and fails when a
// threshold the script declares fails. The runner itself is checked first: k6's threshold
// arithmetic, and a fixture script whose thresholds pass or fail on purpose.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { readdirSync } from 'node:fs';
import { aggregate, evaluateThresholds, parseMetricKey, Registry } from '../loadtest/k6run/metrics';
import { iterationsDue, parseDuration } from '../loadtest/k6run/main';
import { newTarget, ROOT, spawnService, type Target } from './harness';

setDefaultTimeout(120_000);

async function k6run(script: string, env: Record<string, string>) {
  const p = Bun.spawn([process.execPath, 'loadtest/k6run/main.ts', script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [out, err, code] = [await new Response(p.stdout).text(), await new Response(p.stderr).text(), await p.exited];
  return { out, err, code };
}

describe('the k6-compatible runner', () => {
  test('aggregates as k6 does: interpolated percentiles, rates, counts; a rate without samples fails', () => {
    expect(aggregate('trend', [1, 2, 3, 4], 'p(50)', 1)).toBe(2.5);
    expect(aggregate('trend', [10, 20, 30, 40, 50], 'p(95)', 1)).toBe(48);
    expect(aggregate('trend', [5, 1, 9], 'max', 1)).toBe(9);
    expect(aggregate('rate', [1, 0, 1, 1], 'rate', 1)).toBe(0.75);
    expect(aggregate('counter', [2, 3], 'count', 10)).toBe(5);
    expect(aggregate('counter', [2, 3], 'rate', 10)).toBe(0.5);
    expect(Number.isNaN(aggregate('rate', [], 'rate', 1))).toBe(true);
    expect(parseMetricKey('checks{check:committed (201)}')).toEqual({ metric: 'checks', filter: { check: 'committed (201)' } });
    const r = new Registry();
    r.declare('checks', 'rate');
    r.add({ metric: 'http_req_duration', type: 'trend', value: 80, tags: { name: 'a' } });
    r.add({ metric: 'http_req_duration', type: 'trend', value: 10, tags: { name: 'b' } });
    const res = evaluateThresholds({ 'http_req_duration{name:b}': ['p(95)<50'], http_req_duration: ['max<50'], 'checks{check:x}': ['rate==1'] }, r, 1);
    expect(res.map((x) => x.ok)).toEqual([true, false, false]);
  });

  test('schedules arrival-rate iterations by the integral of the rate', () => {
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(iterationsDue({ executor: 'constant-arrival-rate', rate: 10, timeUnit: '1s', duration: '2s' }, 1500)).toBe(15);
    expect(iterationsDue({ executor: 'constant-arrival-rate', rate: 10, timeUnit: '1s', duration: '2s' }, 9000)).toBe(20);
    // 0 -> 100/s over 2 s, then 100/s for 1 s: 100 + 100 iterations
    expect(
      iterationsDue(
        {
          executor: 'ramping-arrival-rate',
          startRate: 0,
          timeUnit: '1s',
          stages: [
            { target: 100, duration: '2s' },
            { target: 100, duration: '1s' },
          ],
        },
        3000,
      ),
    ).toBe(200);
  });

  describe('runs a script against a real server', () => {
    let server: ReturnType<typeof Bun.serve>;
    beforeAll(() => {
      server = Bun.serve({
        port: 0,
        hostname: '127.0.0.1',
        fetch: async (req) => {
          if (new URL(req.url).pathname === '/slow') await Bun.sleep(30);
          return Response.json({ a: { b: ['x', 'y'] }, list: [1, 2, 3] }, { headers: { 'x-custom-thing': 'v' } });
        },
      });
    });
    afterAll(() => server.stop(true));

    test('synchronous requests, checks, custom metrics, setup data and teardown; exit 0 when every threshold holds', async () => {
      const r = await k6run('test/fixtures/k6/runner-check.js', { BASE_URL: `http://127.0.0.1:${server.port}` });
      expect(r.err).not.toContain('threw');
      expect(r.out).toContain('teardown got from-setup');
      expect(r.out).toContain('✓ seen: count==20 (20)');
      expect(r.code).toBe(0);
    });

    test('exit 99 naming the threshold that failed', async () => {
      const r = await k6run('test/fixtures/k6/runner-check.js', { BASE_URL: `http://127.0.0.1:${server.port}`, SLOW_P95: '5' });
      expect(r.code).toBe(99);
      expect(r.out).toContain('✗ http_req_duration{name:slow}: p(95)<5');
    });
  });
});

describe('every k6 script, for real against the service [embedded]', () => {
  let target: Target;
  let svc: Awaited<ReturnType<typeof spawnService>>;
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await spawnService(target.env);
  });
  afterAll(async () => {
    svc?.proc.kill('SIGTERM');
    await svc?.proc.exited;
    await target?.destroy();
  });

  // Low rates for a few seconds: this proves the scripts work (requests, checks, verification,
  // thresholds), not the service's capacity. Latency ceilings are loose here: CI runs other things.
  const smoke: Record<string, Record<string, string>> = {
    'ingest-steady.js': { RATE: '50' },
    'ingest-soak.js': { RATE: '50' },
    'ingest-wait.js': { RATE: '30' },
    // 8 batches of 500 a second for 3 s: past 10,000 events, where a default count is no longer exact
    'ingest-batch.js': { RATE: '8', BATCH_EVENTS: '500' },
    'ingest-spike.js': { RATE: '30', SPIKE_FACTOR: '3', HOLD: '1s', RAMP: '1s', PEAK_DURATION: '1s' },
    'query-mix.js': { RATE: '20', SEED_EVENTS: '300' },
    'ingest-otlp.js': { RATE: '5', RECORDS: '200' },
  };
  const scripts = readdirSync(`${ROOT}loadtest/k6`).filter((f) => f.endsWith('.js') && f !== 'lib.js');

  test('the smoke list covers every script', () => {
    expect(Object.keys(smoke).sort()).toEqual(scripts.sort());
  });

  test.each(Object.keys(smoke))('%s passes its own thresholds', async (script) => {
    const r = await k6run(`loadtest/k6/${script}`, {
      BASE_URL: svc.url,
      DURATION: '3s',
      VUS: '4',
      MAX_VUS: '20',
      P95_MS: '2000',
      P99_MS: '4000',
      ...smoke[script],
    });
    if (r.code !== 0) console.log(r.out, r.err);
    expect(r.out).not.toContain('✗');
    expect(r.code).toBe(0);
  });
});
