// Totals past 10,000 matches (GET /events, count=auto): for service and time filters they come from
// the aggregates plus the raw partial minutes at each end, exact when the aggregates are final for
// the range, and flagged as an estimate when they are not, on every aggregate path.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import type { Edition } from '../src/store/migrate';
import { engines, logLines, newTarget, startService, type Target } from './harness';

setDefaultTimeout(180_000);

type Svc = Awaited<ReturnType<typeof startService>>;
const HOUR = 3_600_000;
const paths: { name: string; kind: 'embedded' | 'server'; edition?: Edition }[] = [
  { name: 'embedded, continuous aggregates', kind: 'embedded' },
  { name: 'embedded, Apache rollup tables', kind: 'embedded', edition: 'apache' },
  ...(engines.includes('server') ? [{ name: 'server', kind: 'server' as const }] : []),
];

describe.each(paths.map((p) => [p.name, p] as const))('totals from the aggregates [%s]', (_name, path) => {
  let target: Target;
  let svc: Svc;
  const now = Date.now();
  const iso = (t: number) => new Date(t).toISOString();

  /** n events of `service`, spread evenly (at odd seconds and milliseconds) over [from, to). */
  const insert = (service: string, n: number, from: number, to: number) =>
    svc.engine.query(
      `INSERT INTO events (id, time, service, message)
       SELECT gen_random_uuid(), $2::text::timestamptz + (($3::text::timestamptz - $2::text::timestamptz) * i / $4::int), $1, 'm'
       FROM generate_series(0, $4::int - 1) AS i`,
      [service, iso(from), iso(to), n],
    );
  const exactCount = async (where: string, params: unknown[]) => {
    const [r] = await svc.engine.query<{ n: number }>(`SELECT count(*)::float8 AS n FROM events WHERE ${where}`, params);
    return r!.n;
  };
  const total = async (query: string) => {
    const res = await svc.app.request(`/events?pageSize=1&${query}`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { pagination: { total: number; total_is_exact: boolean; count: string } }).pagination;
  };

  beforeAll(async () => {
    target = await newTarget(path.kind, { fresh: !!path.edition });
    svc = await startService(
      target,
      { RETENTION_DAYS: '30', AGGREGATE_MINUTE_RETENTION_DAYS: '90', AGGREGATE_HOUR_RETENTION_DAYS: '730', AGGREGATE_DAY_RETENTION_DAYS: '730' },
      { edition: path.edition },
    );
    await insert('tot-a', 15_000, now - 3 * 24 * HOUR - 1234, now - 5_000);
    await insert('tot-b', 11_000, now - 26 * HOUR - 777, now - 10 * HOUR);
    await insert('tot-c', 500, now - 2 * HOUR, now - HOUR);
    await svc.state.jobs!.runAll(); // the aggregates catch up with everything above
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });

  test('one service over a ragged range: days, hours, minutes and raw edges add up to the exact count', async () => {
    const from = now - 60 * HOUR - 37_123;
    const to = now - 3 * HOUR + 11_456;
    const p = await total(`service=tot-a&from=${iso(from)}&to=${iso(to)}`);
    const truth = await exactCount(`service = 'tot-a' AND time >= $1::text::timestamptz AND time <= $2::text::timestamptz`, [iso(from), iso(to)]);
    expect(truth).toBeGreaterThan(10_000);
    expect(p).toMatchObject({ total: truth, total_is_exact: true, count: 'exact' });
  });

  test('several services, all time, and every service: exact', async () => {
    expect(await total('service=tot-a,tot-b')).toMatchObject({ total: 26_000, total_is_exact: true });
    expect(await total(`service=tot-b&to=${iso(now - 12 * HOUR)}`)).toMatchObject({
      total: await exactCount(`service = 'tot-b' AND time <= $1::text::timestamptz`, [iso(now - 12 * HOUR)]),
      total_is_exact: true,
    });
    expect(await total('')).toMatchObject({ total: 26_500, total_is_exact: true });
  });

  test('events committed since the last refresh make the total an estimate, until the next refresh counts them', async () => {
    // Late events, two days back: inside buckets the aggregates already hold.
    await insert('tot-a', 40, now - 48 * HOUR, now - 47 * HOUR);
    const stale = await total('service=tot-a');
    expect(stale.total_is_exact).toBe(false);
    expect(stale.count).toBe('estimate');
    expect(Math.abs(stale.total - 15_040) / 15_040).toBeLessThan(0.01);
    await svc.state.jobs!.runAll();
    expect(await total('service=tot-a')).toMatchObject({ total: 15_040, total_is_exact: true });
  });

  test('when the totals from the aggregates fail, the answer is an estimate flagged as one, counted in aurore_fallbacks_total and logged once per cause', async () => {
    const fallbacks = async () => Number(/aurore_fallbacks_total\{kind="exact_total"\} (\d+)/.exec(await (await svc.app.request('/metrics')).text())?.[1]);
    const before = { count: await fallbacks(), log: logLines.length };
    expect(before.count).toBe(0);
    // As on TimescaleDB 2.28 before sql/009: the function fails on every call.
    await svc.engine.exec(`ALTER FUNCTION aurore_count_events(text[], timestamptz, timestamptz) RENAME TO aurore_count_events_away`);
    try {
      for (let i = 0; i < 3; i++) expect(await total('service=tot-a')).toMatchObject({ total_is_exact: false, count: 'estimate' });
      expect(await fallbacks()).toBe(3);
      const said = logLines.slice(before.log).filter((l) => l.includes('totals from the aggregates failed'));
      expect(said).toHaveLength(1);
      expect(said[0]).toContain('aurore_count_events');
    } finally {
      await svc.engine.exec(`ALTER FUNCTION aurore_count_events_away(text[], timestamptz, timestamptz) RENAME TO aurore_count_events`);
    }
    expect(await total('service=tot-a')).toMatchObject({ total_is_exact: true });
  });

  test('message search and metadata filters keep the planner estimate, flagged as one', async () => {
    for (const q of ['service=tot-a&q=m', 'service=tot-a&metadata=%7B%7D']) {
      const p = await total(q);
      expect(p.total_is_exact).toBe(false);
      expect(p.count).toBe('estimate');
    }
  });
});
