// Aggregates, retention, compression and the analyst role, on every path: the Community edition's
// continuous aggregates (embedded PGlite, whose jobs the service runs), the Apache edition's rollup
// tables (forced on PGlite, and the native server when it is the Apache-only build, as in CI).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { readFileSync } from 'node:fs';
import { engines, logLines, newTarget, startService, testLogger, until, type Target } from './harness';
import { serviceHistory } from '../src/read/history';
import { createJobs } from '../src/maintain/scheduler';
import type { Edition } from '../src/store/migrate';

setDefaultTimeout(120_000);

type Svc = Awaited<ReturnType<typeof startService>>;
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
// Realistic ages (the harness keeps everything by default).
const AGES = {
  RETENTION_DAYS: '30',
  AGGREGATE_MINUTE_RETENTION_DAYS: '90',
  AGGREGATE_HOUR_RETENTION_DAYS: '730',
  AGGREGATE_DAY_RETENTION_DAYS: '730',
  COMPRESS_AFTER_DAYS: '7',
};

interface Path {
  name: string;
  kind: 'embedded' | 'server';
  edition?: Edition;
}
const paths: Path[] = [
  { name: 'embedded, continuous aggregates', kind: 'embedded' },
  { name: 'embedded, Apache rollup tables', kind: 'embedded', edition: 'apache' },
  ...(engines.includes('server') ? [{ name: 'server', kind: 'server' as const }] : []),
];

/** The example queries of docs/analysts.md: each must run as an analyst. */
const ANALYSTS = readFileSync(new URL('../docs/analysts.md', import.meta.url), 'utf8');
const EXAMPLES = [...ANALYSTS.slice(ANALYSTS.indexOf('## Example queries')).matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!.trim().replace(/;$/, ''));

const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

async function store(svc: Svc, events: unknown[]) {
  const res = await svc.app.request('/events/batch?wait=true', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(events),
  });
  expect(res.status).toBe(201);
}

/** `n` events of `service` at `at` (ms), ids from `id0`. */
const burst = (service: string, at: number, n: number, id0: number) =>
  Array.from({ length: n }, (_, i) => ({ id: uuid(id0 + i), service, message: `${service} ${i}`, timestamp: new Date(at + i * 1000).toISOString() }));

const VIEWS = [
  ['events_per_minute', '1 minute'],
  ['events_per_hour', '1 hour'],
  ['events_per_day', '1 day'],
] as const;

const aggregateRows = (svc: Svc, view: string, like = 'agg-%') =>
  svc.engine.query<{ t: number; service: string; n: number }>(
    `SELECT (extract(epoch FROM bucket) * 1000)::float8 AS t, service, events::float8 AS n FROM analytics.${view} WHERE service LIKE $1 ORDER BY 1, 2`,
    [like],
  );
const rawRows = (svc: Svc, width: string, like = 'agg-%') =>
  svc.engine.query<{ t: number; service: string; n: number }>(
    `SELECT (extract(epoch FROM time_bucket($1::text::interval, time)) * 1000)::float8 AS t, service, count(*)::float8 AS n
     FROM events WHERE service LIKE $2 GROUP BY 1, 2 ORDER BY 1, 2`,
    [width, like],
  );

