// Retention the service runs itself. The Apache edition's: no policies exist there, so the service
// drops raw chunks past RETENTION_DAYS and aggregate buckets past their own ages
// (aurore_apply_retention, drop_chunks by whole chunks); the Community edition's is a TimescaleDB
// policy (policies.ts). And on every edition the quarantine's: events the database refused
// (events_rejected) live as long as stored ones, RETENTION_DAYS from when they were refused.
import type { Config } from '../config';
import type { Engine } from '../store/engine';

export function retention(engine: Engine, config: Config) {
  const r = config.retention;
  return async (): Promise<string> => {
    const [row] = await engine.query<{ n: number }>(`SELECT aurore_apply_retention($1::int, $2::int, $3::int, $4::int) AS n`, [
      r.rawDays,
      r.minuteDays,
      r.hourDays,
      r.dayDays,
    ]);
    return `${row!.n} chunks dropped`;
  };
}

// A first run after months of refusals may find millions of rows: deleted in parts, so no single
// statement holds the embedded engine (whose writes wait behind it) or one transaction's locks for long.
const TRIM_ROWS = 10_000;

/** Deletes quarantined events refused more than RETENTION_DAYS ago. */
export function rejectedRetention(engine: Engine, config: Config, stopped: () => boolean) {
  return async (): Promise<string> => {
    let deleted = 0;
    for (;;) {
      const [row] = await engine.query<{ n: number }>(
        `WITH gone AS (
           DELETE FROM events_rejected WHERE ctid IN (
             SELECT ctid FROM events_rejected WHERE rejected_at < now() - make_interval(days => $1::int) LIMIT ${TRIM_ROWS})
           RETURNING 1)
         SELECT count(*)::int AS n FROM gone`,
        [config.retention.rawDays],
      );
      deleted += row!.n;
      if (row!.n < TRIM_ROWS || stopped()) break;
    }
    return `${deleted} refused events deleted`;
  };
}
