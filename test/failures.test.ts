// Failures: a row the database refuses, a database that goes away under load, sustained overload.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { countRows, engines, newTarget, postEvent, privateCluster, serverTarget, startService, until, type Target } from './harness';

// Creating an embedded database takes about 4 s (initdb), near bun's 5 s default.
setDefaultTimeout(90_000);

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
async function target(kind: Target['kind']) {
  const t = await newTarget(kind);
  cleanups.push(() => t.destroy());
  return t;
}
async function service(...args: Parameters<typeof startService>) {
  const s = await startService(...args);
  cleanups.push(() => s.stop());
  return s;
}
const ev = (service: string, i: number, message = `m${i}`) => ({ service, message, metadata: { i } });

describe.each(engines)('failures [%s]', (kind) => {
  test('a row the database refuses lands in events_rejected while its batch-mates are stored', async () => {
    const svc = await service(await target(kind));
    // An operator's constraint the edge validation knows nothing about: the database is the judge.
    await svc.engine.exec(`ALTER TABLE events ADD CONSTRAINT no_poison CHECK (message NOT LIKE 'poison%')`);
    const items = Array.from({ length: 10 }, (_, i) => ev('quarantine', i, i === 6 ? 'poison pill' : `m${i}`));
    const res = await svc.app.request('/events/batch?wait=true', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(items),
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { accepted: number; rejected: number; errors: { index: number; field: string; message: string }[] };
    expect(body).toMatchObject({ accepted: 9, rejected: 1 });
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0]).toMatchObject({ index: 6, field: '(database)' });
    expect(body.errors[0]!.message).toContain('no_poison');
    expect(await countRows(svc.engine, `service = 'quarantine'`)).toBe(9);
    const q = await svc.engine.query<{ error_code: string; record: string }>(`SELECT error_code, record FROM events_rejected`);
    expect(q).toHaveLength(1);
    expect(q[0]!.error_code).toBe('23514');
    expect(JSON.parse(q[0]!.record)).toMatchObject({ service: 'quarantine', message: 'poison pill', metadata: { i: 6 } });
    expect(svc.batcher.stats.rejected).toBe(1);

    // A single waiting event that is refused is told so (422), not acknowledged as stored.
    const single = await postEvent(svc.app, ev('quarantine', 99, 'poison again'), { prefer: 'wait' });
    expect(single.status).toBe(422);
    expect(((await single.json()) as { error: string }).error).toBe('rejected_by_database');
    // Without wait, a refused event is accepted (202) and still never lost: it is in quarantine.
    expect((await postEvent(svc.app, ev('quarantine', 100, 'poison third'))).status).toBe(202);
    await until(() => svc.batcher.stats.rejected === 3);
    expect(await countRows(svc.engine, 'true')).toBe(9);
    const [n] = await svc.engine.query<{ n: number }>(`SELECT count(*)::int AS n FROM events_rejected`);
    expect(n!.n).toBe(3);
  });

  test('sustained overload answers 429 with Retry-After, never 5xx, and memory stays bounded', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const svc = await service(await target(kind), { QUEUE_MAX_EVENTS: '2000', QUEUE_MAX_BYTES: String(1024 * 1024) }, { faults: { beforeWrite: () => gate } });
    const body = JSON.stringify({ service: 'overload', message: 'x'.repeat(500), metadata: { pad: 'y'.repeat(500) } });
    Bun.gc(true);
    const rssBefore = process.memoryUsage().rss;
    const statuses = new Map<number, number>();
    let retryAfterSeen = true;
    for (let round = 0; round < 40; round++) {
      const replies = await Promise.all(Array.from({ length: 250 }, () => postEvent(svc.app, body)));
      for (const r of replies) {
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 429 && !r.headers.get('retry-after')) retryAfterSeen = false;
        await r.arrayBuffer();
      }
    }
    Bun.gc(true);
    const grownMb = (process.memoryUsage().rss - rssBefore) / 1024 / 1024;
    expect([...statuses.keys()].sort()).toEqual([202, 429]);
    expect(retryAfterSeen).toBe(true);
    const accepted = statuses.get(202)!;
    expect(accepted).toBeLessThanOrEqual(2000);
    expect(svc.queue.usedBytes).toBeLessThanOrEqual(1024 * 1024);
    expect(statuses.get(429)).toBe(10_000 - accepted);
    expect(grownMb).toBeLessThan(60); // 10,000 requests of 1 KB (13-27 MB measured); the queue itself is a fixed 1 MiB
    open();
    await until(() => svc.batcher.stats.written === accepted);
    expect(await countRows(svc.engine, `service = 'overload'`)).toBe(accepted);
  });
});