describe.each(paths.map((p) => [p.name, p] as const))('aggregates [%s]', (_name, path) => {
  let target: Target;
  let svc: Svc;
  const now = Date.now();
  const continuous = () => svc.state.database?.aggregates === 'continuous';
  const get = async (url: string) => {
    const res = await svc.app.request(url);
    return { status: res.status, body: (await res.json()) as any };
  };

  beforeAll(async () => {
    target = await newTarget(path.kind, { fresh: !!path.edition });
    svc = await startService(target, AGES, { edition: path.edition });
    await store(svc, [
      ...burst('agg-a', now - 5 * MIN, 3, 1),
      ...burst('agg-b', now - 5 * MIN, 2, 10),
      ...burst('agg-a', now - 3 * HOUR - 10 * MIN, 2, 20),
      ...burst('agg-b', now - 2 * DAY, 4, 30),
      ...burst('agg-a', now - 10 * DAY, 1, 40),
      ...burst('agg-b', now - 20 * DAY, 5, 50),
    ]);
    await svc.state.jobs!.runAll();
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });

  test('the database took the path its edition allows', () => {
    const expected = path.edition === 'apache' || svc.state.database!.edition === 'apache' ? 'rollup' : 'continuous';
    expect(svc.state.database!.aggregates).toBe(expected);
  });

  test('per-minute, hourly and daily aggregates equal counts on the raw events', async () => {
    for (const [view, width] of VIEWS) expect({ view, rows: await aggregateRows(svc, view) }).toEqual({ view, rows: await rawRows(svc, width) });
    const [day] = await svc.engine.query<{ n: number }>(`SELECT sum(events)::float8 AS n FROM analytics.events_per_day WHERE service LIKE 'agg-%'`);
    expect(day!.n).toBe(17);
  });

  test('late events, older than every refresh window, reach the aggregates', async () => {
    await store(svc, [
      ...burst('agg-a', now - 5 * DAY, 2, 60),
      ...burst('agg-late', now - 25 * DAY, 3, 70),
      ...burst('agg-late', now - 3 * DAY - 2 * HOUR, 1, 80),
    ]);
    await svc.state.jobs!.runAll();
    for (const [view, width] of VIEWS) expect({ view, rows: await aggregateRows(svc, view) }).toEqual({ view, rows: await rawRows(svc, width) });
    const late = await aggregateRows(svc, 'events_per_day', 'agg-late');
    expect(late.reduce((s, r) => s + r.n, 0)).toBe(4);
  });

  test('/health/business answers the MVP shape with counts equal to the raw events', async () => {
    const { status, body } = await get('/health/business');
    expect(status).toBe(200);
    const [raw] = await svc.engine.query<{ total: number; h1: number; h24: number }>(
      `SELECT count(*)::float8 AS total,
              (count(*) FILTER (WHERE time >= date_trunc('minute', $1::text::timestamptz) - INTERVAL '59 minutes'))::float8 AS h1,
              (count(*) FILTER (WHERE time >= date_trunc('minute', $1::text::timestamptz) - INTERVAL '1439 minutes'))::float8 AS h24
       FROM events`,
      [body.generatedAt],
    );
    const perService = await svc.engine.query<{ service: string; n: number }>(
      `SELECT service, count(*)::float8 AS n FROM events GROUP BY 1 ORDER BY 2 DESC, 1`,
    );
    expect(body.totalEvents).toBe(raw!.total);
    expect(body.eventsLastHour).toBe(raw!.h1);
    expect(body.eventsLast24Hours).toBe(raw!.h24);
    expect(body.eventsLastHour).toBe(5);
    expect(body.eventsLast24Hours).toBe(7);
    expect(body.eventsByService).toEqual(Object.fromEntries(perService.map((r) => [r.service, r.n])));
    expect(body.topServices).toEqual(perService.slice(0, 10).map((r) => ({ service: r.service, count: r.n })));
    expect(body.averageEventsPerMinute).toBe(Math.round((7 / 1440) * 100) / 100);
    expect(body.eventsByHour).toHaveLength(24);
    const byHour = await svc.engine.query<{ hour: string; n: number }>(
      `SELECT to_char(time_bucket('1 hour', time) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:00') AS hour, count(*)::float8 AS n
       FROM events WHERE time >= date_trunc('hour', $1::text::timestamptz) - INTERVAL '23 hours' GROUP BY 1`,
      [body.generatedAt],
    );
    for (const r of byHour) expect(body.eventsByHour).toContainEqual({ hour: r.hour, count: r.n });
    expect(body.eventsByHour.reduce((s: number, h: { count: number }) => s + h.count, 0)).toBe(byHour.reduce((s, r) => s + r.n, 0));
  });

  test('continuous aggregates count a new event at once, even in buckets a late-event refresh touched today', async () => {
    // beforeAll's late-events run refreshed the range of the events 3 hours old: today's day bucket
    // must stay real-time all the same. (Rollup tables count it at their next run instead.)
    await store(svc, burst('agg-now', Date.now(), 2, 100));
    if (!continuous()) await svc.state.jobs!.runAll();
    for (const [view, width] of VIEWS)
      expect({ view, rows: await aggregateRows(svc, view, 'agg-now') }).toEqual({ view, rows: await rawRows(svc, width, 'agg-now') });
    const { body } = await get('/health/business');
    expect(body.eventsByService['agg-now']).toBe(2);
  });

  test('a service named __proto__ (a valid name) has its count in eventsByService like any other', async () => {
    await store(svc, burst('__proto__', Date.now(), 3, 900));
    if (!continuous()) await svc.state.jobs!.runAll();
    const { body } = await get('/health/business');
    // An object literal's setter took "__proto__" as the prototype: the service was missing.
    expect(Object.getOwnPropertyDescriptor(body.eventsByService, '__proto__')?.value).toBe(3);
  });

  test('/metrics/events returns every bucket of each service, with counts equal to the raw events', async () => {
    for (const [bucket, width, span] of [
      ['1m', '1 minute', 6 * HOUR],
      ['1h', '1 hour', 2 * DAY],
      ['1d', '1 day', 30 * DAY],
    ] as const) {
      const from = new Date(now - span).toISOString();
      const to = new Date(now + MIN).toISOString();
      const { status, body } = await get(`/metrics/events?service=agg-a,agg-b&bucket=${bucket}&from=${from}&to=${to}`);
      expect(status).toBe(200);
      expect(body.series.map((s: { service: string }) => s.service)).toEqual(['agg-a', 'agg-b']);
      const raw = await svc.engine.query<{ t: number; service: string; n: number }>(
        `SELECT (extract(epoch FROM time_bucket($1::text::interval, time)) * 1000)::float8 AS t, service, count(*)::float8 AS n
         FROM events WHERE service IN ('agg-a', 'agg-b') AND time >= time_bucket($1::text::interval, $2::text::timestamptz) AND time < $3::text::timestamptz
         GROUP BY 1, 2`,
        [width, from, to],
      );
      for (const s of body.series as { service: string; total: number; points: { time: string; count: number }[] }[]) {
        const mine = raw.filter((r) => r.service === s.service);
        expect({ bucket, service: s.service, nonzero: s.points.filter((p) => p.count > 0).map((p) => [Date.parse(p.time), p.count]) }).toEqual({
          bucket,
          service: s.service,
          nonzero: mine.map((r) => [r.t, r.n]).sort((a, b) => a[0]! - b[0]!),
        });
        expect(s.total).toBe(mine.reduce((t, r) => t + r.n, 0));
        // Dense: consecutive buckets, zeros included.
        const step = Date.parse(s.points[1]!.time) - Date.parse(s.points[0]!.time);
        expect(step).toBe({ '1m': MIN, '1h': HOUR, '1d': DAY }[bucket]);
        expect(Date.parse(s.points.at(-1)!.time) - Date.parse(s.points[0]!.time)).toBe((s.points.length - 1) * step);
      }
    }
    // Defaults: the last 24 hours by hour, every service with events in them.
    const { body } = await get('/metrics/events');
    expect(body.bucket).toBe('1h');
    expect(body.series.find((s: { service: string }) => s.service === 'agg-a').total).toBe(5);
  });

  test('/metrics/events refuses bad parameters with 400 naming each', async () => {
    const cases: [string, string][] = [
      ['bucket=2m', 'bucket'],
      ['from=yesterday', 'from'],
      ['from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', 'from'],
      ['bucket=1m&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z', 'bucket'],
      ["service=a'%3B DROP TABLE events--", 'service'],
    ];
    for (const [qs, field] of cases) {
      const { status, body } = await get(`/metrics/events?${qs}`);
      expect({ qs, status, fields: body.errors?.map((e: { field: string }) => e.field) }).toEqual({ qs, status: 400, fields: [field] });
    }
  });

  test('/health/database lists each maintenance job with its last run, next run and last error', async () => {
    const { body } = await get('/health/database');
    const names = body.jobs.map((j: { name: string }) => j.name);
    if (continuous()) {
      expect(names).toEqual([
        'late events',
        'refresh events_per_minute',
        'refresh events_per_hour',
        'refresh events_per_day',
        'compression events',
        'reorder events',
        'retention events',
        'retention events_per_minute',
        'retention events_per_hour',
        'retention events_per_day',
        'retention events_rejected',
      ]);
    } else expect(names).toEqual(['rollup', 'reorder events', 'retention', 'retention events_rejected']);
    for (const j of body.jobs) {
      if (j.runBy === 'database') {
        // The database's own runs: its last error as it recorded it, or none (2.28.3 on PostgreSQL
        // 15.20 fails every scheduled run; the service takes a policy over after 3 or 2 periods).
        const [last] = await svc.engine.query<{ err: string | null }>(
          `SELECT (SELECT coalesce(h.sqlerrcode || ': ', '') || h.err_message FROM timescaledb_information.job_history h
                   WHERE h.job_id = j.job_id AND NOT h.succeeded ORDER BY h.id DESC LIMIT 1) AS err
           FROM timescaledb_information.jobs j JOIN timescaledb_information.job_stats s USING (job_id)
           WHERE s.last_run_status = 'Failed'
             AND CASE j.proc_name WHEN 'policy_refresh_continuous_aggregate' THEN 'refresh ' WHEN 'policy_retention' THEN 'retention ' ELSE 'compression ' END || j.hypertable_name = $1`,
          [j.name],
        );
        expect({ job: j.name, lastError: j.lastError }).toEqual({ job: j.name, lastError: last?.err ?? null });
        continue;
      }
      expect(j.lastError).toBeNull();
      if (j.runBy === 'service') {
        expect(Date.parse(j.lastRunAt)).toBeGreaterThan(now - MIN);
        expect(Date.parse(j.nextRunAt)).toBe(Date.parse(j.lastRunAt) + j.everySeconds * 1000);
      }
    }
  });

  test('/metrics exposes when each maintenance job last succeeded and whether it is failing', async () => {
    const text = await (await svc.app.request('/metrics')).text();
    const first = continuous() ? 'late events' : 'rollup';
    expect(text).toContain(`aurore_job_failing{job="${first}"} 0`);
    const success = new RegExp(`aurore_job_last_success_timestamp_seconds\\{job="${first}"\\} ([0-9.e+]+)`).exec(text);
    expect(Number(success?.[1]) * 1000).toBeGreaterThan(now - MIN);
  });

  test('with background workers the database runs the policies (job statistics from TimescaleDB); the Apache edition has none to run', async () => {
    // As on the timescale/timescaledb image: TimescaleDB runs the policies, the service only "late events".
    const before = logLines.length;
    const jobs = createJobs({
      engine: svc.engine,
      config: svc.config,
      log: testLogger,
      edition: continuous() ? 'community' : 'apache',
      backgroundWorkers: true,
    });
    await jobs.start();
    try {
      const list = await jobs.status();
      if (!continuous()) {
        expect(list.map((j) => [j.name, j.runBy])).toEqual([
          ['rollup', 'service'],
          ['reorder events', 'service'],
          ['retention', 'service'],
          ['retention events_rejected', 'service'],
        ]);
        return;
      }
      expect(list.filter((j) => j.runBy === 'service').map((j) => j.name)).toEqual(['late events', 'reorder events', 'retention events_rejected']);
      expect(list.filter((j) => j.runBy === 'database').map((j) => j.name)).toContain('retention events');
      // timescaledb_information.job_stats was read without error (PGlite records no runs: run_job is foreground).
      expect(logLines.slice(before).filter((l) => l.includes('job_stats'))).toEqual([]);
    } finally {
      await jobs.stop();
    }
  });

  test('/health/detailed reports queue, database, jobs and business metrics', async () => {
    const { status, body } = await get('/health/detailed');
    expect(status).toBe(200);
    // ok, unless a policy the database runs has just failed there (see the /health/database test)
    const failing = body.database.jobs.filter((j: { lastError: string | null }) => j.lastError);
    expect(failing.every((j: { runBy: string }) => j.runBy === 'database')).toBe(true);
    expect(body.status).toBe(failing.length ? 'degraded' : 'ok');
    expect(body.buffer.capacity).toBeGreaterThan(0);
    expect(body.database.connected).toBe(true);
    expect(body.database.jobs.length).toBeGreaterThan(0);
    expect(body.business.totalEvents).toBeGreaterThan(0);
  });

  test('closed chunks are reordered by service, compressed past 7 days where the edition allows, and late events still go into them', async () => {
    const db = svc.state.database!;
    expect([db.compression, db.reorder]).toEqual([continuous(), true]);
    const chunkAt = async (t: number) =>
      svc.engine.query<{ compressed: boolean; clustered: boolean }>(
        `SELECT ch.is_compressed AS compressed,
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = format('%I.%I', ch.chunk_schema, ch.chunk_name)::regclass AND i.indisclustered) AS clustered
         FROM timescaledb_information.chunks ch
         WHERE ch.hypertable_name = 'events' AND ch.range_start <= $1::text::timestamptz AND ch.range_end > $1::text::timestamptz`,
        [new Date(t).toISOString()],
      );
    // 10 days old: the columnstore (Community; compressed first, so never rewritten), or reordered (Apache).
    expect(await chunkAt(now - 10 * DAY)).toEqual([continuous() ? { compressed: true, clustered: false } : { compressed: false, clustered: true }]);
    // 2 days old: closed, not yet compressed: reordered on every edition.
    expect(await chunkAt(now - 2 * DAY)).toEqual([{ compressed: false, clustered: true }]);
    const before = (await aggregateRows(svc, 'events_per_day', 'agg-a')).reduce((s, r) => s + r.n, 0);
    await store(svc, burst('agg-a', now - 10 * DAY + 30_000, 2, 90));
    // The same events again: still exactly once (the unique key holds inside compressed chunks).
    await store(svc, burst('agg-a', now - 10 * DAY + 30_000, 2, 90));
    const { body } = await get(`/events?service=agg-a&from=${new Date(now - 11 * DAY).toISOString()}&to=${new Date(now - 9 * DAY).toISOString()}`);
    expect(body.events.map((e: { id: string }) => e.id).sort()).toEqual([uuid(40), uuid(90), uuid(91)]);
    await svc.state.jobs!.runAll();
    expect((await aggregateRows(svc, 'events_per_day', 'agg-a')).reduce((s, r) => s + r.n, 0)).toBe(before + 2);
  });

  test('the analyst role reads every aggregate and nothing else, and cannot write', async () => {
    const [role] = await svc.engine.query<{ config: string[] | null; login: boolean }>(
      `SELECT rolconfig AS config, rolcanlogin AS login FROM pg_roles WHERE rolname = 'analyst'`,
    );
    expect(role!.login).toBe(false);
    expect(role!.config).toEqual(expect.arrayContaining(['default_transaction_read_only=on', 'statement_timeout=30s']));
    const login = `aurore_analyst_${Math.random().toString(36).slice(2, 8)}`;
    const password = crypto.randomUUID();
    await svc.engine.query(`SELECT aurore_create_analyst_login($1, $2)`, [login, password]);
    const [settings] = await svc.engine.query<{ config: string[] }>(`SELECT rolconfig AS config FROM pg_roles WHERE rolname = $1`, [login]);
    expect(settings!.config).toEqual(expect.arrayContaining(['default_transaction_read_only=on', 'statement_timeout=30s']));
    try {
      if (path.kind === 'server') {
        // A real login, as an analyst would connect with psql.
        const url = new URL(target.env.DATABASE_URL!);
        url.username = login;
        url.password = password;
        const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
        const [{ days: daysBefore }] = (await svc.engine.query<{ days: number }>(`SELECT count(*)::int AS days FROM analytics.events_per_day`)) as [
          { days: number },
        ];
        try {
          for (const [view] of VIEWS) expect((await sql.unsafe(`SELECT count(*)::int AS n FROM analytics.${view}`))[0]!.n).toBeGreaterThan(0);
          expect(EXAMPLES).toHaveLength(5);
          for (const q of EXAMPLES) expect({ q, ok: Array.isArray(await sql.unsafe(q)) }).toEqual({ q, ok: true });
          expect((await sql`SHOW default_transaction_read_only`)[0]!.default_transaction_read_only).toBe('on');
          expect((await sql`SHOW statement_timeout`)[0]!.statement_timeout).toBe('30s');
          for (const forbidden of [
            'SELECT count(*) FROM events',
            'SELECT count(*) FROM events_rejected',
            `INSERT INTO analytics.events_per_minute (bucket, service, events) VALUES (now(), 'x', 1)`,
            'CREATE TABLE analytics.mine (x int)',
            'SET default_transaction_read_only = off; DELETE FROM analytics.events_per_day',
          ]) {
            // 42501 permission denied, 25006 read-only transaction; 55000 on TimescaleDB 2.28, which
            // refuses a write into a continuous aggregate before PostgreSQL checks the privilege.
            const err = await sql.unsafe(forbidden).then(
              () => null,
              (e: { code?: string }) => e.code,
            );
            expect({ forbidden, err }).toEqual({ forbidden, err: expect.stringMatching(/^(42501|25006|55000)$/) });
          }
          // Whatever the code, nothing was written.
          const [after] = await svc.engine.query<{ x: number; mine: string | null; days: number }>(
            `SELECT (SELECT count(*) FROM analytics.events_per_minute WHERE service = 'x')::int AS x, to_regclass('analytics.mine')::text AS mine,
                    (SELECT count(*) FROM analytics.events_per_day)::int AS days`,
          );
          expect(after).toEqual({ x: 0, mine: null, days: daysBefore });
        } finally {
          await sql.end();
        }
      } else {
        // PGlite has no logins: the same privileges, checked by becoming that role inside a transaction.
        const as = (stmt: string) =>
          svc.engine.exec(`SET LOCAL ROLE ${login}; ${stmt};`).then(
            () => null,
            (e: Error) => e.message,
          );
        for (const [view] of VIEWS) expect(await as(`SELECT count(*) FROM analytics.${view}`)).toBeNull();
        expect(EXAMPLES).toHaveLength(5);
        for (const q of EXAMPLES) expect({ q, err: await as(q) }).toEqual({ q, err: null });
        for (const forbidden of [
          'SELECT count(*) FROM events',
          'SELECT count(*) FROM events_rejected',
          `INSERT INTO analytics.events_per_minute (bucket, service, events) VALUES (now(), 'x', 1)`,
          'CREATE TABLE analytics.mine (x int)',
          'DELETE FROM analytics.events_per_day',
        ]) {
          expect({ forbidden, err: await as(forbidden) }).toEqual({
            forbidden,
            err: expect.stringMatching(/permission denied|read-only|must be owner|cannot insert into view|cannot delete from view/),
          });
        }
      }
    } finally {
      await svc.engine.exec(`DROP ROLE ${login}`);
    }
  });
});

