// GET /events at real volumes: keyset cursors, filters, totals that say how they were computed,
// GET /events/:id, and parameters that cannot inject SQL. On each engine.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { countRows, engines, newTarget, startService, until, type Target } from './harness';
import { eachSlice, RangeStats, slicing } from '../src/read/slices';

// Creating an embedded database takes about 4 s (initdb), near bun's 5 s default.
setDefaultTimeout(90_000);

type Svc = Awaited<ReturnType<typeof startService>>;
interface Page {
  events: { id: string; timestamp: string; service: string; message: string; metadata: Record<string, unknown> }[];
  pagination: { total: number | null; total_is_exact: boolean; count: string; limit: number; offset: number; has_more: boolean; next_cursor: string | null };
}

const BASE = Date.parse('2024-06-01T00:00:00Z');
const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

describe.each(engines)('query API [%s]', (kind) => {
  let target: Target;
  let svc: Svc;
  const get = async (qs: string) => {
    const res = await svc.app.request(`/events?${qs}`);
    return { status: res.status, body: (await res.json()) as Page & { errors?: { field: string; message: string }[] } };
  };
  const store = async (events: unknown[]) => {
    for (let i = 0; i < events.length; i += 5000) {
      const res = await svc.app.request('/events/batch?wait=true', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(events.slice(i, i + 5000)),
      });
      expect(res.status).toBe(201);
    }
  };

  // 'walk': 250 events on only 50 distinct timestamps, ids known, so the order is known.
  const walk = Array.from({ length: 250 }, (_, n) => ({
    id: uuid(n + 1),
    service: 'walk',
    message: `walk ${n}`,
    timestamp: new Date(BASE + Math.floor(n / 5) * 1000).toISOString(),
  }));
  const newestFirst = [...walk].sort((a, b) => (a.timestamp === b.timestamp ? (a.id < b.id ? 1 : -1) : a.timestamp < b.timestamp ? 1 : -1)).map((e) => e.id);

  beforeAll(async () => {
    target = await newTarget(kind);
    svc = await startService(target, { BATCH_MAX_EVENTS: '10000' });
    await store(walk);
    const filtered = [
      { service: 'fa', message: 'Payment FAILED for order 1', metadata: { user: 'u1', tier: { level: 2 } } },
      { service: 'fa', message: 'payment ok', metadata: { user: 'u1', tier: { level: 1 } } },
      { service: 'fb', message: 'Payment failed: card declined', metadata: { user: 'u2', tier: { level: 2 } } },
      { service: 'fb', message: 'coupon 50%_off applied', metadata: { user: 'u1' } },
      { service: 'fc', message: 'coupon 50 off applied', metadata: { user: 'u2' } },
      { service: 'fc', message: 'failed login', metadata: { user: 'u1', tags: ['a', 'b'] } },
      // Values that a substring or case-blind match would take for u1.
      { service: 'fe', message: 'equality', metadata: { user: 'u10' } },
      { service: 'fe', message: 'equality', metadata: { user: 'U1' } },
      { service: 'fe', message: 'equality', metadata: { user: 'xu1' } },
    ].map((e, n) => ({ ...e, timestamp: new Date(BASE + 3_600_000 + n * 60_000).toISOString() }));
    await store(filtered);
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });

  for (const order of ['desc', 'asc'] as const) {
    test(`a cursor walk (${order}) returns every event exactly once in (time, id) order, ties included`, async () => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const { status, body } = await get(`service=walk&pageSize=7&order=${order}&count=none${cursor ? `&cursor=${cursor}` : ''}`);
        expect(status).toBe(200);
        seen.push(...body.events.map((e) => e.id));
        cursor = body.pagination.next_cursor;
        expect(body.pagination.has_more).toBe(cursor !== null);
        pages++;
      } while (cursor && pages < 100);
      expect(pages).toBe(Math.ceil(250 / 7));
      expect(seen).toEqual(order === 'desc' ? newestFirst : [...newestFirst].reverse());
    });
  }

  test('offset pages hand out a next_cursor that continues where they stopped', async () => {
    const p2 = await get('service=walk&pageSize=10&page=2');
    const next = await get(`service=walk&pageSize=10&cursor=${p2.body.pagination.next_cursor}`);
    expect(next.body.events.map((e) => e.id)).toEqual(newestFirst.slice(20, 30));
  });

  test('a cursor made for one order is refused for the other, and a forged cursor is refused', async () => {
    const p = await get('service=walk&pageSize=5&order=asc');
    const wrong = await get(`service=walk&pageSize=5&order=desc&cursor=${p.body.pagination.next_cursor}`);
    expect(wrong.status).toBe(400);
    expect(wrong.body.errors!.map((e) => e.field)).toEqual(['cursor']);
    const forged = await get(`cursor=${Buffer.from('{"t":"x","i":"y","o":"desc"}').toString('base64url')}`);
    expect(forged.status).toBe(400);
  });

  test('filters: several services, metadata containment and key=value, case-insensitive search, combined', async () => {
    const total = async (qs: string) => {
      const r = await get(qs);
      expect(r.status).toBe(200);
      return r.body.pagination.total;
    };
    expect(await total('service=fa,fb')).toBe(4);
    expect(await total('service=fa&service=fc')).toBe(4);
    expect(await total(`metadata=${encodeURIComponent('{"user":"u1"}')}`)).toBe(4);
    expect(await total(`metadata=${encodeURIComponent('{"tier":{"level":2}}')}`)).toBe(2);
    expect(await total(`metadata=${encodeURIComponent('{"tags":["b"]}')}`)).toBe(1);
    expect(await total('metadata.user=u2')).toBe(2);
    // metadata.<key>=value is equality: not u10, U1 or xu1.
    expect(await total('metadata.user=u1')).toBe(4);
    expect(await total('metadata.user=u10')).toBe(1);
    expect(await total('metadata.user=U1')).toBe(1);
    expect(await total('metadata.tier.level=2')).toBe(2);
    expect(await total('q=FAILED')).toBe(3);
    expect(await total(`q=${encodeURIComponent('50%_off')}`)).toBe(1); // % and _ are literal
    expect(await total('service=fa,fb,fc&q=payment&metadata.user=u1')).toBe(2);
    const from = new Date(BASE + 3_600_000 + 60_000).toISOString();
    const to = new Date(BASE + 3_600_000 + 3 * 60_000).toISOString();
    expect(await total(`service=fa,fb,fc&q=payment&from=${from}&to=${to}`)).toBe(2);
  });

  test('a metadata key named __proto__ filters like any other (it was dropped: the filter matched every event)', async () => {
    const at = new Date(BASE + 7_200_000).toISOString();
    await store([
      { service: 'proto', message: 'own key', timestamp: at, metadata: Object.fromEntries([['__proto__', 'p1']]) },
      { service: 'proto', message: 'other', timestamp: at, metadata: { user: 'u9' } },
    ]);
    const r = await get('service=proto&metadata.__proto__=p1');
    expect(r.status).toBe(200);
    expect(r.body.events.map((e) => e.message)).toEqual(['own key']);
    expect((await get('service=proto&metadata.__proto__=nope')).body.pagination.total).toBe(0);
  });

  test('totals say how they were computed: exact when small, from the aggregates beyond 10,000, or none', async () => {
    const small = await get('service=walk&pageSize=1');
    expect(small.body.pagination).toMatchObject({ total: 250, total_is_exact: true, count: 'exact' });
    const none = await get('service=walk&pageSize=1&count=none');
    expect(none.body.pagination).toMatchObject({ total: null, total_is_exact: false, count: 'none', has_more: true });
    const est = await get('service=walk&pageSize=1&count=estimate');
    expect(est.body.pagination).toMatchObject({ total_is_exact: false, count: 'estimate' });
    expect(typeof est.body.pagination.total).toBe('number');

    await store(Array.from({ length: 10_050 }, (_, n) => ({ service: 'bulk', message: `b${n}`, timestamp: new Date(BASE + 7_200_000 + n).toISOString() })));
    // Past 10,000: from the aggregates, exact once they have counted these events, an estimate before.
    const big = await get('service=bulk&pageSize=1');
    expect(big.body.pagination).toMatchObject(big.body.pagination.total_is_exact ? { total: 10_050, count: 'exact' } : { count: 'estimate' });
    expect(big.body.pagination.total!).toBeGreaterThan(10_000);
    await svc.state.jobs!.runAll();
    expect((await get('service=bulk&pageSize=1')).body.pagination).toMatchObject({ total: 10_050, total_is_exact: true, count: 'exact' });
    const exact = await get('service=bulk&pageSize=1&count=exact');
    expect(exact.body.pagination).toMatchObject({ total: 10_050, total_is_exact: true, count: 'exact' });
  });

  test('GET /events/:id returns the event, 404 when absent, 400 when not a UUID', async () => {
    const res = await svc.app.request(`/events/${uuid(42)}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: uuid(42), eventId: uuid(42), service: 'walk', message: 'walk 41' });
    expect((await svc.app.request(`/events/${uuid(999_999)}`)).status).toBe(404);
    const bad = await svc.app.request('/events/not-a-uuid');
    expect(bad.status).toBe(400);
  });

  test('every bad parameter is a 400 naming it', async () => {
    const r = await get(`order=sideways&count=maybe&metadata=notjson&q=${'x'.repeat(201)}&pageSize=0&service=ok,bad%20name`);
    expect(r.status).toBe(400);
    expect(r.body.errors!.map((e) => e.field).sort()).toEqual(['count', 'metadata', 'order', 'pageSize', 'q', 'service']);
    const key = await get(`metadata.${encodeURIComponent("x'--")}=1`);
    expect(key.status).toBe(400);
    expect(key.body.errors![0]!.field).toMatch(/^metadata\./);
    const both = await get(`page=2&cursor=${(await get('service=walk&pageSize=1')).body.pagination.next_cursor}`);
    expect(both.body.errors!.map((e) => e.field)).toEqual(['page']);
  });

  test('filters holding what no event can (NUL, an unpaired surrogate) are a 400 naming the parameter, not a database error', async () => {
    // PostgreSQL text takes no NUL and jsonb no lone surrogate: sent on, each was a 500.
    const cases: [string, string][] = [
      [`q=${encodeURIComponent('a\u0000b')}`, 'q'],
      [`metadata.user=${encodeURIComponent('u1\u0000')}`, 'metadata.user'],
      [`metadata=${encodeURIComponent('{"user":"\\u0000"}')}`, 'metadata'],
      [`metadata=${encodeURIComponent('{"\\u0000":"u1"}')}`, 'metadata'],
      [`metadata=${encodeURIComponent('{"user":["\\ud800"]}')}`, 'metadata'],
    ];
    for (const [qs, field] of cases) {
      const r = await get(qs);
      expect({ qs, status: r.status }).toEqual({ qs, status: 400 });
      expect(r.body.errors).toEqual([{ field, message: expect.stringContaining('NUL') }]);
    }
    // A backslash and a u written out are only text, and searchable.
    expect((await get(`metadata=${encodeURIComponent('{"user":"\\\\u0000"}')}`)).status).toBe(200);
  });

  test('SQL injection attempts are inert: refused, or matched literally as data', async () => {
    const before = await countRows(svc.engine);
    const attempts = [
      `q=${encodeURIComponent("'; DROP TABLE events; --")}`,
      `q=${encodeURIComponent("x' OR '1'='1")}`,
      `metadata=${encodeURIComponent(`{"user":"u1' OR '1'='1"}`)}`,
      `metadata.user=${encodeURIComponent("u1' OR '1'='1")}`,
      `metadata=${encodeURIComponent(`{"x') OR true; --":"y"}`)}`,
    ];
    for (const qs of attempts) {
      const r = await get(qs);
      expect(r.status).toBe(200);
      expect(r.body.pagination.total).toBe(0);
    }
    const svcInjection = await get(`service=${encodeURIComponent("walk' OR '1'='1")}`);
    expect(svcInjection.status).toBe(400);
    const idInjection = await svc.app.request(`/events/${encodeURIComponent("1' OR '1'='1")}`);
    expect(idInjection.status).toBe(400);
    expect(await countRows(svc.engine)).toBe(before);
  });
});

describe.each(engines)('message search index [%s]', (kind) => {
  test('SEARCH_INDEX=trgm builds a trigram index and search answers the same', async () => {
    const target = await newTarget(kind);
    const svc = await startService(target, { SEARCH_INDEX: 'trgm' });
    try {
      const db = (await (await svc.app.request('/health/database')).json()) as { messageSearchIndex: boolean };
      expect(db.messageSearchIndex).toBe(true);
      const res = await svc.app.request('/events/batch?wait=true', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([
          { service: 's', message: 'Disk FULL on host-7' },
          { service: 's', message: 'all good' },
        ]),
      });
      expect(res.status).toBe(201);
      const found = (await (await svc.app.request('/events?q=disk%20full')).json()) as { pagination: { total: number } };
      expect(found.pagination.total).toBe(1);
    } finally {
      await svc.stop();
      await target.destroy();
    }
  });

  test('without it, /health/database says search is unindexed', async () => {
    const target = await newTarget(kind);
    const svc = await startService(target);
    try {
      const db = (await (await svc.app.request('/health/database')).json()) as { messageSearchIndex: boolean };
      expect(db.messageSearchIndex).toBe(false);
    } finally {
      await svc.stop();
      await target.destroy();
    }
  });
});

describe.skipIf(!engines.includes('server'))('reads end with their request [server]', () => {
  // A read blocked behind a lock stands for any slow one (a month of message search): deterministic.
  let target: Target;
  let svc: Svc;
  let locker: postgres.Sql; // holds the lock in a transaction: its one connection is busy
  let watcher: postgres.Sql;
  let release: () => void = () => {};
  const reads = () =>
    watcher<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'aurore-events' AND datname = current_database() AND query LIKE '%FROM events%' AND state = 'active'`.then(
      (r) => r[0]!.n,
    );
  beforeAll(async () => {
    target = await newTarget('server');
    svc = await startService(target, { REQUEST_TIMEOUT_MS: '1500', WAIT_TIMEOUT_MS: '1000' });
    locker = postgres(target.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
    watcher = postgres(target.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    release();
    await locker?.end();
    await watcher?.end();
    await svc?.stop();
    await target?.destroy();
  });

  /** Takes an ACCESS EXCLUSIVE lock on events, held until release(); `done` settles when it is let go. */
  async function lockEvents() {
    let locked!: () => void;
    const held = new Promise<void>((r) => (locked = r));
    const done = locker.begin(async (tx) => {
      await tx`LOCK TABLE events IN ACCESS EXCLUSIVE MODE`;
      locked();
      await new Promise<void>((r) => (release = r));
    });
    await held;
    return { done };
  }

  test('a read past REQUEST_TIMEOUT_MS is answered 503 request_timeout and its statement is cancelled on the server', async () => {
    const { done } = await lockEvents();
    try {
      const res = await svc.app.request('/events?q=anything&from=2024-01-01T00:00:00Z');
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string }).error).toBe('request_timeout');
      // Left running, it would wait for the lock as long as it is held.
      await until(async () => (await reads()) === 0, 5000, 'the timed-out read to be cancelled');
    } finally {
      release();
      await done;
    }
  });

  test('a read whose client went away is cancelled on the server', async () => {
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: svc.app.fetch });
    const { done } = await lockEvents();
    try {
      const ac = new AbortController();
      const pending = fetch(`http://127.0.0.1:${server.port}/events?service=gone`, { signal: ac.signal }).catch(() => null);
      await until(async () => (await reads()) > 0, 5000, 'the read to reach the database');
      ac.abort();
      await pending;
      await until(async () => (await reads()) === 0, 1000, 'the abandoned read to be cancelled (REQUEST_TIMEOUT_MS is 1.5 s away)');
    } finally {
      release();
      await done;
      server.stop(true);
    }
  });
});

