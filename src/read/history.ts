// Each service's events before yesterday (UTC), the bulk of /health/business's totals (and so of
// /health/detailed's): read from the daily aggregate once and shared by every request until the
// maintenance jobs run here or AGGREGATE_REFRESH_SECONDS pass. Summed per request, those totals
// cost each request a scan of services x days kept (two years of 1,000 services: 730,000 rows,
// 120-160 ms of PostgreSQL, 450-550 ms of PGlite with every write waiting behind it), growing with
// every day kept, for a dashboard polling every few seconds. Days before yesterday change only
// through late events and retention, which the aggregates take in at their next refresh anyway:
// those totals lag by at most one more period. Yesterday and today are read live by each request.
import type { Engine } from '../store/engine';

const DAY = 86_400_000;

/** The first day each request reads live: the start of yesterday, UTC (today's events and those a few minutes late for yesterday change it). */
export const liveFrom = (now: number) => Math.floor(now / DAY) * DAY - DAY;

export type ServiceHistory = ReturnType<typeof serviceHistory>;

/**
 * `keptMs`: how long one read serves (AGGREGATE_REFRESH_SECONDS); `jobRuns`: the maintenance runs
 * finished in this process, a new one of which may have changed those days (a late event refreshed,
 * a day dropped). Another process's runs are seen when `keptMs` has passed.
 */
export function serviceHistory(engine: Engine, keptMs: number, jobRuns: () => number) {
  let kept: { before: number; at: number; runs: number; totals: Promise<Map<string, number>> } | null = null;
  /** Events per service in the days before `before` (a day's start). */
  return function totalsBefore(before: number, now = Date.now()): Promise<Map<string, number>> {
    if (kept && kept.before === before && now - kept.at < keptMs && kept.runs === jobRuns()) return kept.totals;
    // On the reader itself, not bound to the request that happened to start it: others wait for it
    // too, and the request's own timeout answers it meanwhile.
    const totals = engine
      .query<{ service: string; events: number }>(
        `SELECT service, sum(events)::float8 AS events FROM analytics.events_per_day WHERE bucket < $1::text::timestamptz GROUP BY service`,
        [new Date(before).toISOString()],
      )
      .then((rows) => new Map(rows.map((r) => [r.service, r.events])));
    const entry = { before, at: now, runs: jobRuns(), totals };
    kept = entry;
    totals.catch(() => {
      if (kept === entry) kept = null; // a failed read is tried again by the next request
    });
    return totals;
  };
}