describe.each(paths.map((p) => [p.name, p] as const))('retention [%s]', (_name, path) => {
  test('drops raw chunks past RETENTION_DAYS and per-minute counts past 90 days (changed by a restart) while hourly and daily history stays, and a late row there cannot erase it', async () => {
    const target = await newTarget(path.kind, { fresh: !!path.edition });
    // The start of a minute: each burst below (a few events a second apart) stays inside one minute,
    // so inside one day. From Date.now() itself, a run at 01:00:00 put ret-new's two events on either
    // side of midnight (two daily rows of 1 where the test expected one of 2: seen once in CI).
    const now = Math.floor(Date.now() / MIN) * MIN;
    const old = now - 40 * DAY;
    const ancient = now - 100 * DAY;
    try {
      // First kept long enough for everything to be aggregated...
      let svc = await startService(target, { ...AGES, RETENTION_DAYS: '120', AGGREGATE_MINUTE_RETENTION_DAYS: '121' }, { edition: path.edition });
      await store(svc, [...burst('ret-ancient', ancient, 4, 30), ...burst('ret-old', old, 3, 1), ...burst('ret-new', now - HOUR, 2, 10)]);
      await svc.state.jobs!.runAll();
      // RETENTION_DAYS=120 is what retention applied: events 100 days old are still there.
      const kept120 = await svc.engine.query<{ service: string; n: number }>(`SELECT service, count(*)::float8 AS n FROM events GROUP BY 1 ORDER BY 1`);
      expect(kept120).toEqual([
        { service: 'ret-ancient', n: 4 },
        { service: 'ret-new', n: 2 },
        { service: 'ret-old', n: 3 },
      ]);
      if (svc.state.database!.aggregates === 'continuous') {
        const [policy] = await svc.engine.query<{ drop_after: string }>(
          `SELECT config->>'drop_after' AS drop_after FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' AND hypertable_name = 'events'`,
        );
        expect(policy!.drop_after).toBe('120 days');
      }
      const history = async (s: Svc) =>
        Object.fromEntries(await Promise.all(VIEWS.map(async ([v]) => [v, (await aggregateRows(s, v, 'ret-%')).map((r) => [r.service, r.n])])));
      const before = await history(svc);
      expect(before.events_per_day).toEqual([
        ['ret-ancient', 4],
        ['ret-old', 3],
        ['ret-new', 2],
      ]);
      await svc.stop();
      // ...then the defaults: raw 30 days, per-minute 90, hourly and daily 2 years.
      const kept = { ...before, events_per_minute: before.events_per_minute.filter(([s]: [string]) => s !== 'ret-ancient') };
      expect(before.events_per_minute.some(([s]: [string]) => s === 'ret-ancient')).toBe(true);

      svc = await startService(target, AGES, { edition: path.edition });
      try {
        await svc.state.jobs!.runAll();
        const raw = await svc.engine.query<{ service: string; n: number }>(`SELECT service, count(*)::float8 AS n FROM events GROUP BY 1 ORDER BY 1`);
        expect(raw).toEqual([{ service: 'ret-new', n: 2 }]);
        expect(await history(svc)).toEqual(kept);
        if (svc.state.database!.aggregates === 'continuous') {
          const [policy] = await svc.engine.query<{ drop_after: string }>(
            `SELECT config->>'drop_after' AS drop_after FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' AND hypertable_name = 'events'`,
          );
          expect(policy!.drop_after).toBe('30 days');
        }

        // An event for that old day is refused at the edge: it would be deleted by the next retention run.
        const refused = await svc.app.request('/events', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(burst('ret-old', old + 500, 1, 20)[0]),
        });
        expect(refused.status).toBe(400);
        expect(((await refused.json()) as { errors: { field: string; message: string }[] }).errors).toEqual([
          { field: 'timestamp', message: expect.stringContaining('RETENTION_DAYS (30 days)') },
        ]);
        // A row there can still appear behind the API's back (an operator replaying events_rejected, a
        // spill saved under a longer retention): the kept history is not recomputed from that lone row.
        await svc.engine.query(`INSERT INTO events (time, id, service, message) VALUES ($1::text::timestamptz, $2::uuid, 'ret-old', 'replayed')`, [
          new Date(old + 500).toISOString(),
          uuid(20),
        ]);
        await svc.state.jobs!.runAll();
        expect(await history(svc)).toEqual(kept);
        const series = (await (await svc.app.request(`/metrics/events?bucket=1d&service=ret-old&from=${new Date(old - DAY).toISOString()}`)).json()) as {
          series: { total: number }[];
        };
        expect(series.series[0]!.total).toBe(3);
      } finally {
        await svc.stop();
      }
    } finally {
      await target.destroy();
    }
  });
});