describe('reads in time slices [embedded]', () => {
  // Message search and metadata filters read rows one by one; on the embedded engine they run as a
  // series of time slices (src/read/slices.ts) so that writes go between them.
  let target: Target;
  let svc: Svc;
  const get = async (qs: string) => (await (await svc.app.request(`/events?${qs}`)).json()) as Page;
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target);
    // 3,000 events over 40 days in uneven bursts, to the microsecond, many on shared instants and on
    // millisecond edges (where slices meet); every third is a needle, every fifth has tag=x.
    await svc.engine.exec(
      `INSERT INTO events (id, time, service, message, metadata)
       SELECT gen_random_uuid(),
              timestamptz '2024-03-01 00:00:00+00' + ((g / 100) * interval '31 hours') + ((g % 100) / 7) * interval '250 microseconds',
              'slice-' || (g % 3), CASE WHEN g % 3 = 0 THEN 'a needle ' || g ELSE 'hay ' || g END,
              CASE WHEN g % 5 = 0 THEN '{"tag":"x"}'::jsonb ELSE '{}'::jsonb END
       FROM generate_series(1, 3000) g`,
      { transaction: false },
    );
  });
  afterAll(async () => {
    Object.assign(slicing, defaults);
    await svc?.stop();
    await target?.destroy();
  });
  // Slices of a few hundred rows, so that these few thousand events make many.
  const defaults = { ...slicing };
  beforeAll(() => void Object.assign(slicing, { firstRows: 200, rangeKeptMs: 0 }));

  const expected = (where: string, dir: 'ASC' | 'DESC') =>
    svc.engine.query<{ id: string }>(`SELECT id FROM events WHERE ${where} ORDER BY time ${dir}, id ${dir}`).then((r) => r.map((x) => x.id));

  async function walk(qs: string) {
    const ids: string[] = [];
    let cursor = '';
    for (let i = 0; i < 1000; i++) {
      const page = await get(`${qs}&pageSize=97${cursor ? `&cursor=${cursor}&count=none` : ''}`);
      ids.push(...page.events.map((e) => e.id));
      if (!page.pagination.next_cursor) return ids;
      cursor = page.pagination.next_cursor;
    }
    throw new Error('no end');
  }

  test('pages of a search and of a metadata filter, walked with cursors or offsets both ways, are every match once in order, and their totals exact', async () => {
    for (const [qs, where] of [
      ['q=needle', `message ILIKE '%needle%'`],
      ['metadata.tag=x', `metadata->>'tag' = 'x'`],
      [
        'q=needle&metadata.tag=x&from=2024-03-10T00:00:00Z&to=2024-04-01T00:00:00Z',
        `message ILIKE '%needle%' AND metadata->>'tag' = 'x' AND time >= '2024-03-10' AND time <= '2024-04-01'`,
      ],
    ] as const) {
      for (const order of ['desc', 'asc'] as const) {
        const want = await expected(where, order === 'desc' ? 'DESC' : 'ASC');
        expect(want.length).toBeGreaterThan(50);
        expect({ qs, order, ids: await walk(`${qs}&order=${order}`) }).toEqual({ qs, order, ids: want });
        // The MVP's offset pages: the same matches, page after page.
        const paged: string[] = [];
        for (let p = 1; p <= Math.ceil(want.length / 97); p++)
          paged.push(...(await get(`${qs}&order=${order}&page=${p}&pageSize=97&count=none`)).events.map((e) => e.id));
        expect({ qs, order, paged }).toEqual({ qs, order, paged: want });
        for (const count of ['exact', 'auto']) {
          const first = await get(`${qs}&order=${order}&count=${count}`);
          expect({ qs, count, total: first.pagination.total, exact: first.pagination.total_is_exact }).toEqual({ qs, count, total: want.length, exact: true });
        }
      }
    }
    // A search that matches nothing reads the whole range and says so.
    const none = await get('q=no%20such%20text');
    expect({ n: none.events.length, total: none.pagination.total, more: none.pagination.has_more }).toEqual({ n: 0, total: 0, more: false });
  });

  test('events older or newer than the kept range figures are still found', async () => {
    slicing.rangeKeptMs = 60_000;
    try {
      expect((await get('q=needle&count=exact')).pagination.total).toBeGreaterThan(0); // figures kept now
      await svc.engine.exec(
        `INSERT INTO events (id, time, service, message) VALUES
           (gen_random_uuid(), '2023-01-01 00:00:00+00', 'late', 'stale needle below'),
           (gen_random_uuid(), '2024-12-01 00:00:00+00', 'late', 'stale needle above')`,
        { transaction: false },
      );
      for (const order of ['desc', 'asc']) expect((await walk(`q=stale%20needle&order=${order}`)).length).toBe(2);
      expect((await get('q=stale%20needle&from=2024-11-01T00:00:00Z')).events.map((e) => e.message)).toEqual(['stale needle above']);
      expect((await get('q=stale%20needle&to=2023-06-01T00:00:00Z')).events.map((e) => e.message)).toEqual(['stale needle below']);
    } finally {
      slicing.rangeKeptMs = 0;
    }
  });

  test('a write waits for a slice of a long search, not for the whole search', async () => {
    // 300,000 more events (one a second, 3.5 days): a search matching none of them reads them all.
    await svc.engine.exec(
      `INSERT INTO events (id, time, service, message) SELECT gen_random_uuid(), timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second', 'bulk', 'bulk ' || g FROM generate_series(1, 300000) g`,
      { transaction: false },
    );
    await svc.state.jobs!.runAll(); // its aggregates, now rather than during the measurement
    slicing.firstRows = 20_000; // several slices whatever the machine's pace
    const ended: string[] = [];
    const search = Promise.resolve(svc.app.request('/events?q=nothing%20like%20this&count=none')).then(async (r) => {
      expect(r.status).toBe(200);
      ended.push('search');
    });
    await Bun.sleep(30);
    const write = Promise.resolve(
      svc.app.request('/events?wait=true', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ service: 'w', message: 'during a search' }),
      }),
    ).then((r) => {
      expect(r.status).toBe(201);
      ended.push('write');
    });
    await Promise.all([search, write]);
    // One statement for the whole search would have held the database until it ended.
    expect(ended).toEqual(['write', 'search']);
  });
});