describe.each(engines)('database failure [%s]', (kind) => {
  // The embedded engine cannot be stopped from outside: the writer fails every attempt as a lost
  // connection would (a test fault), which drives the same breaker, refusals and recovery.
  test('writes failing under load: the breaker opens, a full queue answers 503 database_unavailable with Retry-After, 202s resume after, every accepted event is written once', async () => {
    let down = false;
    const svc = await service(
      await target(kind),
      { QUEUE_MAX_EVENTS: '500', CIRCUIT_BREAKER_THRESHOLD: '3', CIRCUIT_BREAKER_COOLDOWN_MS: '300', WRITE_RETRY_MAX_MS: '100', RETRY_AFTER_SECONDS: '4' },
      { faults: { databaseDown: () => down } },
    );
    const statuses = new Map<number, number>();
    const refusals: { status: number; retryAfter: string | null; error: string }[] = [];
    let accepted = 0;
    let stop = false;
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await postEvent(svc.app, ev('db-down', i));
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 202) accepted++;
        else refusals.push({ status: r.status, retryAfter: r.headers.get('retry-after'), error: ((await r.json()) as { error: string }).error });
        if (i % 20 === 0) await Bun.sleep(1);
      }
    })();
    // A failing step must not leave this loop posting for the rest of the suite (once seen: every
    // later file ran 3x slower and two more timed out).
    cleanups.push(async () => {
      stop = true;
      await load;
    });
    await until(() => accepted > 200);
    down = true;
    // Once seen timing out in a full suite run (not again in 14 runs alone): say what the writers were doing.
    const writers = () => `the circuit breaker to open (breaker ${svc.batcher.breaker}, ${JSON.stringify({ ...svc.batcher.stats, depth: svc.queue.depth })})`;
    await until(() => svc.batcher.breaker === 'open', 20_000, writers);
    const buffer = (await (await svc.app.request('/health/buffer')).json()) as { breaker: string; failed: number };
    expect(buffer.breaker).toBe('open');
    await until(() => refusals.length > 20, 20_000, 'the full queue to refuse');
    const acceptedWhileDown = accepted;
    down = false;
    await until(() => accepted > acceptedWhileDown + 200 && svc.batcher.breaker === 'closed', 30_000, 'new events to be accepted again');
    stop = true;
    await load;
    await until(() => svc.queue.depth === 0, 30_000, 'the backlog to be written');

    // Refused only for want of room: 503 while the breaker is open, 429 while it is still counting
    // failures or has just closed with the queue still full. Never a 5xx of another kind.
    expect([...statuses.keys()].every((s) => s === 202 || s === 429 || s === 503)).toBe(true);
    for (const r of refusals)
      expect(r).toEqual(
        r.status === 503
          ? { status: 503, retryAfter: expect.stringMatching(/^\d+$/), error: 'database_unavailable' }
          : { status: 429, retryAfter: expect.stringMatching(/^\d+$/), error: 'queue_full' },
      );
    const unavailable = refusals.filter((r) => r.status === 503);
    expect(unavailable.length).toBeGreaterThan(10);
    expect(Math.min(...unavailable.map((r) => Number(r.retryAfter)))).toBeGreaterThanOrEqual(4); // at least RETRY_AFTER_SECONDS while the breaker is open
    expect(await countRows(svc.engine, `service = 'db-down'`)).toBe(accepted);
    const [d] = await svc.engine.query<{ n: number }>(`SELECT count(DISTINCT id)::int AS n FROM events WHERE service = 'db-down'`);
    expect(d!.n).toBe(accepted);
    expect(svc.batcher.stats.failedAttempts).toBeGreaterThanOrEqual(3);
    expect(svc.batcher.stats.written).toBe(accepted);
  });
});

