// TimescaleDB's own policies (Community edition): refresh of each continuous aggregate, compression of
// raw chunks, retention of raw events and of each aggregate. aurore_set_policies (sql/003) makes them
// follow the configuration at every start. Where background workers run, TimescaleDB runs them and
// reports in timescaledb_information.job_stats; where none run (PGlite), the scheduler runs each with
// `CALL run_job(id)` at top level (never in a transaction: refresh refuses transaction blocks).
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
  await engine.query(`SELECT aurore_set_policies($1::int, $2::int, $3::int, $4::int, $5::int)`, [r.rawDays, r.minuteDays, r.hourDays, r.dayDays, config.compressAfterDays]);
}

/** The policies the database holds, with the names the job status shows. */
export async function listPolicies(engine: Engine): Promise<Policy[]> {
  const rows = await engine.query<{ job_id: number; name: string; every_s: number }>(
    `SELECT j.id AS job_id,
            CASE j.proc_name WHEN 'policy_refresh_continuous_aggregate' THEN 'refresh '
                             WHEN 'policy_retention' THEN 'retention ' ELSE 'compression ' END
              || coalesce(ca.user_view_name, h.table_name) AS name,
            extract(epoch FROM j.schedule_interval)::float8 AS every_s
     FROM _timescaledb_config.bgw_job j
     JOIN _timescaledb_catalog.hypertable h ON h.id = j.hypertable_id
     LEFT JOIN _timescaledb_catalog.continuous_agg ca ON ca.mat_hypertable_id = j.hypertable_id
     WHERE j.proc_name IN ('policy_refresh_continuous_aggregate', 'policy_retention', 'policy_compression')
     ORDER BY j.id`,
  );
  return rows.map((p) => ({ jobId: p.job_id, name: p.name, everyMs: p.every_s * 1000 }));
}

/** Runs one policy now, in the service (no background workers). */
export function runPolicy(engine: Engine, jobId: number) {
  return async (): Promise<string> => {
    await engine.exec(`CALL run_job(${Number(jobId)})`, { transaction: false });
    return 'ran';
  };
}

export interface PolicyStats {
  job_id: number;
  last_run: string | null;
  last_success: string | null;
  next: string | null;
  runs: number;
  failures: number;
  last_status: string | null;
  duration_ms: number | null;
}

/** What TimescaleDB's background workers last did with each policy. */
export function policyStats(engine: Engine, jobIds: number[]) {
  return engine.query<PolicyStats>(
    `SELECT job_id, last_run_started_at::text AS last_run, last_successful_finish::text AS last_success, next_start::text AS next,
            total_runs::int AS runs, total_failures::int AS failures, last_run_status AS last_status,
            (extract(epoch FROM last_run_duration) * 1000)::float8 AS duration_ms
     FROM timescaledb_information.job_stats WHERE job_id = ANY($1::int[])`,
    [jobIds],
  );
}