describe.each(paths.map((p) => [p.name, p] as const))('quarantine retention [%s]', (_name, path) => {
  test('events the database refused are kept RETENTION_DAYS from their refusal, then deleted in parts', async () => {
    const target = await newTarget(path.kind, { fresh: !!path.edition });
    const svc = await startService(target, AGES, { edition: path.edition });
    try {
      const refused = (days: number, n: number, tag: string) =>
        svc.engine.query(
          `INSERT INTO events_rejected (rejected_at, error_code, error_message, record)
           SELECT now() - make_interval(days => $1::int), '23514', 'check constraint', $2 || g FROM generate_series(1, $3::int) g`,
          [days, tag, n],
        );
      await refused(31, 12_345, 'old-'); // more than one part of 10,000
      await refused(29, 3, 'kept-');
      await svc.state.jobs!.runAll();
      const left = await svc.engine.query<{ tag: string; n: number }>(
        `SELECT left(record, 4) AS tag, count(*)::float8 AS n FROM events_rejected GROUP BY 1 ORDER BY 1`,
      );
      expect(left).toEqual([{ tag: 'kept', n: 3 }]);
      const status = (await svc.state.jobs!.status()).find((j) => j.name === 'retention events_rejected');
      expect({ result: status?.lastResult, error: status?.lastError }).toEqual({ result: '12345 refused events deleted', error: null });
    } finally {
      await svc.stop();
      await target.destroy();
    }
  });
});