describe('time slices partition the range [embedded]', () => {
  test('with an event on every whole second (and slices of whole seconds), every event is in exactly one slice, both ways', async () => {
    const target = await newTarget('embedded');
    const svc = await startService(target);
    const defaults = { ...slicing };
    try {
      await svc.engine.exec(
        `INSERT INTO events (id, time, service, message) SELECT gen_random_uuid(), timestamptz '2024-05-01 00:00:00+00' + g * interval '1 second', 'edge', 'e' FROM generate_series(0, 19999) g`,
        { transaction: false },
      );
      const all = (await svc.engine.query<{ id: string }>('SELECT id FROM events')).map((r) => r.id).sort();
      slicing.firstRows = 300;
      for (const order of ['desc', 'asc'] as const) {
        const seen: string[] = [];
        let slices = 0;
        await eachSlice(
          svc.engine,
          { order },
          0,
          async (where, params) => {
            slices++;
            seen.push(...(await svc.engine.query<{ id: string }>(`SELECT id FROM events WHERE ${where}`, params)).map((r) => r.id));
            return 'more';
          },
          new RangeStats(),
        );
        expect(slices).toBeGreaterThan(2);
        expect({ order, ids: seen.sort() }).toEqual({ order, ids: all });
      }
    } finally {
      Object.assign(slicing, defaults);
      await svc.stop();
      await target.destroy();
    }
  });
});
