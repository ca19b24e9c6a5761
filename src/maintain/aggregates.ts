// Maintenance jobs that keep the aggregates (analytics.events_per_{minute,hour,day}) current beyond
// what TimescaleDB's refresh policies cover:
// - "late events" (Community edition): rows committed since the last run whose timestamps are older
//   than the per-minute policy's window get their time range refreshed at every level.
// - "rollup" (Apache edition, no continuous aggregates): the incremental recount of the rollup tables
//   from an ingested_at watermark (aurore_refresh_rollups in sql/003_aggregates.apache.sql).
import type { Config } from '../config';
import type { Engine } from '../store/engine';
import { whenRefreshFree } from './policies';

// The per-minute refresh policy covers the last 3 hours (start_offset in aurore_set_policies); the
// "late events" job takes every row older than 2 hours. The hour of overlap is refreshed twice, which
// costs little; without it a row 2h59m late could leave the policy's window before the policy's next
// run, after this job had judged it recent, and never be refreshed.
const LATE_AFTER = '2 hours';

/** The range of rows committed since the last run that are older than the policies' windows. */
async function lateRange(engine: Engine, rawDays: number) {
  const [w] = await engine.query<{ hi: string; first: string | null; last: string | null }>(
    `WITH w AS (
       SELECT coalesce((SELECT ingested_before FROM aurore_watermarks WHERE job = 'late'), '-infinity') AS lo,
              aurore_settled_before() AS hi -- a batch still being written is waited for
     )
     SELECT w.hi::text AS hi, min(e.time)::text AS first, max(e.time)::text AS last
     FROM w LEFT JOIN events e
       ON e.ingested_at >= w.lo AND e.ingested_at < w.hi
      AND e.time < now() - INTERVAL '${LATE_AFTER}'
      -- never refresh where retention may have dropped raw chunks: that would erase history
      AND e.time >= time_bucket(INTERVAL '1 day', now() - make_interval(days => $1::int))
     GROUP BY w.hi`,
    [rawDays],
  );
  if (!w) throw new Error('late events: watermark query returned no row');
  return w;
}

/**
 * Refreshes from `first` up to where each level's policy ends, finer level first: each level is
 * computed from the one below. Up to the policy's end, not only to the last late row: a refresh
 * processes only what is not yet final in its window, so the stretch between the late rows and the
 * policy's own window costs little when empty, and afterwards no range stays "never materialized"
 * (that would keep totals from the aggregates an estimate forever: sql/006_totals.community.sql).
 * Windows end where that level's policy ends (end_offset): refreshing a bucket that is still
 * filling would freeze it (rows arriving afterwards would wait for the next refresh instead of
 * showing at once).
 */
async function refreshLevels(engine: Engine, first: string) {
  const windows = await engine.query<{ view: string; a: string; b: string }>(
    `SELECT v.view, v.a::text AS a, v.b::text AS b FROM (VALUES
       (1, 'events_per_minute', time_bucket(INTERVAL '1 minute', $1::text::timestamptz), time_bucket(INTERVAL '1 minute', now() - INTERVAL '1 minute')),
       (2, 'events_per_hour', time_bucket(INTERVAL '1 hour', $1::text::timestamptz), time_bucket(INTERVAL '1 hour', now() - INTERVAL '1 hour')),
       (3, 'events_per_day', time_bucket(INTERVAL '1 day', $1::text::timestamptz), time_bucket(INTERVAL '1 day', now() - INTERVAL '1 day'))
     ) AS v(level, view, a, b)
     WHERE v.a < v.b ORDER BY v.level`,
    [first],
  );
  let waited = 0;
  for (const x of windows) {
    // Not parameters: refresh refuses to run inside the implicit transaction of a prepared statement.
    const call = `CALL refresh_continuous_aggregate('analytics.${x.view}', '${x.a}'::timestamptz, '${x.b}'::timestamptz)`;
    waited += await whenRefreshFree(() => engine.exec(call, { transaction: false }));
  }
  return waited;
}

/**
 * How far a job's watermark may trail before its run fails: past the refresh period several times
 * over and past twice the longest a read may hold a transaction (REQUEST_TIMEOUT_MS). 5 min by default.
 */
const heldAfterMs = (config: Config) => Math.max(5 * config.aggregateRefreshMs, 2 * config.requestTimeoutMs);

/**
 * A job's watermark stops at the oldest open transaction of the service's database role (a batch
 * still being written is waited for: aurore_settled_before). One left open (an operator's session
 * in BEGIN on the service's credentials, a stuck client) stopped the aggregates there without an
 * error anywhere. Past `heldAfterMs` the run fails naming it, so /health/detailed says degraded and
 * aurore_job_failing alerts; the run's work is kept, and the rows wait for that transaction to end.
 */
async function assertNotHeld(engine: Engine, job: string, config: Config) {
  // The sessions aurore_settled_before() waits for (sql/005_maintenance.sql), oldest first.
  const [h] = await engine.query<{ behind: number; mark: string; pid: number; app: string; state: string; since: string }>(
    `SELECT extract(epoch FROM now() - w.ingested_before)::float8 AS behind, w.ingested_before::text AS mark,
            a.pid, a.application_name AS app, a.state, a.xact_start::text AS since
     FROM aurore_watermarks w
     JOIN LATERAL (SELECT pid, application_name, state, xact_start FROM pg_stat_activity
                   WHERE datname = current_database() AND usename = current_user AND pid <> pg_backend_pid()
                     AND xact_start <= w.ingested_before
                   ORDER BY xact_start LIMIT 1) a ON true
     WHERE w.job = $1`,
    [job],
  );
  if (!h || h.behind * 1000 <= heldAfterMs(config)) return;
  throw new Error(
    `aggregates held at ${h.mark} (${Math.round(h.behind)} s behind) by a transaction of the service's database role open since ${h.since} ` +
      `(pid ${h.pid}, application '${h.app}', ${h.state}): rows committed after it began are counted once it ends (end it, or SELECT pg_terminate_backend(${h.pid}))`,
  );
}

/** "late events": brings aggregates up to date for rows that arrived after the refresh policies' windows passed them. */
export function lateEvents(engine: Engine, config: Config) {
  return async (): Promise<string> => {
    const w = await lateRange(engine, config.retention.rawDays);
    let did = 'nothing late';
    if (w.first && w.last) {
      const waited = await refreshLevels(engine, w.first);
      did = `refreshed ${w.first} .. ${w.last}${waited ? ` (after waiting out ${waited} concurrent refreshes)` : ''}`;
    }
    await engine.query(
      `INSERT INTO aurore_watermarks (job, ingested_before) VALUES ('late', $1::text::timestamptz)
       ON CONFLICT (job) DO UPDATE SET ingested_before = excluded.ingested_before`,
      [w.hi],
    );
    await assertNotHeld(engine, 'late', config);
    return did;
  };
}

/** "rollup" (Apache edition): recounts the minutes that received rows, then their hours and days. */
export function rollup(engine: Engine, config: Config) {
  return async (): Promise<string> => {
    const [row] = await engine.query<{ n: number }>(`SELECT aurore_refresh_rollups($1::int) AS n`, [config.retention.rawDays]);
    if (row!.n < 0) return 'skipped: another instance is refreshing';
    await assertNotHeld(engine, 'rollup', config);
    return `${row!.n} minute buckets recounted`;
  };
}