describe('Apache rollup tables and continuous aggregates [embedded]', () => {
  test('answer the same SQL and the same API queries with the same numbers', async () => {
    const now = Date.now();
    const events = [
      ...burst('same-a', now - 2 * MIN, 4, 1),
      ...burst('same-b', now - 2 * HOUR, 3, 10),
      ...burst('same-a', now - 26 * HOUR, 2, 20),
      ...burst('same-c', now - 6 * DAY, 5, 30),
      ...burst('same-b', now - 29 * DAY, 1, 40),
    ];
    const answers: unknown[] = [];
    for (const edition of [undefined, 'apache'] as const) {
      const target = await newTarget('embedded', { fresh: !!edition });
      const svc = await startService(target, AGES, { edition });
      try {
        expect(svc.state.database!.aggregates).toBe(edition ? 'rollup' : 'continuous');
        await store(svc, events);
        await svc.state.jobs!.runAll();
        const sql = await Promise.all(VIEWS.map(([v]) => aggregateRows(svc, v, 'same-%')));
        const from = new Date(now - 30 * DAY).toISOString();
        const to = new Date(now + MIN).toISOString();
        const api = await Promise.all(['1d', '1h'].map(async (b) => (await svc.app.request(`/metrics/events?bucket=${b}&from=${from}&to=${to}`)).json()));
        const { generatedAt: _g, ...business } = (await (await svc.app.request('/health/business')).json()) as Record<string, unknown>;
        answers.push({
          sql,
          api,
          business: { totalEvents: business.totalEvents, eventsByService: business.eventsByService, topServices: business.topServices },
        });
      } finally {
        await svc.stop();
        await target.destroy();
      }
    }
    expect(answers[1]).toEqual(answers[0]);
    expect((answers[0] as { business: { totalEvents: number } }).business.totalEvents).toBe(15);
  });
});

