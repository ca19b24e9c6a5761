// Rate limits: budgets per route kind and per key, the standard headers, and one budget shared by
// two service instances through a real redis-server (started here; .ci/run installs it), which
// the service outlives: while Redis is gone, requests are answered, uncounted.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { logLines, newTarget, postEvent, startRedis, startService, until, type Target } from './harness';

// Creating an embedded database takes about 4 s (initdb), near bun's 5 s default.
setDefaultTimeout(60_000);

const K1 = 'first-key-0123456789abc';
const K2 = 'second-key-0123456789ab';
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function svcWith(env: Record<string, string>) {
  const t: Target = await newTarget('embedded');
  cleanups.push(() => t.destroy());
  const s = await startService(t, env);
  cleanups.push(() => s.stop());
  return s;
}
const get = (svc: { app: { request: (p: string, i?: RequestInit) => Response | Promise<Response> } }, key?: string) =>
  svc.app.request('/events?pageSize=1', { headers: key ? { authorization: `Bearer ${key}` } : {} });

describe('rate limits [embedded]', () => {
  test('every answer under a budget announces it, the single-event 202 (built apart from the others) included', async () => {
    const svc = await svcWith({ RATE_LIMIT_INGEST: '50', RATE_LIMIT_QUERY: '7' });
    const one = await postEvent(svc.app, { service: 's', message: 'm' });
    expect(one.status).toBe(202);
    expect(one.headers.get('ratelimit-policy')).toBe('50;w=60');
    expect(one.headers.get('ratelimit')).toMatch(/^limit=50, remaining=49, reset=(59|60)$/);
    const batch = await svc.app.request('/events/batch', {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: '{"service":"s","message":"m"}',
    });
    expect(batch.status).toBe(202);
    expect(batch.headers.get('ratelimit')).toMatch(/^limit=50, remaining=48, reset=/);
    const bad = await postEvent(svc.app, { service: '', message: 'm' });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('ratelimit')).toMatch(/^limit=50, remaining=47, reset=/);
    const query = await get(svc);
    expect(query.headers.get('ratelimit-policy')).toBe('7;w=60');
    expect(query.headers.get('ratelimit')).toMatch(/^limit=7, remaining=6, reset=/);
  });

  test('over the query budget is 429 rate_limited with Retry-After; ingest and health keep their own budgets', async () => {
    const svc = await svcWith({ RATE_LIMIT_QUERY: '3', RATE_LIMIT_WINDOW_MS: '60000' });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(svc)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const limited = await get(svc);
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.headers.get('ratelimit-policy')).toBe('3;w=60');
    expect(limited.headers.get('ratelimit')).toContain('limit=3');
    expect(await limited.json()).toMatchObject({ statusCode: 429, error: 'rate_limited' });
    expect((await postEvent(svc.app, { service: 's', message: 'm' })).status).toBe(202);
    expect((await svc.app.request('/health')).status).toBe(200);
    const metrics = await (await svc.app.request('/metrics')).text();
    expect(metrics).toMatch(/^aurore_requests_rate_limited_total 2$/m);
  });

  test('each API key has its own budget', async () => {
    const svc = await svcWith({ API_KEYS: `one:query:${K1},two:query:${K2}`, RATE_LIMIT_QUERY: '2' });
    expect([(await get(svc, K1)).status, (await get(svc, K1)).status, (await get(svc, K1)).status]).toEqual([200, 200, 429]);
    expect((await get(svc, K2)).status).toBe(200);
  });
});

const redisBin = Bun.which('redis-server');
describe.skipIf(!redisBin)('shared rate limits through Redis', () => {
  let redis: Awaited<ReturnType<typeof startRedis>> | undefined;
  let url = '';
  beforeAll(async () => {
    redis = await startRedis();
    url = redis.url;
  });
  afterAll(() => redis?.stop());

  test('two service instances share one budget', async () => {
    const env = { API_KEYS: `one:query:${K1}`, RATE_LIMIT_QUERY: '5', REDIS_URL: url };
    const a = await svcWith(env);
    const b = await svcWith(env);
    const statuses = [];
    for (const svc of [a, b, a, b, a]) statuses.push((await get(svc, K1)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    expect((await get(b, K1)).status).toBe(429); // the sixth request, whichever instance takes it
    expect((await get(a, K1)).status).toBe(429);
  });
});

describe.skipIf(!redisBin)('rate limits while Redis is gone', () => {
  test('requests are answered at once and uncounted while the shared store is down or hung; counted again once it is back', async () => {
    let redis = await startRedis();
    cleanups.push(() => redis.stop());
    const svc = await svcWith({ API_KEYS: `one:ingest+query:${K1}`, RATE_LIMIT_QUERY: '3', REDIS_URL: redis.url });
    const storeUp = async () => Number((await svc.metrics.registry.getSingleMetricAsString('aurore_rate_limit_store_up')).match(/ (\d)$/m)?.[1]);
    expect((await get(svc, K1)).status).toBe(200);
    expect(await storeUp()).toBe(1);

    await redis.stop();
    const started = Date.now();
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await get(svc, K1)).status);
    const posted = await postEvent(svc.app, { service: 'redis-gone', message: 'm' }, { authorization: `Bearer ${K1}` });
    expect(statuses).toEqual(Array(8).fill(200)); // over the budget of 3: nothing counts them
    expect(posted.status).toBe(202);
    expect(Date.now() - started).toBeLessThan(3_000); // not a wait per request
    expect(await storeUp()).toBe(0);
    expect(logLines.some((l) => l.includes('the shared store (REDIS_URL) does not answer'))).toBe(true);

    redis = await startRedis(redis.port); // back, empty: the budget counts from zero
    await until(async () => (await get(svc, K1)).status === 429, 15_000, 'the budget to be counted again');
    expect(await storeUp()).toBe(1);

    // Hung: connected, silent. One request a second waits for it (500 ms), the others do not.
    redis.signal('SIGSTOP');
    try {
      const hung = Date.now();
      for (let i = 0; i < 12; i++)
        expect((await postEvent(svc.app, { service: 'redis-hung', message: `m${i}` }, { authorization: `Bearer ${K1}` })).status).toBe(202);
      expect(Date.now() - hung).toBeLessThan(2_500);
      expect(await storeUp()).toBe(0);
    } finally {
      redis.signal('SIGCONT');
    }
  });
});
