// Failures the service recovers from by answering less well (an estimated total instead of an exact
// one): counted by kind for GET /metrics (aurore_fallbacks_total{kind}) and logged once per kind and
// cause, so a fallback that starts happening on every request (a TimescaleDB upgrade that breaks a
// query, say) is seen at once and does not flood the log.
import type { Logger } from './log';

export type FallbackKind = 'exact_total';

export interface Fallbacks {
  counts: Record<FallbackKind, number>;
  report(kind: FallbackKind, err: unknown, what: string): void;
}

const CAUSES_LOGGED_MAX = 100;

export function createFallbacks(log: Logger): Fallbacks {
  const counts: Record<FallbackKind, number> = { exact_total: 0 };
  const logged = new Set<string>();
  return {
    counts,
    report(kind, err, what) {
      counts[kind]++;
      const cause = `${kind}: ${(err as Error)?.message ?? String(err)}`;
      if (logged.has(cause) || logged.size >= CAUSES_LOGGED_MAX) return;
      logged.add(cause);
      log.warn(`${what} (logged once per cause; counted in aurore_fallbacks_total)`, { kind, err });
    },
  };
}