describe.each(paths.map((p) => [p.name, p] as const))("eventsLastHour's window [%s]", (_name, path) => {
  test('counts the current minute and the 59 before it, not the 61st', async () => {
    const target = await newTarget(path.kind, { fresh: !!path.edition });
    const svc = await startService(target, AGES, { edition: path.edition });
    try {
      // Well inside a minute, so that the one the events were placed in is the one the answer counts.
      while (Date.now() % MIN < 1000 || Date.now() % MIN > 45_000) await Bun.sleep(200);
      const minute = Math.floor(Date.now() / MIN) * MIN;
      const at = (t: number, id: number) => ({ id: uuid(900 + id), service: 'last-hour', message: 'm', timestamp: new Date(t).toISOString() });
      await store(svc, [
        at(Date.now(), 1), // the current minute
        at(minute - 59 * MIN + 1000, 2), // the first of the 60 minutes
        at(minute - 59 * MIN - 1, 3), // the 61st minute's last millisecond
        at(minute - 60 * MIN + 30_000, 4), // the 61st minute
      ]);
      await svc.state.jobs!.runAll(); // the Apache edition's rollup tables count what the last rollup saw
      const body = (await (await svc.app.request('/health/business')).json()) as { eventsLastHour: number; generatedAt: string };
      expect(Math.floor(Date.parse(body.generatedAt) / MIN) * MIN).toBe(minute);
      expect(body.eventsLastHour).toBe(2);
    } finally {
      await svc.stop();
      await target.destroy();
    }
  });
});

