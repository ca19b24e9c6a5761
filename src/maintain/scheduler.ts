// The maintenance stage: one small scheduler keeps the aggregates current and the data within its
// retention, on every TimescaleDB edition (the SQL it calls is in sql/003_aggregates.*.sql):
// - Community edition with background workers (the docker image, Timescale Cloud): TimescaleDB runs
//   the refresh, compression and retention policies; the service runs only "late events", and takes
//   a policy over while the database's own runs fail or stop (takeover.ts).
// - Community edition without them (the embedded PGlite engine, a server with the scheduler off): the
//   service also runs each policy, on the policy's own schedule, with `CALL run_job(id)` at top level
//   (never in a transaction).
// - Apache-only edition: no policies exist. The service runs "rollup" (incremental recount of the
//   rollup tables from a watermark) and "retention" (drop_chunks).
// On every edition the service runs "reorder events": CLUSTER each closed, uncompressed raw chunk by
// (service, time), which the Apache edition needs in place of the columnstore and the Community
// edition for the days before compression; and "retention events_rejected" (the quarantine).
// Jobs run one at a time, in a fixed order (finer aggregates before coarser, retention last), so a
// refresh never races the retention that drops what it reads. Each kind of job is in its own file.
import type { Config } from '../config';
import type { Logger } from '../log';
import type { Engine } from '../store/engine';
import type { Edition } from '../store/migrate';
import { lateEvents, rollup } from './aggregates';
import { createLease } from './lease';
import { databaseRuns, listPolicies, runPolicy, setPolicies, type DatabaseRuns } from './policies';
import { reorder } from './reorder';
import { rejectedRetention, retention } from './retention';
import { decide, type Watched } from './takeover';

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
  /** Why the service runs a policy TimescaleDB's scheduler would (takeover.ts); null otherwise. */
  reason: string | null;
}

interface Job {
  name: string;
  order: number;
  everyMs: number;
  /** Runs it; returns a short description of what it did, for the status. */
  run: () => Promise<string>;
  status: JobStatus;
  /** TimescaleDB's job id, for one of its policies (run by its background workers, or by the service). */
  dbJobId?: number;
  /** Who runs a policy, and since when (takeover.ts); only for policies on a server. */
  watch?: Watched;
}

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
  'retention events_rejected': 10,
};

const TICK_MS = 1000;
/** How often the lease holder reads the database's record of its policy runs. */
const WATCH_MS = 5000;
const HOURLY = 3_600_000;

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
    nextRunAt: runBy === 'service' ? new Date().toISOString() : null, // due at start: a restart applies new settings at once
    runningSince: null,
    runs: 0,
    failures: 0,
    reason: null,
  };
}

function job(name: string, everyMs: number, run: () => Promise<string>, dbJobId?: number): Job {
  return { name, order: ORDER[name] ?? 9, everyMs, run, status: newStatus(name, dbJobId === undefined ? 'service' : 'database', everyMs), dbJobId };
}

interface JobsDeps {
  engine: Engine;
  config: Config;
  log: Logger;
  edition: Edition;
  backgroundWorkers: boolean;
}

/** The jobs of this edition, policies set to the configuration first. */
async function defineJobs({ engine, config, edition, backgroundWorkers }: JobsDeps, stopped: () => boolean): Promise<Job[]> {
  const jobs: Job[] = [job('retention events_rejected', HOURLY, rejectedRetention(engine, config, stopped))];
  if (config.compressAfterDays > 0) jobs.push(job('reorder events', HOURLY, reorder(engine, stopped)));
  if (edition === 'apache') {
    jobs.push(job('rollup', config.aggregateRefreshMs, rollup(engine, config)), job('retention', HOURLY, retention(engine, config)));
    return jobs;
  }
  await setPolicies(engine, config);
  jobs.push(job('late events', config.aggregateRefreshMs, lateEvents(engine, config)));
  const now = Date.now();
  for (const p of await listPolicies(engine)) {
    // With background workers TimescaleDB runs it (its status from timescaledb_information.job_stats)
    // until takeover.ts says otherwise; without, the service runs it from the start.
    const j = job(p.name, p.everyMs, runPolicy(engine, p.jobId));
    j.dbJobId = p.jobId;
    if (engine.kind === 'server')
      j.watch = { runBy: backgroundWorkers ? 'database' : 'service', takenOverAt: backgroundWorkers ? null : now, watchedSince: now };
    if (backgroundWorkers) Object.assign(j.status, { runBy: 'database', nextRunAt: null });
    else
      j.status.reason =
        engine.kind === 'server' ? 'no TimescaleDB background workers were running when the service started' : 'the embedded engine has no background workers';
    jobs.push(j);
  }
  return jobs;
}

