// Keys that see only their own services (API_KEYS `services=`): one service for several teams. Two
// keys of disjoint services write and read side by side; nothing of one crosses to the other, on
// any read route or way in, counts included, whatever the filters; an admin key sees everything.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { engines, newTarget, startService, type Target } from './harness';

setDefaultTimeout(120_000);

const A = 'team-a-secret-0123456789';
const B = 'team-b-secret-0123456789';
const ADMIN = 'ops-secret-0123456789abc';
const API_KEYS = `team-a:ingest+query:${A}:services=checkout|billing-*,team-b:ingest+query:${B}:services=search,ops:admin:${ADMIN}`;
const T0 = Date.parse('2026-12-01T10:00:00Z');
const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

type Svc = Awaited<ReturnType<typeof startService>>;
interface Page {
  events: { id: string; service: string; message: string }[];
  pagination: { total: number; total_is_exact: boolean };
}

describe.each(engines)('keys that see only their own services [%s]', (kind) => {
  let target: Target;
  let svc: Svc;
  const as = (key: string, path: string, init: RequestInit = {}) =>
    svc.app.request(path, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string>) } });
  const json = async <T>(key: string, path: string) => {
    const res = await as(key, path);
    expect({ path, status: res.status }).toEqual({ path, status: 200 });
    return (await res.json()) as T;
  };
  const post = (key: string, path: string, body: unknown, type = 'application/json') =>
    as(key, path, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const ev = (n: number, service: string, message = `${service} ${n}`, metadata: Record<string, unknown> = { user_id: 'u1' }) => ({
    id: uuid(n),
    service,
    message,
    metadata,
    timestamp: new Date(T0 + n * 1000).toISOString(),
  });

  beforeAll(async () => {
    target = await newTarget(kind);
    svc = await startService(target, { API_KEYS });
    // Each team writes its own; what it sends for the other team is refused item by item.
    const a = await post(A, '/events/batch?wait=true', [ev(1, 'checkout'), ev(2, 'billing-eu'), ev(3, 'billing-us', 'needle in billing'), ev(4, 'search')]);
    expect(a.status).toBe(201);
    expect(await a.json()).toMatchObject({
      accepted: 3,
      rejected: 1,
      errors: [{ index: 3, field: 'service', message: "service 'search' is not one the API key 'team-a' may write" }],
    });
    const b = await post(B, '/events/batch?wait=true', [ev(10, 'search', 'needle in search'), ev(11, 'search'), ev(12, 'checkout', 'planted by b')]);
    expect(await b.json()).toMatchObject({ accepted: 2, rejected: 1, errors: [{ index: 2, field: 'service' }] });
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });

  test('a single event for another service is a 400 naming the service and the key; nothing is stored', async () => {
    const res = await post(B, '/events?wait=true', ev(20, 'billing-eu'));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: unknown[] }).errors).toEqual([
      { field: 'service', message: "service 'billing-eu' is not one the API key 'team-b' may write" },
    ]);
    expect((await json<Page>(ADMIN, '/events?service=billing-eu')).events.map((e) => e.id)).toEqual([uuid(2)]);
  });

  test('OTLP records and Loki streams for another service are refused per record, the others stored', async () => {
    const record = (service: string, text: string) => ({
      resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
      scopeLogs: [{ logRecords: [{ timeUnixNano: `${BigInt(T0 + 50_000) * 1_000_000n}`, body: { stringValue: text } }] }],
    });
    const otlp = await post(B, '/v1/logs?wait=true', { resourceLogs: [record('search', 'otlp ok'), record('checkout', 'otlp planted')] });
    expect(otlp.status).toBe(200);
    expect(await otlp.json()).toMatchObject({
      partialSuccess: { rejectedLogRecords: '1', errorMessage: expect.stringContaining("service 'checkout' is not one the API key 'team-b' may write") },
    });
    const loki = await post(B, '/loki/api/v1/push?wait=true', {
      streams: [
        { stream: { service_name: 'checkout' }, values: [[`${BigInt(T0 + 60_000) * 1_000_000n}`, 'loki planted']] },
        { stream: { service_name: 'search' }, values: [[`${BigInt(T0 + 61_000) * 1_000_000n}`, 'loki ok']] },
      ],
    });
    expect(loki.status).toBe(400);
    expect(await loki.text()).toContain("service 'checkout' is not one the API key 'team-b' may write");
    const stored = await json<Page>(ADMIN, `/events?from=${new Date(T0 + 49_000).toISOString()}&pageSize=100`);
    expect(stored.events.map((e) => `${e.service}: ${e.message}`).sort()).toEqual(['search: loki ok', 'search: otlp ok']);
  });

  test("GET /events lists only the key's services, its total counts only them, and a filter for another service finds nothing", async () => {
    const to = `&to=${new Date(T0 + 40_000).toISOString()}`;
    const b = await json<Page>(B, `/events?pageSize=100${to}`);
    expect(b.events.map((e) => e.id).sort()).toEqual([uuid(10), uuid(11)]);
    expect(b.pagination).toMatchObject({ total: 2, total_is_exact: true });
    const a = await json<Page>(A, `/events?pageSize=100${to}`);
    expect(a.events.map((e) => e.service).sort()).toEqual(['billing-eu', 'billing-us', 'checkout']);
    expect(a.pagination.total).toBe(3);
    // Another team's service, alone or beside one's own: only one's own, never an error that tells it exists.
    expect((await json<Page>(B, `/events?service=checkout${to}`)).events).toEqual([]);
    expect((await json<Page>(B, `/events?service=checkout&service=search${to}`)).events.map((e) => e.service)).toEqual(['search', 'search']);
    expect((await json<Page>(B, `/events?service=checkout,billing-eu${to}`)).pagination.total).toBe(0);
    // Text and metadata filters stay inside the scope.
    expect((await json<Page>(B, `/events?q=needle${to}`)).events.map((e) => e.id)).toEqual([uuid(10)]);
    expect((await json<Page>(A, `/events?q=needle${to}`)).events.map((e) => e.id)).toEqual([uuid(3)]);
    expect((await json<Page>(B, `/events?metadata.user_id=u1${to}`)).events.map((e) => e.id).sort()).toEqual([uuid(10), uuid(11)]);
    expect((await json<Page>(B, `/events?metadata=${encodeURIComponent('{"user_id":"u1"}')}${to}`)).pagination.total).toBe(2);
    // Wildcards are not service names: refused for every key alike.
    for (const s of ['*', 'check%', 'billing-*']) expect((await as(B, `/events?service=${encodeURIComponent(s)}`)).status).toBe(400);
  });

  test("GET /events/:id of another key's event is 404, as one that does not exist", async () => {
    expect((await as(B, `/events/${uuid(1)}`)).status).toBe(404);
    expect((await as(A, `/events/${uuid(10)}`)).status).toBe(404);
    expect((await as(A, `/events/${uuid(1)}`)).status).toBe(200);
    expect((await as(ADMIN, `/events/${uuid(10)}`)).status).toBe(200);
  });

  test('a key with two scopes (ingest+query) holds both, and no more', async () => {
    expect((await as(A, '/metrics')).status).toBe(403);
    expect((await as(A, '/health/database')).status).toBe(403);
    expect((await as(A, `/events/${uuid(1)}`)).status).toBe(200);
    // Past the scope check to validation (the ingest scope was used in beforeAll): 400, not 403.
    expect((await post(A, '/events', { service: 'checkout' })).status).toBe(400);
  });

  test("/metrics/events and /health/business count only the key's services", async () => {
    await svc.state.jobs!.runAll(); // the Apache edition's rollup tables count what the last rollup saw
    const range = `from=${new Date(T0 - 3_600_000).toISOString()}&to=${new Date(T0 + 3_600_000).toISOString()}&bucket=1h`;
    const series = async (key: string, extra = '') =>
      Object.fromEntries(
        (await json<{ series: { service: string; total: number }[] }>(key, `/metrics/events?${range}${extra}`)).series.map((s) => [s.service, s.total]),
      );
    expect(await series(B)).toEqual({ search: 4 });
    expect(await series(A)).toEqual({ 'billing-eu': 1, 'billing-us': 1, checkout: 1 });
    expect(await series(B, '&service=checkout')).toEqual({});
    expect(await series(ADMIN)).toEqual({ 'billing-eu': 1, 'billing-us': 1, checkout: 1, search: 4 });
    const business = async (key: string) => await json<{ totalEvents: number; eventsByService: Record<string, number> }>(key, '/health/business');
    expect(await business(B)).toMatchObject({ totalEvents: 4, eventsByService: { search: 4 } });
    expect(Object.keys((await business(A)).eventsByService).sort()).toEqual(['billing-eu', 'billing-us', 'checkout']);
    expect((await business(ADMIN)).totalEvents).toBe(7);
  });

  // Grafana's Loki data source with a team's key: the same scope on every route of the query API.
  test("the Loki query API sees only the key's services: log and metric queries, label values, series, volume, fields", async () => {
    const ns = (ms: number) => `${BigInt(ms) * 1_000_000n}`;
    const range = `start=${ns(T0 - 3_600_000)}&end=${ns(T0 + 3_600_000)}`;
    const lines = async (key: string, q: string) => {
      const body = await json<{ data: { result: { values: string[][] }[] } }>(
        key,
        `/loki/api/v1/query_range?query=${encodeURIComponent(q)}&${range}&limit=100`,
      );
      return body.data.result.flatMap((s) => s.values.map((v) => v[1])).sort();
    };
    expect(await lines(B, '{service_name=~".+"} |= "needle"')).toEqual(['needle in search']);
    expect(await lines(B, '{service_name="checkout"}')).toEqual([]);
    expect(await lines(B, '{service_name=~"check.*|search"} |= "planted"')).toEqual([]);
    expect(await lines(A, '{service_name=~".+"} |= "needle"')).toEqual(['needle in billing']);
    expect(await lines(ADMIN, '{service_name=~".+"} |= "needle"')).toEqual(['needle in billing', 'needle in search']);
    const volume = async (key: string, q: string) => {
      const body = await json<{ data: { result: { metric: Record<string, string> }[] } }>(
        key,
        `/loki/api/v1/query_range?query=${encodeURIComponent(q)}&${range}&step=3600`,
      );
      return body.data.result.map((s) => s.metric.service_name).sort();
    };
    // from the aggregates (a service volume), and from the raw rows (a line filter)
    expect(await volume(B, 'sum by (service_name) (count_over_time({service_name=~".+"}[1h]))')).toEqual(['search']);
    expect(await volume(B, 'sum by (service_name) (count_over_time({service_name=~".+"} |= "" [1h]))')).toEqual(['search']);
    expect(await volume(A, 'sum by (service_name) (count_over_time({service_name=~".+"}[1h]))')).toEqual(['billing-eu', 'billing-us', 'checkout']);
    expect((await json<{ data: string[] }>(B, `/loki/api/v1/label/service_name/values?${range}`)).data).toEqual(['search']);
    const series = await json<{ data: Record<string, string>[] }>(B, `/loki/api/v1/series?match[]=${encodeURIComponent('{service_name=~".+"}')}&${range}`);
    expect(series.data.map((s) => s.service_name)).toEqual(['search']);
    const vol = await json<{ data: { result: { metric: Record<string, string> }[] } }>(
      B,
      `/loki/api/v1/index/volume?query=${encodeURIComponent('{service_name=~".+"}')}&${range}`,
    );
    expect(vol.data.result.map((r) => r.metric.service_name)).toEqual(['search']);
    const fields = await json<{ fields: unknown[] }>(B, `/loki/api/v1/detected_fields?query=${encodeURIComponent('{service_name="checkout"}')}&${range}`);
    expect(fields.fields).toEqual([]);
  });

  // Last: it adds 12,000 events. A key of service names (no pattern) keeps the totals from the
  // aggregates (a pattern key gets the planner's estimate past 10,000): the count itself, not a guess.
  test("past 10,000 matches, a key of names gets its services' total from the aggregates", async () => {
    await svc.engine.query(
      `INSERT INTO events (id, time, service, message)
       SELECT gen_random_uuid(), $1::text::timestamptz + g * interval '1 second', 'search', 'bulk' FROM generate_series(1, 12000) g`,
      [new Date(T0 - 2 * 86_400_000).toISOString()],
    );
    await svc.state.jobs!.runAll(); // the aggregates count them
    const p = (await json<Page>(B, '/events?pageSize=1')).pagination;
    const [truth] = await svc.engine.query<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE service = 'search'`);
    expect(truth!.n).toBeGreaterThan(12_000);
    expect(p.total).toBe(truth!.n);
  });
});