describe.each(engines)('business totals [%s, Apache rollup tables]', (kind) => {
  // Summed per request, the days kept cost /health/business a scan of services x days (two years of
  // 1,000 services: 120-160 ms of PostgreSQL, 450-550 ms of PGlite with writes waiting). Rows put
  // straight into the rollup table (behind the jobs' back) show which reads are live and which kept.
  const addDay = (svc: Svc, dayStart: number, service: string, n: number) =>
    svc.engine.query(`INSERT INTO analytics.events_per_day (bucket, service, events) VALUES ($1::text::timestamptz, $2, $3)`, [
      new Date(dayStart).toISOString(),
      service,
      n,
    ]);

  test('the days before yesterday are read once per refresh period, and again after the jobs run; yesterday and today live', async () => {
    const target = await newTarget(kind, { fresh: true });
    const svc = await startService(target, { ...AGES, AGGREGATE_REFRESH_SECONDS: '3600' }, { edition: 'apache' });
    try {
      const jobs = svc.state.jobs!;
      await until(() => jobs.finishedRuns() > 0); // the start-up run, then nothing for an hour
      await jobs.runAll();
      const today = Math.floor(Date.now() / DAY) * DAY;
      await store(svc, burst('tot-a', today - 3 * DAY + HOUR, 2, 1));
      await jobs.runAll();
      const business = async () =>
        (await (await svc.app.request('/health/business')).json()) as { totalEvents: number; eventsByService: Record<string, number> };
      const detailed = async () =>
        ((await (await svc.app.request('/health/detailed')).json()) as { business: { totalEvents: number; eventsByService: Record<string, number> } }).business;
      expect((await business()).eventsByService).toEqual({ 'tot-a': 2 });

      await addDay(svc, today - 5 * DAY, 'tot-old', 7);
      await addDay(svc, today - DAY, 'tot-yesterday', 2);
      await addDay(svc, today, 'tot-today', 3);
      const runs = jobs.finishedRuns();
      for (const b of [await business(), await detailed()]) {
        expect(b).toMatchObject({ totalEvents: 7, eventsByService: { 'tot-a': 2, 'tot-yesterday': 2, 'tot-today': 3 } });
      }
      expect(jobs.finishedRuns()).toBe(runs); // no run in between: what was kept was not read again
      await jobs.runAll();
      for (const b of [await business(), await detailed()]) {
        expect(b).toMatchObject({ totalEvents: 14, eventsByService: { 'tot-a': 2, 'tot-old': 7, 'tot-yesterday': 2, 'tot-today': 3 } });
      }
    } finally {
      await svc.stop();
      await target.destroy();
    }
  });

  test('a kept read serves AGGREGATE_REFRESH_SECONDS of one day, and not a failed read', async () => {
    const target = await newTarget(kind, { fresh: true });
    const svc = await startService(target, AGES, { edition: 'apache' });
    try {
      const today = Math.floor(Date.now() / DAY) * DAY;
      let runs = 0;
      let engine = svc.engine;
      const history = serviceHistory({ ...svc.engine, query: (text, params, opts) => engine.query(text, params, opts) }, 60_000, () => runs);
      const read = async (before: number, now: number) => Object.fromEntries(await history(before, now));
      await addDay(svc, today - 5 * DAY, 'kept-a', 1);
      const t0 = today + 10 * HOUR;
      expect(await read(today - DAY, t0)).toEqual({ 'kept-a': 1 });
      await addDay(svc, today - 4 * DAY, 'kept-b', 2);
      expect(await read(today - DAY, t0 + 59_999)).toEqual({ 'kept-a': 1 });
      expect(await read(today - DAY, t0 + 60_000)).toEqual({ 'kept-a': 1, 'kept-b': 2 });
      await addDay(svc, today - 3 * DAY, 'kept-c', 3);
      runs++;
      expect(await read(today - DAY, t0 + 60_001)).toEqual({ 'kept-a': 1, 'kept-b': 2, 'kept-c': 3 });
      await addDay(svc, today - DAY, 'kept-d', 4);
      expect(await read(today, t0 + 60_002)).toEqual({ 'kept-a': 1, 'kept-b': 2, 'kept-c': 3, 'kept-d': 4 }); // a new day
      engine = { ...svc.engine, query: () => Promise.reject(new Error('connection lost')) };
      await expect(read(today, today + DAY)).rejects.toThrow('connection lost');
      engine = svc.engine;
      expect(await read(today, today + DAY)).toEqual({ 'kept-a': 1, 'kept-b': 2, 'kept-c': 3, 'kept-d': 4 });
    } finally {
      await svc.stop();
      await target.destroy();
    }
  });
});

