// The maintenance stage: one small scheduler keeps the aggregates current and the data within its
// retention, on every TimescaleDB edition (the SQL it calls is in sql/003_aggregates.*.sql):
// - Community edition with background workers (the docker image, Timescale Cloud): TimescaleDB runs
//   the refresh, compression and retention policies; the service runs only "late events".
// - Community edition without them (the embedded PGlite engine): the service also runs each policy,
//   on the policy's own schedule, with `CALL run_job(id)` at top level (never in a transaction).
// - Apache-only edition: no policies exist. The service runs "rollup" (incremental recount of the
//   rollup tables from a watermark) and "retention" (drop_chunks).
// On every edition the service runs "reorder events": CLUSTER each closed, uncompressed raw chunk by
// (service, time), which the Apache edition needs in place of the columnstore and the Community
// edition for the days before compression.
// Jobs run one at a time, in a fixed order (finer aggregates before coarser, retention last), so a
// refresh never races the retention that drops what it reads.
import type { Config } from './config';
import type { Engine } from './engine';
import type { Logger } from './log';
import type { Edition } from './migrate';

export interface JobStatus {
  name: string;
  runBy: 'service' | 'database';
  everySeconds: number;
  lastRunAt: string | null;
  lastSuccessAt: string | null;
  lastDurationMs: number | null;
  lastError: string | null;
  lastResult: string | null;
  nextRunAt: string | null;
  /** Set while a run is in progress (a stuck job shows here); the other fields describe the last finished run. */
  runningSince: string | null;
  runs: number;
  failures: number;
}

interface Job {
  name: string;
  order: number;
  everyMs: number;
  /** Runs it; returns a short description of what it did, for the status. */
  run: () => Promise<string>;
  status: JobStatus;
}

// The per-minute refresh policy covers the last 3 hours (start_offset in aurore_set_policies); the
// "late events" job takes every row older than 2 hours. The hour of overlap is refreshed twice, which
// costs little; without it a row 2h59m late could leave the policy's window before the policy's next
// run, after this job had judged it recent, and never be refreshed.
const LATE_AFTER = '2 hours';

const ORDER: Record<string, number> = {
  'late events': 0,
  rollup: 0,
  'refresh events_per_minute': 1,
  'refresh events_per_hour': 2,
  'refresh events_per_day': 3,
  'compression events': 4, // before reorder: a chunk about to be compressed is not rewritten first
  'reorder events': 5,
  'retention events': 6,
  retention: 6,
  'retention events_per_minute': 7,
  'retention events_per_hour': 8,
  'retention events_per_day': 9,
};

const TICK_MS = 1000;

export type Jobs = ReturnType<typeof createJobs>;

