// README promises no other test proved: each test names the promise it holds the service to.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createLogger } from '../src/log';
import { loadMigrations, migrate } from '../src/store/migrate';
import { buildService, countRows, engines, newTarget, postEvent, startService, until, type Target } from './harness';

setDefaultTimeout(120_000);

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
async function target(kind: Target['kind'] = 'embedded', opts: { fresh?: boolean } = {}) {
  const t = await newTarget(kind, opts);
  cleanups.push(() => t.destroy());
  return t;
}
async function service(...args: Parameters<typeof startService>) {
  const s = await startService(...args);
  cleanups.push(() => s.stop());
  return s;
}
const json = { 'content-type': 'application/json' };
const batch = (n: number, service = 'promise') => JSON.stringify(Array.from({ length: n }, (_, i) => ({ service, message: `m${i}` })));

describe('backpressure and acknowledgements [embedded]', () => {
  test('Retry-After follows the drain rate: half the queue at the measured rate, not the fallback', async () => {
    let slow = true;
    // Each batch of 50 takes 100 ms: a drain near 500 events/s once measured.
    const svc = await service(
      await target(),
      { QUEUE_MAX_EVENTS: '4000', BATCH_SIZE: '50', RETRY_AFTER_SECONDS: '30' },
      { faults: { beforeWrite: () => (slow ? Bun.sleep(100) : Promise.resolve()) } },
    );
    const feed = async () => {
      for (;;) {
        const r = await svc.app.request('/events/batch', { method: 'POST', headers: json, body: batch(100) });
        if (r.status === 429) return r;
        await r.arrayBuffer();
      }
    };
    await feed();
    await Bun.sleep(3000); // the drain rate is smoothed over seconds
    const full = await feed();
    const { drainRate, depth } = (await (await svc.app.request('/health/buffer')).json()) as { drainRate: number; depth: number };
    const seconds = Number(full.headers.get('retry-after'));
    // Measured, not assumed: near 500/s here, but lower while the machine or the one embedded session
    // is busy (one run measured 90/s), so the answer is checked against the rate the service
    // reports, with the same 1..60 s bounds.
    expect(drainRate).toBeGreaterThan(1);
    expect(seconds).not.toBe(30);
    expect(Math.abs(seconds - Math.min(60, Math.max(1, Math.ceil(depth / 2 / drainRate))))).toBeLessThanOrEqual(1);
    slow = false;
  });

  test('a batch into a full queue is 429 and queues nothing of it; a batch larger than the whole queue is 413', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const svc = await service(await target(), { QUEUE_MAX_EVENTS: '100' }, { faults: { beforeWrite: () => gate } });
    expect((await svc.app.request('/events/batch', { method: 'POST', headers: json, body: batch(70) })).status).toBe(202);
    const depth = svc.queue.depth;
    const full = await svc.app.request('/events/batch', { method: 'POST', headers: json, body: batch(40) });
    expect(full.status).toBe(429);
    expect(full.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(svc.queue.depth).toBe(depth); // not 30 of the 40
    const huge = await svc.app.request('/events/batch', { method: 'POST', headers: json, body: batch(101) });
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ error: 'payload_too_large', message: expect.stringContaining('QUEUE_MAX_EVENTS=100') });
    open();
    await until(() => svc.batcher.stats.written === 70);
  });

  test('?wait=true past WAIT_TIMEOUT_MS answers 202 queued, and the event is written afterwards', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const svc = await service(await target(), { WAIT_TIMEOUT_MS: '300' }, { faults: { beforeWrite: () => gate } });
    const started = Date.now();
    const res = await postEvent(svc.app, { service: 'slow-commit', message: 'm' }, { prefer: 'wait' });
    expect(res.status).toBe(202);
    expect(res.headers.get('x-ingest-ack')).toBe('queued');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    open();
    await until(() => svc.batcher.stats.written === 1);
    expect(await countRows(svc.engine, `service = 'slow-commit'`)).toBe(1);
  });

  test('a body that is not valid UTF-8 is 400 invalid_body, on both ingest routes', async () => {
    const svc = await service(await target());
    const bad = new Uint8Array([...new TextEncoder().encode('{"service":"s","message":"'), 0xc3, 0x28, ...new TextEncoder().encode('"}')]);
    for (const path of ['/events', '/events/batch']) {
      const res = await svc.app.request(path, { method: 'POST', headers: json, body: bad });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'invalid_body', message: 'Request body is not valid UTF-8' });
    }
  });
});

describe('health and reads [embedded]', () => {
  test('/health is 503 before the database is migrated, and /health/ready 503 while draining', async () => {
    const svc = buildService(await target());
    const early = await svc.app.request('/health');
    expect(early.status).toBe(503);
    expect(await early.json()).toMatchObject({ error: 'not_ready' });
    await svc.ready;
    expect((await svc.app.request('/health/ready')).status).toBe(200);
    const stopping = svc.stop();
    const draining = await svc.app.request('/health/ready');
    expect(draining.status).toBe(503);
    expect(await draining.json()).toMatchObject({ error: 'shutting_down' });
    await stopping;
  });

  test('GET /events/:id returns the newest of two events that share an id', async () => {
    const svc = await service(await target());
    const id = '0193b7a4-5c2e-7d3f-9a1b-2c3d4e5f6a7b';
    for (const [timestamp, message] of [
      ['2024-05-01T00:00:00Z', 'older'],
      ['2024-05-02T00:00:00Z', 'newer'],
    ]) {
      expect((await postEvent(svc.app, { id, timestamp, service: 'twins', message }, { prefer: 'wait' })).status).toBe(201);
    }
    const res = await svc.app.request(`/events/${id}`);
    expect(await res.json()).toMatchObject({ id, message: 'newer', timestamp: '2024-05-02T00:00:00.000Z' });
  });
});

