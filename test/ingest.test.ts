// POST /events and GET /events through the real app, on each engine.
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test';
import { countRows, engines, newTarget, postEvent, startService, until, type Target } from './harness';

// Creating an embedded database takes about 4 s (initdb), near bun's 5 s default.
setDefaultTimeout(60_000);

type Svc = Awaited<ReturnType<typeof startService>>;

describe.each(engines)('ingest and query [%s]', (kind) => {
  let target: Target;
  let svc: Svc;
  beforeAll(async () => {
    target = await newTarget(kind);
    svc = await startService(target);
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });
  const written = (n: number) => until(() => svc.batcher.stats.written >= n, 20_000, `${n} events written`);

  test('an accepted event comes back from GET /events with every field intact, metadata as an object', async () => {
    const sent = {
      timestamp: '2024-01-15T10:30:00.123+02:00',
      service: 'roundtrip-svc',
      message: 'User login successful — ünïcødé ✓ "quoted" \\ back\nslash',
      metadata: { user_id: '12345', ip_address: '192.168.1.1', nested: { list: [1, 'two', null, true], n: 1.5 } },
    };
    const res = await postEvent(svc.app, sent);
    expect(res.status).toBe(202);
    const ack = (await res.json()) as { statusCode: number; message: string; eventId: string };
    expect(ack).toMatchObject({ statusCode: 202, message: 'Event accepted' });
    expect(ack.eventId).toMatch(/^[0-9a-f-]{36}$/);
    await written(1);

    const got = await svc.app.request('/events?service=roundtrip-svc');
    expect(got.status).toBe(200);
    const body = (await got.json()) as { events: Record<string, unknown>[]; pagination: unknown };
    expect(body.pagination).toMatchObject({ total: 1, limit: 100, offset: 0, has_more: false, total_is_exact: true });
    const ev = body.events[0]!;
    expect(ev.id).toBe(ack.eventId);
    expect(ev.eventId).toBe(ack.eventId);
    expect(ev.timestamp).toBe('2024-01-15T08:30:00.123Z');
    expect(ev.service).toBe(sent.service);
    expect(ev.message).toBe(sent.message);
    expect(ev.metadata).toEqual(sent.metadata);
    expect(typeof ev.ingestedAt).toBe('string');
    expect(ev.createdAt).toBe(ev.ingestedAt as string);
  });

  test('an event without timestamp is stamped with the time it was received', async () => {
    const before = Date.now();
    const res = await postEvent(svc.app, { service: 'no-ts', message: 'm' });
    expect(res.status).toBe(202);
    await until(async () => (await countRows(svc.engine, `service = 'no-ts'`)) === 1);
    const body = (await (await svc.app.request('/events?service=no-ts')).json()) as { events: { timestamp: string; metadata: unknown }[] };
    const t = Date.parse(body.events[0]!.timestamp);
    expect(t).toBeGreaterThanOrEqual(before - 1);
    expect(t).toBeLessThanOrEqual(Date.now());
    expect(body.events[0]!.metadata).toEqual({});
  });

  const bad: [string, unknown, string][] = [
    ['service missing', { message: 'm' }, 'service'],
    ['service empty', { service: '', message: 'm' }, 'service'],
    ['service with a space', { service: 'a b', message: 'm' }, 'service'],
    ['service of 101 characters', { service: 'x'.repeat(101), message: 'm' }, 'service'],
    ['service not a string', { service: 42, message: 'm' }, 'service'],
    ['message missing', { service: 's' }, 'message'],
    ['message not a string', { service: 's', message: { a: 1 } }, 'message'],
    ['message of 2,001 characters', { service: 's', message: 'm'.repeat(2001) }, 'message'],
    ['message with a NUL character', { service: 's', message: 'a\u0000b' }, 'message'],
    ['message with a lone surrogate', { service: 's', message: 'a\ud800b' }, 'message'],
    ['metadata an array', { service: 's', message: 'm', metadata: [1, 2] }, 'metadata'],
    ['metadata a string', { service: 's', message: 'm', metadata: 'x' }, 'metadata'],
    ['metadata over 16 KB', { service: 's', message: 'm', metadata: { big: 'x'.repeat(16 * 1024) } }, 'metadata'],
    ['metadata with a NUL inside', { service: 's', message: 'm', metadata: { k: 'a\u0000' } }, 'metadata'],
    ['timestamp without offset', { service: 's', message: 'm', timestamp: '2024-01-15T10:30:00' }, 'timestamp'],
    ['timestamp not a date', { service: 's', message: 'm', timestamp: 'yesterday' }, 'timestamp'],
    ['timestamp on February 30th', { service: 's', message: 'm', timestamp: '2024-02-30T10:30:00Z' }, 'timestamp'],
    ['timestamp a number', { service: 's', message: 'm', timestamp: 1705314600000 }, 'timestamp'],
  ];
  test.each(bad)('400 naming the field when %s', async (_name, body, field) => {
    const res = await postEvent(svc.app, body);
    expect(res.status).toBe(400);
    const json = (await res.json()) as { error: string; errors: { field: string; message: string }[] };
    expect(json.error).toBe('validation_failed');
    expect(json.errors.map((e) => e.field)).toContain(field);
    expect(json.errors.every((e) => e.message.length > 0)).toBe(true);
  });

  test('an event with several bad fields names each of them', async () => {
    const res = await postEvent(svc.app, { service: 'a b', message: 5, metadata: [1], timestamp: 'x' });
    const json = (await res.json()) as { errors: { field: string }[] };
    expect(json.errors.map((e) => e.field).sort()).toEqual(['message', 'metadata', 'service', 'timestamp']);
  });

  test('malformed JSON is 400 invalid_json, never 500', async () => {
    for (const body of ['{"service":', '{service: "x"}', 'nul', '{"a":1}}']) {
      const res = await postEvent(svc.app, body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_json');
    }
  });

  test('a JSON value that is not an object is 400', async () => {
    for (const body of ['[]', '"text"', '42', 'null']) {
      const res = await postEvent(svc.app, body);
      expect(res.status).toBe(400);
    }
  });

  test('an empty body is 400 and a non-JSON content type is 415', async () => {
    const empty = await postEvent(svc.app, '');
    expect(empty.status).toBe(400);
    expect(((await empty.json()) as { error: string }).error).toBe('empty_body');
    const form = await svc.app.request('/events', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"service":"s","message":"m"}' });
    expect(form.status).toBe(415);
    const none = await svc.app.request('/events', { method: 'POST', body: '{"service":"s","message":"m"}' });
    expect(none.status).toBe(415);
  });

  test('a body over BODY_MAX_BYTES is 413', async () => {
    const res = await postEvent(svc.app, { service: 's', message: 'm', metadata: { pad: 'x'.repeat(300 * 1024) } });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toBe('payload_too_large');
  });

  test('metadata nested deeper than 64 levels is a 400 naming it; 64 levels are stored; the database keeps working', async () => {
    const nest = (levels: number) => JSON.parse(`${'{"a":'.repeat(levels - 1)}[]${'}'.repeat(levels - 1)}`) as Record<string, unknown>;
    const deepest = await svc.app.request('/events?wait=true', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ service: 'deep-ok', message: 'm', metadata: nest(64) }),
    });
    expect(deepest.status).toBe(201);
    const [back] = ((await (await svc.app.request('/events?service=deep-ok')).json()) as { events: { metadata: unknown }[] }).events;
    expect(back!.metadata).toEqual(nest(64));
    // 2,000 levels of arrays fit METADATA_MAX_BYTES: the embedded engine's own stack overflows at about
    // 750 levels of jsonb, corrupting its memory without an error (src/store/engine.ts).
    for (const metadata of [nest(65), { a: JSON.parse('['.repeat(2000) + ']'.repeat(2000)) }]) {
      const res = await postEvent(svc.app, { service: 's', message: 'm', metadata });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { errors: unknown[] }).errors).toEqual([
        { field: 'metadata', message: 'must nest at most 64 levels of objects and arrays' },
      ]);
    }
    const batch = await svc.app.request('/events/batch?wait=true', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([
        { service: 'deep-ok', message: 'next' },
        { service: 's', message: 'm', metadata: nest(100) },
      ]),
    });
    expect(await batch.json()).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, field: 'metadata' }] });
    const filter = await svc.app.request(`/events?metadata=${encodeURIComponent(JSON.stringify(nest(65)))}`);
    expect(filter.status).toBe(400);
    expect(((await filter.json()) as { errors: unknown[] }).errors).toEqual([
      { field: 'metadata', message: 'must nest at most 64 levels of objects and arrays' },
    ]);
    expect(await countRows(svc.engine, `service = 'deep-ok'`)).toBe(2);
  });

  test('nothing rejected reached the database', async () => {
    await until(() => svc.queue.depth === 0); // anything queued by mistake would be written by now
    expect(svc.batcher.stats.written).toBeGreaterThan(0); // the writers did run
    expect(await countRows(svc.engine, `service IN ('s', 'a b')`)).toBe(0);
  });

  test('bad query parameters are 400 naming each one', async () => {
    const res = await svc.app.request('/events?page=0&pageSize=1001&from=yesterday&service=a%20b');
    expect(res.status).toBe(400);
    const json = (await res.json()) as { errors: { field: string }[] };
    expect(json.errors.map((e) => e.field).sort()).toEqual(['from', 'page', 'pageSize', 'service']);
    const inverted = await svc.app.request('/events?from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z');
    expect(inverted.status).toBe(400);
  });

  test('pages are newest first with right totals and has_more, filtered by service and time range', async () => {
    const base = Date.parse('2024-03-01T00:00:00Z');
    for (let i = 0; i < 25; i++) {
      const r = await postEvent(svc.app, { service: 'pager', message: `m${i}`, timestamp: new Date(base + i * 60_000).toISOString() });
      expect(r.status).toBe(202);
    }
    await postEvent(svc.app, { service: 'pager-other', message: 'x', timestamp: new Date(base).toISOString() });
    await until(async () => (await countRows(svc.engine, `service LIKE 'pager%'`)) === 26);

    const page = async (qs: string) =>
      (await (await svc.app.request(`/events?${qs}`)).json()) as {
        events: { message: string }[];
        pagination: { total: number; limit: number; offset: number; has_more: boolean };
      };
    const p1 = await page('service=pager&pageSize=10&page=1');
    expect(p1.pagination).toMatchObject({ total: 25, limit: 10, offset: 0, has_more: true });
    expect(p1.events.map((e) => e.message)).toEqual(['m24', 'm23', 'm22', 'm21', 'm20', 'm19', 'm18', 'm17', 'm16', 'm15']);
    const p3 = await page('service=pager&pageSize=10&page=3');
    expect(p3.pagination).toMatchObject({ total: 25, limit: 10, offset: 20, has_more: false });
    expect(p3.events.map((e) => e.message)).toEqual(['m4', 'm3', 'm2', 'm1', 'm0']);
    const p4 = await page('service=pager&pageSize=10&page=4');
    expect(p4.events).toEqual([]);
    expect(p4.pagination.has_more).toBe(false);

    const ranged = await page(`service=pager&from=${new Date(base + 5 * 60_000).toISOString()}&to=${new Date(base + 9 * 60_000).toISOString()}`);
    expect(ranged.pagination.total).toBe(5);
    expect(ranged.events.map((e) => e.message)).toEqual(['m9', 'm8', 'm7', 'm6', 'm5']);
    const allServices = await page(`from=${new Date(base).toISOString()}&to=${new Date(base).toISOString()}`);
    expect(allServices.pagination.total).toBe(2);
  });

  test('health endpoints report ready, queue counters and database details', async () => {
    expect(await (await svc.app.request('/health')).json()).toEqual({ message: 'SERVER_IS_READY' });
    const buf = (await (await svc.app.request('/health/buffer')).json()) as Record<string, number>;
    expect(buf.capacity).toBe(100_000);
    expect(buf.accepted).toBeGreaterThanOrEqual(28);
    expect(buf.written).toBe(buf.accepted);
    expect(buf.depth).toBe(0);
    expect(buf.failed).toBe(0);
    const db = (await (await svc.app.request('/health/database')).json()) as Record<string, unknown>;
    expect(db).toMatchObject({ connected: true, engine: kind });
    expect(['community', 'apache']).toContain(db.edition as string);
    expect(db.postgresVersion).toMatch(/^\d+\.\d+/);
    expect(db.timescaledbVersion).toMatch(/^2\.\d+/);
    expect(typeof db.latencyMs).toBe('number');
    if (kind === 'embedded') expect(db).toMatchObject({ edition: 'community', backgroundWorkers: false });
  });

  test('unknown routes are a JSON 404', async () => {
    const res = await svc.app.request('/nope');
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toBe('not_found');
  });
});