/** Runs one job, recording its result in its status. */
async function runJob(job: Job, log: Logger) {
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

/** The status of the policies TimescaleDB runs, from its own record of their runs. */
async function withDatabaseStats(engine: Engine, log: Logger, jobs: Job[], list: JobStatus[]) {
  const ids = new Map(jobs.filter((j) => j.dbJobId !== undefined && j.status.runBy === 'database').map((j) => [j.name, j.dbJobId!]));
  if (!ids.size) return;
  try {
    const stats = await databaseRuns(engine, [...ids.values()]);
    for (const s of list) {
      const st = stats.find((x) => x.job_id === ids.get(s.name));
      if (st) Object.assign(s, databaseStatus(st));
    }
  } catch (err) {
    log.warn('job status: timescaledb_information.job_stats unreadable', { err });
  }
}

function databaseStatus(st: DatabaseRuns): Partial<JobStatus> {
  return {
    everySeconds: st.every_s,
    lastRunAt: st.last_run,
    lastSuccessAt: st.last_success,
    nextRunAt: st.next,
    runs: st.runs,
    failures: st.failures,
    lastDurationMs: st.duration_ms,
    lastError: st.last_status === 'Failed' ? (st.last_error ?? 'failed (see timescaledb_information.job_history)') : null,
  };
}

/** Applies takeover.ts's decision for each policy on a server: the service runs it, or hands it back. */
function applyDecisions(jobs: Job[], runs: DatabaseRuns[], log: Logger) {
  const now = Date.now();
  for (const j of jobs) {
    if (!j.watch) continue;
    const r = runs.find((x) => x.job_id === j.dbJobId);
    if (r) j.everyMs = r.every_s * 1000; // an operator may have changed the schedule (alter_job)
    const d = decide(j.watch, r, now);
    if (d.action === 'take over') {
      Object.assign(j.watch, { runBy: 'service', takenOverAt: now });
      Object.assign(j.status, { runBy: 'service', reason: d.reason, nextRunAt: new Date(now).toISOString(), everySeconds: j.everyMs / 1000 });
      log.warn("the database's scheduler is not running a policy: the service runs it until the database's own runs succeed again", {
        job: j.name,
        jobId: j.dbJobId,
        reason: d.reason,
      });
    } else if (d.action === 'hand back') {
      Object.assign(j.watch, { runBy: 'database', takenOverAt: null, watchedSince: now });
      Object.assign(j.status, { runBy: 'database', reason: null, nextRunAt: null });
      log.info('the database runs a policy again: the service hands it back', { job: j.name, jobId: j.dbJobId });
    }
  }
}

/** Every WATCH_MS, reads the database's runs of its policies and applies takeover.ts (never blocked by a long job). */
function policyWatch(engine: Engine, log: Logger, jobs: () => Job[]) {
  let watchedAt = 0;
  let watching = false;
  return {
    async due(now: number) {
      const ids = jobs()
        .filter((j) => j.watch)
        .map((j) => j.dbJobId!);
      if (!ids.length || watching || now - watchedAt < WATCH_MS) return;
      watching = true;
      watchedAt = now;
      try {
        applyDecisions(jobs(), await databaseRuns(engine, ids), log);
      } catch (err) {
        log.warn('policy watch: timescaledb_information.job_stats unreadable; tried again in 5 s', { err });
      } finally {
        watching = false;
      }
    },
  };
}

export type Jobs = ReturnType<typeof createJobs>;

export function createJobs(deps: JobsDeps) {
  const { engine, config, log, edition } = deps;
  let jobs: Job[] = [];
  let timer: ReturnType<typeof setInterval> | undefined;
  let running: Promise<void> = Promise.resolve();
  let busy = false;
  let stopped = false;
  let finished = 0; // runs of the service's jobs, for what keeps their results (read/history.ts)
  // Setting the policies can fail (a permission an operator removed): the service keeps ingesting,
  // the status shows the error, and it is tried again every AGGREGATE_REFRESH_SECONDS.
  const setupStatus = newStatus('setup', 'service', config.aggregateRefreshMs);
  let setUp = false;
  const lease = createLease(engine, log);
  const watch = policyWatch(engine, log, () => jobs);

  /** Runs `pick`ed jobs in order, one at a time, after whatever is running now. */
  function runSerial(pick: (j: Job) => boolean): Promise<void> {
    const next = running.then(async () => {
      busy = true;
      try {
        for (const j of jobs.filter(pick).sort((a, b) => a.order - b.order)) {
          if (stopped) break;
          await runJob(j, log);
          finished++;
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
      jobs = await defineJobs(deps, () => stopped);
      setUp = true;
      log.info('maintenance jobs', {
        edition,
        service: jobs.filter((j) => j.status.runBy === 'service').map((j) => j.name),
        database: jobs.filter((j) => j.status.runBy === 'database').map((j) => j.name),
      });
      Object.assign(setupStatus, { lastError: null, lastSuccessAt: new Date().toISOString(), nextRunAt: null, lastResult: `${jobs.length} jobs` });
    } catch (err) {
      setupStatus.failures++;
      setupStatus.lastError = (err as Error).message;
      setupStatus.nextRunAt = new Date(started + config.aggregateRefreshMs).toISOString();
      log.error('maintenance jobs not set up; retrying (aggregates and retention wait meanwhile)', { err });
    }
    setupStatus.lastDurationMs = Date.now() - started;
  }

  /** One tick of the clock: set up when due, else start the service jobs that are due (on one instance). */
  function tick() {
    if (stopped || !lease.held()) return;
    const now = Date.now();
    if (setUp) void watch.due(now);
    if (busy) return;
    if (!setUp) {
      if (Date.parse(setupStatus.nextRunAt!) <= now) {
        busy = true;
        void trySetup().finally(() => (busy = false));
      }
      return;
    }
    if (jobs.some((j) => j.status.runBy === 'service' && Date.parse(j.status.nextRunAt!) <= now)) {
      void runSerial((j) => j.status.runBy === 'service' && Date.parse(j.status.nextRunAt!) <= Date.now());
    }
  }

  return {
    /** Sets the policies to the configuration and starts the clock; every job is due at once. */
    async start() {
      await lease.start();
      await trySetup();
      if (stopped) return; // stop() came during the setup
      timer = setInterval(tick, TICK_MS);
      timer.unref?.();
    },
    /**
     * Runs every job now, in order, the database's policies included (`CALL run_job`): what an
     * operator's "refresh now" is, and how tests make the jobs' effects happen on every engine.
     */
    runAll: () => runSerial(() => true),
    /** How many job runs have finished in this process: a new one may have changed the aggregates' past. */
    finishedRuns: () => finished,
    /** Whether this instance runs the jobs, and which instance does. */
    runner: () => ({ here: lease.held(), holder: lease.holder() }),
    /** Each job's schedule, last run and last error. */
    async status(): Promise<JobStatus[]> {
      const list = jobs.map((j) => ({ ...j.status }));
      if (setupStatus.lastError) list.unshift({ ...setupStatus });
      await withDatabaseStats(engine, log, jobs, list);
      return list.sort((a, b) => (ORDER[a.name] ?? -1) - (ORDER[b.name] ?? -1));
    },
    /** Stops the clock and waits for the job in progress (a refresh cannot be interrupted safely). */
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await running;
      await lease.stop();
    },
  };
}
