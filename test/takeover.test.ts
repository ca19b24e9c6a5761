// Maintenance that does not depend on the database's scheduler (src/maintain/takeover.ts): on a
// Community server whose scheduler stops, the service runs the policies itself, says so, and the
// data stays within its retention; and the decisions themselves, case by case.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { decide, notRunReason, type Watched } from '../src/maintain/takeover';
import type { DatabaseRuns } from '../src/maintain/policies';
import { openServer } from '../src/store/engine';
import postgres from 'postgres';
import { countRows, engines, logLines, newTarget, postEvent, privateCluster, serverEdition, serverTarget, startService, until } from './harness';

setDefaultTimeout(120_000);

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MIN = 60_000;
const DAY = 86_400_000;

// The Apache edition has no policies to take over: its service runs rollup and retention from the start.
describe.skipIf(!engines.includes('server') || serverEdition === 'apache')("the database's scheduler stopped [server, Community]", () => {
  test('within two periods the service runs retention and the aggregate refresh itself, the old chunk is dropped, the aggregates catch up, and /health/database and /metrics say who runs them and why', async () => {
    const cluster = await privateCluster();
    cleanups.push(() => cluster.stop());
    const target = serverTarget(cluster.url, async () => openServer(cluster.url, 1));
    cleanups.push(() => target.destroy());
    const svc = await startService(target, { RETENTION_DAYS: '3' });
    cleanups.push(() => svc.stop());
    if (svc.state.database!.aggregates !== 'continuous') throw new Error('this test needs the Community edition (TimescaleDB with its TSL part)');
    expect(svc.state.database!.backgroundWorkers).toBe(true);
    const before = logLines.length;

    // The scheduler stops (as when it crashes, or an operator stops it), and an old chunk exists
    // (written behind the API's back: the API refuses events past RETENTION_DAYS).
    await svc.engine.query(`SELECT _timescaledb_functions.stop_background_workers()`);
    await svc.engine.query(`INSERT INTO events (time, id, service, message) VALUES (now() - interval '10 days', gen_random_uuid(), 'takeover-old', 'old')`);
    const recent = new Date(Date.now() - 10 * MIN).toISOString();
    for (let i = 0; i < 5; i++)
      expect((await postEvent(svc.app, { service: 'takeover-new', message: `m${i}`, timestamp: recent }, { prefer: 'wait' })).status).toBe(201);
    // Periods of a second, so that "two periods" passes within the test (an operator's alter_job).
    const [ids] = await svc.engine.query<{ retention: number; refresh: number }>(
      `SELECT (SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' AND hypertable_name = 'events') AS retention,
              (SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate' AND hypertable_name = 'events_per_minute') AS refresh`,
    );
    for (const id of [ids!.retention, ids!.refresh]) await svc.engine.query(`SELECT alter_job($1::int, schedule_interval => interval '1 second')`, [id]);

    await until(
      async () => (await countRows(svc.engine, `service = 'takeover-old'`)) === 0,
      30_000,
      'the service to run retention and drop the 10-day-old chunk',
    );
    const [mat] = await svc.engine.query<{ t: string }>(
      `SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name) AS t FROM timescaledb_information.continuous_aggregates WHERE view_name = 'events_per_minute'`,
    );
    // The materialized rows themselves (the view would answer from the raw rows in real time anyway).
    await until(
      async () =>
        (await svc.engine.query<{ n: number }>(`SELECT coalesce(sum(events), 0)::int AS n FROM ${mat!.t} WHERE service = 'takeover-new'`))[0]!.n === 5,
      30_000,
      'the per-minute aggregate to be refreshed by the service',
    );

    const db = (await (await svc.app.request('/health/database')).json()) as {
      jobs: { name: string; runBy: string; reason: string | null; lastError: string | null }[];
    };
    for (const name of ['retention events', 'refresh events_per_minute']) {
      const job = db.jobs.find((j) => j.name === name);
      expect({ name, runBy: job?.runBy, lastError: job?.lastError }).toEqual({ name, runBy: 'service', lastError: null });
      // Stopped, or (TimescaleDB 2.28.3 on PostgreSQL 15.20) failing before it stopped: either is said.
      expect(job!.reason).toMatch(/^the database (has not (run it|started it again) for \d+ s \(its period: 1 s\)|'s last \d+ runs failed: .+)$/);
    }
    const metrics = await (await svc.app.request('/metrics')).text();
    expect(metrics).toContain('aurore_job_taken_over{job="retention events"} 1');
    expect(metrics).toContain('aurore_job_taken_over{job="late events"} 0');
    // Logged once per takeover, with the reason; the status stays the place to look after that.
    const said = logLines.slice(before).filter((l) => l.includes("the database's scheduler is not running a policy") && l.includes('"retention events"'));
    expect(said).toHaveLength(1);
    expect(said[0]).toContain('"reason"');
  });
});

// Where the database's scheduler runs its policies, its refresh and the service's "late events" meet
// now and then: TimescaleDB refuses the second at once (55P03, "due to a concurrent refresh").
describe.skipIf(!engines.includes('server') || serverEdition === 'apache')('a concurrent refresh [server, Community]', () => {
  test('"late events" waits out a refresh of the same aggregate in another session, then refreshes: the job succeeds and says it waited', async () => {
    const target = await newTarget('server');
    cleanups.push(() => target.destroy());
    const svc = await startService(target);
    cleanups.push(() => svc.stop());
    const old = new Date(Date.now() - 10 * DAY).toISOString();
    expect((await postEvent(svc.app, { service: 'concurrent-old', message: 'late', timestamp: old }, { prefer: 'wait' })).status).toBe(201);

    // Another session's refresh of events_per_day, held after it registered its window (TimescaleDB
    // registers it in a first transaction, then waits for the materialized table's lock).
    const url = target.env.DATABASE_URL!;
    const sql = postgres(url, { max: 3, onnotice: () => {} });
    cleanups.push(() => sql.end({ timeout: 1 }));
    const holder = await sql.reserve();
    const [mat] = await holder<{ t: string }[]>`
      SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name) AS t
      FROM timescaledb_information.continuous_aggregates WHERE view_name = 'events_per_day'`;
    await holder`BEGIN`;
    await holder.unsafe(`LOCK TABLE ${mat!.t} IN ACCESS EXCLUSIVE MODE`);
    const other = sql.unsafe(`CALL refresh_continuous_aggregate('analytics.events_per_day', now() - interval '30 days', now() - interval '1 day')`);
    const sessions = () => sql<{ state: string; wait: string | null; query: string }[]>`
      SELECT state, wait_event_type AS wait, left(query, 80) AS query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
    let seen: unknown[] = [];
    await until(
      async () => (seen = await sessions()).some((a: any) => a.wait === 'Lock' && a.query.includes('refresh_continuous_aggregate')),
      10_000,
      () => `the other session's refresh to wait for the lock (sessions: ${JSON.stringify(seen)})`,
    );
    const released = Bun.sleep(1500).then(async () => {
      await holder`COMMIT`;
      holder.release();
    });

    await svc.state.jobs!.runAll();
    await released;
    await other;
    const late = (await svc.state.jobs!.status()).find((j) => j.name === 'late events')!;
    expect({ lastError: late.lastError, lastResult: late.lastResult }).toEqual({
      lastError: null,
      lastResult: expect.stringMatching(/^refreshed .+ \(after waiting out \d+ concurrent refreshes\)$/),
    });
    const [day] = await svc.engine.query<{ n: number }>(`SELECT coalesce(sum(events), 0)::int AS n FROM ${mat!.t} WHERE service = 'concurrent-old'`);
    expect(day!.n).toBe(1);
  });
});

// The decisions, on the rows the database gives (timescaledb_information.job_stats and job_history).
const NOW = Date.parse('2026-12-08T12:00:00Z');
const runs = (over: Partial<DatabaseRuns>): DatabaseRuns => ({
  job_id: 1000,
  every_s: 60,
  scheduled: true,
  job_status: 'Scheduled',
  last_run: new Date(NOW - 30_000).toISOString(),
  last_success: new Date(NOW - 29_000).toISOString(),
  next: new Date(NOW + 30_000).toISOString(),
  runs: 10,
  failures: 0,
  last_status: 'Success',
  duration_ms: 12,
  failures_since_success: 0,
  last_error: null,
  ...over,
});
const byDatabase: Watched = { runBy: 'database', takenOverAt: null, watchedSince: NOW - DAY };

describe('who runs a policy (takeover.ts)', () => {
  test('a policy the database runs on time stays with the database', () => {
    expect(decide(byDatabase, runs({}), NOW)).toEqual({ action: 'keep' });
  });

  test('three failed runs in a row, none succeeding since, are taken over with the database error; two are not', () => {
    const failing = runs({ failures_since_success: 3, last_error: '24000: cannot drop portal "" while it is being set up', last_status: 'Failed' });
    expect(decide(byDatabase, failing, NOW)).toEqual({
      action: 'take over',
      reason: `the database's last 3 runs failed: 24000: cannot drop portal "" while it is being set up`,
    });
    expect(decide(byDatabase, { ...failing, failures_since_success: 2 }, NOW)).toEqual({ action: 'keep' });
  });

  test('a policy not started for more than two periods is taken over; within two it is not', () => {
    expect(decide(byDatabase, runs({ last_run: new Date(NOW - 121_000).toISOString() }), NOW)).toEqual({
      action: 'take over',
      reason: 'the database has not started it again for 121 s (its period: 60 s)',
    });
    expect(decide(byDatabase, runs({ last_run: new Date(NOW - 119_000).toISOString() }), NOW)).toEqual({ action: 'keep' });
    expect(decide(byDatabase, runs({ last_run: new Date(NOW - 120_000).toISOString() }), NOW)).toEqual({ action: 'keep' }); // exactly two periods: not more
  });

  test('a policy that never ran counts from when the service started watching it', () => {
    const never = runs({ last_run: null, last_success: null, runs: 0 });
    expect(decide({ ...byDatabase, watchedSince: NOW - 100_000 }, never, NOW)).toEqual({ action: 'keep' });
    expect(notRunReason(never, NOW, NOW - 130_000)).toBe('the database has not run it for 130 s (its period: 60 s)');
  });

  test('a run in progress and a policy an operator paused are not taken over for being late', () => {
    const late = new Date(NOW - 10 * 60_000).toISOString();
    expect(decide(byDatabase, runs({ last_run: late, job_status: 'Running' }), NOW)).toEqual({ action: 'keep' });
    expect(decide(byDatabase, runs({ last_run: late, scheduled: false, job_status: 'Paused' }), NOW)).toEqual({ action: 'keep' });
  });

  test("a taken-over policy is handed back once the database's own run succeeds after the takeover, not before", () => {
    const byService: Watched = { runBy: 'service', takenOverAt: NOW - 5_000, watchedSince: NOW - DAY };
    expect(decide(byService, runs({ last_success: new Date(NOW - 1_000).toISOString() }), NOW)).toEqual({ action: 'hand back' });
    expect(decide(byService, runs({ last_success: new Date(NOW - 6_000).toISOString() }), NOW)).toEqual({ action: 'keep' });
    expect(decide(byService, runs({ last_success: new Date(NOW - 5_000).toISOString() }), NOW)).toEqual({ action: 'keep' }); // at the takeover: not after it
    expect(decide(byService, runs({ last_success: null }), NOW)).toEqual({ action: 'keep' });
  });
});