describe.skipIf(!engines.includes('server'))('aggregates held by an open transaction [server, Apache rollup tables]', () => {
  // The watermark waits for the oldest open transaction of the service's role (a batch still being
  // written): one left open stopped the aggregates there, every job run saying it succeeded.
  test('past the allowed lag the rollup fails naming the transaction (degraded, aurore_job_failing); once it ends, every row is counted', async () => {
    const target = await newTarget('server');
    // Lag allowed: max(5 x 1 s, 2 x 1 s) = 5 s.
    const svc = await startService(target, { AGGREGATE_REFRESH_SECONDS: '1', REQUEST_TIMEOUT_MS: '1000', WAIT_TIMEOUT_MS: '900' }, { edition: 'apache' });
    const left = postgres(target.env.DATABASE_URL!, { max: 1, onnotice: () => {}, connection: { application_name: 'left-open' } });
    let open: postgres.ReservedSql | undefined;
    try {
      const jobs = svc.state.jobs!;
      const rollupStatus = async () => (await jobs.status()).find((j) => j.name === 'rollup')!;
      const counted = async () => (await aggregateRows(svc, 'events_per_minute', 'held-%')).reduce((n, r) => n + r.n, 0);
      open = await left.reserve();
      await open`BEGIN`;
      await open`SELECT 1`; // the transaction has started: idle in transaction from here
      await store(svc, burst('held-a', Date.now() - MIN, 3, 1));
      await until(async () => (await rollupStatus()).lastError !== null, 15_000, 'the rollup to fail'); // at ~6 s
      const status = await rollupStatus();
      expect(status.lastError).toMatch(
        /^aggregates held at .+ \(\d+ s behind\) by a transaction of the service's database role open since .+ \(pid \d+, application 'left-open', idle in transaction\)/,
      );
      expect(await counted()).toBe(0);
      expect(((await (await svc.app.request('/health/detailed')).json()) as { status: string }).status).toBe('degraded');
      expect(await (await svc.app.request('/metrics')).text()).toContain('aurore_job_failing{job="rollup"} 1');
      await open`ROLLBACK`;
      open.release();
      open = undefined;
      // As PostgreSQL shows it: a session's xact_start has been seen to outlive its transaction by a moment.
      const stillOpen = () =>
        svc.engine.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'left-open' AND xact_start IS NOT NULL`);
      await until(async () => (await stillOpen())[0]!.n === 0, 10_000, 'the session to show its transaction ended');
      await jobs.runAll();
      expect({ error: (await rollupStatus()).lastError, counted: await counted() }).toEqual({ error: null, counted: 3 });
    } finally {
      await open?.unsafe('ROLLBACK').catch(() => {});
      open?.release();
      await left.end({ timeout: 1 });
      await svc.stop();
      await target.destroy();
    }
  });
});

describe.each(engines)('/metrics/events answers of bounded size [%s]', (kind) => {
  // 1,000 services over a week of minutes was 10 million points: a 457 MB answer built on the main
  // thread for 5.5 s (ingestion stalled with it); a few thousand services took the process past its memory.
  let target: Target;
  let svc: Svc;
  const now = Date.now();
  // The 60 minutes up to now, named in full: the describe's `now` is minutes older than its tests.
  const minute = Math.floor(now / MIN) * MIN;
  const hourAgo = `${new Date(minute - 59 * MIN).toISOString()}&to=${new Date(minute + 1).toISOString()}`;
  const get = async (url: string) => {
    const res = await svc.app.request(url);
    return { status: res.status, body: (await res.json()) as any };
  };
  beforeAll(async () => {
    target = await newTarget(kind);
    svc = await startService(target, { SERIES_MAX_POINTS: '100' });
    await store(
      svc,
      ['big-a', 'big-b', 'big-c'].flatMap((s, i) => burst(s, now - 5 * MIN, 2, 100 * (i + 1))),
    );
    await svc.state.jobs!.runAll();
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });

  test('more points than SERIES_MAX_POINTS (services x buckets) is a 400 saying how to narrow it; within it, the answer', async () => {
    const all = await get(`/metrics/events?bucket=1m&from=${hourAgo}`); // 3 services x 60 minutes
    expect(all.status).toBe(400);
    expect(all.body.errors).toEqual([
      {
        field: 'service',
        message: '3 services x 60 buckets hold more than 100 points (SERIES_MAX_POINTS): name fewer services, use a wider bucket or a shorter range',
      },
    ]);
    expect(all.body.message).toContain('name fewer services');
    // Named services are counted before the query.
    const two = await get(`/metrics/events?bucket=1m&from=${hourAgo}&service=big-a,big-b`);
    expect({ status: two.status, fields: two.body.errors.map((e: { field: string }) => e.field) }).toEqual({ status: 400, fields: ['bucket'] });
    const one = await get(`/metrics/events?bucket=1m&from=${hourAgo}&service=big-a`);
    expect({ status: one.status, points: one.body.series[0].points.length, total: one.body.series[0].total }).toEqual({ status: 200, points: 60, total: 2 });
    const hours = await get(`/metrics/events?bucket=1h&from=${new Date(now - 10 * HOUR).toISOString()}&to=${new Date(now).toISOString()}`); // 3 x 11 at most
    expect({ status: hours.status, services: hours.body.series.map((s: { service: string }) => s.service) }).toEqual({
      status: 200,
      services: ['big-a', 'big-b', 'big-c'],
    });
  });

  test('a range whose stored rows alone pass the limit is refused without reading them all', async () => {
    await svc.stop(); // the embedded engine takes one service a directory
    svc = await startService(target, { SERIES_MAX_POINTS: '2' });
    const { status, body } = await get(`/metrics/events?bucket=1d&from=${new Date(now - 5 * MIN).toISOString()}`); // 3 rows, 1 bucket
    expect({ status, errors: body.errors }).toEqual({
      status: 400,
      errors: [
        { field: 'service', message: 'the range holds more than 2 points (SERIES_MAX_POINTS): name fewer services, use a wider bucket or a shorter range' },
      ],
    });
  });
});