export function createJobs(deps: { engine: Engine; config: Config; log: Logger; edition: Edition; backgroundWorkers: boolean }) {
  const { engine, config, log, edition, backgroundWorkers } = deps;
  const r = config.retention;
  const jobs: Job[] = [];
  const dbJobIds = new Map<string, number>(); // jobs TimescaleDB runs itself, by name
  let timer: ReturnType<typeof setInterval> | undefined;
  let running: Promise<void> = Promise.resolve();
  let busy = false;
  let stopped = false;
  // Setting the policies can fail (a permission an operator removed): the service keeps ingesting,
  // the status shows the error, and it is tried again every AGGREGATE_REFRESH_SECONDS.
  const setupStatus = newStatus('setup', 'service', config.aggregateRefreshMs);
  let setUp = false;

  function newStatus(name: string, runBy: JobStatus['runBy'], everyMs: number): JobStatus {
    return {
      name,
      runBy,
      everySeconds: everyMs / 1000,
      lastRunAt: null,
      lastSuccessAt: null,
      lastDurationMs: null,
      lastError: null,
      lastResult: null,
      nextRunAt: new Date().toISOString(), // due at start: a restart applies new settings at once
      runningSince: null,
      runs: 0,
      failures: 0,
    };
  }
  const add = (name: string, everyMs: number, run: () => Promise<string>) =>
    jobs.push({ name, order: ORDER[name] ?? 9, everyMs, run, status: newStatus(name, 'service', everyMs) });

  /** The database's own policies (Community edition), with the names the status shows. */
  async function policies() {
    return engine.query<{ job_id: number; name: string; every_s: number }>(
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
  }

  /** Brings aggregates up to date for rows that arrived after the refresh policies' windows passed them. */
  async function lateEvents(): Promise<string> {
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
      [r.rawDays],
    );
    if (!w) throw new Error('late events: watermark query returned no row');
    let did = 'nothing late';
    if (w.first && w.last) {
      // Finer first: each level is computed from the one below. Windows are whole buckets, and end
      // where that level's policy ends (end_offset): refreshing a bucket that is still filling would
      // freeze it (rows arriving afterwards wait for the next refresh instead of showing at once).
      const windows = await engine.query<{ view: string; a: string; b: string }>(
        `SELECT v.view, v.a::text AS a, v.b::text AS b FROM (VALUES
           (1, 'events_per_minute', time_bucket(INTERVAL '1 minute', $1::text::timestamptz),
               least(time_bucket(INTERVAL '1 minute', $2::text::timestamptz) + INTERVAL '1 minute', time_bucket(INTERVAL '1 minute', now() - INTERVAL '1 minute'))),
           (2, 'events_per_hour', time_bucket(INTERVAL '1 hour', $1::text::timestamptz),
               least(time_bucket(INTERVAL '1 hour', $2::text::timestamptz) + INTERVAL '1 hour', time_bucket(INTERVAL '1 hour', now() - INTERVAL '1 hour'))),
           (3, 'events_per_day', time_bucket(INTERVAL '1 day', $1::text::timestamptz),
               least(time_bucket(INTERVAL '1 day', $2::text::timestamptz) + INTERVAL '1 day', time_bucket(INTERVAL '1 day', now() - INTERVAL '1 day')))
         ) AS v(level, view, a, b)
         WHERE v.a < v.b ORDER BY v.level`,
        [w.first, w.last],
      );
      for (const x of windows) {
        // Not parameters: refresh refuses to run inside the implicit transaction of a prepared statement.
        await engine.exec(`CALL refresh_continuous_aggregate('analytics.${x.view}', '${x.a}'::timestamptz, '${x.b}'::timestamptz)`, { transaction: false });
      }
      did = `refreshed ${w.first} .. ${w.last}`;
    }
    await engine.query(
      `INSERT INTO aurore_watermarks (job, ingested_before) VALUES ('late', $1::text::timestamptz)
       ON CONFLICT (job) DO UPDATE SET ingested_before = excluded.ingested_before`,
      [w.hi],
    );
    return did;
  }

  /** CLUSTERs closed chunks, one per transaction, an hour after they close (no longer the insert target). */
  async function reorder(): Promise<string> {
    // Embedded, every statement waits while a chunk is rewritten (one session): at most 30 s of it
    // per run, the rest at the next. The server locks only the chunk being rewritten.
    const budgetMs = engine.kind === 'embedded' ? 30_000 : Infinity;
    const started = Date.now();
    const done: string[] = [];
    while (!stopped && done.length < 50 && Date.now() - started < budgetMs) {
      const [row] = await engine.query<{ chunk: string | null }>(`SELECT aurore_reorder_chunk(INTERVAL '1 hour') AS chunk`);
      if (!row?.chunk) break;
      done.push(row.chunk);
    }
    return `${done.length} chunks reordered by service`;
  }

  async function setup() {
    const everyRefresh = config.aggregateRefreshMs;
    if (config.compressAfterDays > 0) add('reorder events', 3_600_000, reorder);
    if (edition === 'apache') {
      add('rollup', everyRefresh, async () => {
        const [row] = await engine.query<{ n: number }>(`SELECT aurore_refresh_rollups($1::int) AS n`, [r.rawDays]);
        return row!.n < 0 ? 'skipped: another instance is refreshing' : `${row!.n} minute buckets recounted`;
      });
      add('retention', 3_600_000, async () => {
        const [row] = await engine.query<{ n: number }>(`SELECT aurore_apply_retention($1::int, $2::int, $3::int, $4::int) AS n`, [r.rawDays, r.minuteDays, r.hourDays, r.dayDays]);
        return `${row!.n} chunks dropped`;
      });
      return;
    }
    await engine.query(`SELECT aurore_set_policies($1::int, $2::int, $3::int, $4::int, $5::int)`, [r.rawDays, r.minuteDays, r.hourDays, r.dayDays, config.compressAfterDays]);
    add('late events', everyRefresh, lateEvents);
    for (const p of await policies()) {
      const everyMs = p.every_s * 1000;
      if (backgroundWorkers) {
        // TimescaleDB runs it; its status comes from timescaledb_information.job_stats.
        jobs.push({ name: p.name, order: ORDER[p.name] ?? 9, everyMs, run: async () => '', status: { ...newStatus(p.name, 'database', everyMs), nextRunAt: null } });
        dbJobIds.set(p.name, p.job_id);
      } else {
        add(p.name, everyMs, async () => {
          await engine.exec(`CALL run_job(${Number(p.job_id)})`, { transaction: false });
          return 'ran';
        });
      }
    }
  }

  async function runJob(job: Job) {
    const started = Date.now();
    job.status.runningSince = new Date(started).toISOString();
    let result: string | null = null;
    let error: string | null = null;
    try {
      result = await job.run();
    } catch (err) {
      error = (err as Error).message;
      log.warn('job failed; it runs again at its next time', { job: job.name, err });
    }
    const ms = Date.now() - started;
    // All at once: a status read never mixes two runs.
    Object.assign(job.status, {
      runningSince: null,
      lastRunAt: job.status.runningSince,
      lastDurationMs: ms,
      nextRunAt: new Date(started + job.everyMs).toISOString(),
      runs: job.status.runs + 1,
      failures: job.status.failures + (error ? 1 : 0),
      lastError: error,
      lastResult: error ? job.status.lastResult : result,
      lastSuccessAt: error ? job.status.lastSuccessAt : new Date().toISOString(),
    });
    // Quick runs are visible in /health/database; a long one (the first aggregation of a big
    // database takes minutes) is worth a line in the log.
    if (ms > 5000 && !error) log.info('job done', { job: job.name, ms, result });
  }

  /** Runs `pick`ed service jobs in order, one at a time, after whatever is running now. */
  function runSerial(pick: (j: Job) => boolean): Promise<void> {
    const next = running.then(async () => {
      busy = true;
      try {
        for (const job of jobs.filter((j) => j.status.runBy === 'service' && pick(j)).sort((a, b) => a.order - b.order)) {
          if (stopped) break;
          await runJob(job);
        }
      } finally {
        busy = false;
      }
    });
    running = next;
    return next;
  }

  async function trySetup() {
    const started = Date.now();
    setupStatus.lastRunAt = new Date(started).toISOString();
    setupStatus.runs++;
    try {
      jobs.length = 0;
      dbJobIds.clear();
      await setup();
      setUp = true;
      log.info('maintenance jobs', { edition, service: jobs.filter((j) => j.status.runBy === 'service').map((j) => j.name), database: [...dbJobIds.keys()] });
      setupStatus.lastError = null;
      setupStatus.lastSuccessAt = new Date().toISOString();
      setupStatus.nextRunAt = null;
      setupStatus.lastResult = `${jobs.length} jobs`;
    } catch (err) {
      setupStatus.failures++;
      setupStatus.lastError = (err as Error).message;
      setupStatus.nextRunAt = new Date(started + config.aggregateRefreshMs).toISOString();
      log.error('maintenance jobs not set up; retrying (aggregates and retention wait meanwhile)', { err });
    }
    setupStatus.lastDurationMs = Date.now() - started;
  }

  return {
    /** Sets the policies to the configuration and starts the clock; every job is due at once. */
    async start() {
      await trySetup();
      if (stopped) return; // stop() came during the setup
      timer = setInterval(() => {
        if (busy || stopped) return;
        const now = Date.now();
        if (!setUp) {
          if (Date.parse(setupStatus.nextRunAt!) <= now) {
            busy = true;
            void trySetup().finally(() => (busy = false));
          }
          return;
        }
        if (jobs.some((j) => j.status.runBy === 'service' && Date.parse(j.status.nextRunAt!) <= now)) {
          void runSerial((j) => Date.parse(j.status.nextRunAt!) <= Date.now());
        }
      }, TICK_MS);
      timer.unref?.();
    },
    /** Runs every job the service owns now, in order (also what an operator's "refresh now" is). */
    runAll: () => runSerial(() => true),
    /** Each job's schedule, last run and last error. */
    async status(): Promise<JobStatus[]> {
      const list = jobs.map((j) => ({ ...j.status }));
      if (setupStatus.lastError) list.unshift({ ...setupStatus });
      if (dbJobIds.size) {
        try {
          const stats = await engine.query<{ job_id: number; last_run: string | null; last_success: string | null; next: string | null; runs: number; failures: number; last_status: string | null; duration_ms: number | null }>(
            `SELECT job_id, last_run_started_at::text AS last_run, last_successful_finish::text AS last_success, next_start::text AS next,
                    total_runs::int AS runs, total_failures::int AS failures, last_run_status AS last_status,
                    (extract(epoch FROM last_run_duration) * 1000)::float8 AS duration_ms
             FROM timescaledb_information.job_stats WHERE job_id = ANY($1::int[])`,
            [[...dbJobIds.values()]],
          );
          for (const s of list) {
            const st = stats.find((x) => x.job_id === dbJobIds.get(s.name));
            if (!st) continue;
            Object.assign(s, {
              lastRunAt: st.last_run,
              lastSuccessAt: st.last_success,
              nextRunAt: st.next,
              runs: st.runs,
              failures: st.failures,
              lastDurationMs: st.duration_ms,
              lastError: st.last_status === 'Failed' ? 'failed (see timescaledb_information.job_errors)' : null,
            });
          }
        } catch (err) {
          log.warn('job status: timescaledb_information.job_stats unreadable', { err });
        }
      }
      return list.sort((a, b) => (ORDER[a.name] ?? -1) - (ORDER[b.name] ?? -1));
    },
    /** Stops the clock and waits for the job in progress (a refresh cannot be interrupted safely). */
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