// Stopping the database mid-load needs a server we own: a private native cluster (scripts/pg-cluster.sh).
// It runs where the server engine runs (TEST_DATABASE_URL set, so TimescaleDB is installed natively).
describe.skipIf(!engines.includes('server'))('database outage [server]', () => {
  test('the server stopped mid-load then restarted: nothing lost, nothing duplicated, breaker opens and closes', async () => {
    const cluster = await privateCluster();
    cleanups.push(() => cluster.stop());
    const url = cluster.url;
    const own = serverTarget(url, async () => svc.engine);
    cleanups.push(() => own.destroy());
    const svc = await service(own, {
      QUEUE_MAX_EVENTS: '3000',
      CIRCUIT_BREAKER_THRESHOLD: '3',
      CIRCUIT_BREAKER_COOLDOWN_MS: '300',
      WRITE_RETRY_MAX_MS: '200',
    });

    let accepted = 0;
    const statuses = new Map<number, number>();
    let stop = false;
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await postEvent(svc.app, ev('outage', i));
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 202) accepted++;
        else expect(r.headers.get('retry-after')).not.toBeNull();
        if (i % 20 === 0) await Bun.sleep(1);
      }
    })();
    // A failing step must not leave this loop posting for the rest of the suite (once seen: every
    // later file ran 3x slower and two more timed out).
    cleanups.push(async () => {
      stop = true;
      await load;
    });
    await until(() => accepted > 300);
    await cluster.pause(); // immediate stop: connections die mid-transaction
    // Timed out about once in 30 runs, until the driver's poisoned reconnect was fixed (test/driver.test.ts):
    // on a timeout, say what the writers were doing.
    const writers = () => `the circuit breaker to open (breaker ${svc.batcher.breaker}, ${JSON.stringify({ ...svc.batcher.stats, depth: svc.queue.depth })})`;
    await until(() => svc.batcher.breaker === 'open', 20_000, writers);
    const health = (await (await svc.app.request('/health/database')).json()) as { connected: boolean; breaker: string };
    expect(health).toMatchObject({ connected: false, breaker: 'open' });
    await until(() => svc.queue.depth >= 3000, 20_000, 'the queue to fill while the database is down');
    await Bun.sleep(200);
    const acceptedWhileDown = accepted;
    await cluster.resume();
    // New events are accepted again (the queue drains), not only the old ones written.
    const state = (what: string) => () =>
      `${what} (accepted ${accepted}, ${acceptedWhileDown} while down, breaker ${svc.batcher.breaker}, ${JSON.stringify({ ...svc.batcher.stats, depth: svc.queue.depth, statuses: Object.fromEntries(statuses) })})`;
    await until(() => accepted > acceptedWhileDown + 100 && svc.batcher.breaker === 'closed', 30_000, state('new events to be accepted again'));
    stop = true;
    await load;
    await until(() => svc.queue.depth === 0 && svc.batcher.stats.written === accepted, 30_000, state('the backlog to be written'));

    expect(statuses.get(503) ?? 0).toBeGreaterThan(0); // queue full while the database was down
    expect([...statuses.keys()].every((s) => s === 202 || s === 503 || s === 429)).toBe(true);
    expect(await countRows(svc.engine, `service = 'outage'`)).toBe(accepted);
    const [d] = await svc.engine.query<{ n: number }>(`SELECT count(DISTINCT id)::int AS n FROM events`);
    expect(d!.n).toBe(accepted);
    expect(svc.batcher.stats.failedAttempts).toBeGreaterThan(0);
  });
});
