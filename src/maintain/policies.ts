// TimescaleDB's own policies (Community edition): refresh of each continuous aggregate, compression of
// raw chunks, retention of raw events and of each aggregate. aurore_set_policies (sql/010) makes them
// follow the configuration at every start. Where background workers run, TimescaleDB runs them and
// reports in timescaledb_information.job_stats and .job_history; where none run (PGlite), or where
// the database's runs fail or stop (takeover.ts), the scheduler runs each with `CALL run_job(id)` at
// top level (never in a transaction: refresh refuses transaction blocks). Only public views are read.
import type { Config } from '../config';
import type { Engine } from '../store/engine';

export interface Policy {
  jobId: number;
  name: string; // 'refresh events_per_minute', 'compression events', 'retention events', ...
  everyMs: number;
}

/** Sets every policy to the configuration (only those whose settings differ change). */
export async function setPolicies(engine: Engine, config: Config) {
  const r = config.retention;
  await engine.query(`SELECT aurore_set_policies($1::int, $2::int, $3::int, $4::int, $5::int)`, [
    r.rawDays,
    r.minuteDays,
    r.hourDays,
    r.dayDays,
    config.compressAfterDays,
  ]);
}

/** The policies the database holds, with the names the job status shows. */
export async function listPolicies(engine: Engine): Promise<Policy[]> {
  const rows = await engine.query<{ job_id: number; name: string; every_s: number }>(
    `SELECT job_id,
            CASE proc_name WHEN 'policy_refresh_continuous_aggregate' THEN 'refresh '
                           WHEN 'policy_retention' THEN 'retention ' ELSE 'compression ' END || hypertable_name AS name,
            extract(epoch FROM schedule_interval)::float8 AS every_s
     FROM timescaledb_information.jobs
     WHERE proc_name IN ('policy_refresh_continuous_aggregate', 'policy_retention', 'policy_compression')
       AND (hypertable_schema, hypertable_name) IN (('public', 'events'), ('analytics', 'events_per_minute'),
                                                    ('analytics', 'events_per_hour'), ('analytics', 'events_per_day'))
     ORDER BY job_id`,
  );
  return rows.map((p) => ({ jobId: p.job_id, name: p.name, everyMs: p.every_s * 1000 }));
}

/** Runs one policy now, in the service. */
export function runPolicy(engine: Engine, jobId: number) {
  return async (): Promise<string> => {
    const waited = await whenRefreshFree(() => engine.exec(`CALL run_job(${Number(jobId)})`, { transaction: false }));
    return waited ? `ran (after ${waited} concurrent refresh${waited > 1 ? 'es' : ''})` : 'ran';
  };
}

/** SQLSTATE of "could not refresh continuous aggregate ... due to a concurrent refresh" (TimescaleDB 2.2x). */
const CONCURRENT_REFRESH = '55P03';
const REFRESH_TRIES = 6;

/**
 * Runs a refresh (a policy's or the service's own), waiting out another one on an overlapping window:
 * TimescaleDB refuses the second at once (55P03) rather than queue it. Where the database's
 * scheduler runs its policies, its run and the service's "late events" overlap now and then; the
 * job then failed, and the late rows waited a whole AGGREGATE_REFRESH_SECONDS. Waits 0.25 s, 0.5 s,
 * ... (about 8 s in all), then lets the error through. Returns how many refusals it waited out.
 */
export async function whenRefreshFree(refresh: () => Promise<unknown>): Promise<number> {
  for (let i = 0; ; i++) {
    try {
      await refresh();
      return i;
    } catch (err) {
      if ((err as { code?: string }).code !== CONCURRENT_REFRESH || i + 1 >= REFRESH_TRIES) throw err;
      await Bun.sleep(250 * 2 ** i);
    }
  }
}

/** What TimescaleDB's background workers last did with one policy (its own runs only: run_job from a session is not counted). */
export interface DatabaseRuns {
  job_id: number;
  every_s: number;
  scheduled: boolean;
  /** 'Scheduled', 'Running' or 'Paused'. */
  job_status: string | null;
  last_run: string | null;
  last_success: string | null;
  next: string | null;
  runs: number;
  failures: number;
  last_status: string | null;
  duration_ms: number | null;
  /** Failed runs since the last success (at most 10 counted) and the newest one's error. */
  failures_since_success: number;
  last_error: string | null;
}

export function databaseRuns(engine: Engine, jobIds: number[]) {
  return engine.query<DatabaseRuns>(
    `SELECT s.job_id, extract(epoch FROM j.schedule_interval)::float8 AS every_s, j.scheduled, s.job_status,
            s.last_run_started_at::text AS last_run,
            CASE WHEN s.last_successful_finish > '-infinity' THEN s.last_successful_finish::text END AS last_success,
            s.next_start::text AS next, coalesce(s.total_runs, 0)::int AS runs, coalesce(s.total_failures, 0)::int AS failures,
            s.last_run_status AS last_status, (extract(epoch FROM s.last_run_duration) * 1000)::float8 AS duration_ms,
            f.n AS failures_since_success, f.err AS last_error
     FROM timescaledb_information.job_stats s
     JOIN timescaledb_information.jobs j ON j.job_id = s.job_id
     CROSS JOIN LATERAL (
       SELECT count(*)::int AS n, (array_agg(coalesce(h.sqlerrcode || ': ', '') || h.err_message ORDER BY h.id DESC))[1] AS err
       FROM (SELECT id, sqlerrcode, err_message FROM timescaledb_information.job_history
             WHERE job_id = s.job_id AND NOT succeeded AND start_time > coalesce(s.last_successful_finish, '-infinity')
             ORDER BY id DESC LIMIT 10) h) f
     WHERE s.job_id = ANY($1::int[])`,
    [jobIds],
  );
}
