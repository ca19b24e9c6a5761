// The Apache edition's retention job: no policies exist there, so the service drops raw chunks past
// RETENTION_DAYS and aggregate buckets past their own ages (aurore_apply_retention, drop_chunks by
// whole chunks). The Community edition's retention is a TimescaleDB policy (policies.ts).
import type { Config } from '../config';
import type { Engine } from '../store/engine';

export function retention(engine: Engine, config: Config) {
  const r = config.retention;
  return async (): Promise<string> => {
    const [row] = await engine.query<{ n: number }>(`SELECT aurore_apply_retention($1::int, $2::int, $3::int, $4::int) AS n`, [r.rawDays, r.minuteDays, r.hourDays, r.dayDays]);
    return `${row!.n} chunks dropped`;
  };
}
