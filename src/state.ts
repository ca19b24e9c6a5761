// What the service knows about itself at run time, shared by the stages that report it (health,
// metrics) and the ones that change it (start-up, shutdown, the receivers' counters). Plain data:
// service.ts creates it and is the only one to set `ready`, `database` and `jobs`.
import { ApiError } from './errors';
import type { Jobs } from './maintain/scheduler';
import type { Fallbacks } from './fallbacks';
import type { DatabaseInfo } from './store/engine';

export interface ServiceState {
  ready: boolean; // database reachable and migrated
  draining: boolean; // shutting down: no new events
  /** compression: the columnstore (Community); reorder: closed chunks CLUSTERed by service (every edition). */
  database: (DatabaseInfo & { aggregates: 'continuous' | 'rollup'; compression: boolean; reorder: boolean }) | null;
  jobs: Jobs | null; // the maintenance scheduler, once the database is migrated
  startError: string | null;
  received: number; // events seen in POST bodies
  accepted: number;
  invalid: number; // events refused at validation
  /** Events from agents' protocols stored with something cut to fit (message or metadata). */
  cut: number;
  rejectedQueueFull: number;
  /** What the service recovered from by answering less well (fallbacks.ts); set by service.ts. */
  fallbacks: Fallbacks | null;
}

export function newState(): ServiceState {
  return {
    ready: false,
    draining: false,
    database: null,
    startError: null,
    received: 0,
    accepted: 0,
    invalid: 0,
    cut: 0,
    rejectedQueueFull: 0,
    jobs: null,
    fallbacks: null,
  };
}

/** Reads need the migrated database: before that, 503 not_ready with Retry-After. */
export function assertReady(state: ServiceState, retryAfter: number) {
  if (!state.ready) throw new ApiError('not_ready', 'The database is not ready yet', { retryAfter });
}