describe('rate budgets and request logs [embedded]', () => {
  test('the ingest and health budgets refuse with 429 rate_limited, each on its own', async () => {
    const svc = await service(await target(), { RATE_LIMIT_INGEST: '2', RATE_LIMIT_HEALTH: '2', RATE_LIMIT_QUERY: '0' });
    const ingest = [];
    for (let i = 0; i < 3; i++) ingest.push((await postEvent(svc.app, { service: 'budget', message: 'm' })).status);
    expect(ingest).toEqual([202, 202, 429]);
    const health = [];
    for (let i = 0; i < 3; i++) health.push((await svc.app.request('/health/live')).status);
    expect(health).toEqual([200, 200, 429]);
    const limited = await svc.app.request('/health');
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await limited.json()).toMatchObject({ error: 'rate_limited' });
    expect((await svc.app.request('/events?pageSize=1')).status).toBe(200); // query budget off
  });

  test.each([
    ['all', 3],
    ['errors', 1],
    ['none', 0],
  ] as const)('LOG_REQUESTS=%s logs %i of three requests (two succeed, one fails)', async (mode, expected) => {
    const lines: string[] = [];
    const svc = await service(await target(), { LOG_REQUESTS: mode }, { log: createLogger('info', (l) => lines.push(l)) });
    lines.length = 0;
    await svc.app.request('/health/live');
    await postEvent(svc.app, { service: 'logged', message: 'm' });
    await postEvent(svc.app, { service: 'bad service name', message: 'm' });
    expect(lines.filter((l) => l.includes('"msg":"request"'))).toHaveLength(expected);
  });
});

describe('maintenance on its own [embedded]', () => {
  test('jobs run on their schedule without being asked, and a failing job shows in lastError, aurore_job_failing and degraded', async () => {
    const svc = await service(await target('embedded', { fresh: true }), { AGGREGATE_REFRESH_SECONDS: '1' }, { edition: 'apache' });
    const rollup = async () => (await svc.state.jobs!.status()).find((j) => j.name === 'rollup')!;
    const runs = (await rollup()).runs;
    await until(async () => (await rollup()).runs >= runs + 2, 20_000, 'the rollup to run twice by itself');
    // Break what the job needs: its function.
    await svc.engine.exec(`ALTER FUNCTION aurore_refresh_rollups(int) RENAME TO aurore_refresh_rollups_gone`);
    await until(async () => (await rollup()).lastError !== null, 20_000, 'the rollup to fail');
    expect((await rollup()).lastError).toContain('aurore_refresh_rollups');
    const metrics = await (await svc.app.request('/metrics')).text();
    expect(metrics).toContain('aurore_job_failing{job="rollup"} 1');
    const detailed = (await (await svc.app.request('/health/detailed')).json()) as { status: string };
    expect(detailed.status).toBe('degraded');
    await svc.engine.exec(`ALTER FUNCTION aurore_refresh_rollups_gone(int) RENAME TO aurore_refresh_rollups`);
    await until(async () => (await rollup()).lastError === null, 20_000, 'the rollup to recover');
  });
});

describe.each(engines)('upgrading a database that already holds events [%s]', (kind) => {
  test('the first start with the aggregates computes them for the events already stored', async () => {
    const t = await target(kind, { fresh: true });
    // The database as the release before the aggregates left it: events, no analytics schema.
    const direct = await t.open();
    await migrate(
      direct,
      createLogger('silent'),
      loadMigrations().filter((m) => m.version <= 2),
    );
    await direct.query(
      `INSERT INTO events (id, time, service, message)
       SELECT gen_random_uuid(), now() - interval '3 days' + g * interval '1 minute', 'old-' || (g % 3), 'm' FROM generate_series(1, 2000) g`,
    );
    await direct.close();
    const svc = await service(t, {
      RETENTION_DAYS: '30',
      AGGREGATE_MINUTE_RETENTION_DAYS: '90',
      AGGREGATE_HOUR_RETENTION_DAYS: '730',
      AGGREGATE_DAY_RETENTION_DAYS: '730',
    });
    // No runAll: the first maintenance run at start does it.
    const total = async () => {
      const [r] = await svc.engine.query<{ n: number }>(`SELECT coalesce(sum(events), 0)::int AS n FROM analytics.events_per_day WHERE service LIKE 'old-%'`);
      return r!.n;
    };
    await until(async () => (await total()) === 2000, 60_000, 'the aggregates to count the 2,000 stored events');
    const [byHour] = await svc.engine.query<{ n: number }>(
      `SELECT coalesce(sum(events), 0)::int AS n FROM analytics.events_per_hour WHERE service LIKE 'old-%'`,
    );
    expect(byHour!.n).toBe(2000);
  });
});
