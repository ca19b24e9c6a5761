// Who runs each of TimescaleDB's policies on a server: its own scheduler (background workers), or the
// service, when the database's runs keep failing or have stopped. Seen on TimescaleDB 2.28.3 with
// PostgreSQL 15.20: every run by the scheduler failed (`cannot drop portal "" while it is being set
// up`, SQLSTATE 24000) while `CALL run_job(id)` from a session ran the same job; retention then never
// dropped a chunk. So the service watches the database's own record of its runs (job_stats and
// job_history, where a session's run_job leaves no trace) and takes a policy over when
//   - its last FAILURES_TO_TAKE_OVER runs failed, none succeeding since, or
//   - it has not started for more than OVERDUE_PERIODS of its periods (a scheduler stopped, or off);
// and hands it back once the database's own run succeeds after the takeover. Pure decisions here;
// the scheduler (scheduler.ts) applies them under the maintenance lease, so one instance does it.
import type { DatabaseRuns } from './policies';

export const FAILURES_TO_TAKE_OVER = 3;
export const OVERDUE_PERIODS = 2;

export type Decision = { action: 'take over'; reason: string } | { action: 'hand back' } | { action: 'keep' };

export interface Watched {
  runBy: 'service' | 'database';
  /** When the service took the policy over (or started running it), for the hand-back test. */
  takenOverAt: number | null;
  /** When this process started watching the policy: "overdue" counts from here if it never ran. */
  watchedSince: number;
}

/** Why the database's scheduler is not running this policy, or null while it is. */
export function notRunReason(runs: DatabaseRuns, now: number, watchedSince: number): string | null {
  if (runs.failures_since_success >= FAILURES_TO_TAKE_OVER) {
    return `the database's last ${runs.failures_since_success} runs failed: ${runs.last_error ?? 'no error recorded'}`;
  }
  // Paused by an operator (scheduled = false) is a choice, not a failure; a run in progress is not late.
  if (!runs.scheduled || runs.job_status === 'Running') return null;
  const periodMs = runs.every_s * 1000;
  const since = runs.last_run ? Math.max(Date.parse(runs.last_run), 0) : watchedSince;
  const waited = now - since;
  if (waited > OVERDUE_PERIODS * periodMs) {
    return `the database has not ${runs.last_run ? 'started it again' : 'run it'} for ${Math.round(waited / 1000)} s (its period: ${runs.every_s} s)`;
  }
  return null;
}

export function decide(job: Watched, runs: DatabaseRuns | undefined, now: number): Decision {
  if (!runs) return { action: 'keep' };
  if (job.runBy === 'database') {
    const reason = notRunReason(runs, now, job.watchedSince);
    return reason ? { action: 'take over', reason } : { action: 'keep' };
  }
  const succeeded = runs.last_success ? Date.parse(runs.last_success) : 0;
  return job.takenOverAt !== null && succeeded > job.takenOverAt ? { action: 'hand back' } : { action: 'keep' };
}
