// Reads from a real streaming replica (pg_basebackup -R of a private native cluster): the read
// routes use it while it keeps up, the lag is reported, and reads fall back to the primary when it
// stops answering, and come back when it returns. Server engine only.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createLogger } from '../src/log';
import { engines, postEvent, privateCluster, serverTarget, startService, until, type Target } from './harness';

setDefaultTimeout(120_000);

describe.skipIf(!engines.includes('server'))('read replica [server]', () => {
  let primary: Awaited<ReturnType<typeof privateCluster>>;
  let replica: Awaited<ReturnType<Awaited<ReturnType<typeof privateCluster>>['replica']>>;
  let svc: Awaited<ReturnType<typeof startService>>;
  let target: Target | undefined;
  const lines: string[] = [];
  beforeAll(async () => {
    primary = await privateCluster();
    replica = await primary.replica();
    target = serverTarget(primary.url, async () => svc.engine);
    svc = await startService(target, { DATABASE_READ_URL: replica.url, READ_MAX_LAG_MS: '3000' }, { log: createLogger('info', (l) => lines.push(l)) });
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
    await replica?.stop().catch(() => {});
    await primary?.stop();
  });
  const reads = async () =>
    ((await (await svc.app.request('/health/database')).json()) as { reads: { using: string; lagMs: number | null; reason: string | null; target: string } })
      .reads;

  test('the read routes use the replica once it keeps up, and the lag is reported (never the password)', async () => {
    await until(async () => (await reads()).using === 'replica', 20_000, 'reads on the replica');
    const r = await reads();
    expect(r.lagMs).toBeGreaterThanOrEqual(0);
    expect(r.lagMs).toBeLessThanOrEqual(3000);
    expect(r.target).toMatch(/^127\.0\.0\.1:\d+\/aurore$/);
    expect(JSON.stringify(r)).not.toContain(new URL(replica.url).password);
    const metrics = await (await svc.app.request('/metrics')).text();
    expect(metrics).toContain('aurore_read_replica_in_use 1');
    expect(metrics).toMatch(/aurore_read_replica_lag_seconds \d/);
  });

  test('events written on the primary are read from the replica: they stay readable while the primary is down', async () => {
    for (let i = 0; i < 20; i++) expect((await postEvent(svc.app, { service: 'via-replica', message: `m${i}` }, { prefer: 'wait' })).status).toBe(201);
    await until(
      async () => ((await (await svc.app.request('/events?service=via-replica')).json()) as { pagination: { total: number } }).pagination.total === 20,
      10_000,
      'the replica to replay the 20',
    );
    await primary.pause();
    try {
      const res = await svc.app.request('/events?service=via-replica&count=exact');
      expect(res.status).toBe(200);
      expect(((await res.json()) as { pagination: { total: number } }).pagination.total).toBe(20);
      expect((await svc.app.request('/metrics/events?service=via-replica&bucket=1m')).status).toBe(200);
    } finally {
      await primary.resume();
    }
  });

  test('when the replica stops, reads fall back to the primary and say so; when it returns, they go back', async () => {
    await until(async () => (await reads()).using === 'replica', 20_000, 'reads on the replica');
    await replica.pause();
    await until(async () => (await reads()).using === 'primary', 10_000, 'the fallback');
    expect((await reads()).reason).toContain('the replica does not answer');
    expect(lines.some((l) => l.includes('reads fall back to the primary'))).toBe(true);
    const res = await svc.app.request('/events?service=via-replica&count=exact');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { pagination: { total: number } }).pagination.total).toBe(20);
    await replica.resume();
    await until(async () => (await reads()).using === 'replica', 30_000, 'reads back on the replica');
    expect(lines.some((l) => l.includes('reads go to the replica again'))).toBe(true);
  });
});
